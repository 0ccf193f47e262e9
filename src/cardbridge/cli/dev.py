"""For developers: ``dev token create``, ``dev card``, ``dev pinentry`` (emulated ID cards)
and ``demo`` (a whole login with one)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cardbridge.cli.common import Parser, add_command, add_json_flag, add_switch, on_event_loop, print_json, say
from cardbridge.i18n import DEFAULT_LANGUAGE

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048")


def register_dev(commands: Any) -> None:
    p_dev = add_command(commands, "dev", None, "emulated ID cards for developers")
    dev = p_dev.add_subparsers(dest="dev_command", metavar="WHAT", parser_class=Parser, required=True)
    _register_token(dev)
    _register_card(dev)
    add_command(
        dev,
        "pinentry",
        run_dev_pinentry,
        "a pinentry program for emulated cards: answers every PIN dialog with $CARDBRIDGE_DEV_PIN",
        description="Speaks GnuPG's pinentry protocol on stdin/stdout and answers GETPIN with the PIN in "
        "CARDBRIDGE_DEV_PIN (cancels when it is unset). For emulated ID cards only: it runs only under "
        "`cardbridge demo`, which starts the bridge with it; anywhere else it, and a bridge configured "
        "with it, refuse with CONFIG_ERROR.",
    )


def _register_token(dev: Any) -> None:
    p_token = add_command(dev, "token", None, "an emulated ID card on SoftHSM2")
    token = p_token.add_subparsers(dest="token_command", metavar="ACTION", parser_class=Parser, required=True)
    p_create = add_command(token, "create", create_token, "make the emulated card (once) and print how to use it")
    p_create.add_argument("--key", choices=KEY_TYPES, default="ec-p384")
    p_create.add_argument("--pin", default="1234", help="the card's PIN (development only)")
    p_create.add_argument("--label", default="cardbridge-dev", help="token label")
    add_json_flag(p_create)


def _register_card(dev: Any) -> None:
    p_card = add_command(
        dev,
        "card",
        run_card,
        "run a virtual ID card (PIV, Estonian, Finnish, Belgian) in the vpcd virtual reader (foreground)",
        description="Runs a virtual ID card, emulated in Python, in pcscd's vpcd reader, with keys and "
        "certificates from the development PKI. It runs until Ctrl-C. Remove it with `kill -USR1 PID` and "
        "insert it again with `kill -USR2 PID` (the PID is in the card's folder, printed at start).",
    )
    p_card.add_argument(
        "--kind",
        choices=("piv", "esteid", "esteid-thales", "fineid", "fineid-v3", "belpic"),
        default="piv",
        help="which card (default piv)",
    )
    p_card.add_argument("--key", choices=KEY_TYPES, default=None, help="key type (the kind's default)")
    p_card.add_argument("--reader", type=int, choices=(0, 1), default=0, help="vpcd reader: 0 or 1")
    p_card.add_argument(
        "--pin", default=None, help="the PIN (PIV: 6 to 8 digits, default 123456) or PIN1 (development only)"
    )
    p_card.add_argument("--pin2", default=None, help="the signing PIN (PIN2) of a national ID card")
    p_card.add_argument("--puk", default=None, help="the PUK of a national ID card")
    p_card.add_argument(
        "--pin-tries",
        type=int,
        default=None,
        metavar="N",
        help="the retry limit (1 to 15) the holder's PINs are issued with (default: the kind's own)",
    )
    add_switch(
        p_card,
        "--pin-not-active",
        "issue the card with PIN1 not activated yet: it must be changed first (fineid, esteid-thales)",
    )
    add_switch(
        p_card,
        "--pin2-not-active",
        "issue the card with PIN2 not activated yet: it must be changed first (fineid, esteid-thales)",
    )


def register_demo(commands: Any) -> None:
    p_demo = add_command(
        commands, "demo", on_event_loop(demo), "log in end to end with the emulated ID card", logs_to_file=True
    )
    add_switch(p_demo, "--check", "run one login non-interactively and check it")
    p_demo.add_argument(
        "--card",
        choices=("softhsm", "piv", "esteid", "esteid-thales", "fineid", "fineid-v3", "belpic"),
        default="softhsm",
        help="the emulated card: a SoftHSM2 token (default), or a virtual card in the vpcd reader "
        "(needs pcscd and vsmartcard-vpcd; started when none runs)",
    )


def create_token(args: argparse.Namespace) -> int:
    from cardbridge.config import data_dir
    from cardbridge.emulator.softhsm import create_dev_token

    token = create_dev_token(data_dir() / "dev", key=args.key, pin=args.pin, label=args.label)
    if args.json:
        print_json(token.to_dict())
        return 0
    print(say(args, "The emulated ID card (SoftHSM2 token) is ready."))
    rows = [
        (say(args, "holder"), f"{token.holder} ({token.id_code})"),
        (say(args, "key"), token.key),
        (say(args, "token label"), token.label),
        (say(args, "PIN"), token.pin + "   " + say(args, "(development only)")),
        (say(args, "module"), token.module),
        ("SOFTHSM2_CONF", str(token.softhsm2_conf)),
        (say(args, "CA certificate"), str(token.ca_certificate)),
    ]
    width = max(len(label) for label, _ in rows) + 3
    for label, value in rows:
        print(f"  {label + ':':<{width}}{value}")
    print()
    print(say(args, "Use it:"))
    print(f"  export SOFTHSM2_CONF={token.softhsm2_conf}")
    print(f"  cardbridge list --module {token.module}")
    return 0


def run_card(args: argparse.Namespace) -> int:
    from cardbridge.config import data_dir
    from cardbridge.emulator.kinds import card_kind, pins_with_defaults
    from cardbridge.emulator.virtual_card import VirtualCard, pid_file, run_virtual_card

    folder = data_dir() / "dev"  # one development CA for every kind
    kind = card_kind(args.kind)  # InvalidInputError for a kind not built yet
    given = {"pin": args.pin, "pin2": args.pin2, "puk": args.puk}
    pins = pins_with_defaults(kind, given)
    not_active = [option for option, flag in (("pin", args.pin_not_active), ("pin2", args.pin2_not_active)) if flag]

    def ready(card: VirtualCard) -> None:
        reader = f"Virtual PCD 00 0{args.reader}"
        pin_text = ", ".join(
            f"{p.name} {pins[p.option]}" + (" " + say(args, "(not activated)") if p.option in not_active else "")
            for p in kind.pins
        )
        key = args.key or kind.keys[0]
        print(
            say(
                args,
                "Virtual card ({title}) in reader '{reader}' (key {kind}, {pin}).",
                title=kind.title,
                reader=reader,
                kind=key,
                pin=pin_text,
            )
        )
        print(
            say(
                args,
                "Remove: kill -USR1 $(cat {pidfile})   Insert: kill -USR2 $(cat {pidfile})   Stop: Ctrl-C",
                pidfile=pid_file(folder, args.reader),
            )
        )
        sys.stdout.flush()

    def changed(state: str) -> None:
        print(say(args, "card inserted") if state == "inserted" else say(args, "card removed"))
        sys.stdout.flush()

    run_virtual_card(
        folder,
        kind=args.kind,
        key=args.key,
        reader=args.reader,
        pins=given,
        not_active=not_active,
        pin_tries=args.pin_tries,
        on_ready=ready,
        on_change=changed,
    )
    return 0


def run_dev_pinentry(args: argparse.Namespace) -> int:
    from cardbridge.emulator.dev_pinentry import run

    return run(sys.stdin.buffer, sys.stdout.buffer)


async def demo(args: argparse.Namespace) -> int:
    """The emulated card, the bridge and the demo portal; one login in headless Chromium,
    then (on a terminal, without --check) the portal stays up for a person's browser."""
    import asyncio
    import contextlib

    from cardbridge.config import data_dir, load_config
    from cardbridge.emulator.softhsm import create_dev_token
    from cardbridge.errors import ConfigError

    try:  # the demo extra: the portal's validator (pyhanko-certvalidator)
        from cardbridge.demo.runner import DEV_PINENTRY, DemoCard, person_pinentry, virtual_demo_card
    except ImportError as exc:
        raise ConfigError(f"cardbridge demo needs the demo extra (pip install 'cardbridge[demo]'): {exc}") from exc

    interactive = not args.check and sys.stdin.isatty()
    pinentry = person_pinentry(load_config().pinentry_program()) if interactive else DEV_PINENTRY
    async with contextlib.AsyncExitStack() as stack:
        if args.card == "softhsm":
            card = DemoCard.from_dev_token(await asyncio.to_thread(create_dev_token, data_dir() / "dev"))
        else:  # a virtual card in the first vpcd reader, pcscd started when none runs
            card = await stack.enter_async_context(virtual_demo_card(args.card, data_dir() / "dev"))
        line = say(
            args,
            "Emulated ID card: {holder} ({id_code}), token {label}, PIN {pin}",
            holder=card.holder,
            id_code=card.id_code,
            label=repr(card.label),
            pin=card.pin,
        )
        print(line, flush=True)
        return await _demo_run(args, card, pinentry, interactive)


async def _demo_run(args: argparse.Namespace, card: Any, pinentry: str, interactive: bool) -> int:
    import asyncio
    import signal

    from cardbridge.demo.headless import login_in_headless_chromium
    from cardbridge.demo.runner import DEV_PINENTRY, DemoRun, check_login

    lang = args.ui_lang
    async with DemoRun(card) as run:
        print(say(args, "Demo portal: {url}", url=run.url), flush=True)
        print(
            say(
                args, "Bridge (cardbridge serve): {url}, allowing only {origin}", url=run.bridge_url, origin=run.origin
            ),
            flush=True,
        )
        await run.start_bridge(DEV_PINENTRY, dev_pin=card.pin)
        print(
            say(args, "Logging in with headless Chromium; the PIN dialog is answered by 'cardbridge dev pinentry' …"),
            flush=True,
        )
        shown = await login_in_headless_chromium(run.url)
        check_login(run, shown.name)
        citizen = run.portal.logins[-1]
        print(say(args, "The PIN dialog showed the website {origin}", origin=run.origin), flush=True)
        print(
            say(
                args,
                "The portal verified: {name}, {identifier_name}: {identifier}, issuer: {issuer}",
                name=citizen.name,
                identifier_name=say(args, citizen.identifier_label),
                identifier=citizen.identifier,
                issuer=citizen.issuer,
            ),
            flush=True,
        )
        print(say(args, "The login worked."), flush=True)
        if not interactive:
            return 0
        # Now a person logs in: the bridge asks through their own pinentry program.
        await run.start_bridge(pinentry)
        url = run.url if lang == DEFAULT_LANGUAGE else f"{run.url}?lang={lang}"
        print(
            say(
                args,
                "Open {url} in your browser and log in with the PIN {pin}. Press Ctrl-C to stop.",
                url=url,
                pin=card.pin,
            ),
            flush=True,
        )
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
                print(
                    say(args, "Logged in: {name} ({identifier})", name=citizen.name, identifier=citizen.identifier),
                    flush=True,
                )
        print(say(args, "The demo stopped."), flush=True)
    return 0
