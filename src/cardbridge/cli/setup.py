"""Setting the bridge up and checking it: ``config``, ``origins``, ``doctor`` and
``install-service``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cardbridge import __version__
from cardbridge.cli.common import (
    Parser,
    add_command,
    add_json_flag,
    add_module_flags,
    add_switch,
    print_json,
    say,
    use_pidfd_child_watcher,
)
from cardbridge.i18n import N_

# Where a setting comes from (``Config.sources``), as ``config show`` names it.
_SOURCES = {
    "default": N_("default"),
    "system": N_("from the system file"),
    "user": N_("from your file"),
    "system+user": N_("from both files"),
}
_POLICIES = {
    "ask": N_("New websites: you are asked the first time. Allowed websites:"),
    "allow-list": N_("Only the websites on the list may use the ID card:"),
}


def register(commands: Any) -> None:
    p_config = add_command(commands, "config", None, "where the config file is, and the settings in use")
    actions = p_config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=Parser, required=True)
    actions.add_parser("path", help="print the config file's path (it may not exist yet)").set_defaults(
        func=print_config_path
    )
    p_show = actions.add_parser("show", help="check the config file and print the settings in use")
    p_show.set_defaults(func=show_config)
    add_json_flag(p_show)

    p_origins = add_command(
        commands,
        "origins",
        manage_origins,
        "the websites you allowed to use your ID card",
        description="Under origin_policy = ask, cardbridge asks the first time a website wants the card and "
        "remembers your Allow. list shows them, forget takes one back (the site is asked about again), "
        "allow adds one without a question.",
    )
    p_origins.add_argument("action", nargs="?", choices=("list", "forget", "allow"), default="list")
    p_origins.add_argument("origin", nargs="?", help="the website's origin, e.g. https://login.example.no")
    add_json_flag(p_origins)

    p_doctor = add_command(
        commands,
        "doctor",
        run_doctor,
        "check everything the ID card login needs, and say how to fix what is wrong",
        logs_to_file=True,
        description="Check pcscd, readers, cards, PKCS#11 modules, certificates, browser manifests, the HTTP port, "
        "the config file and the PIN window. Exit 0 when all is well, 1 when something needs a fix.",
    )
    add_json_flag(p_doctor, "print the checks as JSON")
    p_doctor.add_argument(
        "--report", metavar="FILE", help="also write a text report to FILE for support (no PIN, no secrets)"
    )
    add_module_flags(p_doctor)

    p_service = add_command(
        commands,
        "install-service",
        install_service,
        "run the bridge in the background: a systemd user unit and an XDG autostart entry",
        description="Write ~/.config/systemd/user/cardbridge.service and ~/.config/autostart/cardbridge.desktop "
        "(honouring XDG_CONFIG_HOME) and enable the unit with systemctl --user; --uninstall removes them.",
    )
    add_switch(p_service, "--uninstall", "stop the background service and remove it")
    add_switch(p_service, "--no-start", "only write or remove the files; print the systemctl commands")


def print_config_path(args: argparse.Namespace) -> int:
    from cardbridge.config import config_path

    print(config_path())
    return 0


def show_config(args: argparse.Namespace) -> int:
    from cardbridge.config import config_path, load_config

    path = config_path()
    config = load_config(path)  # checked: a bad or unsafe file is a CONFIG_ERROR
    settings = config.to_dict()
    settings.pop("path", None)
    system = settings.pop("system_path", None)
    if args.json:
        print_json(
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
    print(say(args, "Config file: {path}", path=path))
    if not path.exists():
        print(say(args, "(the file does not exist; these are the defaults)"))
    print(say(args, "System config file: {path}", path=system))
    for name, value in settings.items():
        shown = say(args, "(not set)") if value is None else json.dumps(value, ensure_ascii=False)
        source = config.sources.get(name, "default")
        print(f"{name} = {shown}  # " + say(args, _SOURCES[source]))
    return 0


def manage_origins(args: argparse.Namespace) -> int:
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
            print_json(
                {
                    "policy": config.origin_policy,
                    "allowed": [r.to_dict() for r in remembered],
                    "configAllowed": list(config.allowed_origins),
                    "configDenied": list(config.denied_origins),
                }
            )
            return 0
        print(say(args, _POLICIES[config.origin_policy]))
        for origin in config.allowed_origins:
            print(f"  {origin}  # " + say(args, "in the settings"))
        for entry in remembered:
            print(f"  {entry.origin}  # " + say(args, "allowed by you {at}", at=entry.allowed_at))
        for origin in config.denied_origins:
            print(f"  {origin}  # " + say(args, "refused"))
        if not (config.allowed_origins or remembered):
            print("  " + say(args, "(none yet)"))
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
        print_json({"origin": origin, "action": args.action, "changed": done})
    else:
        if args.action == "allow":
            line = say(args, "{origin} may now use the ID card (you are still asked for the PIN).", origin=origin)
        elif done:
            line = say(
                args, "Forgotten: {origin}. You will be asked again the next time it wants the card.", origin=origin
            )
        else:
            line = say(args, "You had not answered for {origin}; nothing to forget.", origin=origin)
        print(line)
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cardbridge import doctor

    use_pidfd_child_watcher()  # the checks run on an event loop
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
        print_json({"version": __version__, "ok": status == 0, "checks": [c.to_dict() for c in checks]})
    else:
        print(doctor.format_checks(checks, args.ui_lang), end="")
    if args.report:
        print(
            say(args, "The report is saved in {path}. Send it to support.", path=Path(args.report).expanduser()),
            file=sys.stderr,
        )
    return status


def install_service(args: argparse.Namespace) -> int:
    from cardbridge import autostart

    if not sys.platform.startswith("linux"):
        print(
            say(
                args,
                "install-service sets up systemd and XDG autostart on Linux. For macOS (launchd) "
                "and Windows, see the README.",
            ),
            file=sys.stderr,
        )
        return 2
    start = not args.no_start
    if args.uninstall:
        outcome = autostart.uninstall(start=start)
        if not outcome.removed:
            print(say(args, "Nothing to remove: the background service was not installed."))
        for path in outcome.removed:
            print(say(args, "Removed: {path}", path=path))
        if outcome.ran and not outcome.failed:
            print(say(args, "The background service is stopped and removed."))
    else:
        outcome = autostart.install(start=start)
        unit, desktop = outcome.written
        print(say(args, "The background service is installed: {path}", path=unit))
        print(say(args, "The autostart entry is installed: {path}", path=desktop))
        if outcome.ran and not outcome.failed:
            print(say(args, "The background service is started, and it starts every time you log in."))
    if outcome.to_run:
        print(say(args, "Stop it with:") if args.uninstall else say(args, "Start it now and at every login with:"))
        for argv in outcome.to_run:
            print(f"  {autostart.shell_line(argv)}")
    for argv, code in outcome.failed:
        print(
            say(args, "The command failed (code {code}): {command}", code=code, command=autostart.shell_line(argv)),
            file=sys.stderr,
        )
    return 1 if outcome.failed else 0
