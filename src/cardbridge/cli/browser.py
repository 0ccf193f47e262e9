"""The browser's way in: ``native-host`` (what the browser starts) and
``install-native-host`` (registering it with the browsers)."""

from __future__ import annotations

import argparse
from typing import Any

from cardbridge.cli.common import add_command, add_json_flag, add_switch, print_json, say


def register(commands: Any) -> None:
    p_host = add_command(
        commands,
        "native-host",
        native_host,
        "the native-messaging host that the browser extension starts (frames on stdin/stdout)",
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
    p_install = add_command(
        commands,
        "install-native-host",
        install_native_host,
        "register the native-messaging host with the browsers",
        description="Writes a launcher and the host manifest no.cardbridge.host.json into each browser's "
        "folder (Linux and macOS), so that the cardbridge browser extension can reach the card.",
    )
    p_install.add_argument(
        "--browser", choices=("chrome", "chromium", "edge", "brave", "firefox", "all"), default="all"
    )
    add_switch(p_install, "--system", "for every user: the system folders (as root)")
    add_switch(
        p_install,
        "--uninstall",
        "remove the manifests (with --browser all, the launcher too) and put back what --replace moved aside; "
        "with --web-eid only the eu.webeid registration",
    )
    add_switch(
        p_install,
        "--web-eid",
        "also answer the Web eID browser extension (host eu.webeid), standing in for the Web eID app",
    )
    add_switch(
        p_install,
        "--replace",
        "with --web-eid: move another program's eu.webeid manifest aside (--uninstall puts it back)",
    )
    add_json_flag(p_install)


def native_host(args: argparse.Namespace) -> int:
    """``cardbridge native-host`` after a global option (``cardbridge -v native-host``; plain
    ``cardbridge native-host`` goes straight to the host from ``cardbridge.__main__``): the
    same host, which ends the process itself."""
    from cardbridge.nativemsg.host import launch

    launch(args.caller)


def install_native_host(args: argparse.Namespace) -> int:
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
        print_json({"changes": [change.to_dict() for change in changes]})
        return 0
    for change in changes:
        print(f"{change.action:8} {change.path}  ({change.browser or 'launcher'})")
    if not args.uninstall:
        print(say(args, "Restart the browser, then install the cardbridge extension (native-host/extension)."))
    return 0
