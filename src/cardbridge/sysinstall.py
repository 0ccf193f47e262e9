"""What a system-wide install (the Debian package) puts where, for every user.

The Debian package (``make deb``, ``debian/``) builds its files with :func:`package_files`
from the same knowledge the per-user commands use — the browsers' system manifest folders
and the manifest itself (:mod:`cardbridge.nativemsg.install`), the systemd user unit and
the XDG autostart entry (:mod:`cardbridge.autostart`) — and ``cardbridge doctor`` looks for
them with the paths named here. Nothing here prints or installs by itself.

The package ``cardbridge``:

- ``/usr/lib/cardbridge``: a private virtual environment (Debian's ``/usr/bin/python3``)
  holding cardbridge and its Python dependencies; ``/usr/bin/cardbridge`` runs it;
- ``/usr/libexec/cardbridge/cardbridge-native-host``: the launcher that the browsers start;
- ``no.cardbridge.host.json`` in the system manifest folders of Chromium, Google Chrome,
  Edge and Firefox (:data:`PACKAGE_BROWSERS`). Chrome and Edge read theirs only under
  ``/etc/opt``, where Debian packages may not ship files: the package ships those in
  :data:`SHARED_MANIFESTS`, and its maintainer scripts link them into place (never over
  another program's file) and remove the links (:func:`manifest_links`);
- the extension, unpacked, in ``/usr/share/chromium/extensions/cardbridge``: Debian's
  ``chromium`` wrapper loads every folder there (``/etc/chromium.d/extensions``), as it does
  for the ``webext-*-chromium`` packages;
- ``/usr/lib/systemd/user/cardbridge.service`` (enabled for every user) and
  ``/etc/xdg/autostart/cardbridge.desktop``;
- ``/etc/cardbridge/config.toml``: the system's settings (a conffile);
- the manual page ``cardbridge(1)``, made from the argument parser by :func:`manpage`.

The package ``cardbridge-webeid``: ``eu.webeid.json`` in the same folders, naming the same
launcher, for the Web eID extension's published ids (so that extension reaches cardbridge).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cardbridge import __version__, autostart
from cardbridge.nativemsg import HOST_NAME, WEBEID_HOST_NAME, install

VENV = PurePosixPath("/usr/lib/cardbridge")
PYTHON = VENV / "bin" / "python3"
COMMAND = PurePosixPath("/usr/bin/cardbridge")
LAUNCHER = PurePosixPath("/usr/libexec/cardbridge") / install.LAUNCHER_NAME
SYSTEM_CONFIG = PurePosixPath("/etc/cardbridge/config.toml")
CHROMIUM_EXTENSIONS = PurePosixPath("/usr/share/chromium/extensions")
EXTENSION_DIR = CHROMIUM_EXTENSIONS / "cardbridge"
SYSTEM_UNIT_DIRS = (PurePosixPath("/etc/systemd/user"), PurePosixPath("/usr/lib/systemd/user"))
SYSTEM_UNIT = SYSTEM_UNIT_DIRS[1] / autostart.UNIT_NAME
SYSTEM_AUTOSTART = PurePosixPath("/etc/xdg/autostart") / autostart.DESKTOP_NAME
PACKAGE_BROWSERS = ("chromium", "chrome", "edge", "firefox")
LINKED_BROWSERS = ("chrome", "edge")  # their system folders are under /etc/opt
SHARED_MANIFESTS = PurePosixPath("/usr/share/cardbridge/native-messaging-hosts")


@dataclass(frozen=True)
class File:
    """One file of a package: its absolute path on the installed system, its text, its mode."""

    path: PurePosixPath
    text: str
    mode: int = 0o644


def chrome_extension_id(key: str) -> str:
    """The id Chromium gives an extension whose manifest carries ``key`` (base64 DER of
    its public key): the first 32 hex digits of SHA-256 of the key, 0-f written a-p."""
    digest = hashlib.sha256(base64.b64decode(key)).hexdigest()[:32]
    return "".join(chr(ord("a") + int(c, 16)) for c in digest)


def _manifest_path(browser: str, name: str) -> PurePosixPath:
    """Where the package ships ``name``'s manifest for ``browser``."""
    if browser in LINKED_BROWSERS:
        return SHARED_MANIFESTS / browser / f"{name}.json"
    return system_manifest(browser, name)


def system_manifest(browser: str, name: str = HOST_NAME) -> PurePosixPath:
    """Where ``browser`` looks for ``name``'s manifest system-wide."""
    return PurePosixPath(install.LINUX_SYSTEM[browser]) / f"{name}.json"


def manifest_links(name: str) -> list[tuple[PurePosixPath, PurePosixPath]]:
    """(link, target): the manifests that the maintainer scripts link into ``/etc/opt``."""
    return [(system_manifest(b, name), _manifest_path(b, name)) for b in LINKED_BROWSERS]


def _json(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


def host_manifests() -> list[File]:
    """``no.cardbridge.host.json`` for each of :data:`PACKAGE_BROWSERS`, naming :data:`LAUNCHER`."""
    launcher = Path(LAUNCHER)
    return [File(_manifest_path(b, HOST_NAME), _json(install.manifest(b, launcher))) for b in PACKAGE_BROWSERS]


def webeid_manifests() -> list[File]:
    """``eu.webeid.json`` for the same browsers: the same launcher, allowed for the Web eID
    extension only (Chrome Web Store and Edge ids; the Firefox add-on id)."""
    launcher = Path(LAUNCHER)
    return [
        File(_manifest_path(b, WEBEID_HOST_NAME), _json(install.manifest(b, launcher, name=WEBEID_HOST_NAME)))
        for b in PACKAGE_BROWSERS
    ]


COMMAND_TEXT = f'#!/bin/sh\n# cardbridge, from its environment in {VENV}.\nexec {PYTHON} -I -m cardbridge "$@"\n'
NOTE = "Installed by the cardbridge package; remove it with: apt purge cardbridge"

CONFIG_TEXT = """\
# cardbridge: the settings for every user of this computer (the system policy).
#
# An administrator or a distributor sets them here; the package keeps this file as it is
# on upgrades (it is a conffile) and removes it on `apt purge cardbridge`.
# Each user's own file is ~/.config/cardbridge/config.toml; `cardbridge config show`
# prints the settings in use and `cardbridge doctor` checks them.
#
# The settings (all optional; the defaults are shown):
#
# How a website that is on no list is treated: "ask" (the person is asked the first time,
# and the answer is remembered; `cardbridge origins` lists and forgets them) or
# "allow-list" (only the websites in allowed_origins may ask for the ID card):
# origin_policy = "ask"
#
# The websites (origins) that may ask for the ID card without a question, e.g.
# allowed_origins = ["https://login.idporten.no"]
#
# Websites that may never ask for the ID card (a user's own file can add more, never fewer):
# denied_origins = ["https://phishing.example"]
#
# Settings that a user's own file cannot change, e.g. to keep the allow-list:
# locked = ["origin_policy", "allowed_origins"]
#
# PKCS#11 modules to use (absolute paths); by default those registered with p11-kit
# (/usr/share/p11-kit/modules), e.g. OpenSC's:
# pkcs11_modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"]
#
# The loopback port of the HTTP API:
# port = 24231
#
# The language of the dialogs and messages (nb, nn or en; default: the system's):
# lang = "nb"
#
# The PIN dialog program (GnuPG's pinentry; default: the system's `pinentry`):
# pinentry = "pinentry-gnome3"
#
# Seconds the person has to answer the PIN dialog:
# user_timeout = 120
#
# The log file's level (TRACE, DEBUG, INFO, WARNING or ERROR):
# log_level = "INFO"
"""


def package_files(*, extension: Path, parser: argparse.ArgumentParser, date: dt.date) -> list[File]:
    """Every file of the ``cardbridge`` package that is not the virtual environment:
    the launcher, the manifests, the extension (copied from ``extension``), the unit, the
    autostart entry, the system config and the manual page."""
    command = [str(COMMAND), "serve"]
    files = [
        File(COMMAND, COMMAND_TEXT, 0o755),
        File(LAUNCHER, install.launcher_script(str(PYTHON), sh_script=True), 0o755),
        *host_manifests(),
        File(SYSTEM_UNIT, autostart.unit_text(command, note=NOTE)),
        File(SYSTEM_AUTOSTART, autostart.desktop_text(command)),
        File(SYSTEM_CONFIG, CONFIG_TEXT),
        File(PurePosixPath("/usr/share/man/man1/cardbridge.1"), manpage(parser, date)),
    ]
    for source in sorted(p for p in extension.rglob("*") if p.is_file()):
        relative = source.relative_to(extension).as_posix()
        files.append(File(EXTENSION_DIR / relative, source.read_text(encoding="utf-8")))
    return files


def write(files: list[File], root: Path) -> list[Path]:
    """Write ``files`` under ``root`` (a package's staging folder); returns the paths."""
    written: list[Path] = []
    for file in files:
        target = root / file.path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.text, encoding="utf-8")
        target.chmod(file.mode)
        written.append(target)
    return written


# -- the manual page ------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Plain text as roff: backslashes escaped, hyphens literal, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = [("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines()]
    return "\n".join(lines)


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage:").split())


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else None
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                names += f" {action.metavar or choices or action.dest.upper()}"
        else:
            names = str(action.metavar or choices or action.dest)
        if names == "-h, --help":
            continue
        help_text = (action.help or "") % {"default": action.default, "prog": parser.prog}
        out += [".TP", f"\\fB{_roff(names)}\\fR", _roff(help_text or "")]
    return out


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            out += [".SS " + _roff(f"{prefix} {name}"), _roff(sub.description or helps.get(name) or "")]
            out += [".PP", "\\fBUsage:\\fR " + _roff(_usage(sub))]
            out += _options(sub)
            out += _subcommands(sub, f"{prefix} {name}")
    return out


def manpage(parser: argparse.ArgumentParser, date: dt.date) -> str:
    """``cardbridge(1)`` in man(7) roff, from the argument parser: every command, its usage
    and its options; then where the package put its files."""
    lines = [
        f'.TH CARDBRIDGE 1 "{date:%Y-%m-%d}" "cardbridge {__version__}" "User Commands"',
        ".SH NAME",
        "cardbridge \\- log in to public\\-sector portals with your national ID card",
        ".SH SYNOPSIS",
        _roff(_usage(parser)),
        ".SH DESCRIPTION",
        _roff(parser.description or ""),
        ".PP",
        _roff(
            "The browser reaches cardbridge through its extension and native messaging, or through the HTTP "
            "API on loopback that `cardbridge serve` runs (started for each user in the graphical session). "
            "cardbridge shows which website asks, asks for the PIN, and has the card sign that website's "
            "challenge."
        ),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
        *_subcommands(parser, parser.prog),
        ".SH FILES",
        ".TP",
        f"\\fI{_roff(str(SYSTEM_CONFIG))}\\fR",
        "The settings for every user (the system policy).",
        ".TP",
        "\\fI~/.config/cardbridge/config.toml\\fR",
        "Each user's own settings.",
        ".TP",
        f"\\fI{_roff(str(SYSTEM_UNIT))}\\fR",
        "The systemd user unit that runs \\fBcardbridge serve\\fR in each graphical session.",
        ".TP",
        f"\\fI{_roff(str(LAUNCHER))}\\fR",
        "The native\\-messaging host the browsers start; its manifests are in "
        + ", ".join(f"\\fI{_roff(install.LINUX_SYSTEM[b])}\\fR" for b in PACKAGE_BROWSERS)
        + ".",
        ".SH EXIT STATUS",
        "0 on success; a failed command exits with the code its error maps to (see the README).",
        ".SH SEE ALSO",
        "\\fBpinentry\\fR(1), \\fBpcscd\\fR(8), \\fBp11\\-kit\\fR(8)",
        "",
    ]
    return "\n".join(lines)
