"""The native-messaging host: one request from the browser extension, one answer, exit.

The protocol is the one the Web eID extension speaks to its native app:

1. The host writes ``{"version": "2.5.0+cardbridge.x.y.z"}``: the Web eID native protocol
   version it implements, with cardbridge's own version as SemVer build metadata
   (:func:`cardbridge.nativemsg.handshake_version`).
2. It reads one request ``{"command": ..., "arguments": {...}}``:

   - ``authenticate`` ``{challengeNonce, origin, lang?}`` → the auth token;
   - ``get-signing-certificate`` ``{origin, lang?}`` → ``{certificate, supportedSignatureAlgorithms}``,
     once the person agreed in a dialog that names the origin and the certificate holder;
   - ``sign`` ``{hash, hashFunction, certificate, origin, lang?}`` → ``{signature, signatureAlgorithm}``;
   - ``quit`` ``{}`` → ``{}``.

3. It writes the answer (or ``{"error": {...}}``, see ``codes``) and exits.

The origin comes from the extension (the sender tab's), and goes through the same policy as
the HTTP server's (``cardbridge.origins``): denied and allowed origins, and under
``origin_policy = "ask"`` the person's answer to a dialog that names it. The browser names its caller in argv
(Chrome: ``chrome-extension://ID/``; Firefox: the manifest's path and the add-on id); it must
be our extension, the Web eID extension or one in config ``allowed_extensions``. Started
without one (by hand, in tests) the host serves as well.

When the browser closes stdin during a command (the page gave up, the tab closed), the
command is cancelled at once: the PIN dialog closes, nothing is signed or sent.

Start-up is fast: until a card command arrives, only ``os``, ``sys``, ``struct``, ``math``
and ``_json`` (the C scanner of :mod:`cardbridge.strictjson`) are imported; neither ``json``
nor ``re`` for a good request, and the handshake and the answer to ``quit`` are written
ready-made. Frames go to a private copy of stdout; file descriptor 1 itself is pointed at
stderr, so nothing else (a library's print, a PKCS#11 module's chatter, a traceback) can
corrupt the stream.
"""

from __future__ import annotations

import os
import sys

from cardbridge import __version__
from cardbridge.nativemsg import CHROME_EXTENSION_IDS, FIREFOX_EXTENSION_IDS, codes, handshake_message
from cardbridge.nativemsg.framing import EndOfInput, FrameError, ResponseTooLarge, encode_message, frame, read_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

    from cardbridge.config import Config


class BrowserGone(Exception):
    """stdin closed while a command ran: the page gave up."""


# -- the caller -----------------------------------------------------------------------------


def caller_from_argv(argv: Sequence[str]) -> str | None:
    """The extension that the browser names in argv, or None when started by hand.

    Chrome, Chromium, Edge and Brave pass the extension's origin ``chrome-extension://ID/``
    (on Windows also ``--parent-window=N``); Firefox passes the path of the host manifest and
    the add-on id.
    """
    args = [a for a in argv if not a.startswith("--parent-window=")]
    if not args:
        return None
    if len(args) == 1 and args[0].startswith("chrome-extension://"):
        return args[0]
    if len(args) == 2 and args[0].endswith(".json"):
        return args[1]
    _invalid("The native host was started with unexpected arguments.")


def extension_id(value: str) -> str:
    """``chrome-extension://ID/`` → ``ID``; a bare id or a Firefox add-on id as it is."""
    if value.startswith("chrome-extension://"):
        return value.removeprefix("chrome-extension://").rstrip("/")
    return value


def builtin_extension(caller: str) -> bool:
    """True for our extension and the Web eID extension."""
    if caller.startswith("chrome-extension://"):
        return extension_id(caller) in CHROME_EXTENSION_IDS
    return caller in FIREFOX_EXTENSION_IDS


def check_caller(caller: str) -> None:
    """Refuse an extension that is neither built in nor in config ``allowed_extensions``."""
    if builtin_extension(caller):
        return
    from cardbridge.config import load_config
    from cardbridge.errors import OriginNotAllowedError

    config = load_config()
    allowed = {extension_id(e) for e in config.allowed_extensions}
    if extension_id(caller) not in allowed:
        raise OriginNotAllowedError(
            f"The browser extension {extension_id(caller)} may not use cardbridge. "
            f"To allow it, add it to allowed_extensions in {config.path}.",
        )


# -- the request ----------------------------------------------------------------------------


def check_request(request: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The command and its arguments, checked: a known command whose arguments satisfy its
    request schema (:mod:`cardbridge.schema`: the HTTP body plus ``origin``). A request that
    fails raises :class:`~cardbridge.errors.InvalidInputError` (or a subclass, from the
    schema check), which :func:`serve` turns into the error frame."""
    from cardbridge import schema

    command = request.get("command")
    arguments = request.get("arguments")
    extra = set(request) - {"command", "arguments"}
    if extra:
        _invalid(f"Unknown field(s) in the request: {', '.join(sorted(extra))}.")
    if not isinstance(command, str) or not isinstance(arguments, dict):
        _invalid("The request must have a 'command' string and an 'arguments' object.")
    if command not in schema.NATIVE_COMMANDS:
        _invalid(f"Unknown command {command[:40]!r}; known: {', '.join(schema.NATIVE_COMMANDS)}.")
    checked = schema.check(schema.NATIVE_COMMANDS[command], arguments, origin=True, what="argument", command=command)
    return command, checked


def _invalid(message: str) -> NoReturn:
    from cardbridge.errors import InvalidInputError  # only now: a good request goes without the error tree

    raise InvalidInputError(message)


# -- output ---------------------------------------------------------------------------------


class Output:
    """Frames to the browser, on a private copy of stdout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.open = True

    @classmethod
    def claim_stdout(cls) -> Output:
        """Keep stdout for frames; point file descriptor 1 at stderr for everything else."""
        if sys.platform == "win32":
            import msvcrt

            msvcrt.setmode(0, os.O_BINARY)
            msvcrt.setmode(1, os.O_BINARY)
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        return cls(fd)

    def send(self, message: dict[str, Any]) -> None:
        try:
            data = encode_message(message)
        except ResponseTooLarge as exc:
            data = encode_message(codes.error_frame("INTERNAL", str(exc)))
        except (TypeError, ValueError) as exc:  # not JSON-serialisable: a bug
            data = encode_message(codes.error_frame("INTERNAL", f"The response could not be encoded: {exc}"))
        self.write(data)

    def write(self, data: bytes) -> None:
        """Write whole frames."""
        view = memoryview(data)
        try:
            while view and self.open:
                written = os.write(self.fd, view)
                view = view[written:]
        except OSError:  # the browser is gone; nobody to tell
            self.open = False


def _stdin_reader() -> Callable[[int], bytes]:
    def read(size: int) -> bytes:
        try:
            return os.read(0, size)
        except OSError:
            return b""

    return read


# -- serving --------------------------------------------------------------------------------


def serve(argv: Sequence[str]) -> str | None:
    """Serve one request on stdin/stdout. Returns None on success, else the error code."""
    out = Output.claim_stdout()
    try:
        caller = caller_from_argv(argv)
        if caller is not None:
            check_caller(caller)
    except Exception as exc:  # a caller not allowed; the config file, when a caller needed it
        return _send_exception(out, exc)
    out.write(frame(handshake_message(__version__)))  # {"version": …}, made without json
    try:
        command, arguments = check_request(read_message(_stdin_reader()))
    except EndOfInput:
        return None  # the browser closed the pipe before asking anything
    except FrameError as exc:
        out.send(codes.error_frame("INVALID_ARGUMENT", str(exc)))
        return "INVALID_ARGUMENT"
    except Exception as exc:  # the request broke its schema (InvalidInputError)
        return _send_exception(out, exc)
    if command == "quit":
        out.write(frame(b"{}"))
        return None
    try:
        result = run_command(command, arguments)
    except BrowserGone:
        return "USER_CANCELLED"
    except Exception as exc:
        return _send_exception(out, exc)
    out.send(result)
    return None


# Their messages name the user's files (config path, home folder): the frame reaches the
# page through the extension, so it gets the catalogue's text, and the detail goes to stderr.
_PRIVATE_DETAIL = frozenset({"CONFIG_ERROR", "ORIGIN_NOT_ALLOWED"})


def _send_exception(out: Output, exc: Exception) -> str:
    import logging

    from cardbridge.errors import CardbridgeError

    if isinstance(exc, CardbridgeError):
        code, message = str(exc.code), exc.message
        if code in _PRIVATE_DETAIL:
            from cardbridge.i18n import error_text

            logging.getLogger(__name__).warning("%s: %s", code, message)
            message = error_text(code, "en")
        out.send(codes.error_frame(code, message, exc.retries_left))
        return code
    logging.getLogger(__name__).error("unexpected error", exc_info=exc)
    out.send(codes.error_frame("INTERNAL", f"Unexpected error: {type(exc).__name__}"))
    return "INTERNAL"


def run_command(command: str, arguments: dict[str, str]) -> dict[str, Any]:
    """Run a card command; raise BrowserGone when stdin closes before it ends."""
    import asyncio

    return asyncio.run(_supervise(command, arguments))


async def _supervise(command: str, arguments: dict[str, str]) -> dict[str, Any]:
    """Run the command in this task; when stdin closes, cancel it and raise BrowserGone.

    The cancel goes straight to the command's own task (no second task that could outlive
    it): the dialog closes, no card call starts after it, and the cancel unwinds through the
    service's cleanup before this returns.
    """
    import asyncio
    import contextlib
    import threading

    loop = asyncio.get_running_loop()
    work = asyncio.current_task()
    assert work is not None
    gone = False

    def browser_gone() -> None:  # on the loop
        nonlocal gone
        gone = True
        work.cancel()

    def watch_stdin() -> None:
        read = _stdin_reader()
        while read(65536):
            pass  # the Web eID protocol sends nothing more; whatever comes is dropped
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            loop.call_soon_threadsafe(browser_gone)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()

    def terminated(signum: int, frame: object) -> None:  # in the main thread, between bytecodes
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            loop.call_soon_threadsafe(browser_gone)

    with contextlib.suppress(AttributeError, ValueError):  # no SIGTERM here (Windows)
        import signal

        # Terminated (a logout, a system shutdown, a browser ending a host it disconnected):
        # as if the browser left, so the card work unwinds and the process ends through the
        # PKCS#11 layer's shutdown. A plain handler, not the loop's: it stays after the loop
        # has closed, so a SIGTERM during that shutdown is ignored instead of ending the
        # process inside a card call, and asyncio's wakeup descriptor is never written after
        # asyncio closed it ("Bad file descriptor" on stderr).
        signal.signal(signal.SIGTERM, terminated)
    try:
        return await perform(command, arguments)
    except asyncio.CancelledError:
        if gone:
            raise BrowserGone from None
        raise


def check_allowed_origin(origin: str, config: Config) -> None:
    """Refuse at once an origin the policy refuses (denied, not on the allow-list, refused by
    the person a moment ago), before a module loads. A new one under ``origin_policy =
    "ask"`` passes: the service asks the person about it."""
    from cardbridge.origins import Decision, SitePolicy

    sites = SitePolicy(config)
    if sites.decide(origin) is Decision.DENY:
        raise sites.refusal(origin)


async def perform(command: str, arguments: dict[str, str]) -> dict[str, Any]:
    """The card work for one checked request."""
    from cardbridge.authtoken import b64, check_origin
    from cardbridge.config import load_config
    from cardbridge.i18n import request_language
    from cardbridge.logsetup import setup_logging
    from cardbridge.model import HashFunction
    from cardbridge.pinentry import PinentrySource
    from cardbridge.schema import base64_field
    from cardbridge.service import open_service

    config = load_config()  # the arguments passed their schema (check_request) before this
    setup_logging(file_level=config.log_level)  # stderr (the browser's log) and the private log file
    origin = check_origin(arguments["origin"], allow_http_localhost=config.allow_http_localhost)
    check_allowed_origin(origin, config)
    pinentry_program = config.pinentry_program()  # refused before any card is touched
    digest = certificate = b""
    if command == "sign":
        digest, certificate = base64_field(arguments, "hash"), base64_field(arguments, "certificate")
    lang = request_language(arguments.get("lang"), config.lang)
    service = open_service(config)  # the built-in PC/SC drivers and the PKCS#11 modules
    pins = PinentrySource(pinentry_program)
    try:
        if command == "authenticate":
            token = await service.authenticate(origin, arguments["challengeNonce"], pins, lang=lang)
            return token.to_dict()
        if command == "get-signing-certificate":
            info, algorithms = await service.signing_certificate(origin, pins, lang=lang)  # after a dialog
            return {
                "certificate": b64(info.der),
                "supportedSignatureAlgorithms": [a.to_webeid() for a in algorithms],
            }
        signature, algorithm = await service.sign(
            origin, certificate, digest, HashFunction(arguments["hashFunction"]), pins, lang=lang
        )
        return {"signature": b64(signature), "signatureAlgorithm": algorithm.to_webeid()}
    finally:
        await service.aclose()


def main(argv: Sequence[str]) -> int:
    """Serve one request; the exit status: 0 when it was served, 1 when it was refused or
    failed (the browser does not look at it; the error frame tells why)."""
    return 0 if serve(argv) is None else 1


def launch(argv: Sequence[str] | None = None) -> NoReturn:
    """The process entry point of the launcher, ``python -m cardbridge.nativemsg`` and
    ``cardbridge native-host``: serve ``argv`` (default ``sys.argv[1:]``) and end the process.

    It leaves only after the PKCS#11 layer's shutdown (``cardbridge.pkcs11.shutdown``: never
    while a module call is in flight — SoftHSM2 lost a token's ``token.object`` when the
    process left inside C_Login — but not waiting forever for a module that hangs), with
    ``os._exit``: frames go out unbuffered, so nothing else is left to finalise, and the
    browser is spared the interpreter's teardown.
    """
    from cardbridge.shutdown import shutdown

    status = 1
    try:
        status = main(sys.argv[1:] if argv is None else argv)
    finally:  # also after a KeyboardInterrupt (started by hand)
        shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:  # noqa: SIM105 - contextlib is not imported at start-up
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
