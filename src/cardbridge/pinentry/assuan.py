"""A client for GnuPG's pinentry programs (the Assuan protocol).

One dialog is one pinentry process: we start it, set the texts (SETTITLE, SETDESC,
SETPROMPT, SETERROR, SETOK, SETCANCEL, SETTIMEOUT), send GETPIN or CONFIRM and end it. A
cancelled or timed-out wait ends the process, so the dialog closes with it.

The program runs in a session (and process group) of its own, and ending it ends the whole
group: a wrapper script that starts the real pinentry without ``exec`` leaves no dialog
behind. Ending is SIGTERM to the group, then SIGKILL after a short grace, and every wait
for the program (or for pipes that a child of it holds) is bounded.

The PIN arrives in a ``D`` line, percent-escaped; it is decoded into a ``bytearray`` that
the caller wipes. It is never logged: the Assuan traffic log shows ``D <redacted>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass

from cardbridge.errors import PinentryError, UserCancelledError, UserTimeoutError
from cardbridge.logsetup import TRACE

log = logging.getLogger(__name__)

GPG_ERR_TIMEOUT = 62
GPG_ERR_CANCELED = 99
GPG_ERR_NOT_CONFIRMED = 114
_LINE_LIMIT = 4096
BYE_GRACE = 0.5  # seconds a program gets to leave after BYE
TERM_GRACE = 0.3  # seconds between SIGTERM and SIGKILL to the program's group
REAP_GRACE = 1.0  # seconds to wait for the pipes to close once the group is killed


@dataclass(frozen=True, slots=True)
class Dialog:
    """The texts of one pinentry dialog."""

    title: str
    description: str
    prompt: str = ""
    error: str | None = None
    ok: str | None = None
    cancel: str | None = None
    timeout: float | None = None  # seconds; pinentry closes itself too
    notok: str | None = None  # a third button (SETNOTOK): CONFIRM answers "not confirmed"
    one_button: bool = False  # CONFIRM --one-button: a notice with only the OK button


def escape(value: str) -> str:
    """Percent-escape an Assuan argument."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def unescape_into(data: bytes, out: bytearray) -> None:
    """Percent-decode ``data`` into ``out``."""
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25 and i + 2 < len(data):
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(byte)
            i += 1


class Pinentry:
    """One running pinentry program."""

    def __init__(self, program: str) -> None:
        """``program``: a name or path, optionally with arguments (split like a shell)."""
        self.program = program
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Pinentry:
        if self._proc is None:
            await self.start()
        return self

    async def start(self) -> Pinentry:
        """Start the program and read its greeting. It shows nothing until GETPIN or CONFIRM."""
        argv = shlex.split(self.program)
        path = shutil.which(argv[0]) if argv else None
        if path is None:
            raise PinentryError(f"The PIN dialog program {self.program!r} is not installed.")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                path,
                *argv[1:],
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                limit=_LINE_LIMIT * 2,
                start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise PinentryError(f"The PIN dialog program {self.program!r} cannot start: {exc}") from exc
        try:
            greeting = await self._read_line()
            if not greeting.startswith(b"OK"):
                raise PinentryError("The PIN dialog program did not greet with OK.")
            tty = _ttyname()
            if tty:
                await self.command(f"OPTION ttyname={tty}", optional=True)
                await self.command(f"OPTION ttytype={os.environ.get('TERM', 'vt100')}", optional=True)
        except BaseException:
            await self.close(kill=True)
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            await self.close()
        else:  # an error or a cancel (the caller went away): the dialog goes at once
            await self.close(kill=True)

    async def close(self, *, kill: bool = False) -> None:
        """Say BYE and let the program leave (bounded), or end it at once with ``kill``.
        Either way its whole process group is ended, and nothing waits without a bound."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.returncode is None and not kill:
                try:
                    if proc.stdin is not None and not proc.stdin.is_closing():
                        proc.stdin.write(b"BYE\n")
                        proc.stdin.close()
                    async with asyncio.timeout(BYE_GRACE):
                        await proc.wait()
                except (TimeoutError, OSError, ConnectionError):
                    pass
        finally:  # also when cancelled while waiting
            await end_process_group(proc)

    async def _read_line(self) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await self._proc.stdout.readline()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise PinentryError("The PIN dialog program sent a line that is too long.") from exc
        if not line:
            raise PinentryError("The PIN dialog program ended unexpectedly.")
        return line.rstrip(b"\r\n")

    async def _send(self, line: str, *, drain: bool = True) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        log.log(TRACE, "pinentry <- %s", line)
        try:
            self._proc.stdin.write(line.encode("utf-8") + b"\n")
            if drain:
                await self._proc.stdin.drain()
        except (OSError, ConnectionError) as exc:
            raise PinentryError("The PIN dialog program closed its input.") from exc

    async def command(self, line: str, *, optional: bool = False, data: bytearray | None = None) -> None:
        """Send one command; collect ``D`` data into ``data``; raise on ERR."""
        await self._send(line)
        await self._reply(optional=optional, data=data)

    async def _reply(self, *, optional: bool = False, data: bytearray | None = None) -> None:
        """Read one command's answer: any ``D`` lines, then OK or ERR."""
        while True:
            reply = await self._read_line()
            if reply.startswith(b"D "):
                log.log(TRACE, "pinentry -> D <redacted>")
                if data is not None:
                    unescape_into(reply[2:], data)
                continue
            if reply.startswith((b"#", b"S ")) or not reply:
                continue
            if reply.startswith(b"INQUIRE"):
                await self._send("CAN")
                continue
            log.log(TRACE, "pinentry -> %s", reply[:80].decode("utf-8", "replace"))
            if reply == b"OK" or reply.startswith(b"OK "):
                return
            if reply.startswith(b"ERR"):
                if optional:
                    return
                raise _error_for(reply)
            raise PinentryError("The PIN dialog program broke the protocol.")

    async def _set_texts(self, dialog: Dialog) -> None:
        """Send the SET commands in one write, then read their answers in order: pinentry
        answers each line in turn, so this saves a round trip per text."""
        lines: list[tuple[str, bool]] = [
            (f"SETTITLE {escape(dialog.title)}", False),
            (f"SETDESC {escape(dialog.description)}", False),
        ]
        # (command, text, optional: an older pinentry may not know it); sent when there is a text
        texts = (
            ("SETPROMPT", dialog.prompt, False),
            ("SETERROR", dialog.error, False),
            ("SETOK", dialog.ok, True),
            ("SETCANCEL", dialog.cancel, True),
            ("SETNOTOK", dialog.notok, True),
        )
        lines.extend((f"{command} {escape(text)}", optional) for command, text, optional in texts if text)
        if dialog.timeout:
            lines.append((f"SETTIMEOUT {max(1, int(dialog.timeout))}", True))
        for index, (line, _) in enumerate(lines):
            await self._send(line, drain=index == len(lines) - 1)
        for _, optional in lines:
            await self._reply(optional=optional)

    async def get_pin(self, dialog: Dialog) -> bytearray:
        """Show ``dialog`` and return the PIN typed (wipe it after use)."""
        await self._set_texts(dialog)
        pin = bytearray()
        try:
            await self.command("GETPIN", data=pin)
        except BaseException:
            wipe(pin)
            raise
        return pin

    async def confirm(self, dialog: Dialog) -> None:
        """Show ``dialog`` with OK and Cancel; returns when OK was pressed."""
        await self._set_texts(dialog)
        await self.command("CONFIRM --one-button" if dialog.one_button else "CONFIRM")

    async def ask(self, dialog: Dialog) -> bool:
        """Show ``dialog`` with OK, its ``notok`` button and Cancel (as gpg-agent asks a
        yes/no question): True for OK, False for the ``notok`` button
        (GPG_ERR_NOT_CONFIRMED); Cancel or closing the window raise UserCancelledError."""
        await self._set_texts(dialog)
        await self._send("CONFIRM")
        try:
            await self._reply()
        except _NotConfirmed:
            if dialog.notok:
                return False
            raise
        return True


class _NotConfirmed(UserCancelledError):
    """GPG_ERR_NOT_CONFIRMED: the ``notok`` button of a CONFIRM (gpg-agent's "No"); some
    pinentries answer it for a window closed without Cancel too. A cancel to everyone
    but :meth:`Pinentry.ask`."""


def _error_for(reply: bytes) -> Exception:
    parts = reply.split(b" ", 2)
    try:
        code = int(parts[1]) & 0xFFFF
    except (IndexError, ValueError):
        code = 0
    if code == GPG_ERR_NOT_CONFIRMED:
        return _NotConfirmed("The PIN dialog was cancelled.")
    if code == GPG_ERR_CANCELED:
        return UserCancelledError("The PIN dialog was cancelled.")
    if code == GPG_ERR_TIMEOUT:
        return UserTimeoutError("The PIN dialog timed out.")
    return PinentryError(f"The PIN dialog program failed ({reply[:80].decode('utf-8', 'replace')}).")


def _signal_group(proc: asyncio.subprocess.Process, signum: int) -> None:
    """Send ``signum`` to the program's process group (it leads one: ``start_new_session``);
    nothing when the group is empty."""
    if sys.platform == "win32":  # pragma: no cover - no process groups there
        if proc.returncode is None:
            proc.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


async def end_process_group(proc: asyncio.subprocess.Process) -> None:
    """End a program and every process of its group: SIGTERM, SIGKILL after
    ``TERM_GRACE``, then wait at most ``REAP_GRACE`` for its pipes to close.

    ``Process.wait()`` returns only once the pipes are closed, which a child of the program
    (a wrapper script's pinentry) may hold; so each wait is bounded, and a cancel during the
    wait still kills the group before it propagates.
    """
    _signal_group(proc, signal.SIGTERM)  # also when the program left and a child of it did not
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TERM_GRACE):
                await proc.wait()
    finally:
        _signal_group(proc, signal.SIGKILL)  # what is left of the group, also on a cancel
    try:
        async with asyncio.timeout(REAP_GRACE):
            await proc.wait()
    except TimeoutError:  # a process that left the group holds the pipes: stop reading them
        log.warning("the PIN dialog program left a process that holds its pipes")
        transport = getattr(proc, "_transport", None)  # asyncio offers no public way to let go
        if transport is not None:
            transport.close()


def wipe(buffer: bytearray) -> None:
    """Overwrite and empty a PIN buffer."""
    for i in range(len(buffer)):
        buffer[i] = 0
    buffer.clear()


def _ttyname() -> str | None:
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    return None
