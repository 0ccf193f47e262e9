"""The configuration file (TOML) and the environment, read once into a frozen Config.

File: ``$CARDBRIDGE_CONFIG``, else ``config.toml`` in the platform's config folder
(``~/.config/cardbridge/config.toml`` on Linux). A file that other users can write is
refused: it names the PKCS#11 modules that are loaded into the bridge.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from cardbridge.authtoken import check_origin
from cardbridge.errors import ConfigError, InvalidInputError

APP = "cardbridge"
ENV_CONFIG = "CARDBRIDGE_CONFIG"
ENV_PINENTRY = "CARDBRIDGE_PINENTRY"
DEFAULT_PORT = 24231
DEFAULT_USER_TIMEOUT = 120.0


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
    path: Path | None = field(default=None, compare=False)

    def pinentry_program(self, environ: dict[str, str] | None = None) -> str:
        """``CARDBRIDGE_PINENTRY``, else the config's, else ``pinentry``."""
        env = os.environ if environ is None else environ
        return env.get(ENV_PINENTRY) or self.pinentry or "pinentry"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                list(value) if isinstance(value, tuple) else (str(value) if isinstance(value, Path) else value)
            )
        return out


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
    """Refuse a file (or its folder) that a group or other users may write."""
    for target in (path, path.parent):
        try:
            mode = target.stat().st_mode
        except OSError:
            continue
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not (target.is_dir() and mode & stat.S_ISVTX):
            raise ConfigError(f"{target} can be written by other users; run: chmod go-w {target}")


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
        return Config(
            allowed_origins=origins,
            pkcs11_modules=modules,
            port=port,
            lang=lang,
            pinentry=pinentry,
            user_timeout=float(timeout),
            allow_http_localhost=allow_http,
            allowed_extensions=_strings(raw, "allowed_extensions"),
            path=file,
        )
    except InvalidInputError as exc:
        raise ConfigError(f"{file}: {exc.message}") from exc


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of strings")
    return tuple(value)


def _bool(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value
