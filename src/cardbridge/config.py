"""The configuration file (TOML) and the environment, read once into a frozen Config.

File: ``$CARDBRIDGE_CONFIG``, else ``config.toml`` in the platform's config folder
(``~/.config/cardbridge/config.toml`` on Linux). A file that other users can write (or
that sits in a folder they can write) is refused: it names the PKCS#11 modules that are
loaded into the bridge. An example::

    allowed_origins = ["https://login.example.no"]
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
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from cardbridge.authtoken import check_origin
from cardbridge.errors import ConfigError, InvalidInputError
from cardbridge.fileperm import check_not_writable_by_others as _check_not_writable_by_others

APP = "cardbridge"
ENV_CONFIG = "CARDBRIDGE_CONFIG"
ENV_PINENTRY = "CARDBRIDGE_PINENTRY"
# Set only by ``cardbridge demo`` for the bridge it starts, to the demo's own process id: the
# development pinentry (which answers every dialog by itself) is refused unless it is there
# and names the bridge's parent. Not a setting: no config key, no flag, no fixed value.
ENV_DEMO_RUN = "CARDBRIDGE_INTERNAL_DEMO_RUN"
DEFAULT_PORT = 24231
DEFAULT_USER_TIMEOUT = 120.0
DEFAULT_LOG_LEVEL = "INFO"
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR")


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
    path: Path | None = field(default=None, compare=False)

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


def data_dir() -> Path:
    """cardbridge's data folder (emulated cards, development PKI)."""
    return Path(os.environ.get("CARDBRIDGE_DATA_DIR") or platformdirs.user_data_dir(APP))


def check_not_writable_by_others(path: Path) -> None:
    """Refuse a file that a group or other users may write, or that sits in a folder they
    may write (sticky folders such as ``/tmp`` excepted), or that belongs to another user."""
    _check_not_writable_by_others(path)


def load_config(path: Path | None = None) -> Config:
    """Read and check the config file; a missing file gives the defaults."""
    file = path or config_path()
    if not file.exists():
        return Config(path=file)
    check_not_writable_by_others(file)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    known = {f.name for f in fields(Config)} - {"path"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{file}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        allow_http = _bool(raw, "allow_http_localhost", False)
        origins = tuple(check_origin(o, allow_http_localhost=allow_http) for o in _strings(raw, "allowed_origins"))
        modules = _strings(raw, "pkcs11_modules")
        for module in modules:
            if not os.path.isabs(module):
                raise ConfigError(f"{file}: pkcs11_modules: the path must be absolute: {module}")
        port = raw.get("port", DEFAULT_PORT)
        if not isinstance(port, int) or isinstance(port, bool) or not 1024 <= port <= 65535:
            raise ConfigError(f"{file}: port must be a number from 1024 to 65535")
        timeout = raw.get("user_timeout", DEFAULT_USER_TIMEOUT)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 5 <= timeout <= 3600:
            raise ConfigError(f"{file}: user_timeout must be 5 to 3600 seconds")
        lang = raw.get("lang")
        if lang is not None and lang not in ("nb", "nn", "en"):
            raise ConfigError(f"{file}: lang must be nb, nn or en")
        pinentry = raw.get("pinentry")
        if pinentry is not None and not isinstance(pinentry, str):
            raise ConfigError(f"{file}: pinentry must be a program name or path")
        log_level = raw.get("log_level", DEFAULT_LOG_LEVEL)
        if not isinstance(log_level, str) or log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"{file}: log_level must be one of {', '.join(LOG_LEVELS)}")
        return Config(
            allowed_origins=origins,
            pkcs11_modules=modules,
            port=port,
            lang=lang,
            pinentry=pinentry,
            user_timeout=float(timeout),
            allow_http_localhost=allow_http,
            allowed_extensions=_strings(raw, "allowed_extensions"),
            log_level=log_level.upper(),
            path=file,
        )
    except InvalidInputError as exc:
        raise ConfigError(f"{file}: {exc.message}") from exc
    except ConfigError as exc:
        if exc.message.startswith(f"{file}: "):
            raise
        raise ConfigError(f"{file}: {exc.message}") from exc


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
