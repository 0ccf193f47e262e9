"""The configuration files (TOML) and the environment, read once into a frozen Config.

Two files, the system's first, then the user's:

- the system file, written by a distributor or an administrator:
  ``$CARDBRIDGE_SYSTEM_CONFIG``, else ``/etc/cardbridge/config.toml`` on Linux (the
  platform's site config folder elsewhere); on POSIX it and its folder must belong to root
  (so a user cannot point the variable at a file of their own);
- the user's: ``$CARDBRIDGE_CONFIG``, else ``config.toml`` in the platform's config folder
  (``~/.config/cardbridge/config.toml`` on Linux).

The user's file overrides the system's, setting by setting, except the settings that the
system file names in ``locked``: those only the system file decides. Origins add up:
``allowed_origins`` and ``allowed_extensions`` from both files (only the system's when
locked), ``denied_origins`` from both files always (a user can refuse more sites, never
fewer). ``locked`` itself is only allowed in the system file. :attr:`Config.sources` says
where each setting came from (``cardbridge config show``).

A file that other users can write (or that sits in a folder they can write) is refused: it
names the PKCS#11 modules that are loaded into the bridge. An example::

    origin_policy = "ask"             # ask about a new site once; or "allow-list"
    allowed_origins = ["https://login.example.no"]
    denied_origins = ["https://phish.example"]
    pkcs11_modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"]
    port = 24231
    lang = "nb"                       # nb, nn or en
    user_timeout = 120                # seconds the person has to answer the PIN dialog
    pinentry = "pinentry-gnome3"
    log_level = "INFO"                # the log file: TRACE, DEBUG, INFO, WARNING or ERROR
"""

from __future__ import annotations

import os
import shlex
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from cardbridge import DEFAULT_PORT
from cardbridge.authtoken import check_origin
from cardbridge.errors import ConfigError, InvalidInputError
from cardbridge.fileperm import check_not_writable_by_others as _check_not_writable_by_others
from cardbridge.i18n import LANGUAGES

APP = "cardbridge"
ENV_CONFIG = "CARDBRIDGE_CONFIG"
ENV_SYSTEM_CONFIG = "CARDBRIDGE_SYSTEM_CONFIG"
LINUX_SYSTEM_CONFIG = Path("/etc/cardbridge/config.toml")
ENV_PINENTRY = "CARDBRIDGE_PINENTRY"
# Set only by ``cardbridge demo`` for the bridge it starts, to the demo's own process id: the
# development pinentry (which answers every dialog by itself) is refused unless it is there
# and names the bridge's parent. Not a setting: no config key, no flag, no fixed value.
ENV_DEMO_RUN = "CARDBRIDGE_INTERNAL_DEMO_RUN"
DEFAULT_USER_TIMEOUT = 120.0
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")
ORIGIN_POLICIES = ("ask", "allow-list")
DEFAULT_ORIGIN_POLICY = "ask"
# Settings whose values from both files add up (see the module).
_ADDED_UP = ("allowed_origins", "allowed_extensions", "denied_origins")


@dataclass(frozen=True)
class Config:
    """Settings from the config file. Command-line flags and the environment override them."""

    allowed_origins: tuple[str, ...] = ()
    pkcs11_modules: tuple[str, ...] = ()
    port: int = DEFAULT_PORT
    lang: str | None = None
    pinentry: str | None = None
    user_timeout: float = DEFAULT_USER_TIMEOUT
    allow_http_localhost: bool = False
    allowed_extensions: tuple[str, ...] = ()
    log_level: str = DEFAULT_LOG_LEVEL  # the log file's level (one of LOG_LEVELS)
    origin_policy: str = DEFAULT_ORIGIN_POLICY  # one of ORIGIN_POLICIES
    denied_origins: tuple[str, ...] = ()
    locked: tuple[str, ...] = ()  # settings only the system file decides
    path: Path | None = field(default=None, compare=False)  # the user's file
    system_path: Path | None = field(default=None, compare=False)
    # setting → "default", "system" or "user" (both files: "system+user")
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def pinentry_program(self, environ: dict[str, str] | None = None) -> str:
        """``CARDBRIDGE_PINENTRY``, else the config's, else ``pinentry``.

        The development pinentry (``cardbridge dev pinentry``) is refused with a ConfigError
        unless ``cardbridge demo`` started this process (see :data:`ENV_DEMO_RUN`)."""
        env = os.environ if environ is None else environ
        program = env.get(ENV_PINENTRY) or self.pinentry or "pinentry"
        if is_dev_pinentry(program) and not started_by_demo(env):
            raise ConfigError(
                f"The PIN dialog program {program!r} is cardbridge's development pinentry: it answers every "
                "PIN and consent dialog by itself, so only `cardbridge demo` may use it, with its emulated "
                f"card. Set {ENV_PINENTRY} or pinentry in {self.path or config_path()} to a real dialog "
                "(pinentry-gnome3, pinentry-qt, pinentry-curses or pinentry-tty)."
            )
        return program

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            out[f.name] = (
                list(value) if isinstance(value, tuple) else (str(value) if isinstance(value, Path) else value)
            )
        return out


def is_dev_pinentry(program: str) -> bool:
    """Whether ``program`` (a pinentry command line) runs ``cardbridge dev pinentry``."""
    try:
        argv = shlex.split(program)
    except ValueError:
        return False
    return len(argv) >= 3 and argv[-2:] == ["dev", "pinentry"]


def started_by_demo(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``cardbridge demo`` started this process: :data:`ENV_DEMO_RUN` is the parent's
    process id (the demo sets it to its own for the bridge it starts)."""
    env = os.environ if environ is None else environ
    return env.get(ENV_DEMO_RUN, "") == str(os.getppid())


def config_path() -> Path:
    """Where the config file is (it may not exist)."""
    override = os.environ.get(ENV_CONFIG)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def system_config_path() -> Path:
    """Where the system's config file is (it may not exist)."""
    override = os.environ.get(ENV_SYSTEM_CONFIG)
    if override:
        return Path(override)
    if os.name == "posix" and sys.platform != "darwin":
        return LINUX_SYSTEM_CONFIG
    return Path(platformdirs.site_config_dir(APP)) / "config.toml"


def data_dir() -> Path:
    """cardbridge's data folder (emulated cards, development PKI)."""
    return Path(os.environ.get("CARDBRIDGE_DATA_DIR") or platformdirs.user_data_dir(APP))


def check_not_writable_by_others(path: Path) -> None:
    """Refuse a file that a group or other users may write, or that sits in a folder they
    may write (sticky folders such as ``/tmp`` excepted), or that belongs to another user."""
    _check_not_writable_by_others(path)


def load_config(path: Path | None = None, *, system_path: Path | None = None) -> Config:
    """Read and check the system's file, then the user's (see the module); missing files
    give the defaults."""
    user_file = path or config_path()
    system_file = system_path or system_config_path()
    system = _read(system_file, system=True)
    user = _read(user_file, system=False)
    locked = system.get("locked", ())
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in _SETTINGS:
        in_system, in_user = name in system, name in user and name not in locked
        if name in _ADDED_UP and in_system and in_user:
            values[name] = tuple(dict.fromkeys((*system[name], *user[name])))
            sources[name] = "system+user"
        elif in_user:
            values[name], sources[name] = user[name], "user"
        elif in_system:
            values[name], sources[name] = system[name], "system"
        else:
            sources[name] = "default"
    if "denied_origins" in user and "denied_origins" in locked:  # refusing more is always allowed
        values["denied_origins"] = tuple(dict.fromkeys((*values.get("denied_origins", ()), *user["denied_origins"])))
        sources["denied_origins"] = "system+user"
    return Config(**values, path=user_file, system_path=system_file, sources=sources)


_SETTINGS = tuple(f.name for f in fields(Config) if f.name not in ("path", "system_path", "sources"))


def _read(file: Path, *, system: bool) -> dict[str, Any]:
    """The settings one file gives, checked and typed; {} when there is no file."""
    if not file.exists():
        return {}
    check_not_writable_by_others(file)
    if system:
        _check_owned_by_root(file)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    try:
        return _parse(raw, system=system)
    except InvalidInputError as exc:
        raise ConfigError(f"{file}: {exc.message}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc.message}") from exc


def _check_owned_by_root(file: Path) -> None:
    """The system's file overrules the user's (``locked``, ``denied_origins``): a file the
    user owns, named through ``$CARDBRIDGE_SYSTEM_CONFIG``, would let the user overrule the
    administrator. So it, and its folder, must belong to root (POSIX; on Windows the
    installer's folder permissions are trusted)."""
    if os.name != "posix":
        return
    for target in (file, file.parent):
        owner = target.stat().st_uid
        if owner != 0:
            raise ConfigError(
                f"{target} belongs to uid {owner}, not root: the system's config file and its folder "
                f"must belong to root (chown root {target})"
            )


def _parse(raw: dict[str, Any], *, system: bool) -> dict[str, Any]:
    known = set(_SETTINGS) if system else set(_SETTINGS) - {"locked"}
    unknown = sorted(set(raw) - known)
    if unknown:
        hint = " (locked is for the system's file only)" if unknown == ["locked"] else ""
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}{hint}; known: {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    allow_http = _bool(raw, "allow_http_localhost", False)
    if "allow_http_localhost" in raw:
        out["allow_http_localhost"] = allow_http
    for key in ("allowed_origins", "denied_origins"):
        if key in raw:
            out[key] = tuple(check_origin(o, allow_http_localhost=allow_http) for o in _strings(raw, key))
    if "pkcs11_modules" in raw:
        out["pkcs11_modules"] = _strings(raw, "pkcs11_modules")
        for module in out["pkcs11_modules"]:
            if not os.path.isabs(module):
                raise ConfigError(f"pkcs11_modules: the path must be absolute: {module}")
    if "allowed_extensions" in raw:
        out["allowed_extensions"] = _strings(raw, "allowed_extensions")
    if "port" in raw:
        port = raw["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
            raise ConfigError("port must be a number from 1024 to 65535")
        out["port"] = port
    if "user_timeout" in raw:
        timeout = raw["user_timeout"]
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 5 <= timeout <= 3600:
            raise ConfigError("user_timeout must be 5 to 3600 seconds")
        out["user_timeout"] = float(timeout)
    if "lang" in raw:
        if raw["lang"] not in LANGUAGES:
            raise ConfigError(f"lang must be {', '.join(LANGUAGES[:-1])} or {LANGUAGES[-1]}")
        out["lang"] = raw["lang"]
    if "pinentry" in raw:
        if not isinstance(raw["pinentry"], str):
            raise ConfigError("pinentry must be a program name or path")
        out["pinentry"] = raw["pinentry"]
    if "log_level" in raw:
        level = raw["log_level"]
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        out["log_level"] = level.upper()
    if "origin_policy" in raw:
        if raw["origin_policy"] not in ORIGIN_POLICIES:
            raise ConfigError(f"origin_policy must be one of {', '.join(ORIGIN_POLICIES)}")
        out["origin_policy"] = raw["origin_policy"]
    if "locked" in raw:
        locked = _strings(raw, "locked")
        bad = sorted(set(locked) - set(_SETTINGS) - {"locked"} | ({"locked"} & set(locked)))
        if bad:
            raise ConfigError(f"locked names unknown setting(s) {', '.join(bad)}")
        out["locked"] = locked
    return out


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{key} must be a list of strings, like {key} = ["…"]')
    return tuple(value)


def _bool(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value
