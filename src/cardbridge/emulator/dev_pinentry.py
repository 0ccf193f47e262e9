"""A pinentry for emulated ID cards: it answers every PIN dialog with a known PIN.

``cardbridge dev pinentry`` speaks the server side of GnuPG's pinentry protocol (Assuan),
as pinentry-tty does on the wire: it greets with ``OK``, answers each command with ``OK``,
answers ``GETPIN`` with the PIN from ``$CARDBRIDGE_DEV_PIN`` in a percent-escaped ``D``
line, and ``CONFIRM`` with ``OK``. It lets ``cardbridge demo`` log in with the emulated card
(whose PIN is public) through the same dialog path a person uses. It is for emulated cards
only, and it refuses to run unless ``cardbridge demo`` started the bridge that starts it:
``$CARDBRIDGE_INTERNAL_DEMO_RUN`` must name one of its ancestor processes (the demo sets it
to its own process id; the bridge checks it too, see :func:`cardbridge.config.started_by_demo`).
So the setting ``pinentry = "cardbridge dev pinentry"`` alone never skips a dialog.

Without ``CARDBRIDGE_DEV_PIN`` it cancels every dialog. When ``$CARDBRIDGE_DEV_PINENTRY_LOG``
names a file, one JSON line per dialog records its title and description (never the PIN),
so a caller can show which origin the dialog named.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from cardbridge.config import ENV_DEMO_RUN
from cardbridge.errors import ConfigError

ENV_PIN = "CARDBRIDGE_DEV_PIN"
ENV_LOG = "CARDBRIDGE_DEV_PINENTRY_LOG"

GPG_ERR_CANCELED = 83886179  # GPG_ERR_SOURCE_PINENTRY << 24 | GPG_ERR_CANCELED
_LINE_LIMIT = 4096
_RECORDED = ("SETTITLE", "SETDESC", "SETPROMPT", "SETERROR")


def escape(value: bytes) -> bytes:
    """Percent-escape Assuan data (``%``, CR, LF)."""
    return value.replace(b"%", b"%25").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


def unescape(value: str) -> str:
    """Undo the percent-escaping of an Assuan argument."""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


class DevPinentry:
    """One pinentry session over a pair of binary streams."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO, pin: str | None, log_path: str | None = None) -> None:
        self._in = stdin
        self._out = stdout
        self._pin = pin
        self._log_path = log_path
        self._texts: dict[str, str] = {}

    def _write(self, line: bytes) -> None:
        self._out.write(line + b"\n")
        self._out.flush()

    def _record(self, verb: str) -> None:
        if not self._log_path:
            return
        entry = {"command": verb, **{k.lower(): v for k, v in self._texts.items()}}
        with open(self._log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def serve(self) -> int:
        """Answer commands until BYE or end of input; returns the exit status (0)."""
        self._write(b"OK cardbridge development pinentry ready")
        while True:
            raw = self._in.readline(_LINE_LIMIT)
            if not raw:
                return 0
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb in _RECORDED:
                self._texts[verb] = unescape(argument)
                self._write(b"OK")
            elif verb == "GETPIN":
                self._record(verb)
                if self._pin is None:
                    self._write(b"ERR %d Operation cancelled <Pinentry>" % GPG_ERR_CANCELED)
                    continue
                self._write(b"D " + escape(self._pin.encode("utf-8")))
                self._write(b"OK")
                self._texts.pop("SETERROR", None)
            elif verb == "CONFIRM":
                self._record(verb)
                self._write(b"OK")
            elif verb == "GETINFO" and argument == "pid":
                self._write(b"D %d" % os.getpid())
                self._write(b"OK")
            elif verb == "BYE":
                self._write(b"OK closing connection")
                return 0
            else:  # OPTION, SETOK, SETCANCEL, SETTIMEOUT, RESET, NOP, …
                self._write(b"OK")


def _ancestors(limit: int = 16) -> list[int]:
    """This process's parent, its parent, … (from /proc; only the parent where there is none)."""
    pids: list[int] = []
    pid = os.getppid()
    while pid > 1 and len(pids) < limit:
        pids.append(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
            pid = int(stat.rpartition(")")[2].split()[1])  # the field after the command name
        except (OSError, ValueError, IndexError):
            break
    return pids


def check_demo_run(environ: Mapping[str, str]) -> None:
    """Refuse (ConfigError) unless ``cardbridge demo`` started the process tree this runs in."""
    marker = environ.get(ENV_DEMO_RUN, "")
    if not (marker.isdigit() and int(marker) in _ancestors()):
        raise ConfigError(
            "cardbridge dev pinentry answers every PIN and consent dialog by itself: it runs only under "
            "`cardbridge demo`, with its emulated card. Use a real PIN dialog program (pinentry-gnome3, "
            "pinentry-qt, pinentry-curses or pinentry-tty)."
        )


def run(stdin: BinaryIO, stdout: BinaryIO, environ: Mapping[str, str] | None = None) -> int:
    """Serve one pinentry session with the PIN and log file named in ``environ``; refuse
    (ConfigError, before a word is said) unless ``cardbridge demo`` started it."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    check_demo_run(env)
    return DevPinentry(stdin, stdout, env.get(ENV_PIN) or None, env.get(ENV_LOG) or None).serve()
