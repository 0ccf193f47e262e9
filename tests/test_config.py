"""The config file: where it is, what it may say, and files other users could change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cardbridge.config import DEFAULT_PORT, Config, config_path, load_config
from cardbridge.errors import ConfigError, ModuleMissingError
from cardbridge.fileperm import unsafe_reason
from cardbridge.pkcs11.discovery import check_module_path, resolve_modules

needs_root = pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="chown to another user needs root")


def _write(folder: Path, body: str, mode: int = 0o600) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    file = folder / "config.toml"
    file.write_text(body, encoding="utf-8")
    file.chmod(mode)
    return file


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args], capture_output=True, text=True, env=full, timeout=60, check=False
    )


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "none.toml")
    assert config == Config()
    assert config.port == DEFAULT_PORT and config.log_level == "INFO" and config.lang is None


def test_every_setting(tmp_path: Path) -> None:
    module = tmp_path / "module.so"
    module.write_bytes(b"")
    file = _write(
        tmp_path / "conf",
        f"""
allowed_origins = ["https://login.example.no", "https://www.example.com:8443"]
pkcs11_modules = ["{module}"]
port = 24999
lang = "nn"
user_timeout = 60
pinentry = "pinentry-gnome3 --timeout 60"
log_level = "trace"
""",
    )
    config = load_config(file)
    assert config.allowed_origins == ("https://login.example.no", "https://www.example.com:8443")
    assert config.pkcs11_modules == (str(module),)
    assert (config.port, config.lang, config.user_timeout, config.log_level) == (24999, "nn", 60.0, "TRACE")
    assert config.pinentry_program({}) == "pinentry-gnome3 --timeout 60"
    assert config.pinentry_program({"CARDBRIDGE_PINENTRY": "other"}) == "other"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("colour = 'blue'", "unknown setting(s) colour"),
        ("port = 80", "port must be a number from 1024 to 65535"),
        ("port = '24231'", "port must be a number"),
        ("lang = 'de'", "lang must be nb, nn or en"),
        ("user_timeout = 1", "user_timeout must be 5 to 3600 seconds"),
        ("pkcs11_modules = ['opensc-pkcs11.so']", "the path must be absolute"),
        ("pkcs11_modules = '/usr/lib/x.so'", "pkcs11_modules must be a list of strings"),
        ("allowed_origins = ['https://login.example.no/']", "allowed_origins"),
        ("allowed_origins = ['http://example.no']", "https"),
        ("log_level = 'LOUD'", "log_level must be one of TRACE, DEBUG, INFO, WARNING, ERROR"),
        ("allow_http_localhost = 'yes'", "allow_http_localhost must be true or false"),
        ("port = ", "config.toml"),
    ],
)
def test_clear_errors_that_name_the_file(tmp_path: Path, body: str, says: str) -> None:
    file = _write(tmp_path / "conf", body)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert info.value.message.startswith(f"{file}: ")
    if says != "allowed_origins":
        assert says in info.value.message


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_config_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    file = _write(tmp_path / "conf", "port = 24231", mode)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert f"chmod go-w {file}" in info.value.message


def test_config_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    file = _write(folder, "port = 24231")
    folder.chmod(0o777)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert f"chmod go-w {folder}" in info.value.message
    folder.chmod(0o1777)  # sticky, like /tmp: others cannot swap the file
    assert load_config(file).port == 24231
    # A folder higher up counts too: whoever can write it can rename the folder below.
    folder.chmod(0o700)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(ConfigError):
            load_config(file)
    finally:
        tmp_path.chmod(0o700)


@needs_root
def test_config_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    file = _write(tmp_path / "conf", "port = 24231", 0o644)
    os.chown(file, 54321, 54321)
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert "belongs to another user" in info.value.message


def test_module_file_others_can_write_is_refused_from_every_source(tmp_path: Path) -> None:
    module = tmp_path / "libcard.so"
    module.write_bytes(b"\x7fELF")
    module.chmod(0o755)
    assert check_module_path(str(module)) == str(module)
    module.chmod(0o777)
    for call in (
        lambda: check_module_path(str(module)),
        lambda: resolve_modules([str(module)], environ={}),
        lambda: resolve_modules(None, environ={"CARDBRIDGE_PKCS11_MODULE": str(module)}),
        lambda: resolve_modules(None, environ={}, config_modules=[str(module)]),
    ):
        with pytest.raises(ConfigError) as info:
            call()
        assert f"chmod go-w {module}" in info.value.message
    # Missing and relative paths keep their own error.
    with pytest.raises(ModuleMissingError):
        check_module_path(str(tmp_path / "missing.so"))


def test_module_through_a_symbolic_link_checks_the_target(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    target = real / "libcard.so"
    target.write_bytes(b"")
    target.chmod(0o755)
    link = tmp_path / "link.so"
    link.symlink_to(target)
    assert unsafe_reason(link) is None
    real.chmod(0o777)
    try:
        assert unsafe_reason(link) == f"{real} can be written by other users; run: chmod go-w {real}"
    finally:
        real.chmod(0o700)


def test_cli_refuses_a_writable_module_before_loading_it(tmp_path: Path) -> None:
    module = tmp_path / "libcard.so"
    module.write_bytes(b"not a library")
    module.chmod(0o666)
    result = _cli("--lang", "en", "list", "--module", str(module), "--json")
    assert result.returncode == 8, result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "CONFIG_ERROR"
    assert result.stderr.startswith("error: CONFIG_ERROR: cardbridge's settings are wrong or unsafe.")
    assert f"chmod go-w {module}" in result.stderr


def test_platform_config_folder() -> None:
    result = _cli("config", "path", env={"XDG_CONFIG_HOME": "/somewhere/config", "CARDBRIDGE_CONFIG": ""})
    assert result.stdout.strip() == "/somewhere/config/cardbridge/config.toml"


def test_cardbridge_config_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARDBRIDGE_CONFIG", str(tmp_path / "c.toml"))
    assert config_path() == tmp_path / "c.toml"
    result = _cli("config", "path", env={"CARDBRIDGE_CONFIG": str(tmp_path / "c.toml")})
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path / "c.toml")


def test_config_show(tmp_path: Path) -> None:
    file = _write(tmp_path / "conf", 'allowed_origins = ["https://login.example.no"]\nlang = "en"\n')
    env = {"CARDBRIDGE_CONFIG": str(file)}
    result = _cli("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["path"] == str(file) and doc["exists"] is True
    assert doc["settings"]["allowed_origins"] == ["https://login.example.no"]
    assert doc["settings"]["port"] == DEFAULT_PORT and doc["settings"]["lang"] == "en"
    text = _cli("config", "show", env=env)
    assert text.returncode == 0
    assert text.stdout.splitlines()[0] == f"Config file: {file}", "the config file's lang is the CLI's language"
    assert 'allowed_origins = ["https://login.example.no"]' in text.stdout
    missing = _cli("--lang", "nb", "config", "show", env={"CARDBRIDGE_CONFIG": str(tmp_path / "none.toml")})
    assert "(fila finnes ikke; dette er standardinnstillingene)" in missing.stdout


def test_config_show_refuses_a_bad_or_unsafe_file(tmp_path: Path) -> None:
    file = _write(tmp_path / "conf", "port = 1", 0o600)
    result = _cli("--lang", "nn", "config", "show", env={"CARDBRIDGE_CONFIG": str(file)})
    assert result.returncode == 8
    assert result.stderr.startswith("error: CONFIG_ERROR: Innstillingane til cardbridge er feil eller usikre.")
    assert "port must be a number from 1024 to 65535" in result.stderr
    file.write_text("port = 24231")
    file.chmod(0o646)
    result = _cli("config", "show", env={"CARDBRIDGE_CONFIG": str(file)})
    assert result.returncode == 8 and f"chmod go-w {file}" in result.stderr


# -- the system's file and the user's -----------------------------------------------------


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_the_users_file_overrides_the_systems_and_origins_add_up(tmp_path: Path) -> None:
    system = _write(
        tmp_path / "etc" / "config.toml",
        'origin_policy = "allow-list"\nport = 24500\nallowed_origins = ["https://admin.example.no"]\n'
        'denied_origins = ["https://phish.example"]\n',
    )
    user = _write(
        tmp_path / "home" / "config.toml",
        'port = 24600\nallowed_origins = ["https://mine.example.no"]\ndenied_origins = ["https://ads.example"]\n',
    )
    config = load_config(user, system_path=system)
    assert config.origin_policy == "allow-list" and config.port == 24600
    assert config.allowed_origins == ("https://admin.example.no", "https://mine.example.no")
    assert config.denied_origins == ("https://phish.example", "https://ads.example")
    assert config.sources["origin_policy"] == "system"
    assert config.sources["port"] == "user"
    assert config.sources["allowed_origins"] == "system+user"
    assert config.sources["lang"] == "default"


def test_a_locked_system_setting_wins_over_the_users_file(tmp_path: Path) -> None:
    system = _write(
        tmp_path / "etc" / "config.toml",
        'origin_policy = "allow-list"\nallowed_origins = ["https://admin.example.no"]\n'
        'denied_origins = ["https://phish.example"]\n'
        'locked = ["origin_policy", "allowed_origins", "denied_origins"]\n',
    )
    user = _write(
        tmp_path / "home" / "config.toml",
        'origin_policy = "ask"\nallowed_origins = ["https://mine.example.no"]\ndenied_origins = ["https://ads.example"]\n',
    )
    config = load_config(user, system_path=system)
    assert config.origin_policy == "allow-list" and config.sources["origin_policy"] == "system"
    assert config.allowed_origins == ("https://admin.example.no",)
    # Refusing more sites is always the user's right.
    assert config.denied_origins == ("https://phish.example", "https://ads.example")


def test_only_the_system_file_may_lock(tmp_path: Path) -> None:
    user = _file(tmp_path / "home" / "config.toml", 'locked = ["port"]\n')
    with pytest.raises(ConfigError, match="system's file only"):
        load_config(user, system_path=tmp_path / "none.toml")
    system = _file(tmp_path / "etc" / "config.toml", 'locked = ["no_such_setting"]\n')
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_config(tmp_path / "none.toml", system_path=system)


def test_the_default_policy_is_ask_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    assert load_config(tmp_path / "none.toml", system_path=tmp_path / "none2.toml").origin_policy == "ask"
    user = _file(tmp_path / "home" / "config.toml", 'origin_policy = "maybe"\n')
    with pytest.raises(ConfigError, match="origin_policy"):
        load_config(user, system_path=tmp_path / "none.toml")


def test_config_show_says_where_each_setting_came_from(tmp_path: Path) -> None:

    system = _file(tmp_path / "etc" / "config.toml", 'port = 24500\nlocked = ["port"]\n')
    user = _file(tmp_path / "home" / "config.toml", 'port = 24600\nlang = "en"\n')
    env = {**os.environ, "CARDBRIDGE_CONFIG": str(user), "CARDBRIDGE_SYSTEM_CONFIG": str(system)}
    result = subprocess.run(
        [sys.executable, "-m", "cardbridge", "config", "show", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown = json.loads(result.stdout)
    assert shown["settings"]["port"] == 24500 and shown["sources"]["port"] == "system"
    assert shown["sources"]["lang"] == "user" and shown["systemPath"] == str(system)
    text = subprocess.run(
        [sys.executable, "-m", "cardbridge", "--lang", "en", "config", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "port = 24500  # from the system file" in text and 'lang = "en"  # from your file' in text


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="becomes another user (seteuid) as root")
def test_a_system_file_that_is_not_roots_is_refused(tmp_path: Path) -> None:
    """A user points CARDBRIDGE_SYSTEM_CONFIG at a file of their own (no locks, no denied
    sites): refused, so the administrator's file cannot be replaced. The test process
    becomes that user (``nobody``) for the read; the file is the user's own, so the checks
    for files of other users do not refuse it."""
    import tempfile

    nobody = 65534
    folder = Path(tempfile.mkdtemp(prefix="cardbridge-sysconf-"))
    try:
        mine = _file(folder / "config.toml", 'origin_policy = "ask"\n')
        os.chown(mine, nobody, nobody)
        os.chown(folder, nobody, nobody)
        os.seteuid(nobody)
        try:
            with pytest.raises(ConfigError, match="must belong to root") as refused:
                load_config(mine.with_name("user.toml"), system_path=mine)
        finally:
            os.seteuid(0)
        assert str(mine) in refused.value.message
        # The same file as root's is accepted (the tests' system files, the package's /etc file).
        os.chown(mine, 0, 0)
        os.chown(folder, 0, 0)
        assert load_config(tmp_path / "none.toml", system_path=mine).origin_policy == "ask"
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
