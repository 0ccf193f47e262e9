"""Installing the native-messaging host: a launcher and one manifest per browser.

A browser finds a native host by its manifest, ``no.cardbridge.host.json``, in a folder of
its own (Linux and macOS) or through a registry key that names the manifest (Windows). The
manifest names the host, the absolute path of a program to start (our launcher), ``type:
stdio``, and which extensions may start it: ``allowed_origins`` (``chrome-extension://ID/``)
for Chrome, Chromium, Edge and Brave, ``allowed_extensions`` (add-on ids) for Firefox. Both
list our extension and the Web eID extension.

The launcher is a small script that the Python which ran the install runs (so it works from
a virtualenv too); it serves like ``cardbridge native-host``, without loading the rest of
the command line, so the browser gets the handshake fast.

Where each browser looks (per user by default, the system folders with ``--system``) is in
the tables ``LINUX_USER``, ``LINUX_SYSTEM``, ``MAC_USER`` and ``MAC_SYSTEM`` below; e.g.
Chromium on Linux: ``~/.config/chromium/NativeMessagingHosts`` and
``/etc/chromium/native-messaging-hosts``; Firefox on Linux: ``~/.mozilla/native-messaging-hosts``
and ``/usr/lib/mozilla/native-messaging-hosts``.

Windows (not written by this module; an installer sets them): the manifest lives anywhere,
and the default value of one registry key per browser holds its absolute path, under
``HKEY_CURRENT_USER`` (per user) or ``HKEY_LOCAL_MACHINE`` (system):

- Chrome: ``Software\\Google\\Chrome\\NativeMessagingHosts\\no.cardbridge.host``
- Chromium: ``Software\\Chromium\\NativeMessagingHosts\\no.cardbridge.host``
- Edge: ``Software\\Microsoft\\Edge\\NativeMessagingHosts\\no.cardbridge.host``
- Brave: ``Software\\BraveSoftware\\Brave-Browser\\NativeMessagingHosts\\no.cardbridge.host``
- Firefox: ``Software\\Mozilla\\NativeMessagingHosts\\no.cardbridge.host``

On Windows the manifest's ``path`` may be relative to the manifest; the launcher there is a
``.bat`` or ``.exe`` that runs ``cardbridge native-host``.

Standing in for the Web eID app (``web_eid=True``, ``install-native-host --web-eid``): a
second manifest, ``eu.webeid.json``, names the same launcher, allowed for the Web eID
extension's published ids and the ids in config ``allowed_extensions``. A manifest of that
name that another program wrote (the Web eID app's own) is never overwritten silently: the
install stops and says which program owns it; with ``replace=True`` that file is moved
aside, byte for byte, to ``.eu.webeid.json.replaced-by-cardbridge`` in the same folder (a
name no browser reads), and uninstalling puts it back. A manifest is cardbridge's when its
``description`` is cardbridge's.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardbridge.errors import ConfigError, InvalidInputError
from cardbridge.nativemsg import (
    CHROME_EXTENSION_IDS,
    FIREFOX_EXTENSION_IDS,
    HOST_NAME,
    WEBEID_CHROME_IDS,
    WEBEID_FIREFOX_ID,
    WEBEID_HOST_NAME,
)

DESCRIPTION = "cardbridge: log in to public-sector portals with your national ID card"
BROWSERS = ("chrome", "chromium", "edge", "brave", "firefox")
LAUNCHER_NAME = "cardbridge-native-host"
REPLACED_SUFFIX = ".replaced-by-cardbridge"
SYSTEM_LAUNCHER_DIR = Path("/usr/local/libexec/cardbridge")

LINUX_USER = {
    "chrome": ".config/google-chrome/NativeMessagingHosts",
    "chromium": ".config/chromium/NativeMessagingHosts",
    "edge": ".config/microsoft-edge/NativeMessagingHosts",
    "brave": ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
    "firefox": ".mozilla/native-messaging-hosts",
}
LINUX_SYSTEM = {
    "chrome": "/etc/opt/chrome/native-messaging-hosts",
    "chromium": "/etc/chromium/native-messaging-hosts",
    "edge": "/etc/opt/edge/native-messaging-hosts",
    "brave": "/etc/opt/brave/native-messaging-hosts",
    "firefox": "/usr/lib/mozilla/native-messaging-hosts",
}
MAC_USER = {
    "chrome": "Library/Application Support/Google/Chrome/NativeMessagingHosts",
    "chromium": "Library/Application Support/Chromium/NativeMessagingHosts",
    "edge": "Library/Application Support/Microsoft Edge/NativeMessagingHosts",
    "brave": "Library/Application Support/BraveSoftware/Brave-Browser/NativeMessagingHosts",
    "firefox": "Library/Application Support/Mozilla/NativeMessagingHosts",
}
MAC_SYSTEM = {
    "chrome": "/Library/Google/Chrome/NativeMessagingHosts",
    "chromium": "/Library/Application Support/Chromium/NativeMessagingHosts",
    "edge": "/Library/Microsoft/Edge/NativeMessagingHosts",
    "brave": "/Library/BraveSoftware/Brave-Browser/NativeMessagingHosts",
    "firefox": "/Library/Application Support/Mozilla/NativeMessagingHosts",
}
WINDOWS_REGISTRY_KEYS = {
    "chrome": r"Software\Google\Chrome\NativeMessagingHosts",
    "chromium": r"Software\Chromium\NativeMessagingHosts",
    "edge": r"Software\Microsoft\Edge\NativeMessagingHosts",
    "brave": r"Software\BraveSoftware\Brave-Browser\NativeMessagingHosts",
    "firefox": r"Software\Mozilla\NativeMessagingHosts",
}


def browsers(choice: str) -> tuple[str, ...]:
    """``all`` or one browser name."""
    if choice == "all":
        return BROWSERS
    if choice not in BROWSERS:
        raise InvalidInputError(f"Unknown browser {choice!r}; choose one of {', '.join(BROWSERS)} or all.")
    return (choice,)


def manifest_dir(browser: str, *, system: bool = False, home: Path | None = None, platform: str | None = None) -> Path:
    """The folder where ``browser`` looks for host manifests."""
    platform = platform or sys.platform
    if platform == "darwin":
        table = MAC_SYSTEM if system else MAC_USER
    elif platform.startswith("linux") or platform.startswith("freebsd"):
        table = LINUX_SYSTEM if system else LINUX_USER
    else:
        raise ConfigError(
            "On Windows the host is registered in the registry (see the README); "
            "install-native-host writes manifests on Linux and macOS only."
        )
    folder = Path(table[browser])
    return folder if folder.is_absolute() else (home or Path.home()) / folder


def manifest(
    browser: str, launcher: Path, *, name: str = HOST_NAME, extra_extensions: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The host manifest ``name`` for ``browser``, naming ``launcher``: ``no.cardbridge.host``
    for our extension and the Web eID extension, or ``eu.webeid`` for the Web eID extension
    and ``extra_extensions`` (ids from config ``allowed_extensions``)."""
    if not launcher.is_absolute():
        raise InvalidInputError("The launcher path in a host manifest must be absolute.")
    out: dict[str, Any] = {"name": name, "description": DESCRIPTION, "path": str(launcher), "type": "stdio"}
    webeid = name == WEBEID_HOST_NAME
    if browser == "firefox":
        ids: tuple[str, ...] = (WEBEID_FIREFOX_ID,) if webeid else FIREFOX_EXTENSION_IDS
        extra = tuple(e for e in extra_extensions if not e.startswith("chrome-extension://"))
        out["allowed_extensions"] = list(dict.fromkeys((*ids, *extra)))
    else:
        ids = WEBEID_CHROME_IDS if webeid else CHROME_EXTENSION_IDS
        extra = tuple(_chrome_id(e) for e in extra_extensions if _chrome_id(e))
        out["allowed_origins"] = [f"chrome-extension://{i}/" for i in dict.fromkeys((*ids, *extra))]
    return out


def _chrome_id(value: str) -> str:
    """A Chrome extension id (32 letters a-p) from ``chrome-extension://ID/`` or a bare id; ""
    for anything else (a Firefox add-on id)."""
    bare = value.removeprefix("chrome-extension://").rstrip("/")
    return bare if len(bare) == 32 and all("a" <= c <= "p" for c in bare) else ""


def manifest_owner(path: Path) -> str | None:
    """Who answers through the manifest at ``path``: None when there is none, ``cardbridge``
    when it is ours, else the program it names (or what is wrong with the file)."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"an unreadable manifest ({exc.__class__.__name__})"
    if not isinstance(data, dict):
        return "an unreadable manifest (not a JSON object)"
    if data.get("description") == DESCRIPTION:
        return "cardbridge"
    return str(data.get("path") or "an unknown program")


def replaced_path(path: Path) -> Path:
    """Where another program's manifest waits while cardbridge stands in for it."""
    return path.with_name(f".{path.name}{REPLACED_SUFFIX}")


def launcher_script(
    python: str | None = None, *, sh_script: bool = False, site_paths: Sequence[str] | None = None
) -> str:
    """The launcher: a Python script run by the installing Python (``-I``: no ``PYTHON*``
    environment, no user site), which serves like ``cardbridge native-host`` without loading
    the rest of the command line. With ``site_paths`` (:func:`site_paths`), it runs that
    Python with ``-S`` too and puts those folders on ``sys.path`` itself: the ``site`` module
    (``.pth`` files and all) costs more start-up than the host's own imports. When that
    Python's path cannot go on a ``#!`` line (a space, or too long), or with ``sh_script``, an
    ``sh`` script that runs ``python -I -m cardbridge.nativemsg``."""
    interpreter = python or sys.executable
    header = "# Written by `cardbridge install-native-host`: the browser starts this to reach cardbridge.\n"
    if sh_script:
        header = "# cardbridge's native-messaging host: the browser starts this to reach cardbridge.\n"
    elif os.path.isabs(interpreter) and len(interpreter) < 120 and not any(c.isspace() for c in interpreter):
        serve = "from cardbridge.nativemsg.host import launch\n\nlaunch()\n"
        if site_paths is None:
            return f"#!{interpreter} -I\n{header}{serve}"
        return (
            f"#!{interpreter} -IS\n{header}"  # one argument on a #! line: -I and -S together
            "# -S: no site module; the folders it would put on sys.path, as they were at the install:\n"
            f"import sys\n\nsys.path += {list(site_paths)!r}\n{serve}"
        )
    return f'#!/bin/sh\n{header}exec {shlex.quote(interpreter)} -I -m cardbridge.nativemsg "$@"\n'


# What the site module adds to sys.path (-I: no user site), and whether cardbridge is found
# in one of those folders or the standard ones (not only through an import hook).
_SITE_PATHS_PROBE = """\
import importlib.util, json, os, sys
before = list(sys.path)
import site
site.main()
spec = importlib.util.find_spec("cardbridge")
folder = os.path.dirname(os.path.dirname(spec.origin)) if spec and spec.origin else None
print(json.dumps({"added": [p for p in sys.path if p not in before], "found": folder in sys.path}))
"""


def site_paths(python: str | None = None) -> list[str] | None:
    """The folders that the ``site`` module puts on ``sys.path`` for ``python -I`` (the
    installing Python by default), asked of that Python; None when it cannot tell, or when
    cardbridge would not be found in them: then the launcher keeps ``site``."""
    import subprocess

    command = [python or sys.executable, "-I", "-S", "-c", _SITE_PATHS_PROBE]
    try:
        done = subprocess.run(command, capture_output=True, timeout=30, check=True)
        answer = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    added = answer.get("added") if isinstance(answer, dict) else None
    if answer.get("found") is not True or not isinstance(added, list) or not all(isinstance(p, str) for p in added):
        return None
    return added


def default_launcher(*, system: bool = False) -> Path:
    if system:
        return SYSTEM_LAUNCHER_DIR / LAUNCHER_NAME
    from cardbridge.config import data_dir

    return data_dir() / LAUNCHER_NAME


def _write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Change:
    """One file that install or uninstall wrote or removed."""

    browser: str | None  # None for the launcher
    path: Path
    action: str  # "written" | "replaced" | "removed" | "restored" | "absent"

    def to_dict(self) -> dict[str, Any]:
        return {"browser": self.browser, "path": str(self.path), "action": self.action}


def install(
    choice: str = "all",
    *,
    system: bool = False,
    home: Path | None = None,
    launcher: Path | None = None,
    python: str | None = None,
    web_eid: bool = False,
    replace: bool = False,
    extra_extensions: tuple[str, ...] = (),
) -> list[Change]:
    """Write the launcher and the manifests (with ``web_eid``, ``eu.webeid`` too); returns
    what was written. Another program's ``eu.webeid`` manifest stops the install before
    anything is written, unless ``replace``: then it is moved aside (see the module)."""
    chosen = browsers(choice)
    target = launcher or default_launcher(system=system)
    webeid_paths = {b: manifest_dir(b, system=system, home=home) / f"{WEBEID_HOST_NAME}.json" for b in chosen}
    foreign = {b: manifest_owner(p) for b, p in webeid_paths.items()} if web_eid else {}
    foreign = {b: owner for b, owner in foreign.items() if owner not in (None, "cardbridge")}
    if foreign and not replace:
        where = "; ".join(f"{b}: {webeid_paths[b]} names {owner}" for b, owner in foreign.items())
        raise ConfigError(
            f"Another program answers {WEBEID_HOST_NAME} ({where}), probably the Web eID app. "
            "Nothing was changed. To let cardbridge answer the Web eID extension instead, run "
            "install-native-host --web-eid --replace (the other program's file is kept, and "
            "install-native-host --web-eid --uninstall puts it back)."
        )
    changes: list[Change] = []
    try:
        _write(target, launcher_script(python, site_paths=site_paths(python)), 0o755)
        changes.append(Change(None, target, "written"))
        for browser in chosen:
            path = manifest_dir(browser, system=system, home=home) / f"{HOST_NAME}.json"
            _write(path, json.dumps(manifest(browser, target), indent=2) + "\n", 0o644)
            changes.append(Change(browser, path, "written"))
            if not web_eid:
                continue
            path = webeid_paths[browser]
            if browser in foreign:
                os.replace(path, replaced_path(path))
            text = manifest(browser, target, name=WEBEID_HOST_NAME, extra_extensions=extra_extensions)
            _write(path, json.dumps(text, indent=2) + "\n", 0o644)
            changes.append(Change(browser, path, "replaced" if browser in foreign else "written"))
    except PermissionError as exc:
        hint = " (run it as root, or leave out --system)" if system else ""
        raise ConfigError(f"Cannot write {exc.filename}{hint}.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot write {exc.filename}: {exc.strerror}.") from exc
    return changes


def uninstall(
    choice: str = "all",
    *,
    system: bool = False,
    home: Path | None = None,
    launcher: Path | None = None,
    web_eid: bool = False,
) -> list[Change]:
    """Remove cardbridge's manifests (and, with ``all``, the launcher), putting back any
    ``eu.webeid`` manifest that cardbridge replaced; with ``web_eid`` only the ``eu.webeid``
    registration is undone. Another program's manifest is never removed."""
    chosen = browsers(choice)
    changes: list[Change] = []
    for browser in chosen:
        folder = manifest_dir(browser, system=system, home=home)
        if not web_eid:
            changes.append(_remove(browser, folder / f"{HOST_NAME}.json"))
        path = folder / f"{WEBEID_HOST_NAME}.json"
        owner = manifest_owner(path)
        if owner == "cardbridge":
            changes.append(_remove(browser, path))
        backup = replaced_path(path)
        if backup.exists() and manifest_owner(path) is None:
            try:
                os.replace(backup, path)
            except OSError as exc:
                raise ConfigError(f"Cannot put back {path}: {exc.strerror}.") from exc
            changes.append(Change(browser, path, "restored"))
    if choice == "all" and not web_eid:
        changes.append(_remove(None, launcher or default_launcher(system=system)))
    return changes


def _remove(browser: str | None, path: Path) -> Change:
    try:
        path.unlink()
        return Change(browser, path, "removed")
    except FileNotFoundError:
        return Change(browser, path, "absent")
    except OSError as exc:
        raise ConfigError(f"Cannot remove {path}: {exc.strerror}.") from exc


def status(*, home: Path | None = None, platform: str | None = None, root: Path | None = None) -> list[dict[str, Any]]:
    """For ``cardbridge doctor``: per browser and scope, whether our manifest is there, and
    whether the program it names exists and may be run. Never raises for a broken file.
    ``root``: where the system folders are (``/``; another folder in tests)."""
    out: list[dict[str, Any]] = []
    for system in (False, True):
        for browser in BROWSERS:
            try:
                path = manifest_dir(browser, system=system, home=home, platform=platform) / f"{HOST_NAME}.json"
            except ConfigError:
                return out
            if system and root is not None:
                path = root / path.relative_to(path.anchor)
            entry: dict[str, Any] = {
                "browser": browser,
                "scope": "system" if system else "user",
                "manifest": str(path),
                "installed": path.is_file(),
            }
            if path.is_file():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                    program = Path(str(data.get("path", "")))
                    entry["launcher"] = str(program)
                    if root is not None and program.is_absolute():
                        program = root / program.relative_to(program.anchor)
                    entry["launcherOk"] = program.is_absolute() and os.access(program, os.X_OK)
                    entry["nameOk"] = data.get("name") == HOST_NAME
                except (OSError, ValueError, AttributeError) as exc:
                    entry["error"] = f"unreadable manifest: {exc}"
            webeid = path.with_name(f"{WEBEID_HOST_NAME}.json")
            entry["webEid"] = {
                "manifest": str(webeid),
                "answeredBy": manifest_owner(webeid),
                "replaced": replaced_path(webeid).exists(),
            }
            out.append(entry)
    return out
