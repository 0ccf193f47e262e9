"""install-native-host: the launcher and the manifests, in a temporary home; the extension's
identity and error table agree with the host's."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cardbridge import __version__
from cardbridge.nativemsg import (
    EXTENSION_CHROME_ID,
    EXTENSION_FIREFOX_ID,
    HOST_NAME,
    WEBEID_CHROME_IDS,
    WEBEID_FIREFOX_ID,
    codes,
    handshake_version,
    install,
)
from tests.nativemsg.conftest import ORIGIN, Card, HostProcess
from tests.verify import verify_token

ROOT = Path(__file__).resolve().parents[2]
NATIVE_HOST = ROOT / "native-host"
EXTENSION = NATIVE_HOST / "extension"


def handshake_and_quit(program: str, *args: str, env: dict[str, str] | None = None) -> None:
    host = HostProcess(*args, env=env, program=program)
    try:
        assert host.read() == {"version": handshake_version(__version__)}
        host.send({"command": "quit", "arguments": {}})
        assert host.read() == {}
        host.finish()
        assert host.proc.returncode == 0, host.stderr
    finally:
        host.kill()


def test_install_writes_a_launcher_and_every_manifest(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "data" / "cardbridge-native-host"
    changes = install.install("all", home=home, launcher=launcher)
    assert [c.browser for c in changes] == [None, *install.BROWSERS]
    assert os.access(launcher, os.X_OK)
    expected = {
        "chrome": ".config/google-chrome/NativeMessagingHosts",
        "chromium": ".config/chromium/NativeMessagingHosts",
        "edge": ".config/microsoft-edge/NativeMessagingHosts",
        "brave": ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        "firefox": ".mozilla/native-messaging-hosts",
    }
    for browser, folder in expected.items():
        manifest = json.loads((home / folder / f"{HOST_NAME}.json").read_text())
        assert manifest["name"] == HOST_NAME and manifest["type"] == "stdio"
        assert manifest["path"] == str(launcher)
        if browser == "firefox":
            assert manifest["allowed_extensions"] == [EXTENSION_FIREFOX_ID, WEBEID_FIREFOX_ID]
            assert "allowed_origins" not in manifest
        else:
            assert manifest["allowed_origins"] == [
                f"chrome-extension://{i}/" for i in (EXTENSION_CHROME_ID, *WEBEID_CHROME_IDS)
            ]
            assert "allowed_extensions" not in manifest
    status = {(s["browser"], s["scope"]): s for s in install.status(home=home)}
    assert status["chromium", "user"]["installed"] and status["chromium", "user"]["launcherOk"]
    assert status["firefox", "user"]["nameOk"]


def test_the_launcher_serves_as_the_browser_starts_it(tmp_path: Path) -> None:
    launcher = tmp_path / "cardbridge-native-host"
    install.install("chromium", home=tmp_path, launcher=launcher)
    # Without the site module (-S), with the folders it would add on sys.path.
    assert launcher.read_text().startswith(f"#!{sys.executable} -IS\n")
    assert f"sys.path += {install.site_paths()!r}\n" in launcher.read_text()
    handshake_and_quit(str(launcher), f"chrome-extension://{EXTENSION_CHROME_ID}/")


def test_the_launcher_loads_no_site_json_or_re_to_say_hello_and_quit(tmp_path: Path) -> None:
    # bench/cli_start.py measures the time; here, what it is made of: the handshake and the
    # answer to quit are ready-made, a small request is read by the C scanner.
    launcher = tmp_path / "cardbridge-native-host"
    install.install("chromium", home=tmp_path, launcher=launcher)
    interpreter, flags = launcher.read_text().splitlines()[0].removeprefix("#!").split()
    quit_ = b'{"command": "quit", "arguments": {}}'
    result = subprocess.run(
        [interpreter, "-X", "importtime", flags, str(launcher), f"chrome-extension://{EXTENSION_CHROME_ID}/"],
        input=len(quit_).to_bytes(4, sys.byteorder) + quit_,
        capture_output=True,
        timeout=30,
        check=True,
    )
    modules = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    assert "cardbridge.nativemsg.host" in modules
    for heavy in ("site", "json", "re", "enum", "functools", "asyncio", "cardbridge.errors", "cardbridge.config"):
        assert heavy not in modules, heavy
    assert result.stdout.endswith(b"\x02\x00\x00\x00{}" if sys.byteorder == "little" else b"\x00\x00\x00\x02{}")


@pytest.mark.softhsm
def test_the_launcher_without_site_logs_in(
    tmp_path: Path, config_env: dict[str, str], card: Card, pinentry: Any
) -> None:
    # Under -S the card layers and their libraries (python-pkcs11, cryptography,
    # fastjsonschema) come from the folders the launcher put on sys.path.
    launcher = tmp_path / "cardbridge-native-host"
    install.install("chromium", home=tmp_path, launcher=launcher)
    pinentry.respond(card.pin)
    challenge = base64.b64encode(os.urandom(32)).decode()
    host = HostProcess(
        f"chrome-extension://{EXTENSION_CHROME_ID}/",
        env={**config_env, **card.env(), **pinentry.env()},
        program=str(launcher),
    )
    try:
        assert host.read() == {"version": handshake_version(__version__)}
        host.send({"command": "authenticate", "arguments": {"challengeNonce": challenge, "origin": ORIGIN}})
        token = host.read()
        host.finish()
    finally:
        host.kill()
    assert host.proc.returncode == 0, host.stderr
    verify_token(token, ORIGIN, challenge)


def test_a_python_that_cannot_say_its_site_folders_gets_a_launcher_with_site(tmp_path: Path) -> None:
    assert install.site_paths("/bin/false") is None
    assert install.site_paths(str(tmp_path / "no-such-python")) is None
    script = install.launcher_script(sys.executable, site_paths=None)
    assert script.startswith(f"#!{sys.executable} -I\n") and "sys.path" not in script


def test_a_python_path_with_a_space_gets_an_sh_launcher() -> None:
    script = install.launcher_script("/opt/my python/bin/python3")
    assert script.startswith("#!/bin/sh\n")
    assert "exec '/opt/my python/bin/python3' -I -m cardbridge.nativemsg \"$@\"" in script


def test_uninstall(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "launcher"
    install.install("all", home=home, launcher=launcher)
    firefox = install.uninstall("firefox", home=home, launcher=launcher)
    assert [(c.browser, c.action) for c in firefox] == [("firefox", "removed")]
    assert launcher.exists()
    rest = install.uninstall("all", home=home, launcher=launcher)
    assert {c.action for c in rest if c.browser != "firefox"} == {"removed"}
    assert [c.action for c in rest if c.browser == "firefox"] == ["absent"]
    assert not launcher.exists()


def test_system_folders() -> None:
    linux = {b: install.manifest_dir(b, system=True, platform="linux") for b in install.BROWSERS}
    assert linux["chromium"] == Path("/etc/chromium/native-messaging-hosts")
    assert linux["firefox"] == Path("/usr/lib/mozilla/native-messaging-hosts")
    mac = install.manifest_dir("chrome", system=False, home=Path("/Users/kari"), platform="darwin")
    assert mac == Path("/Users/kari/Library/Application Support/Google/Chrome/NativeMessagingHosts")
    with pytest.raises(Exception, match="registry"):
        install.manifest_dir("chrome", platform="win32")


def test_unknown_browser_is_refused() -> None:
    with pytest.raises(Exception, match="Unknown browser"):
        install.install("netscape")


def test_cli_install_and_uninstall(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "CARDBRIDGE_DATA_DIR": str(tmp_path / "data")}

    def cli(*args: str) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "cardbridge", "install-native-host", *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        value: dict[str, Any] = json.loads(result.stdout)
        return value

    written = cli("--browser", "chromium")["changes"]
    assert [c["browser"] for c in written] == [None, "chromium"]
    assert written[1]["path"] == str(tmp_path / ".config/chromium/NativeMessagingHosts" / f"{HOST_NAME}.json")
    assert written[0]["path"] == str(tmp_path / "data" / "cardbridge-native-host")
    removed = cli("--uninstall")["changes"]
    assert ("chromium", "removed") in [(c["browser"], c["action"]) for c in removed]


def test_templates_in_native_host_match_install() -> None:
    for browser, name in (
        ("chromium", "no.cardbridge.host.chromium.json"),
        ("firefox", "no.cardbridge.host.firefox.json"),
    ):
        template = json.loads((NATIVE_HOST / name).read_text())
        assert template["path"] == "@LAUNCHER@"
        assert {**template, "path": "/x"} == install.manifest(browser, Path("/x"))


def test_the_packagers_launcher(tmp_path: Path) -> None:
    env = {**os.environ, "CARDBRIDGE_PYTHON": sys.executable}
    handshake_and_quit(str(NATIVE_HOST / "cardbridge-native-host"), env=env)


# -- the extension agrees with the host -----------------------------------------------------


def test_the_extension_key_gives_its_id() -> None:
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    digest = hashlib.sha256(base64.b64decode(manifest["key"])).hexdigest()[:32]
    assert "".join(chr(ord("a") + int(c, 16)) for c in digest) == EXTENSION_CHROME_ID
    assert manifest["browser_specific_settings"]["gecko"]["id"] == EXTENSION_FIREFOX_ID
    assert manifest["version"] == __version__
    assert manifest["permissions"] == ["nativeMessaging"]
    assert not list(EXTENSION.glob("*.pem")), "no private key in the tree"


def test_the_extension_maps_webeid_codes_as_the_host_does() -> None:
    source = (EXTENSION / "background.js").read_text()
    table = source[source.index("const FROM_WEBEID") :]
    table = table[: table.index("};")]
    pairs = dict(re.findall(r"(ERR_WEBEID_[A-Z_]+): \"([A-Z_]+)\"", table))
    assert pairs == codes.FROM_WEBEID
    assert f'const HOST = "{HOST_NAME}"' in source
