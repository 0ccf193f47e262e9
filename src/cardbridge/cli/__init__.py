"""The ``cardbridge`` command: the only package that prints to the user or exits.

One module per group of commands, each registering its parsers with the function that runs
the command (``set_defaults(func=…)``): ``cards`` (list, authenticate), ``serve``, ``setup``
(config, origins, doctor, install-service), ``browser`` (native-host, install-native-host)
and ``dev`` (dev token/card/pinentry, demo); ``common`` holds what they share. :func:`main`
parses and calls. A command imports what it needs when it runs: asyncio, the server and the
card layers are not loaded to print ``--help``.

Exit codes (stable):

    0  success
    1  INTERNAL and anything unexpected
    2  usage error (bad flags)
    3  invalid input: INVALID_ORIGIN, INVALID_NONCE, INVALID_ARGUMENT
    4  nothing to use: NO_TOKEN, NO_CERTIFICATE, AMBIGUOUS_CERTIFICATE, KEY_NOT_FOUND,
       UNSUPPORTED_KEY, DUAL_USE_KEY, NO_CARD, NO_READERS, UNSUPPORTED_CARD
    5  PIN: PIN_INCORRECT, PIN_BLOCKED, PIN_INVALID_LENGTH, PIN_NOT_ACTIVE
    6  the person: USER_CANCELLED, USER_TIMEOUT
    7  card, reader, module: CARD_REMOVED, CARD_BUSY, CARD_RESET, CARD_ERROR,
       SERVICE_NOT_RUNNING, MODULE_ERROR, MODULE_NOT_FOUND, PINENTRY_FAILED
    8  the bridge: CONFIG_ERROR, BUSY, ORIGIN_NOT_ALLOWED, HOST_NOT_ALLOWED, PORT_IN_USE
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from cardbridge import __version__
from cardbridge.cli import browser, cards, dev, serve, setup
from cardbridge.cli.common import EXIT_CODES, Parser, configure_logging, exit_code, language, report
from cardbridge.errors import CardbridgeError, Code
from cardbridge.i18n import LANGUAGES, error_text

__all__ = ["EXIT_CODES", "build_parser", "exit_code", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (also the source of the manual page, ``sysinstall.manpage``)."""
    parser = Parser(prog="cardbridge", description="Log in to public-sector portals with your national ID card.")
    parser.add_argument("--version", action="version", version=f"cardbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    parser.add_argument(
        "--lang",
        dest="global_lang",
        choices=LANGUAGES,
        help="language of the messages: nb, nn or en (default: the config file's, then the system's, then nb)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    cards.register(commands)
    serve.register(commands)
    setup.register(commands)
    dev.register_dev(commands)
    browser.register(commands)
    dev.register_demo(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    status = 1
    previous_interrupt = _take_back_sigint()
    previous = _stop_on_sigterm()
    try:
        status = _main(argv)
        return status
    finally:
        with contextlib.suppress(ValueError):  # a second SIGTERM while the card work ends: ignored
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            _end_card_work(status)
        finally:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, previous)
                if previous_interrupt is not None:
                    signal.signal(signal.SIGINT, previous_interrupt)


def _take_back_sigint() -> signal.Handlers | None:
    """SIGTERM's path is Ctrl-C's (:func:`_stop_on_sigterm`), so a SIGINT ignored by the
    launcher (a script's background job inherits SIG_IGN for it) would make SIGTERM do
    nothing at all. Then SIGINT gets Python's own handler back (a Ctrl-C stops the command
    as in the foreground); the ignored state is returned, for :func:`main` to put back."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            return signal.SIG_IGN
    except ValueError:  # not the main thread
        pass
    return None


def _stop_on_sigterm() -> signal.Handlers | Callable[[int, FrameType | None], Any] | int | None:
    """SIGTERM ends a command as Ctrl-C does (a SIGINT: the card work unwinds, and
    the PKCS#11 shutdown waits for a module call in progress) instead of killing the process
    inside the call (SoftHSM2 lost a token's ``token.object`` that way). ``serve`` and the
    native host put their own handlers over it. The previous handler, for :func:`main` to
    put back (in-process callers)."""

    def terminated(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Ctrl-C's own path: inside asyncio.run its SIGINT handler cancels the main task (at
        # an await, never inside a ``finally`` that wipes a PIN); elsewhere KeyboardInterrupt.
        signal.raise_signal(signal.SIGINT)

    try:
        return signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread: leave the process's handler alone
        return signal.getsignal(signal.SIGTERM)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args)
    as_json = bool(getattr(args, "json", False))
    args.ui_lang = language(args)
    if getattr(args, "func", None) is None:  # no command
        parser.print_help()
        return 2
    try:
        status: int = args.func(args)
        return status
    except CardbridgeError as error:
        return report(error, as_json, args.ui_lang)
    except KeyboardInterrupt:
        print(f"error: {Code.USER_CANCELLED}: {error_text(Code.USER_CANCELLED, args.ui_lang)}", file=sys.stderr)
        return EXIT_CODES[Code.USER_CANCELLED]
    except Exception as exc:  # a bug: say so plainly, with a stable code
        # Into the log file (INFO and up by default), not onto the person's terminal.
        logging.getLogger("cardbridge").info("unexpected error (a bug)", exc_info=True)
        return report(CardbridgeError(f"Unexpected error: {type(exc).__name__}: {exc}"), as_json, args.ui_lang)


def _end_card_work(status: int) -> None:
    """Every command leaves through here: the PKCS#11 layer is shut down (the module call in
    progress waited for, sessions closed, modules finalized: ``cardbridge.pkcs11.shutdown``).
    A module call that still runs after that bounded wait (a module that hangs) would keep
    the interpreter from exiting: then leave without it."""
    from cardbridge.shutdown import shutdown

    if not shutdown():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(status)
