"""The ``cardbridge`` command: the only module that prints to the user or exits.

Exit codes (stable):

    0  success
    1  INTERNAL and anything unexpected
    2  usage error (bad flags)
    3  invalid input: INVALID_ORIGIN, INVALID_NONCE, INVALID_ARGUMENT
    4  nothing to use: NO_TOKEN, NO_CERTIFICATE, AMBIGUOUS_CERTIFICATE, KEY_NOT_FOUND,
       UNSUPPORTED_KEY, DUAL_USE_KEY, NO_CARD, NO_READERS, UNSUPPORTED_CARD
    5  PIN: PIN_INCORRECT, PIN_BLOCKED, PIN_INVALID_LENGTH
    6  the person: USER_CANCELLED, USER_TIMEOUT
    7  card, reader, module: CARD_REMOVED, CARD_BUSY, CARD_RESET, CARD_ERROR,
       SERVICE_NOT_RUNNING, MODULE_ERROR, MODULE_NOT_FOUND, PINENTRY_FAILED
    8  the bridge: CONFIG_ERROR, BUSY, ORIGIN_NOT_ALLOWED, HOST_NOT_ALLOWED, PORT_IN_USE
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cardbridge import DEFAULT_PORT, __version__
from cardbridge.errors import CardbridgeError, Code, ConfigError
from cardbridge.i18n import LANGUAGES, error_message, resolve_language, text

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
    **dict.fromkeys((Code.PIN_INCORRECT, Code.PIN_BLOCKED, Code.PIN_INVALID_LENGTH), 5),
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error: {Code.INVALID_ARGUMENT}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _add_reader_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader", metavar="NAME", help="use the built-in driver on this PC/SC reader only (e.g. 'Virtual PCD 00 00')"
    )


def _add_module_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--module",
        action="append",
        metavar="PATH",
        help="PKCS#11 module to use (absolute path; repeatable). Default: CARDBRIDGE_PKCS11_MODULE, "
        "the config file, then the modules registered with p11-kit.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cardbridge", description="Log in to public-sector portals with your national ID card.")
    parser.add_argument("--version", action="version", version=f"cardbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    parser.add_argument(
        "--lang",
        dest="global_lang",
        choices=LANGUAGES,
        help="language of the messages: nb, nn or en (default: the config file's, then the system's, then nb)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_list = commands.add_parser("list", help="list the cards (tokens) and their certificates")
    _add_module_flags(p_list)
    _add_reader_flag(p_list)
    p_list.add_argument("--json", action="store_true", help="print JSON")

    p_auth = commands.add_parser("authenticate", help="sign a portal's login challenge and print the auth token")
    p_auth.add_argument("--origin", required=True, help="the portal's origin, e.g. https://login.example.no")
    p_auth.add_argument("--nonce", required=True, help="the portal's challenge nonce (44-128 characters)")
    _add_module_flags(p_auth)
    _add_reader_flag(p_auth)
    p_auth.add_argument("--token", metavar="LABEL", help="use only the token with this label")
    p_auth.add_argument("--certificate", metavar="SHA256", help="use the certificate with this SHA-256 (hex)")
    p_auth.add_argument("--pin-stdin", action="store_true", help="read the PIN from one line of standard input")
    p_auth.add_argument("--lang", choices=LANGUAGES, help="language of the PIN dialog")
    p_auth.add_argument("--json", action="store_true", help="print errors as JSON on stdout too")
    p_auth.add_argument(
        "--allow-http-localhost", action="store_true", help="accept http://localhost origins (development only)"
    )

    _add_serve_parser(commands)

    _add_config_parser(commands)
    p_doctor = commands.add_parser(
        "doctor",
        help="check everything the ID card login needs, and say how to fix what is wrong",
        description="Check pcscd, readers, cards, PKCS#11 modules, certificates, browser manifests, the HTTP port, "
        "the config file and the PIN window. Exit 0 when all is well, 1 when something needs a fix.",
    )
    p_doctor.add_argument("--json", action="store_true", help="print the checks as JSON")
    p_doctor.add_argument(
        "--report", metavar="FILE", help="also write a text report to FILE for support (no PIN, no secrets)"
    )
    _add_module_flags(p_doctor)
    p_service = commands.add_parser(
        "install-service",
        help="run the bridge in the background: a systemd user unit and an XDG autostart entry",
        description="Write ~/.config/systemd/user/cardbridge.service and ~/.config/autostart/cardbridge.desktop "
        "(honouring XDG_CONFIG_HOME) and enable the unit with systemctl --user; --uninstall removes them.",
    )
    p_service.add_argument("--uninstall", action="store_true", help="stop the background service and remove it")
    p_service.add_argument(
        "--no-start", action="store_true", help="only write or remove the files; print the systemctl commands"
    )

    p_dev = commands.add_parser("dev", help="emulated ID cards for developers")
    dev = p_dev.add_subparsers(dest="dev_command", metavar="WHAT", parser_class=_Parser, required=True)
    p_token = dev.add_parser("token", help="an emulated ID card on SoftHSM2")
    token = p_token.add_subparsers(dest="token_command", metavar="ACTION", parser_class=_Parser, required=True)
    p_create = token.add_parser("create", help="make the emulated card (once) and print how to use it")
    p_create.add_argument("--key", choices=("ec-p256", "ec-p384", "rsa-2048"), default="ec-p384")
    p_create.add_argument("--pin", default="1234", help="the card's PIN (development only)")
    p_create.add_argument("--label", default="cardbridge-dev", help="token label")
    p_create.add_argument("--json", action="store_true", help="print JSON")
    p_card = dev.add_parser(
        "card",
        help="run a virtual ID card (PIV, Estonian, Finnish, Belgian) in the vpcd virtual reader (foreground)",
        description="Runs a virtual ID card, emulated in Python, in pcscd's vpcd reader, with keys and "
        "certificates from the development PKI. It runs until Ctrl-C. Remove it with `kill -USR1 PID` and "
        "insert it again with `kill -USR2 PID` (the PID is in the card's folder, printed at start).",
    )
    p_card.add_argument(
        "--kind", choices=("piv", "esteid", "fineid", "belpic"), default="piv", help="which card (default piv)"
    )
    p_card.add_argument(
        "--key", choices=("ec-p256", "ec-p384", "rsa-2048"), default=None, help="key type (the kind's default)"
    )
    p_card.add_argument("--reader", type=int, choices=(0, 1), default=0, help="vpcd reader: 0 or 1")
    p_card.add_argument(
        "--pin", default=None, help="the PIN (PIV: 6 to 8 digits, default 123456) or PIN1 (development only)"
    )
    p_card.add_argument("--pin2", default=None, help="the signing PIN (PIN2) of a national ID card")
    p_card.add_argument("--puk", default=None, help="the PUK of a national ID card")
    dev.add_parser(
        "pinentry",
        help="a pinentry program for emulated cards: answers every PIN dialog with $CARDBRIDGE_DEV_PIN",
        description="Speaks GnuPG's pinentry protocol on stdin/stdout and answers GETPIN with the PIN in "
        "CARDBRIDGE_DEV_PIN (cancels when it is unset). For emulated ID cards only: it runs only under "
        "`cardbridge demo`, which starts the bridge with it; anywhere else it, and a bridge configured "
        "with it, refuse with CONFIG_ERROR.",
    )
    _add_native_host_parsers(commands)
    p_demo = commands.add_parser("demo", help="log in end to end with the emulated ID card")
    p_demo.add_argument("--check", action="store_true", help="run one login non-interactively and check it")
    p_demo.add_argument(
        "--card",
        choices=("softhsm", "piv", "esteid", "fineid", "belpic"),
        default="softhsm",
        help="the emulated card: a SoftHSM2 token (default), or a virtual card in the vpcd reader "
        "(needs pcscd and vsmartcard-vpcd; started when none runs)",
    )
    return parser


def _port(value: str) -> int:
    port = int(value)
    if port != 0 and not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError("the port must be 1024 to 65535 (0: any free port, for tests)")
    return port


def _seconds(value: str) -> float:
    seconds = float(value)
    if not 1 <= seconds <= 3600:
        raise argparse.ArgumentTypeError("give 1 to 3600 seconds")
    return seconds


def _add_serve_parser(commands: Any) -> None:
    p_serve = commands.add_parser(
        "serve",
        help="serve the localhost HTTP API for login pages",
        description=f"Serve the HTTP API on 127.0.0.1 and [::1] (port {DEFAULT_PORT} by default), never on "
        "another address. Only the allowed origins (--allow-origin and allowed_origins in the config file) "
        "may use it.",
    )
    p_serve.add_argument("--port", type=_port, help=f"the port (default: the config file's, else {DEFAULT_PORT})")
    p_serve.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="a login page's origin that may use the bridge, e.g. https://login.example.no (repeatable; "
        "added to allowed_origins in the config file)",
    )
    p_serve.add_argument(
        "--allow-http-localhost",
        action="store_true",
        help="accept http://localhost:PORT origins in --allow-origin (development only)",
    )
    _add_module_flags(p_serve)
    p_serve.add_argument("--token", metavar="LABEL", help="use only the token with this label")
    p_serve.add_argument(
        "--user-timeout", type=_seconds, metavar="SECONDS", help="how long a PIN dialog waits (default 120)"
    )
    p_serve.add_argument("--no-pcsc", action="store_true", help="do not watch PC/SC readers for /v1/events")
    p_serve.add_argument(
        "--request-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=10.0,
        help="how long a client may take to send a request's head, and its body; an idle connection "
        "closes after as long (default 10)",
    )
    _add_reader_flag(p_serve)


def _add_config_parser(commands: Any) -> None:
    p_config = commands.add_parser("config", help="where the config file is, and the settings in use")
    actions = p_config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser, required=True)
    actions.add_parser("path", help="print the config file's path (it may not exist yet)")
    p_show = actions.add_parser("show", help="check the config file and print the settings in use")
    p_show.add_argument("--json", action="store_true", help="print JSON")
    p_origins = commands.add_parser(
        "origins",
        help="the websites you allowed to use your ID card",
        description="Under origin_policy = ask, cardbridge asks the first time a website wants the card and "
        "remembers your Allow. list shows them, forget takes one back (the site is asked about again), "
        "allow adds one without a question.",
    )
    p_origins.add_argument("action", nargs="?", choices=("list", "forget", "allow"), default="list")
    p_origins.add_argument("origin", nargs="?", help="the website's origin, e.g. https://login.example.no")
    p_origins.add_argument("--json", action="store_true", help="print JSON")


# Commands that work with cards or serve: they also log to the rotating log file.
_FILE_LOGGED = frozenset({"list", "authenticate", "sign", "serve", "demo", "doctor"})


def _configure_logging(args: argparse.Namespace) -> None:
    """Standard error (WARNING; -v INFO, -vv DEBUG, -vvv TRACE) and, for the commands in
    _FILE_LOGGED, the rotating log file at the config file's log_level or
    CARDBRIDGE_LOG_LEVEL (see cardbridge.logsetup). Both redact PIN-like data."""
    from cardbridge.logsetup import setup_logging

    to_file = args.command in _FILE_LOGGED
    level = None
    if to_file:
        from cardbridge.config import load_config

        try:
            level = load_config().log_level
        except CardbridgeError:
            level = None  # the command itself reports a bad config file
    setup_logging(verbose=args.verbose, file_level=level, to_file=to_file)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _language(args: argparse.Namespace) -> str:
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


def _say(args: argparse.Namespace, key: str, **values: object) -> str:
    return text(key, getattr(args, "ui_lang", None) or resolve_language(), **values)


def _report(error: CardbridgeError, as_json: bool, lang: str | None = None) -> int:
    """Print an error on stderr: ``error: CODE: <what to do, in the person's language>``
    and, indented, the technical message. ``--json`` prints ``{"error": …}`` on stdout,
    whose ``message`` stays the technical (English) one; ``text`` is the localized one."""
    lang = lang or resolve_language()
    print(f"error: {error.code}: {error_message(error, lang)}", file=sys.stderr)
    if error.message:
        print(text("cli.error.details", lang, details=error.message), file=sys.stderr)
    candidates = error.details.get("candidates")
    if isinstance(candidates, list):
        print(text("cli.error.choose", lang), file=sys.stderr)
        for candidate in candidates:
            print(
                f"  --certificate {candidate['sha256']}  {candidate['holder']} ({candidate['token']})", file=sys.stderr
            )
    if as_json:
        _print_json({"error": {**error.to_dict(), "text": error_message(error, lang)}})
    return exit_code(error)


def _service(args: argparse.Namespace, *, allow_http_localhost: bool = False) -> Any:
    from cardbridge.config import load_config
    from cardbridge.service import open_service

    config = load_config()
    # --reader: the built-in driver on that reader, nothing else; --module: only those
    # modules; else the built-in drivers and the modules found.
    service = open_service(
        config,
        modules=args.module,
        reader=getattr(args, "reader", None),
        allow_http_localhost=allow_http_localhost,
    )
    return config, service


async def _readers(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The PC/SC readers and their cards, unless only PKCS#11 modules were asked for."""
    import asyncio

    if args.module and not args.reader:
        return [], None
    try:
        from cardbridge.pcsc import list_readers

        found = await asyncio.to_thread(list_readers)
    except CardbridgeError as error:
        return [], error.to_dict()
    except ImportError as exc:  # pyscard or libpcsclite missing
        return [], {"code": "SERVICE_NOT_RUNNING", "message": f"PC/SC is not available: {exc}"}
    return [r.to_dict() for r in found if not args.reader or r.name == args.reader], None


async def _list(args: argparse.Namespace) -> int:
    _, service = _service(args)
    try:
        listings = await service.list_tokens()
    finally:
        await service.aclose()
    readers, readers_error = await _readers(args)
    if args.json:
        document: dict[str, Any] = {"version": __version__, "readers": readers}
        if readers_error is not None:
            document["readersError"] = readers_error
        document["tokens"] = [listing.to_dict() for listing in listings]
        _print_json(document)
        return 0
    for reader in readers:
        card = reader.get("card")
        state = (
            _say(args, "cli.list.reader_card", name=card.get("name") or "?", atr=card.get("atr"))
            if card
            else _say(args, "cli.list.reader_empty")
        )
        print(_say(args, "cli.list.reader", reader=reader["name"], card=state))
    if not listings:
        print(_say(args, "cli.list.none"))
    for listing in listings:
        info = listing.info
        maker = " ".join(part for part in (info.manufacturer, info.model) if part)
        print(f"{info.label}  ({', '.join(part for part in (maker, info.source) if part)})")
        if listing.error:
            from cardbridge.i18n import error_text

            message = error_text(str(listing.error["code"]), args.ui_lang)
            print(_say(args, "cli.list.error", code=listing.error["code"], message=message))
        for cert in listing.certificates:
            print(f"  [{_say(args, f'cli.list.purpose.{cert.purpose}')}] {cert.holder_name}")
            valid = _say(
                args, "cli.list.valid_range", start=f"{cert.not_before:%Y-%m-%d}", end=f"{cert.not_after:%Y-%m-%d}"
            )
            rows = [
                (_say(args, "cli.list.subject"), cert.subject),
                (_say(args, "cli.list.issuer"), cert.issuer),
                (_say(args, "cli.list.serial"), cert.serial),
                (_say(args, "cli.list.valid"), valid),
                (_say(args, "cli.list.key"), f"{cert.key_type} {cert.key_size}"),
                ("sha256", cert.sha256),
            ]
            width = max(len(label) for label, _ in rows) + 2
            for label, value in rows:
                print(f"    {label + ':':<{width}}{value}")
    return 0


async def _authenticate(args: argparse.Namespace) -> int:
    from cardbridge.authtoken import check_nonce, check_origin
    from cardbridge.pinentry import PinentrySource, PinSource, StreamPinSource
    from cardbridge.service import Selection

    # The rules come first: a bad origin or nonce never touches a token or loads a module.
    check_origin(args.origin, allow_http_localhost=args.allow_http_localhost)
    check_nonce(args.nonce)
    config, service = _service(args, allow_http_localhost=args.allow_http_localhost)
    lang = resolve_language(args.lang, args.global_lang, config.lang)
    # The dialogs (a new website, waiting for the card, choosing a certificate) are always
    # pinentry's; with --pin-stdin only the PIN comes from standard input.
    dialogs = PinentrySource(config.pinentry_program())
    source: PinSource = StreamPinSource(sys.stdin.buffer) if args.pin_stdin else dialogs
    try:
        token = await service.authenticate(
            args.origin,
            args.nonce,
            source,
            lang=lang,
            selection=Selection(token_label=args.token, certificate_sha256=args.certificate),
            dialogs=dialogs,
        )
    finally:
        await service.aclose()
    print(json.dumps(token.to_dict(), indent=2) if args.json else token.to_json())
    return 0


def _card_monitor() -> Any:
    """A started PC/SC card monitor, or None when PC/SC cannot be used here."""
    try:
        from cardbridge.pcsc import CardMonitor

        return CardMonitor().start()
    except Exception:  # pyscard or libpcsclite missing: the bridge still serves, without reader events
        logging.getLogger("cardbridge").info("no PC/SC card monitor", exc_info=True)
        return None


async def _serve(args: argparse.Namespace) -> int:
    import signal

    from cardbridge.authtoken import check_origin
    from cardbridge.config import config_path, load_config
    from cardbridge.origins import SitePolicy
    from cardbridge.server import ServerSettings, run_server

    config = load_config()
    pinentry_program = config.pinentry_program()  # before anything starts: it may be refused
    allow_http = args.allow_http_localhost or config.allow_http_localhost
    if args.allow_origin and "allowed_origins" in config.locked:
        raise ConfigError(
            f"allowed_origins is locked in {config.system_path}: --allow-origin cannot add to it. "
            "Ask your administrator to allow the site."
        )
    origins = [
        check_origin(o, allow_http_localhost=allow_http) for o in (*config.allowed_origins, *(args.allow_origin or ()))
    ]
    _, service = _service(args, allow_http_localhost=allow_http)
    # The service decides about websites (and asks about a new one) with --allow-origin's too.
    service.sites = SitePolicy(dataclasses.replace(config, allowed_origins=tuple(dict.fromkeys(origins))))
    if args.user_timeout is not None:
        service.user_timeout = args.user_timeout
    settings = ServerSettings(
        port=config.port if args.port is None else args.port,
        allowed_origins=frozenset(origins),
        pinentry_program=pinentry_program,
        token_label=args.token,
        lang=config.lang,
        request_timeout=args.request_timeout,
    )
    monitor = None if args.no_pcsc else _card_monitor()
    if monitor is not None:
        service.events.watch(monitor)

    def ready(urls: list[str]) -> None:
        print(f"cardbridge {__version__} listening on {', '.join(urls)}", flush=True)
        if origins:
            print(_say(args, "cli.serve.allowed", origins=", ".join(sorted(set(origins)))), flush=True)
        if config.origin_policy == "ask":
            print(_say(args, "cli.serve.asks"), flush=True)
        elif not origins:
            print(_say(args, "cli.serve.no_origins", path=config.path or config_path()), file=sys.stderr, flush=True)

    try:
        await run_server(service, settings, stop_signals=(signal.SIGINT, signal.SIGTERM), on_ready=ready)
    finally:
        await service.aclose()
        if monitor is not None:
            monitor.stop()
    return 0


def _origins(args: argparse.Namespace) -> int:
    from cardbridge.authtoken import check_origin
    from cardbridge.config import load_config
    from cardbridge.errors import InvalidInputError
    from cardbridge.origins import OriginStore

    store = OriginStore()
    if args.action == "list":
        if args.origin is not None:
            raise InvalidInputError("origins list takes no origin.")
        config = load_config()
        remembered = store.allowed()
        if args.json:
            _print_json(
                {
                    "policy": config.origin_policy,
                    "allowed": [r.to_dict() for r in remembered],
                    "configAllowed": list(config.allowed_origins),
                    "configDenied": list(config.denied_origins),
                }
            )
            return 0
        print(_say(args, f"cli.origins.policy.{config.origin_policy}"))
        for origin in config.allowed_origins:
            print(f"  {origin}  # {_say(args, 'cli.origins.by_config')}")
        for entry in remembered:
            print(f"  {entry.origin}  # {_say(args, 'cli.origins.by_you', at=entry.allowed_at)}")
        for origin in config.denied_origins:
            print(f"  {origin}  # {_say(args, 'cli.origins.denied')}")
        if not (config.allowed_origins or remembered):
            print(_say(args, "cli.origins.none"))
        return 0
    if args.origin is None:
        raise InvalidInputError(f"origins {args.action} needs the website's origin, e.g. https://login.example.no")
    given = args.origin
    if given.count("/") == 3 and given.endswith("/"):  # an address copied from the browser: https://host/
        given = given[:-1]
    origin = check_origin(given, allow_http_localhost=True)
    if args.action == "allow":
        store.allow(origin)
        done = True
    else:
        done = store.forget(origin)
    if args.json:
        _print_json({"origin": origin, "action": args.action, "changed": done})
    else:
        print(_say(args, f"cli.origins.{args.action}{'' if done else '_none'}", origin=origin))
    return 0


def _config(args: argparse.Namespace) -> int:
    from cardbridge.config import config_path, load_config

    path = config_path()
    if args.config_command == "path":
        print(path)
        return 0
    config = load_config(path)  # checked: a bad or unsafe file is a CONFIG_ERROR
    settings = config.to_dict()
    settings.pop("path", None)
    system = settings.pop("system_path", None)
    if args.json:
        _print_json(
            {
                "path": str(path),
                "exists": path.exists(),
                "systemPath": system,
                "systemExists": config.system_path is not None and config.system_path.exists(),
                "settings": settings,
                "sources": dict(config.sources),
            }
        )
        return 0
    print(_say(args, "cli.config.file", path=path))
    if not path.exists():
        print(_say(args, "cli.config.missing"))
    print(_say(args, "cli.config.system_file", path=system))
    for name, value in settings.items():
        shown = _say(args, "cli.config.unset") if value is None else json.dumps(value, ensure_ascii=False)
        source = config.sources.get(name, "default")
        print(f"{name} = {shown}  # {_say(args, 'cli.config.source.' + source.replace('+', '_'))}")
    return 0


def _install_service(args: argparse.Namespace) -> int:
    from cardbridge import autostart

    if not sys.platform.startswith("linux"):
        print(_say(args, "cli.service.unsupported"), file=sys.stderr)
        return 2
    start = not args.no_start
    if args.uninstall:
        outcome = autostart.uninstall(start=start)
        if not outcome.removed:
            print(_say(args, "cli.service.nothing"))
        for path in outcome.removed:
            print(_say(args, "cli.service.removed", path=path))
        if outcome.ran and not outcome.failed:
            print(_say(args, "cli.service.stopped"))
    else:
        outcome = autostart.install(start=start)
        unit, desktop = outcome.written
        print(_say(args, "cli.service.unit", path=unit))
        print(_say(args, "cli.service.autostart", path=desktop))
        if outcome.ran and not outcome.failed:
            print(_say(args, "cli.service.started"))
    if outcome.to_run:
        print(_say(args, "cli.service.run_stop" if args.uninstall else "cli.service.run_start"))
        for argv in outcome.to_run:
            print(f"  {autostart.shell_line(argv)}")
    for argv, code in outcome.failed:
        print(_say(args, "cli.service.failed", code=code, command=autostart.shell_line(argv)), file=sys.stderr)
    return 1 if outcome.failed else 0


def _doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cardbridge import doctor

    checks = doctor.run_checks(args.ui_lang, module_flags=args.module)
    status = doctor.exit_status(checks)
    if args.report:
        report = Path(args.report).expanduser()
        try:
            report.write_text(doctor.report_text(checks, args.ui_lang), encoding="utf-8")
        except OSError as exc:
            from cardbridge.errors import InvalidInputError

            raise InvalidInputError(f"Cannot write the report to {report}: {exc.strerror}") from exc
    if args.json:
        _print_json({"version": __version__, "ok": status == 0, "checks": [c.to_dict() for c in checks]})
    else:
        print(doctor.format_checks(checks, args.ui_lang), end="")
    if args.report:
        print(_say(args, "doctor.report.written", path=Path(args.report).expanduser()), file=sys.stderr)
    return status


def _dev_token_create(args: argparse.Namespace) -> int:
    from cardbridge.config import data_dir
    from cardbridge.emulator.softhsm import create_dev_token

    token = create_dev_token(data_dir() / "dev", key=args.key, pin=args.pin, label=args.label)
    if args.json:
        _print_json(token.to_dict())
        return 0
    print(_say(args, "cli.dev.ready"))
    rows = [
        (_say(args, "cli.dev.holder"), f"{token.holder} ({token.id_code})"),
        (_say(args, "cli.dev.key"), token.key),
        (_say(args, "cli.dev.label"), token.label),
        (_say(args, "cli.dev.pin"), f"{token.pin}   {_say(args, 'cli.dev.pin_note')}"),
        (_say(args, "cli.dev.module"), token.module),
        ("SOFTHSM2_CONF", str(token.softhsm2_conf)),
        (_say(args, "cli.dev.ca"), str(token.ca_certificate)),
    ]
    width = max(len(label) for label, _ in rows) + 3
    for label, value in rows:
        print(f"  {label + ':':<{width}}{value}")
    print()
    print(_say(args, "cli.dev.use"))
    print(f"  export SOFTHSM2_CONF={token.softhsm2_conf}")
    print(f"  cardbridge list --module {token.module}")
    return 0


def _dev_card(args: argparse.Namespace) -> int:
    from cardbridge.config import data_dir
    from cardbridge.emulator.kinds import card_kind, pins_with_defaults
    from cardbridge.emulator.virtual_card import VirtualCard, pid_file, run_virtual_card

    folder = data_dir() / "dev"  # one development CA for every kind
    kind = card_kind(args.kind)  # InvalidInputError for a kind not built yet
    given = {"pin": args.pin, "pin2": args.pin2, "puk": args.puk}
    pins = pins_with_defaults(kind, given)

    def ready(card: VirtualCard) -> None:
        reader = f"Virtual PCD 00 0{args.reader}"
        pin_text = ", ".join(f"{p.name} {pins[p.option]}" for p in kind.pins)
        key = args.key or kind.keys[0]
        print(_say(args, "cli.card.ready", title=kind.title, reader=reader, kind=key, pin=pin_text))
        print(_say(args, "cli.card.control", pidfile=pid_file(folder, args.reader)))
        sys.stdout.flush()

    def changed(state: str) -> None:
        print(_say(args, "cli.card.inserted" if state == "inserted" else "cli.card.removed"))
        sys.stdout.flush()

    run_virtual_card(
        folder, kind=args.kind, key=args.key, reader=args.reader, pins=given, on_ready=ready, on_change=changed
    )
    return 0


def _dev_pinentry() -> int:
    from cardbridge.emulator.dev_pinentry import run

    return run(sys.stdin.buffer, sys.stdout.buffer)


async def _demo(args: argparse.Namespace) -> int:
    """The emulated card, the bridge and the demo portal; one login in headless Chromium,
    then (on a terminal, without --check) the portal stays up for a person's browser."""
    import asyncio
    import contextlib

    from cardbridge.config import data_dir, load_config
    from cardbridge.emulator.softhsm import create_dev_token
    from cardbridge.errors import ConfigError

    try:  # the demo extra: the portal's validator (pyhanko-certvalidator)
        from cardbridge.demo.runner import DEV_PINENTRY, DemoCard, demo_text, person_pinentry, virtual_demo_card
    except ImportError as exc:
        raise ConfigError(f"cardbridge demo needs the demo extra (pip install 'cardbridge[demo]'): {exc}") from exc

    lang = args.ui_lang

    def say(key: str, **values: object) -> None:
        print(demo_text(key, lang, **values), flush=True)

    interactive = not args.check and sys.stdin.isatty()
    pinentry = person_pinentry(load_config().pinentry_program()) if interactive else DEV_PINENTRY
    async with contextlib.AsyncExitStack() as stack:
        if args.card == "softhsm":
            card = DemoCard.from_dev_token(await asyncio.to_thread(create_dev_token, data_dir() / "dev"))
        else:  # a virtual card in the first vpcd reader, pcscd started when none runs
            card = await stack.enter_async_context(virtual_demo_card(args.card, data_dir() / "dev"))
        print(
            _say(args, "cli.demo.card", holder=card.holder, id_code=card.id_code, label=repr(card.label), pin=card.pin)
        )
        return await _demo_run(args, card, pinentry, interactive, say)


async def _demo_run(args: argparse.Namespace, card: Any, pinentry: str, interactive: bool, say: Any) -> int:
    import asyncio
    import signal

    from cardbridge.demo.headless import login_in_headless_chromium
    from cardbridge.demo.runner import DEV_PINENTRY, DemoRun, check_login

    lang = args.ui_lang
    async with DemoRun(card) as run:
        say("portal", url=run.url)
        say("bridge", url=run.bridge_url, origin=run.origin)
        await run.start_bridge(DEV_PINENTRY, dev_pin=card.pin)
        say("logging_in")
        shown = await login_in_headless_chromium(run.url)
        check_login(run, shown.name)
        citizen = run.portal.logins[-1]
        say("dialog", origin=run.origin)
        say("verified", name=citizen.name, fnr=citizen.fodselsnummer or citizen.id_code, issuer=citizen.issuer)
        say("ok")
        if not interactive:
            return 0
        # Now a person logs in: the bridge asks through their own pinentry program.
        await run.start_bridge(pinentry)
        say("open", url=run.url if lang == "nb" else f"{run.url}?lang={lang}", pin=card.pin)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        while not stop.is_set():
            run.portal.login_event.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(run.portal.login_event.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if run.portal.login_event.is_set():
                citizen = run.portal.logins[-1]
                say("login_seen", name=citizen.name, fnr=citizen.fodselsnummer or citizen.id_code)
        say("stopped")
    return 0


def _add_native_host_parsers(commands: Any) -> None:
    p_host = commands.add_parser(
        "native-host",
        help="the native-messaging host that the browser extension starts (frames on stdin/stdout)",
        description="Speaks the Web eID native-messaging protocol on stdin/stdout: writes its version, "
        "answers one request (authenticate, get-signing-certificate, sign, quit) and exits. The browser "
        "starts it through the launcher that install-native-host writes.",
    )
    p_host.add_argument(
        "caller",
        nargs="*",
        help="what the browser passes: the extension's origin (Chrome), or the manifest's path and the add-on "
        "id (Firefox); none when started by hand",
    )
    p_install = commands.add_parser(
        "install-native-host",
        help="register the native-messaging host with the browsers",
        description="Writes a launcher and the host manifest no.cardbridge.host.json into each browser's "
        "folder (Linux and macOS), so that the cardbridge browser extension can reach the card.",
    )
    p_install.add_argument(
        "--browser", choices=("chrome", "chromium", "edge", "brave", "firefox", "all"), default="all"
    )
    p_install.add_argument("--system", action="store_true", help="for every user: the system folders (as root)")
    p_install.add_argument(
        "--uninstall",
        action="store_true",
        help="remove the manifests (with --browser all, the launcher too) and put back what --replace moved aside; "
        "with --web-eid only the eu.webeid registration",
    )
    p_install.add_argument(
        "--web-eid",
        action="store_true",
        help="also answer the Web eID browser extension (host eu.webeid), standing in for the Web eID app",
    )
    p_install.add_argument(
        "--replace",
        action="store_true",
        help="with --web-eid: move another program's eu.webeid manifest aside (--uninstall puts it back)",
    )
    p_install.add_argument("--json", action="store_true", help="print JSON")


def _native_host(argv: Sequence[str]) -> int:
    from cardbridge.nativemsg import host

    return host.main(argv)  # main() ends the card work before the process leaves


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


def _install_native_host(args: argparse.Namespace) -> int:
    from cardbridge.nativemsg import install

    if args.uninstall:
        changes = install.uninstall(args.browser, system=args.system, web_eid=args.web_eid)
    else:
        extra: tuple[str, ...] = ()
        if args.web_eid:
            from cardbridge.config import load_config

            extra = tuple(load_config().allowed_extensions)
        changes = install.install(
            args.browser, system=args.system, web_eid=args.web_eid, replace=args.replace, extra_extensions=extra
        )
    if args.json:
        _print_json({"changes": [change.to_dict() for change in changes]})
        return 0
    for change in changes:
        print(
            _say(
                args,
                "cli.nativehost.change",
                action=change.action,
                path=change.path,
                browser=change.browser or "launcher",
            )
        )
    if not args.uninstall:
        print(_say(args, "cli.nativehost.next"))
    return 0


def _use_pidfd_child_watcher() -> None:
    """On Python 3.11 (Linux), wait for child processes (the pinentry) through a pidfd on
    the event loop instead of a new thread per child; 3.12 does this by itself."""
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        import asyncio

        with contextlib.suppress(OSError):
            os.close(os.pidfd_open(os.getpid()))
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())


def main(argv: Sequence[str] | None = None) -> int:
    status = 1
    try:
        status = _main(argv)
        return status
    finally:
        _end_card_work(status)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import asyncio  # only now: --version and --help go without it

    _configure_logging(args)
    _use_pidfd_child_watcher()
    as_json = bool(getattr(args, "json", False))
    args.ui_lang = _language(args)
    try:
        if args.command == "install-native-host":
            return _install_native_host(args)
        if args.command == "native-host":
            return _native_host(args.caller)
        if args.command == "list":
            return asyncio.run(_list(args))
        if args.command == "authenticate":
            return asyncio.run(_authenticate(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "config":
            return _config(args)
        if args.command == "origins":
            return _origins(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "install-service":
            return _install_service(args)
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "dev" and args.dev_command == "card":
            return _dev_card(args)
        if args.command == "dev" and args.dev_command == "pinentry":
            return _dev_pinentry()
        if args.command == "dev" and args.dev_command == "token":
            return _dev_token_create(args)
        parser.print_help()
        return 2
    except CardbridgeError as error:
        return _report(error, as_json, args.ui_lang)
    except KeyboardInterrupt:
        print(f"error: {Code.USER_CANCELLED}: {text('error.USER_CANCELLED', args.ui_lang)}", file=sys.stderr)
        return 6
    except Exception as exc:  # a bug: say so plainly, with a stable code
        logging.getLogger("cardbridge").debug("unexpected error", exc_info=True)
        return _report(CardbridgeError(f"Unexpected error: {type(exc).__name__}: {exc}"), as_json, args.ui_lang)
