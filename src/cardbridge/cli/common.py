"""What every command of the CLI shares: the parser class and its flags, the exit codes,
the language, and printing (JSON, texts, errors).

The CLI package is the only place that prints to the user or exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from cardbridge.errors import CardbridgeError, Code
from cardbridge.i18n import error_message, gettext, resolve_language

Command = Callable[[argparse.Namespace], int]
"""What a command's parser runs (``set_defaults(func=…)``): the parsed arguments in, the
exit status out."""

EXIT_CODES: dict[Code, int] = {
    **dict.fromkeys((Code.INVALID_ORIGIN, Code.INVALID_NONCE, Code.INVALID_ARGUMENT), 3),
    **dict.fromkeys(
        (
            Code.NO_TOKEN,
            Code.NO_CERTIFICATE,
            Code.AMBIGUOUS_CERTIFICATE,
            Code.KEY_NOT_FOUND,
            Code.UNSUPPORTED_KEY,
            Code.DUAL_USE_KEY,
            Code.NO_CARD,
            Code.NO_READERS,
            Code.UNSUPPORTED_CARD,
        ),
        4,
    ),
    **dict.fromkeys((Code.PIN_INCORRECT, Code.PIN_BLOCKED, Code.PIN_INVALID_LENGTH, Code.PIN_NOT_ACTIVE), 5),
    **dict.fromkeys((Code.USER_CANCELLED, Code.USER_TIMEOUT), 6),
    **dict.fromkeys(
        (
            Code.CARD_REMOVED,
            Code.CARD_BUSY,
            Code.CARD_RESET,
            Code.CARD_ERROR,
            Code.SERVICE_NOT_RUNNING,
            Code.MODULE_ERROR,
            Code.MODULE_NOT_FOUND,
            Code.PINENTRY_FAILED,
        ),
        7,
    ),
    **dict.fromkeys((Code.CONFIG_ERROR, Code.BUSY, Code.ORIGIN_NOT_ALLOWED, Code.HOST_NOT_ALLOWED), 8),
    Code.PORT_IN_USE: 8,
}


def exit_code(error: CardbridgeError) -> int:
    return EXIT_CODES.get(error.code, 1)


# -- the parser -----------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """A usage error is ``error: INVALID_ARGUMENT: …`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error: {Code.INVALID_ARGUMENT}: {message}", file=sys.stderr)
        raise SystemExit(2)


def add_command(
    commands: Any, name: str, run: Command | None, summary: str, *, logs_to_file: bool = False, **details: Any
) -> argparse.ArgumentParser:
    """The parser of one command: ``summary`` is its line in ``cardbridge --help``,
    ``details`` go to ``add_parser`` (``description``); ``run`` runs it (None: its
    sub-commands say what runs). ``logs_to_file``: a command that works with cards or
    serves also logs to the rotating log file."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, **details)
    if run is not None:
        parser.set_defaults(func=run)
    if logs_to_file:
        parser.set_defaults(logs_to_file=True)
    return parser


def add_switch(parser: argparse.ArgumentParser, name: str, summary: str) -> None:
    """An option without a value (``store_true``)."""
    parser.add_argument(name, action="store_true", help=summary)


def add_json_flag(parser: argparse.ArgumentParser, summary: str = "print JSON") -> None:
    add_switch(parser, "--json", summary)


def add_reader_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader", metavar="NAME", help="use the built-in driver on this PC/SC reader only (e.g. 'Virtual PCD 00 00')"
    )


def add_module_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--module",
        action="append",
        metavar="PATH",
        help="PKCS#11 module to use (absolute path; repeatable). Default: CARDBRIDGE_PKCS11_MODULE, "
        "the config file, then the modules registered with p11-kit.",
    )


# -- running --------------------------------------------------------------------------------


def on_event_loop(command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Command:
    """A command that runs on an event loop (asyncio is imported only when it runs)."""

    def run(args: argparse.Namespace) -> int:
        import asyncio

        use_pidfd_child_watcher()
        return asyncio.run(command(args))

    return run


def use_pidfd_child_watcher() -> None:
    """On Python 3.11 (Linux), wait for child processes (the pinentry) through a pidfd on
    the event loop instead of a new thread per child; 3.12 does this by itself."""
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        import asyncio

        with contextlib.suppress(OSError):
            os.close(os.pidfd_open(os.getpid()))
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def configure_logging(args: argparse.Namespace) -> None:
    """Standard error (WARNING; -v INFO, -vv DEBUG, -vvv TRACE) and, for the commands that
    log to a file (``add_command(logs_to_file=True)``), the rotating log file at the config
    file's log_level or CARDBRIDGE_LOG_LEVEL (see cardbridge.logsetup). Both redact PIN-like
    data."""
    from cardbridge.logsetup import setup_logging

    to_file = bool(getattr(args, "logs_to_file", False))
    level = None
    if to_file:
        from cardbridge.config import load_config

        try:
            level = load_config().log_level
        except CardbridgeError:
            level = None  # the command itself reports a bad config file
    setup_logging(verbose=args.verbose, file_level=level, to_file=to_file)


# -- printing -------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def language(args: argparse.Namespace) -> str:
    """The language of what the CLI prints: ``--lang``, the config file's, the system's, nb."""
    chosen = getattr(args, "lang", None) or getattr(args, "global_lang", None)
    if chosen:
        return resolve_language(chosen)
    from cardbridge.config import load_config

    try:
        configured = load_config().lang
    except CardbridgeError:
        configured = None  # the command itself reports a bad config file
    return resolve_language(configured)


def say(args: argparse.Namespace, message: str, /, **values: object) -> str:
    """``message`` (English, a gettext message: ``make i18n`` extracts it) in the language
    of the command's output, formatted with ``values``."""
    return gettext(getattr(args, "ui_lang", None) or resolve_language(), message, **values)


def report(error: CardbridgeError, as_json: bool, lang: str | None = None) -> int:
    """Print an error on stderr: ``error: CODE: <what to do, in the person's language>``
    and, indented, the technical message. ``--json`` prints ``{"error": …}`` on stdout,
    whose ``message`` stays the technical (English) one; ``text`` is the localized one.
    Returns the exit status."""
    lang = lang or resolve_language()
    print(f"error: {error.code}: {error_message(error, lang)}", file=sys.stderr)
    if error.message:
        print("  " + gettext(lang, "details: {details}", details=error.message), file=sys.stderr)
    candidates = error.details.get("candidates")
    if isinstance(candidates, list):
        print("  " + gettext(lang, "Choose one of the certificates with --certificate:"), file=sys.stderr)
        for candidate in candidates:
            print(
                f"  --certificate {candidate['sha256']}  {candidate['holder']} ({candidate['token']})", file=sys.stderr
            )
    if as_json:
        print_json({"error": {**error.to_dict(), "text": error_message(error, lang)}})
    return exit_code(error)
