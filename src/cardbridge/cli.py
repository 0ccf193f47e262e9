"""The ``cardbridge`` command: the only module that prints to the user or exits.

Exit codes (stable):

    0  success
    1  INTERNAL and anything unexpected
    2  usage error (bad flags)
    3  invalid input: INVALID_ORIGIN, INVALID_NONCE, INVALID_ARGUMENT
    4  nothing to use: NO_TOKEN, NO_CERTIFICATE, AMBIGUOUS_CERTIFICATE, KEY_NOT_FOUND,
       UNSUPPORTED_KEY, NO_CARD, NO_READERS, UNSUPPORTED_CARD
    5  PIN: PIN_INCORRECT, PIN_BLOCKED, PIN_INVALID_LENGTH
    6  the person: USER_CANCELLED, USER_TIMEOUT
    7  card, reader, module: CARD_REMOVED, CARD_BUSY, CARD_RESET, CARD_ERROR,
       SERVICE_NOT_RUNNING, MODULE_ERROR, MODULE_NOT_FOUND, PINENTRY_FAILED
    8  the bridge: CONFIG_ERROR, BUSY, ORIGIN_NOT_ALLOWED, HOST_NOT_ALLOWED
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cardbridge import __version__
from cardbridge.errors import CardbridgeError, Code
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
}


def exit_code(error: CardbridgeError) -> int:
    return EXIT_CODES.get(error.code, 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"error: {Code.INVALID_ARGUMENT}: {message}", file=sys.stderr)
        raise SystemExit(2)


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
    p_list.add_argument("--json", action="store_true", help="print JSON")

    p_auth = commands.add_parser("authenticate", help="sign a portal's login challenge and print the auth token")
    p_auth.add_argument("--origin", required=True, help="the portal's origin, e.g. https://login.example.no")
    p_auth.add_argument("--nonce", required=True, help="the portal's challenge nonce (44-128 characters)")
    _add_module_flags(p_auth)
    p_auth.add_argument("--token", metavar="LABEL", help="use only the token with this label")
    p_auth.add_argument("--certificate", metavar="SHA256", help="use the certificate with this SHA-256 (hex)")
    p_auth.add_argument("--pin-stdin", action="store_true", help="read the PIN from one line of standard input")
    p_auth.add_argument("--lang", choices=("nb", "nn", "en"), help="language of the PIN dialog")
    p_auth.add_argument("--json", action="store_true", help="print errors as JSON on stdout too")
    p_auth.add_argument(
        "--allow-http-localhost", action="store_true", help="accept http://localhost origins (development only)"
    )

    _add_config_parser(commands)

    p_dev = commands.add_parser("dev", help="emulated ID cards for developers")
    dev = p_dev.add_subparsers(dest="dev_command", metavar="WHAT", parser_class=_Parser, required=True)
    p_token = dev.add_parser("token", help="an emulated ID card on SoftHSM2")
    token = p_token.add_subparsers(dest="token_command", metavar="ACTION", parser_class=_Parser, required=True)
    p_create = token.add_parser("create", help="make the emulated card (once) and print how to use it")
    p_create.add_argument("--key", choices=("ec-p256", "ec-p384", "rsa-2048"), default="ec-p384")
    p_create.add_argument("--pin", default="1234", help="the card's PIN (development only)")
    p_create.add_argument("--label", default="cardbridge-dev", help="token label")
    p_create.add_argument("--json", action="store_true", help="print JSON")
    dev.add_parser(
        "pinentry",
        help="a pinentry program for emulated cards: answers every PIN dialog with $CARDBRIDGE_DEV_PIN",
        description="Speaks GnuPG's pinentry protocol on stdin/stdout and answers GETPIN with the PIN in "
        "CARDBRIDGE_DEV_PIN (cancels when it is unset). For emulated ID cards only: "
        'CARDBRIDGE_PINENTRY="cardbridge dev pinentry".',
    )
    p_demo = commands.add_parser("demo", help="log in end to end with the emulated ID card")
    p_demo.add_argument("--check", action="store_true", help="run one login non-interactively and check it")
    return parser


def _add_config_parser(commands: Any) -> None:
    p_config = commands.add_parser("config", help="where the config file is, and the settings in use")
    actions = p_config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=_Parser, required=True)
    actions.add_parser("path", help="print the config file's path (it may not exist yet)")
    p_show = actions.add_parser("show", help="check the config file and print the settings in use")
    p_show.add_argument("--json", action="store_true", help="print JSON")


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


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
    from cardbridge.pkcs11.discovery import resolve_modules
    from cardbridge.service import CardService, open_backends

    config = load_config()
    modules = resolve_modules(args.module, config_modules=config.pkcs11_modules)
    return config, CardService(
        open_backends(modules),
        user_timeout=config.user_timeout,
        allow_http_localhost=allow_http_localhost or config.allow_http_localhost,
    )


async def _list(args: argparse.Namespace) -> int:
    _, service = _service(args)
    try:
        listings = await service.list_tokens()
    finally:
        await service.aclose()
    if args.json:
        _print_json({"version": __version__, "tokens": [listing.to_dict() for listing in listings]})
        return 0
    if not listings:
        print(_say(args, "cli.list.none"))
    for listing in listings:
        info = listing.info
        print(f"{info.label}  ({info.manufacturer} {info.model}, {info.source})")
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
    source: PinSource = (
        StreamPinSource(sys.stdin.buffer) if args.pin_stdin else PinentrySource(config.pinentry_program())
    )
    try:
        token = await service.authenticate(
            args.origin,
            args.nonce,
            source,
            lang=lang,
            selection=Selection(token_label=args.token, certificate_sha256=args.certificate),
        )
    finally:
        await service.aclose()
    print(json.dumps(token.to_dict(), indent=2) if args.json else token.to_json())
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
    if args.json:
        _print_json({"path": str(path), "exists": path.exists(), "settings": settings})
        return 0
    print(_say(args, "cli.config.file", path=path))
    if not path.exists():
        print(_say(args, "cli.config.missing"))
    for name, value in settings.items():
        shown = _say(args, "cli.config.unset") if value is None else json.dumps(value, ensure_ascii=False)
        print(f"{name} = {shown}")
    return 0


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


def _dev_pinentry() -> int:
    from cardbridge.emulator.dev_pinentry import run

    return run(sys.stdin.buffer, sys.stdout.buffer)


async def _demo(args: argparse.Namespace) -> int:
    import base64
    import secrets

    from cardbridge.config import data_dir
    from cardbridge.emulator.softhsm import create_dev_token
    from cardbridge.pinentry import FixedPinSource
    from cardbridge.service import CardService, Selection, open_backends

    origin = "https://login.example.no"
    card = create_dev_token(data_dir() / "dev")
    print(_say(args, "cli.demo.card", holder=card.holder, id_code=card.id_code, label=repr(card.label), pin=card.pin))
    nonce = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    print(_say(args, "cli.demo.challenge", origin=origin, nonce=nonce))
    service = CardService(open_backends([card.module]))
    try:
        token = await service.authenticate(
            origin, nonce, FixedPinSource(card.pin), selection=Selection(token_label=card.label)
        )
    finally:
        await service.aclose()
    from cardbridge.certs import parse_certificate

    holder = parse_certificate(token.unverified_certificate)
    print(_say(args, "cli.demo.token"))
    print(json.dumps(token.to_dict(), indent=2))
    print(_say(args, "cli.demo.signed_by", holder=holder.holder_name, id_code=holder.id_code, issuer=holder.issuer))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    as_json = bool(getattr(args, "json", False))
    args.ui_lang = _language(args)
    try:
        if args.command == "list":
            return asyncio.run(_list(args))
        if args.command == "authenticate":
            return asyncio.run(_authenticate(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "config":
            return _config(args)
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
