"""cardbridge doctor: pcscd up and down, without a reader, a bad module path, a missing
browser manifest, certificates near expiry, the port, and a report without secrets.

The command runs as a real process with its own HOME, config file and log folder. "pcscd
down" points the PC/SC client library at a socket where no pcscd listens
(``PCSCLITE_CSOCK_NAME``), exactly what a stopped pcscd looks like to a client, so the
pcscd that other tests use keeps running. The tests with a running pcscd (up, a card,
no reader) are in tests/pcsc/test_doctor_pcsc.py, next to the pcscd fixture."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cardbridge import doctor
from cardbridge.config import Config
from cardbridge.doctor import Status
from cardbridge.model import PinStatus

PIN = "739184"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def _env(tmp_path: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "LANG", "LC_ALL", "LC_MESSAGES", "CARDBRIDGE_PKCS11_MODULE")
    }
    env.update(
        HOME=str(home),
        LANG="C.UTF-8",
        CARDBRIDGE_CONFIG=str(tmp_path / "config.toml"),
        CARDBRIDGE_LOG_DIR=str(tmp_path / "log"),
        CARDBRIDGE_PINENTRY=sys.executable,
    )
    env.update(extra)
    return env


def _doctor(*args: str, env: dict[str, str]) -> tuple[int, dict[str, list[dict[str, Any]]], str]:
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", *args, "doctor", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    checks: dict[str, list[dict[str, Any]]] = {}
    for check in json.loads(result.stdout)["checks"]:
        checks.setdefault(check["id"], []).append(check)
    return result.returncode, checks, result.stderr


def _softhsm_module() -> str:
    from cardbridge.emulator.softhsm import softhsm_module

    return softhsm_module()


def test_pcscd_down(tmp_path: Path, home: Path) -> None:
    env = _env(tmp_path, home, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd" / "pcscd.comm"))
    code, checks, _ = _doctor("--lang", "en", env=env)
    assert code == 1, "something needs a fix"
    (check,) = checks["pcscd"]
    assert check["status"] == "fail"
    assert check["detail"] == "The smart card service is not running, or it does not answer."
    assert "sudo systemctl enable --now pcscd.socket" in check["fix"]
    assert checks["readers"][0]["status"] == "warn"
    # The same in bokmål and nynorsk.
    _, nb, _ = _doctor("--lang", "nb", env=env)
    assert nb["pcscd"][0]["name"] == "Korttjenesten (pcscd)" and nb["pcscd"][0]["fix"].startswith("Start den:")
    _, nn, _ = _doctor("--lang", "nn", env=env)
    assert nn["pcscd"][0]["detail"] == "Korttenesta køyrer ikkje, eller ho svarar ikkje."


@pytest.mark.parametrize("lang", ["nb", "nn", "en"])
def test_no_reader_check_names_the_fix(lang: str) -> None:
    check = doctor.check_readers([], lang)
    assert check.status is Status.FAIL and check.fix and "libccid" in check.fix
    assert doctor.check_readers(None, lang).status is Status.WARN
    assert doctor.check_cards([SimpleNamespace(name="R", card_present=False, card=None)], lang)[0].fix


def test_bad_module_path(tmp_path: Path, home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", "doctor", "--json", "--module", "/nonexistent/libcard.so"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, home),
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    modules = [c for c in json.loads(result.stdout)["checks"] if c["id"] == "modules"]
    (check,) = modules
    assert check["status"] == "fail"
    assert "/nonexistent/libcard.so" in check["detail"]
    assert "pkcs11_modules" in check["fix"]


def test_bad_module_path_in_the_config_file(tmp_path: Path, home: Path) -> None:
    (tmp_path / "config.toml").write_text('pkcs11_modules = ["/nonexistent/opensc-pkcs11.so"]\n')
    code, checks, _ = _doctor("--lang", "nn", env=_env(tmp_path, home))
    assert code == 1
    (check,) = checks["modules"]
    assert check["status"] == "fail" and "/nonexistent/opensc-pkcs11.so" in check["detail"]
    assert check["fix"].startswith("Rett stien i pkcs11_modules i ")


def test_module_that_is_not_a_library_and_one_others_can_write(tmp_path: Path, home: Path) -> None:
    config = Config(path=tmp_path / "config.toml")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a library")
    junk.chmod(0o755)
    checks, loaded = doctor.check_modules(config, "en", [str(junk)])
    assert loaded == [] and checks[0].status is Status.FAIL and "cannot be loaded" in checks[0].detail
    junk.chmod(0o777)
    checks, _ = doctor.check_modules(config, "en", [str(junk)])
    assert checks[0].status is Status.FAIL and checks[0].fix and f"chmod go-w {junk}" in checks[0].fix


def test_manifest_missing_then_installed(tmp_path: Path, home: Path) -> None:
    from cardbridge.nativemsg import install

    (home / ".config" / "chromium").mkdir(parents=True)  # this user has Chromium
    env = _env(tmp_path, home, PCSCLITE_CSOCK_NAME=str(tmp_path / "none.comm"))
    code, checks, _ = _doctor("--lang", "en", env=env)
    assert code == 1
    (check,) = checks["manifests"]
    assert check["status"] == "fail" and check["data"]["browser"] == "chromium"
    assert "the manifest is missing" in check["detail"]
    assert check["fix"] == "Run: cardbridge install-native-host --browser chromium"

    install.install("chromium", home=home, launcher=home / "bin" / "cardbridge-native-host")
    _, checks, _ = _doctor("--lang", "en", env=env)
    (check,) = checks["manifests"]
    assert check["status"] == "ok", check
    # A manifest that names a program that is gone.
    (home / "bin" / "cardbridge-native-host").unlink()
    _, checks, _ = _doctor("--lang", "en", env=env)
    assert checks["manifests"][0]["status"] == "fail"


def test_no_browser_is_a_warning(home: Path) -> None:
    (check,) = doctor.check_manifests("en", home)
    assert check.status is Status.WARN


def _listing(label: str, *days: float) -> Any:
    now = dt.datetime.now(dt.UTC)
    certificates = tuple(
        SimpleNamespace(
            holder_name="Kari Nordmann",
            purpose="authentication",
            not_after=now + dt.timedelta(days=d),
            sha256="ab" * 32,
        )
        for d in days
    )
    return SimpleNamespace(info=SimpleNamespace(label=label), certificates=certificates, error=None, pin=None, pins=())


def _two_pin_card(pin1: PinStatus, pin2: PinStatus, label: str = "JAAK-KRISTJAN JÕEORG") -> Any:
    """An Estonian card as ``list_tokens(every_pin=True)`` lists it: the token's label is the
    holder's name; the login certificate has PIN1, the signing certificate PIN2."""
    now = dt.datetime.now(dt.UTC)
    certificates = tuple(
        SimpleNamespace(
            holder_name="JAAK-KRISTJAN JÕEORG",
            purpose=purpose,
            not_after=now + dt.timedelta(days=400),
            sha256=f"{n}" * 64,
            country="EE",
        )
        for n, purpose in enumerate(("authentication", "signing"))
    )
    return SimpleNamespace(
        info=SimpleNamespace(label=label), certificates=certificates, error=None, pin=pin1, pins=(pin1, pin2)
    )


def test_a_blocked_login_pin_fails_and_names_the_pin_and_the_fix() -> None:
    checks = doctor.certificate_checks(
        [_two_pin_card(PinStatus(blocked=True, name="PIN1"), PinStatus(name="PIN2"))], "en"
    )
    failed = [c for c in checks if c.status is Status.FAIL]
    assert len(failed) == 1, checks
    assert "PIN1 is blocked" in failed[0].detail and failed[0].fix and "PUK" in failed[0].fix
    assert "PIN2" not in " ".join(c.detail for c in checks), "PIN2 is in order: nothing to say"
    assert doctor.exit_status(checks) == 1
    nb = doctor.certificate_checks([_two_pin_card(PinStatus(blocked=True, name="PIN1"), PinStatus(name="PIN2"))], "nb")
    assert any("PIN1 er sperret" in c.detail for c in nb)


def test_a_blocked_signing_pin_only_warns_and_the_last_try_and_not_active_warn() -> None:
    checks = doctor.certificate_checks(
        [_two_pin_card(PinStatus(retries_left=1, final_try=True, name="PIN1"), PinStatus(blocked=True, name="PIN2"))],
        "en",
    )
    warned = {c.detail.split(": ", 1)[1]: c for c in checks if c.status is Status.WARN}
    assert "PIN2 is blocked: the card cannot sign until it is unblocked." in warned, warned
    assert "PIN1 has one try left: one more wrong PIN blocks it." in warned, warned
    assert doctor.exit_status(checks) == 0, "logins still work"
    checks = doctor.certificate_checks(
        [_two_pin_card(PinStatus(name="PIN1"), PinStatus(not_active=True, name="PIN2"))], "en"
    )
    (warning,) = [c for c in checks if c.status is Status.WARN]
    assert warning.detail.endswith("PIN2 is not activated yet.") and warning.fix and "DigiDoc4" in warning.fix


def test_the_holder_is_named_once_when_the_token_label_is_the_holder() -> None:
    checks = doctor.certificate_checks([_two_pin_card(PinStatus(name="PIN1"), PinStatus(name="PIN2"))], "en")
    assert [c.status for c in checks] == [Status.OK, Status.OK]
    assert all(c.detail.count("JAAK-KRISTJAN JÕEORG") == 1 for c in checks), [c.detail for c in checks]
    other = doctor.certificate_checks([_two_pin_card(PinStatus(), PinStatus(), label="Card 1")], "en")
    assert other[0].detail.startswith("Card 1: JAAK-KRISTJAN JÕEORG (authentication)")


def test_certificates_warn_thirty_days_before_expiry() -> None:
    checks = doctor.certificate_checks([_listing("card", 400, 29.5, 1.5, -2)], "en")
    assert [c.status for c in checks] == [Status.OK, Status.WARN, Status.WARN, Status.FAIL]
    assert "expires in 29 days" in checks[1].detail and "expires in 1 day," in checks[2].detail
    assert checks[1].fix == "Order a new ID card in good time."
    assert checks[3].fix == "Order a new ID card." and "expired on" in checks[3].detail
    nb = doctor.certificate_checks([_listing("card", 10.5)], "nb")
    assert "går ut om 10 dager" in nb[0].detail
    assert doctor.certificate_checks([], "nn")[0].status is Status.WARN


def test_port_free_and_taken_by_another_program(tmp_path: Path) -> None:
    config = Config(path=tmp_path / "config.toml")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check = doctor.check_port(config, "en", port)
        assert check.status is Status.FAIL and check.detail == f"Another program uses port {port}."
        assert check.fix and "port = " in check.fix
    check = doctor.check_port(config, "en", port)
    assert check.status is Status.WARN and check.fix == "Start the background service: cardbridge install-service"


def test_exit_status() -> None:
    ok = doctor.Check("x", "X", Status.OK, "")
    warn = doctor.Check("x", "X", Status.WARN, "")
    fail = doctor.Check("x", "X", Status.FAIL, "", "do this")
    assert doctor.exit_status([ok, warn]) == 0
    assert doctor.exit_status([ok, fail]) == 1
    assert "do this" in doctor.format_checks([fail], "en")


@pytest.mark.softhsm
def test_report_has_no_pin_and_no_secret(tmp_path: Path, home: Path) -> None:
    base = _env(tmp_path, home, CARDBRIDGE_DATA_DIR=str(tmp_path / "data"))
    base.pop("SOFTHSM2_CONF", None)
    created = subprocess.run(
        [sys.executable, "-m", "cardbridge", "dev", "token", "create", "--pin", PIN, "--label", "doc", "--json"],
        capture_output=True,
        text=True,
        env=base,
        timeout=120,
        check=True,
    )
    card = json.loads(created.stdout)
    so_pin = json.loads((Path(card["softhsm2_conf"]).parent / "doc.json").read_text())["so_pin"]
    report = tmp_path / "report.txt"
    env = {**base, "SOFTHSM2_CONF": card["softhsm2_conf"]}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardbridge",
            "--lang",
            "en",
            "doctor",
            "--module",
            card["module"],
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    assert f"The report is saved in {report}. Send it to support." in result.stderr
    text = report.read_text(encoding="utf-8")
    assert "cardbridge doctor: report for support" in text
    assert f"doc: {card['holder']} (authentication), valid until" in text, "the card and its certificate are listed"
    for secret in (PIN, so_pin, "PRIVATE KEY", "BEGIN"):
        assert secret not in text
        assert secret not in result.stdout
    assert PIN not in "".join(p.read_text() for p in (tmp_path / "log").glob("*"))


def test_doctor_says_who_answers_the_web_eid_extension(home: Path) -> None:
    import json

    from cardbridge.nativemsg import WEBEID_HOST_NAME, install

    (home / ".config" / "chromium").mkdir(parents=True)

    def webeid() -> Any:
        (check,) = [c for c in doctor.check_manifests("en", home) if c.id == "webeid"]
        return check

    assert "nothing answers the Web eID extension" in webeid().detail
    theirs = install.manifest_dir("chromium", home=home) / f"{WEBEID_HOST_NAME}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_text(json.dumps({"name": WEBEID_HOST_NAME, "path": "/usr/bin/web-eid", "type": "stdio"}))
    assert webeid().data["answeredBy"] == "/usr/bin/web-eid"
    assert "another program" in webeid().detail
    install.install("chromium", home=home, launcher=home / "bin" / "launcher", web_eid=True, replace=True)
    assert webeid().data["answeredBy"] == "cardbridge"


# -- what the Debian package installs system-wide ------------------------------------------------


def _package_root(tmp_path: Path) -> Path:
    """The files the Debian package installs, under a folder standing for ``/``; Chrome's and
    Edge's manifests linked into place as the package's postinst does."""
    from cardbridge import cli, sysinstall
    from cardbridge.nativemsg import HOST_NAME

    root = tmp_path / "root"
    extension = Path(__file__).resolve().parents[1] / "native-host" / "extension"
    files = sysinstall.package_files(extension=extension, parser=cli.build_parser(), date=dt.date(2026, 1, 1))
    sysinstall.write(files, root)
    for link, target in sysinstall.manifest_links(HOST_NAME):
        (root / str(link).lstrip("/")).parent.mkdir(parents=True)
        (root / str(link).lstrip("/")).symlink_to(root / str(target).lstrip("/"))
    return root


def test_system_manifests_of_the_package_are_found_without_a_profile(tmp_path: Path, home: Path) -> None:
    root = _package_root(tmp_path)
    checks = {c.data.get("browser"): c for c in doctor.check_manifests("en", home, root=root)}
    for browser in ("chromium", "chrome", "edge", "firefox"):
        assert checks[browser].status is Status.OK, checks[browser]
        assert checks[browser].data["scope"] == "system"
    assert checks["chrome"].data["manifest"].endswith("/etc/opt/chrome/native-messaging-hosts/no.cardbridge.host.json")
    assert "brave" not in checks  # neither a profile nor a manifest
    # The launcher gone: the manifests are broken.
    (root / "usr/libexec/cardbridge/cardbridge-native-host").unlink()
    checks = {c.data.get("browser"): c for c in doctor.check_manifests("en", home, root=root)}
    assert checks["chromium"].status is Status.FAIL


def test_the_packaged_extension_is_found(tmp_path: Path, home: Path) -> None:
    check = doctor.check_extension("en", home, root=tmp_path / "empty")
    assert check.status is Status.WARN and check.fix
    root = _package_root(tmp_path)
    check = doctor.check_extension("en", home, root=root)
    assert check.status is Status.OK and check.data["scope"] == "system"
    assert check.data["path"] == str(root / "usr/share/chromium/extensions/cardbridge")
    # Another extension in the same folder is not ours.
    manifest = root / "usr/share/chromium/extensions/cardbridge/manifest.json"
    manifest.write_text(json.dumps({"name": "cardbridge", "key": "AAAA"}), encoding="utf-8")
    assert doctor.check_extension("en", home, root=root).status is Status.WARN


def test_the_packaged_unit_is_found_when_enabled_for_all_users(tmp_path: Path, home: Path) -> None:
    environ = {"HOME": str(home)}
    root = tmp_path / "root"
    check = doctor.check_service("en", environ, root=root)
    assert check.status is Status.WARN and check.fix == "Run: cardbridge install-service"
    root = _package_root(tmp_path)
    (root / "etc/xdg/autostart/cardbridge.desktop").unlink()
    check = doctor.check_service("en", environ, root=root)
    assert check.status is Status.WARN and "not enabled" in check.detail
    wants = root / "etc/systemd/user/graphical-session.target.wants"
    wants.mkdir(parents=True)
    (wants / "cardbridge.service").symlink_to("/usr/lib/systemd/user/cardbridge.service")
    check = doctor.check_service("en", environ, root=root)
    assert check.status is Status.OK and check.data["unit"] == str(root / "usr/lib/systemd/user/cardbridge.service")


def test_an_autostart_entry_alone_starts_the_bridge(tmp_path: Path, home: Path) -> None:
    root = tmp_path / "root"
    entry = root / "etc/xdg/autostart/cardbridge.desktop"
    entry.parent.mkdir(parents=True)
    entry.write_text("[Desktop Entry]\n", encoding="utf-8")
    check = doctor.check_service("en", {"HOME": str(home)}, root=root)
    assert check.status is Status.OK and check.data["autostart"] == str(entry)


def test_origins_under_ask_need_no_fix_and_an_empty_allow_list_does(origin_store: Any) -> None:
    origin_store.allow("https://login.example.no")
    asked = doctor.check_origins(Config(denied_origins=("https://phish.example",)), "en")
    assert asked.status is Status.OK
    assert "asked about once" in asked.detail and "by you: 1, denied: 1" in asked.detail
    listed = doctor.check_origins(Config(origin_policy="allow-list"), "en")
    assert listed.status is Status.WARN and "allowed_origins" in (listed.fix or "")


def test_a_check_that_fails_unexpectedly_is_a_line_of_its_own_and_the_report_is_written(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person is told to send ``doctor --report`` when something goes wrong, so a bug in
    one check must not take the others and the report with it (a check that raised ended
    doctor with INTERNAL and wrote no file). The raising check is a stand-in: no real
    component makes a check raise; it copies the KeyError that a Belgian card's CA
    certificate once caused."""
    from cardbridge import doctor
    from cardbridge.cli import main

    for key, value in _env(tmp_path, home).items():
        monkeypatch.setenv(key, value)

    def broken(*args: object) -> object:
        raise KeyError("other")

    monkeypatch.setattr(doctor, "check_pinentry", broken)
    checks = doctor.run_checks("en", home=home)
    (failed,) = [c for c in checks if c.id == "pinentry"]
    assert failed.status is doctor.Status.FAIL and "KeyError" in failed.detail, failed
    assert "Send this report to support" in (failed.fix or "")
    assert [c.id for c in checks][-1] == "log", "the checks after it still ran"
    report = tmp_path / "report.txt"
    assert main(["--lang", "en", "doctor", "--report", str(report)]) == 1
    assert "This check failed unexpectedly: KeyError" in report.read_text(encoding="utf-8")
