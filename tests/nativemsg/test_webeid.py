"""Standing in for the Web eID app: the ``eu.webeid`` registration and the handshake version
that the Web eID extension and web-eid.js accept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cardbridge import __version__
from cardbridge.errors import ConfigError
from cardbridge.nativemsg import (
    HOST_NAME,
    WEBEID_CHROME_IDS,
    WEBEID_FIREFOX_ID,
    WEBEID_HOST_NAME,
    handshake_version,
    install,
)
from tests.nativemsg.conftest import HostProcess

# The SemVer 2.0.0 grammar (semver.org's regular expression), which the Web eID extension and
# web-eid.js use to read the native app's version; they refuse a major version below 2.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
WEB_EID_APP_MANIFEST = (
    b'{\n    "name": "eu.webeid",\n    "description": "Web eID native messaging host",\n'
    b'    "path": "/usr/bin/web-eid",\n    "type": "stdio",\n'
    b'    "allowed_origins": ["chrome-extension://ncibgoaomkmdpilpocfeponihegamlic/"]\n}\n'
)


def folder(home: Path, browser: str) -> Path:
    return install.manifest_dir(browser, home=home)


def test_the_handshake_is_semver_with_major_2_and_names_cardbridge() -> None:
    version = handshake_version(__version__)
    match = SEMVER.match(version)
    assert match, version
    assert int(match.group(1)) >= 2
    assert match.group(5) == f"cardbridge.{__version__}"
    assert not version.startswith("v")


@pytest.mark.parametrize("odd", ["0.1.0.dev1+g1234", "1.0 beta", "é"])
def test_the_handshake_stays_semver_whatever_our_version_looks_like(odd: str) -> None:
    assert SEMVER.match(handshake_version(odd))


def test_the_host_says_the_handshake_version_first(tmp_path: Path) -> None:
    host = HostProcess(f"chrome-extension://{WEBEID_CHROME_IDS[0]}/")
    try:
        first = host.read()
        assert first == {"version": handshake_version(__version__)}
        host.send({"command": "quit", "arguments": {}})
        assert host.read() == {}
    finally:
        host.kill()


def test_web_eid_install_registers_eu_webeid_for_the_web_eid_extension(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "bin" / "cardbridge-native-host"
    extra = "chrome-extension://abcdefghijklmnopabcdefghijklmnop/"
    changes = install.install("all", home=home, launcher=launcher, web_eid=True, extra_extensions=(extra,))
    assert {(c.browser, c.path.name, c.action) for c in changes if c.browser} >= {
        (b, f"{WEBEID_HOST_NAME}.json", "written") for b in install.BROWSERS
    }
    chromium = json.loads((folder(home, "chromium") / f"{WEBEID_HOST_NAME}.json").read_text())
    assert chromium["name"] == WEBEID_HOST_NAME and chromium["path"] == str(launcher)
    assert chromium["allowed_origins"] == [f"chrome-extension://{i}/" for i in (*WEBEID_CHROME_IDS, extra[19:51])]
    firefox = json.loads((folder(home, "firefox") / f"{WEBEID_HOST_NAME}.json").read_text())
    assert firefox["allowed_extensions"] == [WEBEID_FIREFOX_ID]
    assert (folder(home, "chromium") / f"{HOST_NAME}.json").exists()
    status = {(s["browser"], s["scope"]): s for s in install.status(home=home)}
    assert status["chromium", "user"]["webEid"]["answeredBy"] == "cardbridge"


def test_another_programs_manifest_is_never_overwritten(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "launcher"
    theirs = folder(home, "chromium") / f"{WEBEID_HOST_NAME}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(WEB_EID_APP_MANIFEST)
    with pytest.raises(ConfigError, match=r"/usr/bin/web-eid.*--replace"):
        install.install("chromium", home=home, launcher=launcher, web_eid=True)
    assert theirs.read_bytes() == WEB_EID_APP_MANIFEST
    assert not launcher.exists() and not (theirs.parent / f"{HOST_NAME}.json").exists()  # nothing written
    status = {(s["browser"], s["scope"]): s for s in install.status(home=home)}
    assert status["chromium", "user"]["webEid"]["answeredBy"] == "/usr/bin/web-eid"


def test_replace_then_uninstall_puts_the_other_programs_manifest_back_byte_for_byte(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "launcher"
    theirs = folder(home, "chromium") / f"{WEBEID_HOST_NAME}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(WEB_EID_APP_MANIFEST)
    os.chmod(theirs, 0o640)
    changes = install.install("chromium", home=home, launcher=launcher, web_eid=True, replace=True)
    assert ("chromium", theirs, "replaced") in {(c.browser, c.path, c.action) for c in changes}
    assert json.loads(theirs.read_text())["path"] == str(launcher)
    assert install.status(home=home)[1]["webEid"]["replaced"]  # chromium, user
    # Installing again keeps the other program's file aside, and does not lose it.
    install.install("chromium", home=home, launcher=launcher, web_eid=True)
    undone = install.uninstall("chromium", home=home, launcher=launcher, web_eid=True)
    assert [(c.path.name, c.action) for c in undone] == [
        (f"{WEBEID_HOST_NAME}.json", "removed"),
        (f"{WEBEID_HOST_NAME}.json", "restored"),
    ]
    assert theirs.read_bytes() == WEB_EID_APP_MANIFEST
    assert theirs.stat().st_mode & 0o777 == 0o640
    assert not install.replaced_path(theirs).exists()
    assert (theirs.parent / f"{HOST_NAME}.json").exists()  # --web-eid --uninstall keeps our own host


def test_a_full_uninstall_also_gives_eu_webeid_back(tmp_path: Path) -> None:
    home, launcher = tmp_path / "home", tmp_path / "launcher"
    theirs = folder(home, "edge") / f"{WEBEID_HOST_NAME}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(WEB_EID_APP_MANIFEST)
    install.install("all", home=home, launcher=launcher, web_eid=True, replace=True)
    install.uninstall("all", home=home, launcher=launcher)
    assert theirs.read_bytes() == WEB_EID_APP_MANIFEST
    assert not (folder(home, "chromium") / f"{WEBEID_HOST_NAME}.json").exists()
    assert not launcher.exists()


def test_the_cli_says_who_owns_it_and_how_to_choose(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "CARDBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "CARDBRIDGE_CONFIG": str(tmp_path / "none.toml"),
    }
    theirs = folder(tmp_path, "chrome") / f"{WEBEID_HOST_NAME}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(WEB_EID_APP_MANIFEST)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cardbridge", "install-native-host", "--browser", "chrome", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    refused = cli("--web-eid")
    assert refused.returncode != 0
    assert "/usr/bin/web-eid" in refused.stderr and "--replace" in refused.stderr
    assert theirs.read_bytes() == WEB_EID_APP_MANIFEST
    assert cli("--web-eid", "--replace").returncode == 0
    assert json.loads(theirs.read_text())["description"] == install.DESCRIPTION
    assert cli("--web-eid", "--uninstall").returncode == 0
    assert theirs.read_bytes() == WEB_EID_APP_MANIFEST
