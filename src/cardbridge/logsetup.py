"""Logging: a rotating file in the platform's log folder, and a filter that redacts PINs.

- :data:`TRACE` (5) is a level below DEBUG, named ``TRACE``: APDU, PKCS#11 and pinentry
  traffic are logged only there. Turn it on with ``log_level = "TRACE"`` in the config
  file or ``CARDBRIDGE_LOG_LEVEL=TRACE`` (and ``-vvv`` for standard error).
- The file is ``cardbridge.log`` in ``platformdirs.user_log_dir("cardbridge")``
  (``~/.local/state/cardbridge/log`` on Linux), or in ``$CARDBRIDGE_LOG_DIR``; it rotates
  at 1 MiB and keeps 3 old files; the folder is 0700 and the files 0600.
- The code never logs a PIN (the layers redact VERIFY data, ``C_Login`` arguments and the
  pinentry ``D`` line themselves). :class:`RedactFilter` is the second line of defence:
  every handler set up here rewrites messages (and tracebacks) that look like they carry
  a PIN, a PUK or the data of a PIN APDU.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import platformdirs

__all__ = [
    "ENV_LOG_DIR",
    "ENV_LOG_LEVEL",
    "LOG_FILE",
    "TRACE",
    "RedactFilter",
    "level_number",
    "log_dir",
    "redact",
    "setup_logging",
]

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

APP = "cardbridge"
LOG_FILE = "cardbridge.log"
ENV_LOG_DIR = "CARDBRIDGE_LOG_DIR"
ENV_LOG_LEVEL = "CARDBRIDGE_LOG_LEVEL"
MAX_BYTES = 1024 * 1024
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"

# A command APDU written as hex bytes whose INS is VERIFY (20), CHANGE REFERENCE DATA (24)
# or RESET RETRY COUNTER (2C): keep CLA INS P1 P2, drop the rest (Lc and the PIN or PUK).
_SECRET_APDU = re.compile(
    r"(?<![0-9A-Fa-f])((?:[0-9A-Fa-f]{2})[ :](?:20|24|2[Cc])[ :][0-9A-Fa-f]{2}[ :][0-9A-Fa-f]{2})"
    r"(?:[ :][0-9A-Fa-f]{2})+"
)
_SECRET_WORDS = r"(?:so[_ -]?pin|user[_ -]?pin|new[_ -]?pin|old[_ -]?pin|pin[12]?|puk|passphrase|password|secret)"
# ``pin=1234``, ``"pin": "1234"``, ``PIN: 1234``
_KEY_VALUE = re.compile(rf"(?i)(\b{_SECRET_WORDS}\b[\"']?\s*[:=]\s*)([\"']?)[^\s\"',;)}}\]]+")
# ``PIN 1234`` (a number right after the word)
_WORD_NUMBER = re.compile(rf"(?i)(\b{_SECRET_WORDS}\b\s+)(\d{{4,}})\b")
# ``--pin 1234`` / ``--so-pin 1234`` on a logged command line
_FLAG = re.compile(r"(?i)(--(?:so-)?pin(?:=|\s+))\S+")
# ``C_Login(CKU_USER, 1234)``
_LOGIN = re.compile(r"(C_Login\s*\(\s*[^,()]+,\s*)[^)]*")
# The pinentry's answer to GETPIN: ``D <percent-escaped PIN>``
_ASSUAN_DATA = re.compile(r"(->\s*D\s+)\S.*")


def redact(text: str) -> str:
    """``text`` with anything that looks like a PIN, a PUK or PIN APDU data replaced."""
    text = _SECRET_APDU.sub(rf"\1 {REDACTED}", text)
    text = _LOGIN.sub(rf"\1{REDACTED}", text)
    text = _FLAG.sub(rf"\1{REDACTED}", text)
    text = _KEY_VALUE.sub(rf"\1\2{REDACTED}", text)
    text = _WORD_NUMBER.sub(rf"\1{REDACTED}", text)
    return _ASSUAN_DATA.sub(rf"\1{REDACTED}", text)


class RedactFilter(logging.Filter):
    """Rewrites each record's message, traceback and stack with :func:`redact`."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: log it as it is, without its arguments
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class _PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating log file that only its owner can read (0600)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def log_dir() -> Path:
    """``$CARDBRIDGE_LOG_DIR``, else the platform's log folder for cardbridge."""
    return Path(os.environ.get(ENV_LOG_DIR) or platformdirs.user_log_dir(APP))


def level_number(level: str | int | None, default: int = logging.INFO) -> int:
    """A level name (``TRACE``, ``debug`` …) or number as a number; ``default`` when unknown."""
    if level is None or level == "":
        return default
    if isinstance(level, int):
        return level
    named = logging.getLevelName(level.strip().upper())
    return named if isinstance(named, int) else default


def stderr_level(verbose: int) -> int:
    """``-v`` INFO, ``-vv`` DEBUG, ``-vvv`` TRACE; WARNING without."""
    return (logging.WARNING, logging.INFO, logging.DEBUG)[verbose] if verbose < 3 else TRACE


def _ours(handler: logging.Handler) -> bool:
    return getattr(handler, "_cardbridge", False) is True


def setup_logging(
    *,
    verbose: int = 0,
    file_level: str | int | None = None,
    to_file: bool = True,
    directory: Path | None = None,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Path | None:
    """Log to standard error (WARNING, or more with ``verbose``) and, when ``to_file``, to
    the rotating file at ``file_level`` (``$CARDBRIDGE_LOG_LEVEL`` wins; INFO by default).
    Both handlers redact. Calling it again replaces what it set up before. Returns the log
    file's path, or None when there is no file (or its folder cannot be made)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if _ours(h)]:
        root.removeHandler(handler)
        handler.close()
    redactor = RedactFilter()
    levels: list[int] = []

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(stderr_level(verbose))
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(redactor)
    console._cardbridge = True  # type: ignore[attr-defined]
    root.addHandler(console)
    levels.append(console.level)

    path: Path | None = None
    if to_file:
        folder = directory or log_dir()
        level = level_number(os.environ.get(ENV_LOG_LEVEL) or file_level)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / LOG_FILE
            file_handler = _PrivateRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        except OSError as exc:
            path = None
            logging.getLogger(__name__).debug("no log file in %s: %s", folder, exc)
        else:
            file_handler.setLevel(level)
            file_handler.setFormatter(logging.Formatter(FORMAT))
            file_handler.addFilter(redactor)
            file_handler._cardbridge = True  # type: ignore[attr-defined]
            root.addHandler(file_handler)
            levels.append(level)
    root.setLevel(min(levels))
    return path
