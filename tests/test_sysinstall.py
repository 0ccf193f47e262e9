"""What the Debian package installs (cardbridge.sysinstall): the files built from the
knowledge the per-user commands use, and the manual page made from the parser."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from cardbridge import autostart, cli, sysinstall
from cardbridge.nativemsg import EXTENSION_CHROME_ID, HOST_NAME, install

EXTENSION = Path(__file__).resolve().parents[1] / "native-host" / "extension"
DATE = dt.date(2026, 11, 29)


def _files() -> dict[PurePosixPath, sysinstall.File]:
    files = sysinstall.package_files(extension=EXTENSION, parser=cli.build_parser(), date=DATE)
    return {f.path: f for f in files}


def test_the_extension_key_gives_the_id_the_manifests_allow() -> None:
    key = json.loads((EXTENSION / "manifest.json").read_text(encoding="utf-8"))["key"]
    assert sysinstall.chrome_extension_id(key) == EXTENSION_CHROME_ID


def test_every_browser_gets_a_manifest_naming_the_packaged_launcher() -> None:
    files = _files()
    for browser in sysinstall.PACKAGE_BROWSERS:
        link = sysinstall.system_manifest(browser)
        shipped = dict(sysinstall.manifest_links(HOST_NAME)).get(link, link)
        data = json.loads(files[shipped].text)
        assert data == install.manifest(browser, Path(sysinstall.LAUNCHER))
        assert str(link).startswith(install.LINUX_SYSTEM[browser])
    # Nothing the package ships lies under /etc/opt (Chrome's and Edge's are links).
    assert not [p for p in files if str(p).startswith("/etc/opt/")]
    assert {str(link) for link, _ in sysinstall.manifest_links(HOST_NAME)} == {
        "/etc/opt/chrome/native-messaging-hosts/no.cardbridge.host.json",
        "/etc/opt/edge/native-messaging-hosts/no.cardbridge.host.json",
    }


def test_the_launcher_and_the_command_run_the_private_environment() -> None:
    files = _files()
    launcher = files[sysinstall.LAUNCHER]
    assert launcher.mode == 0o755 and launcher.text.startswith("#!/bin/sh\n")
    assert 'exec /usr/lib/cardbridge/bin/python3 -I -m cardbridge.nativemsg "$@"' in launcher.text
    command = files[sysinstall.COMMAND]
    assert command.mode == 0o755 and 'exec /usr/lib/cardbridge/bin/python3 -I -m cardbridge "$@"' in command.text


def test_the_unit_and_autostart_entry_run_the_installed_command() -> None:
    files = _files()
    unit = files[PurePosixPath("/usr/lib/systemd/user/cardbridge.service")].text
    assert "ExecStart=/usr/bin/cardbridge serve" in unit and "WantedBy=graphical-session.target" in unit
    assert "apt purge cardbridge" in unit and "install-service" not in unit
    desktop = files[PurePosixPath("/etc/xdg/autostart/cardbridge.desktop")].text
    assert desktop == autostart.desktop_text(["/usr/bin/cardbridge", "serve"])
    assert "X-systemd-skip=true" in desktop


def test_the_extension_goes_where_debians_chromium_loads_extensions_from() -> None:
    files = _files()
    for name in ("manifest.json", "background.js", "content.js"):
        shipped = files[PurePosixPath("/usr/share/chromium/extensions/cardbridge") / name]
        assert shipped.text == (EXTENSION / name).read_text(encoding="utf-8")


def test_the_system_config_is_all_comments_and_parses() -> None:
    import tomllib

    text = _files()[sysinstall.SYSTEM_CONFIG].text
    assert tomllib.loads(text) == {}
    assert "allowed_origins" in text


def test_webeid_manifests_allow_only_the_webeid_extension() -> None:
    manifests = {f.path: json.loads(f.text) for f in sysinstall.webeid_manifests()}
    chromium = manifests[PurePosixPath("/etc/chromium/native-messaging-hosts/eu.webeid.json")]
    assert chromium["name"] == "eu.webeid" and chromium["path"] == str(sysinstall.LAUNCHER)
    assert chromium["allowed_origins"] == [
        "chrome-extension://ncibgoaomkmdpilpocfeponihegamlic/",
        "chrome-extension://gnmckgbandlkacikdndelhfghdejfido/",
    ]
    firefox = manifests[PurePosixPath("/usr/lib/mozilla/native-messaging-hosts/eu.webeid.json")]
    assert firefox["allowed_extensions"] == ["{e68418bc-f2b0-4459-a9ea-3e72b6751b07}"]
    assert PurePosixPath("/usr/share/cardbridge/native-messaging-hosts/chrome/eu.webeid.json") in manifests


def test_the_manual_page_names_every_command_and_option() -> None:
    page = sysinstall.manpage(cli.build_parser(), DATE)
    assert page.startswith('.TH CARDBRIDGE 1 "2026-11-29"')
    for command in ("list", "authenticate", "serve", "doctor", "install-native-host", "dev token create"):
        assert f".SS cardbridge {command.replace('-', chr(92) + '-')}\n" in page, command
    assert "\\fB\\-\\-origin ORIGIN\\fR" in page
    assert "\\fB\\-\\-lang {nb,nn,en}\\fR" in page
    assert "\\fB\\-\\-pin\\-tries N\\fR" in page  # dev card


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_the_manual_page_renders_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "cardbridge.1"
    source.write_text(sysinstall.manpage(cli.build_parser(), DATE), encoding="utf-8")
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(source)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and result.stderr == ""


def test_write_puts_the_files_under_a_staging_root(tmp_path: Path) -> None:
    written = sysinstall.write(sysinstall.webeid_manifests(), tmp_path)
    assert tmp_path / "etc/chromium/native-messaging-hosts/eu.webeid.json" in written
    assert all(p.is_file() and (p.stat().st_mode & 0o777) == 0o644 for p in written)


def test_the_system_configs_examples_are_settings_the_bridge_accepts(tmp_path: Path) -> None:
    """Every commented example in the packaged /etc/cardbridge/config.toml, uncommented, is a
    valid system file: the documentation cannot drift from the settings."""
    from cardbridge.config import load_config

    examples = [line[2:] for line in sysinstall.CONFIG_TEXT.splitlines() if line.startswith("# ") and " = " in line]
    assert len(examples) >= 10
    system = tmp_path / "config.toml"
    system.write_text("\n".join(examples) + "\n", encoding="utf-8")
    config = load_config(tmp_path / "none.toml", system_path=system)
    assert config.origin_policy == "ask" and config.locked == ("origin_policy", "allowed_origins")
    assert all(config.sources[name] == "system" for name in ("origin_policy", "denied_origins", "port"))
