"""The commands that work with the cards: ``list`` and ``authenticate``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cardbridge import __version__
from cardbridge.cli.common import (
    add_command,
    add_json_flag,
    add_module_flags,
    add_reader_flag,
    add_switch,
    on_event_loop,
    print_json,
    say,
)
from cardbridge.errors import CardbridgeError
from cardbridge.i18n import LANGUAGES, resolve_language
from cardbridge.i18n.names import PURPOSES


def register(commands: Any) -> None:
    p_list = add_command(
        commands, "list", on_event_loop(list_cards), "list the cards (tokens) and their certificates", logs_to_file=True
    )
    add_module_flags(p_list)
    add_reader_flag(p_list)
    add_json_flag(p_list)

    p_auth = add_command(
        commands,
        "authenticate",
        on_event_loop(authenticate),
        "sign a portal's login challenge and print the auth token",
        logs_to_file=True,
    )
    p_auth.add_argument("--origin", required=True, help="the portal's origin, e.g. https://login.example.no")
    p_auth.add_argument("--nonce", required=True, help="the portal's challenge nonce (44-128 characters)")
    add_module_flags(p_auth)
    add_reader_flag(p_auth)
    p_auth.add_argument("--token", metavar="LABEL", help="use only the token with this label")
    p_auth.add_argument("--certificate", metavar="SHA256", help="use the certificate with this SHA-256 (hex)")
    add_switch(p_auth, "--pin-stdin", "read the PIN from one line of standard input")
    p_auth.add_argument("--lang", choices=LANGUAGES, help="language of the PIN dialog")
    add_json_flag(p_auth, "print errors as JSON on stdout too")
    add_switch(p_auth, "--allow-http-localhost", "accept http://localhost origins (development only)")


def open_card_service(args: argparse.Namespace, *, allow_http_localhost: bool = False) -> Any:
    """The config and the card service that ``--module`` and ``--reader`` ask for: with
    ``--reader``, the built-in driver on that reader and nothing else; with ``--module``, only
    those modules; else the built-in drivers and the modules found."""
    from cardbridge.config import load_config
    from cardbridge.service import open_service

    config = load_config()
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


async def list_cards(args: argparse.Namespace) -> int:
    _, service = open_card_service(args)
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
        print_json(document)
        return 0
    for reader in readers:
        card = reader.get("card")
        state = f"{card.get('name') or '?'} (ATR {card.get('atr')})" if card else say(args, "no card")
        print(f"[{reader['name']}] {state}")
    if not listings:
        print(say(args, "No ID card found. Insert your ID card into the card reader."))
    for listing in listings:
        info = listing.info
        maker = " ".join(part for part in (info.manufacturer, info.model) if part)
        print(f"{info.label}  ({', '.join(part for part in (maker, info.source) if part)})")
        if listing.error:
            from cardbridge.i18n import error_text

            message = error_text(str(listing.error["code"]), args.ui_lang)
            print("  " + say(args, "error: {code}: {message}", code=listing.error["code"], message=message))
        for cert in listing.certificates:
            purpose = say(args, PURPOSES[cert.purpose])
            print(f"  [{purpose}] {cert.holder_name}")
            start, end = (f"{when:%Y-%m-%d}" for when in (cert.not_before, cert.not_after))
            valid = say(args, "{start} to {end}", start=start, end=end)
            rows = [
                (say(args, "subject"), cert.subject),
                (say(args, "issuer"), cert.issuer),
                (say(args, "serial"), cert.serial),
                (say(args, "valid"), valid),
                (say(args, "key"), f"{cert.key_type} {cert.key_size}"),
                ("sha256", cert.sha256),
            ]
            width = max(len(label) for label, _ in rows) + 2
            for label, value in rows:
                print(f"    {label + ':':<{width}}{value}")
    return 0


async def authenticate(args: argparse.Namespace) -> int:
    from cardbridge.authtoken import check_nonce, check_origin
    from cardbridge.pinentry import PinentrySource, PinSource, StreamPinSource
    from cardbridge.service import Selection

    # The rules come first: a bad origin or nonce never touches a token or loads a module.
    check_origin(args.origin, allow_http_localhost=args.allow_http_localhost)
    check_nonce(args.nonce)
    config, service = open_card_service(args, allow_http_localhost=args.allow_http_localhost)
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
