"""``serve``: the localhost HTTP API for login pages."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from typing import Any

from cardbridge import DEFAULT_PORT, __version__
from cardbridge.cli.cards import open_card_service
from cardbridge.cli.common import add_command, add_module_flags, add_reader_flag, add_switch, on_event_loop, say
from cardbridge.errors import ConfigError


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


def register(commands: Any) -> None:
    p_serve = add_command(
        commands,
        "serve",
        on_event_loop(serve),
        "serve the localhost HTTP API for login pages",
        logs_to_file=True,
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
    add_switch(
        p_serve, "--allow-http-localhost", "accept http://localhost:PORT origins in --allow-origin (development only)"
    )
    add_module_flags(p_serve)
    p_serve.add_argument("--token", metavar="LABEL", help="use only the token with this label")
    p_serve.add_argument(
        "--user-timeout", type=_seconds, metavar="SECONDS", help="how long a PIN dialog waits (default 120)"
    )
    add_switch(p_serve, "--no-pcsc", "do not watch PC/SC readers for /v1/events")
    p_serve.add_argument(
        "--request-timeout",
        type=_seconds,
        metavar="SECONDS",
        default=10.0,
        help="how long a client may take to send a request's head, and its body; an idle connection "
        "closes after as long (default 10)",
    )
    add_reader_flag(p_serve)


def _card_monitor() -> Any:
    """A started PC/SC card monitor, or None when PC/SC cannot be used here."""
    try:
        from cardbridge.pcsc import CardMonitor

        return CardMonitor().start()
    except Exception:  # pyscard or libpcsclite missing: the bridge still serves, without reader events
        logging.getLogger("cardbridge").info("no PC/SC card monitor", exc_info=True)
        return None


async def serve(args: argparse.Namespace) -> int:
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
    _, service = open_card_service(args, allow_http_localhost=allow_http)
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
            print(say(args, "allowed origins: {origins}", origins=", ".join(sorted(set(origins)))), flush=True)
        if config.origin_policy == "ask":
            print(
                say(args, "A new website that wants the ID card is asked about once (origin_policy = ask)."), flush=True
            )
        elif not origins:
            print(
                say(
                    args,
                    "No origin is allowed yet, so every request is refused (ORIGIN_NOT_ALLOWED). "
                    "Allow a login page with --allow-origin https://login.example.no, or "
                    'allowed_origins = ["https://login.example.no"] in {path}.',
                    path=config.path or config_path(),
                ),
                file=sys.stderr,
                flush=True,
            )

    try:
        await run_server(service, settings, stop_signals=(signal.SIGINT, signal.SIGTERM), on_ready=ready)
    finally:
        await service.aclose()
        if monitor is not None:
            monitor.stop()
    return 0
