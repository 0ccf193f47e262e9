"""``cardbridge doctor``: the checks a support desk asks for, in plain words.

Each check returns :class:`Check` results — a stable ``id``, a name, ``ok``/``warn``/
``fail``, what was found and, when something needs doing, the fix — in nb, nn or en.
Nothing here prints (the CLI does). Card and module work goes through the layers that own
it: :mod:`cardbridge.pcsc` for pcscd, readers and ATRs, :mod:`cardbridge.pkcs11` and the
service for modules, tokens and certificates, :mod:`cardbridge.nativemsg.install` for the
browser manifests. A check that cannot run says so; it never stops the others.

``doctor`` exits 1 when a check failed (warnings do not change the exit code).
:func:`report_text` is the text file a citizen can send to support: it carries no PIN, no
PUK, no key material (nothing here ever holds one), and it is passed through the log
redaction filter as well.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import http.client
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from cardbridge import __version__, i18n
from cardbridge.config import ENV_PINENTRY, Config, config_path, load_config
from cardbridge.errors import CardbridgeError, ConfigError, ServiceNotRunningError
from cardbridge.i18n import N_
from cardbridge.i18n.names import PURPOSES
from cardbridge.logsetup import LOG_FILE, log_dir, redact

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["Check", "Status", "exit_status", "report_text", "run_checks"]

EXPIRY_WARNING_DAYS = 30
PORT_TIMEOUT = 2.0


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_STATUSES = {Status.OK: N_("OK"), Status.WARN: N_("WARNING"), Status.FAIL: N_("FAILED")}

# Each check's name, by its stable id.
CHECK_NAMES = {
    "versions": N_("Versions"),
    "config": N_("Config file"),
    "origins": N_("Allowed websites"),
    "pcscd": N_("Smart card service (pcscd)"),
    "readers": N_("Card readers"),
    "cards": N_("Cards in the readers"),
    "modules": N_("PKCS#11 modules"),
    "tokens": N_("ID cards and certificates"),
    "manifests": N_("Browser extension"),
    "webeid": N_("Web eID extension"),
    "extension": N_("Extension in Chromium"),
    "service": N_("Background service"),
    "port": N_("HTTP port"),
    "pinentry": N_("PIN window"),
    "log": N_("Log file"),
}


@dataclass(frozen=True)
class Check:
    """One finding: ``id`` is stable (for scripts), the rest is for people."""

    id: str
    name: str
    status: Status
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "status": str(self.status), "detail": self.detail}
        if self.fix:
            out["fix"] = self.fix
        if self.data:
            out["data"] = self.data
        return out


def _check(check_id: str, lang: str, status: Status, detail: str, fix: str | None = None, **data: Any) -> Check:
    return Check(check_id, i18n.gettext(lang, CHECK_NAMES[check_id]), status, detail, fix, data)


def exit_status(checks: Iterable[Check]) -> int:
    """0 when nothing failed, 1 when something needs a fix."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


# -- versions, config, origins ---------------------------------------------------------------


def check_versions(lang: str) -> Check:
    libraries = []
    for dist in ("python-pkcs11", "pyscard", "aiohttp", "cryptography"):
        try:
            libraries.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            libraries.append(f"{dist} -")
    detail = (
        f"cardbridge {__version__}, Python {platform.python_version()}, {platform.platform(terse=True)}; "
        + ", ".join(libraries)
    )
    return _check("versions", lang, Status.OK, detail, version=__version__, libraries=libraries)


def check_config(lang: str, path: Path | None = None) -> tuple[Check, Config | None]:
    file = path or config_path()
    try:
        config = load_config(file)
    except ConfigError as exc:
        fix = i18n.gettext(
            lang, "Correct the error above in {path}, or move the file away to use the defaults.", path=file
        )
        return _check("config", lang, Status.FAIL, exc.message, fix), None
    detail = (
        i18n.gettext(lang, "{path} is read and in order.", path=file)
        if file.exists()
        else i18n.gettext(lang, "No config file ({path}); the defaults are used.", path=file)
    )
    settings = config.to_dict()
    settings.pop("path", None)
    return _check("config", lang, Status.OK, detail, path=str(file), settings=settings), config


def check_origins(config: Config, lang: str) -> Check:
    if config.origin_policy == "ask":  # a new site is asked about: nothing to fix
        from cardbridge.origins import OriginStore

        try:
            yours = [entry.origin for entry in OriginStore().allowed()]
        except ConfigError:
            yours = []
        detail = i18n.gettext(
            lang,
            "A new website is asked about once (origin_policy = ask). Allowed in the "
            "configuration: {listed}, by you: {yours}, denied: {denied} ('cardbridge "
            "origins').",
            listed=len(config.allowed_origins),
            yours=len(yours),
            denied=len(config.denied_origins),
        )
        return _check("origins", lang, Status.OK, detail, origins=[*config.allowed_origins, *yours], policy="ask")
    if config.allowed_origins:
        detail = ", ".join(config.allowed_origins)
        return _check("origins", lang, Status.OK, detail, origins=list(config.allowed_origins))
    fix = i18n.gettext(
        lang, 'Add the login page to {path}: allowed_origins = ["https://…"]', path=config.path or config_path()
    )
    return _check(
        "origins",
        lang,
        Status.WARN,
        i18n.gettext(lang, "No website may use the ID card through HTTP yet."),
        fix,
        origins=[],
    )


# -- PC/SC -------------------------------------------------------------------------------------


def check_pcscd(lang: str) -> tuple[Check, list[Any] | None]:
    """Is pcscd running and reachable? Returns the readers (``ReaderInfo``) when it is."""
    try:
        from cardbridge.pcsc import list_readers
    except Exception as exc:  # pyscard or libpcsclite missing
        error = f"{type(exc).__name__}: {exc}"
        detail = i18n.gettext(lang, "The PC/SC library is missing: {error}", error=error)
        return _check(
            "pcscd", lang, Status.FAIL, detail, i18n.gettext(lang, "Install it: sudo apt install pcscd libpcsclite1")
        ), None
    try:
        readers = list(list_readers())
    except ServiceNotRunningError as exc:
        fix = i18n.gettext(
            lang,
            "Start it: sudo systemctl enable --now pcscd.socket (if it is missing, install it "
            "first: sudo apt install pcscd).",
        )
        return _check(
            "pcscd",
            lang,
            Status.FAIL,
            i18n.gettext(lang, "The smart card service is not running, or it does not answer."),
            fix,
            error=exc.message,
        ), None
    except CardbridgeError as exc:
        detail = i18n.gettext(lang, "The smart card service is not running, or it does not answer.")
        detail = f"{detail} ({exc.code}: {exc.message})"
        return _check(
            "pcscd",
            lang,
            Status.FAIL,
            detail,
            i18n.gettext(
                lang,
                "Start it: sudo systemctl enable --now pcscd.socket (if it is missing, install it "
                "first: sudo apt install pcscd).",
            ),
        ), None
    return _check(
        "pcscd", lang, Status.OK, i18n.gettext(lang, "The smart card service is running and answers.")
    ), readers


def check_readers(readers: Sequence[Any] | None, lang: str) -> Check:
    """``readers``: from :func:`check_pcscd` (None when pcscd did not answer)."""
    if readers is None:
        return _check(
            "readers",
            lang,
            Status.WARN,
            i18n.gettext(lang, "Not checked, because the smart card service does not answer."),
        )
    if not readers:
        fix = i18n.gettext(
            lang,
            "Connect the card reader to the computer (try another USB port). If it is "
            "connected, install its driver: sudo apt install libccid",
        )
        return _check("readers", lang, Status.FAIL, i18n.gettext(lang, "No card reader was found."), fix, readers=[])
    names = [r.name for r in readers]
    return _check("readers", lang, Status.OK, ", ".join(names), readers=names)


def check_cards(readers: Sequence[Any] | None, lang: str) -> list[Check]:
    """The card in each reader: its ATR and name (from the ATR tables)."""
    if not readers:
        return []
    out: list[Check] = []
    for reader in readers:
        card = reader.card
        if not reader.card_present or card is None:
            continue
        data = {"reader": reader.name, "atr": card.atr_hex, "name": card.name, "known": card.known}
        if card.known or card.name != "unknown card":
            detail = f"{reader.name}: {card.name} (ATR {card.atr_hex})"
            out.append(_check("cards", lang, Status.OK, detail, **data))
        else:
            detail = i18n.gettext(lang, "{reader}: unknown card (ATR {atr})", reader=reader.name, atr=card.atr_hex)
            fix = i18n.gettext(lang, "Check that it is your ID card in the reader, chip first and facing up.")
            out.append(_check("cards", lang, Status.WARN, detail, fix, **data))
    if not out:
        fix = i18n.gettext(lang, "Insert your ID card into the card reader.")
        out.append(_check("cards", lang, Status.WARN, i18n.gettext(lang, "There is no card in the card reader."), fix))
    return out


# -- PKCS#11 -------------------------------------------------------------------------------------


def check_modules(config: Config, lang: str, flags: Sequence[str] | None = None) -> tuple[list[Check], list[str]]:
    """Which modules are found and whether each loads (C_GetInfo). Returns the loadable ones."""
    from cardbridge.pkcs11.backend import ModuleBackend
    from cardbridge.pkcs11.discovery import resolve_modules

    where = config.path or config_path()
    try:
        modules = resolve_modules(flags, config_modules=config.pkcs11_modules)
    except ConfigError as exc:  # a module file that others can change
        detail = exc.message
        fix = i18n.gettext(lang, "Only you or root may be able to change the module: {error}", error=exc.message)
        return [_check("modules", lang, Status.FAIL, detail, fix)], []
    except CardbridgeError as exc:
        detail = exc.message
        fix = i18n.gettext(
            lang,
            "Correct the path in pkcs11_modules in {path} (or --module, "
            "CARDBRIDGE_PKCS11_MODULE), or install the module.",
            path=where,
        )
        return [_check("modules", lang, Status.FAIL, detail, fix, code=str(exc.code))], []
    if not modules:
        fix = i18n.gettext(
            lang, "Install OpenSC (sudo apt install opensc-pkcs11), or set pkcs11_modules in {path}.", path=where
        )
        return [
            _check("modules", lang, Status.WARN, i18n.gettext(lang, "No PKCS#11 modules were found."), fix, modules=[])
        ], []
    checks: list[Check] = []
    loaded: list[str] = []
    for path in modules:
        backend = ModuleBackend(path)
        try:
            info = backend.executor.submit(backend.describe).result(timeout=30)
        except Exception as exc:
            error = exc.message if isinstance(exc, CardbridgeError) else f"{type(exc).__name__}: {exc}"
            detail = i18n.gettext(lang, "{path} cannot be loaded: {error}", path=path, error=error)
            fix = i18n.gettext(lang, "Reinstall the module, or remove it from pkcs11_modules in {path}.", path=where)
            checks.append(_check("modules", lang, Status.FAIL, detail, fix, path=path))
        else:
            loaded.append(path)
            version = info.get("libraryVersion", "")
            detail = f"{path}: {info.get('description', '')} {version}"
            checks.append(_check("modules", lang, Status.OK, detail, **info))
        finally:
            backend.close()
    return checks, loaded


async def _listings(config: Config, modules: Sequence[str], pcsc: bool) -> list[Any]:
    from cardbridge.service import open_service

    service = open_service(config, modules=modules, pcsc=pcsc)
    try:
        return list(await service.list_tokens(every_pin=True))
    finally:
        await service.aclose()


def check_tokens(
    modules: Sequence[str],
    lang: str,
    now: dt.datetime | None = None,
    *,
    config: Config | None = None,
    pcsc: bool = False,
) -> list[Check]:
    """The tokens the built-in PC/SC drivers (when ``pcsc``: pcscd answered) and the modules
    see, and each certificate's expiry (warn 30 days before)."""
    if not modules and not pcsc:
        return []
    try:
        listings = asyncio.run(_listings(config or Config(path=config_path()), modules, pcsc))
    except CardbridgeError as exc:
        label = "PKCS#11" if not pcsc else "PC/SC, PKCS#11"
        detail = f"{label}: {exc.code}: {exc.message}"
        return [_check("tokens", lang, Status.FAIL, detail, i18n.error_message(exc, lang))]
    return certificate_checks(listings, lang, now)


def certificate_checks(listings: Sequence[Any], lang: str, now: dt.datetime | None = None) -> list[Check]:
    """Pure: the token listings (``TokenListing``) as checks."""
    now = now or dt.datetime.now(dt.UTC)
    if not listings:
        fix = i18n.gettext(lang, "Insert your ID card into the card reader.")
        return [
            _check(
                "tokens",
                lang,
                Status.WARN,
                i18n.gettext(lang, "No ID card was found through the PKCS#11 modules."),
                fix,
            )
        ]
    out: list[Check] = []
    for listing in listings:
        label = listing.info.label
        if listing.error:
            error = i18n.error_text(str(listing.error.get("code")), lang)
            detail = f"{label}: {error}"
            out.append(_check("tokens", lang, Status.FAIL, detail, error, token=label, code=listing.error.get("code")))
            continue
        if not listing.certificates:
            out.append(_check("tokens", lang, Status.WARN, i18n.gettext(lang, "{label}: no certificates", label=label)))
            continue
        # The token's label, when it is not the holder's name (an Estonian card's label is).
        named = {_same_name(label, cert.holder_name) for cert in listing.certificates}
        prefix = "" if named == {True} else f"{label}: "
        for cert in listing.certificates:
            values = {
                "holder": cert.holder_name,
                "purpose": i18n.gettext(lang, PURPOSES[cert.purpose]),
                "date": f"{cert.not_after:%Y-%m-%d}",
            }
            data = {"token": label, "sha256": cert.sha256, "notAfter": cert.not_after.isoformat()}
            left = cert.not_after - now
            if left.total_seconds() <= 0:
                detail = prefix + i18n.gettext(lang, "{holder} ({purpose}) expired on {date}", **values)
                fix = i18n.gettext(lang, "Order a new ID card.")
                out.append(_check("tokens", lang, Status.FAIL, detail, fix, **data))
            elif left <= dt.timedelta(days=EXPIRY_WARNING_DAYS):
                detail = prefix + i18n.ngettext(
                    lang,
                    "{holder} ({purpose}) expires in {days} day, on {date}",
                    "{holder} ({purpose}) expires in {days} days, on {date}",
                    max(1, left.days),
                    days=max(1, left.days),
                    **values,
                )
                fix = i18n.gettext(lang, "Order a new ID card in good time.")
                out.append(_check("tokens", lang, Status.WARN, detail, fix, **data))
            else:
                detail = prefix + i18n.gettext(lang, "{holder} ({purpose}), valid until {date}", **values)
                out.append(_check("tokens", lang, Status.OK, detail, **data))
        out += pin_checks(listing, lang)
    return out


def _same_name(label: str, holder: str) -> bool:
    return " ".join(label.split()).casefold() == " ".join(holder.split()).casefold()


def pin_checks(listing: Any, lang: str) -> list[Check]:
    """Pure: what needs doing about the token's PINs — blocked (FAIL when the card logs in
    with it, WARN when it only signs with it), not activated yet, or one try left (WARN) —
    one check per PIN, named as the card names it ("PIN1", "PIN2 (allekirjoitustunnusluku)",
    "eID PIN"). ``listing.pins`` has each certificate's PIN (``list_tokens(every_pin=True)``);
    without it, ``listing.pin`` is the first certificate's. A PIN in order adds nothing."""
    pins = tuple(listing.pins or ()) or (listing.pin,)
    label = listing.info.label
    # Each PIN once (the Belgian card's one PIN has both keys): its state and certificates.
    by_pin: dict[str, tuple[Any, list[Any]]] = {}
    for cert, status in zip(listing.certificates, pins, strict=False):
        if status is not None:
            by_pin.setdefault(status.name, (status, []))[1].append(cert)
    out: list[Check] = []
    for name, (status, certs) in by_pin.items():
        logs_in = any(str(c.purpose) == "authentication" for c in certs)
        pin = name or i18n.pgettext(lang, "a PIN the card gives no name", "The PIN")
        data: dict[str, Any] = {"token": label, "pin": name, "blocked": status.blocked}
        if status.blocked:
            detail = (
                i18n.gettext(lang, "{pin} is blocked: the card cannot log you in until it is unblocked.", pin=pin)
                if logs_in
                else i18n.gettext(lang, "{pin} is blocked: the card cannot sign until it is unblocked.", pin=pin)
            )
            fix = i18n.gettext(
                lang,
                "Unblock it with your PUK code (in the ID card software from your card's issuer), or contact the "
                "card's issuer.",
            )
            status_of = Status.FAIL if logs_in else Status.WARN
            out.append(_check("tokens", lang, status_of, f"{label}: {detail}", fix, **data))
        elif status.not_active:
            detail = i18n.gettext(lang, "{pin} is not activated yet.", pin=pin)
            which = status.not_active_pin or ("authentication" if logs_in else "signing")
            country = next((c.country for c in certs if getattr(c, "country", None)), None)
            fix = i18n.error_text("PIN_NOT_ACTIVE", lang, pin=str(which), country=country and country.upper())
            out.append(_check("tokens", lang, Status.WARN, f"{label}: {detail}", fix, notActive=True, **data))
        elif status.final_try or status.retries_left == 1:
            detail = i18n.gettext(lang, "{pin} has one try left: one more wrong PIN blocks it.", pin=pin)
            fix = i18n.gettext(
                lang, "Type it with care. If you are not sure of it, set a new one with your PUK code first."
            )
            out.append(_check("tokens", lang, Status.WARN, f"{label}: {detail}", fix, finalTry=True, **data))
    return out


# -- browsers, port, pinentry, log ------------------------------------------------------------------


_BROWSER_NAMES = {"chrome": "Chrome", "chromium": "Chromium", "edge": "Edge", "brave": "Brave", "firefox": "Firefox"}


def check_manifests(lang: str, home: Path | None = None, root: Path | None = None) -> list[Check]:
    """For each browser this user has (its profile folder exists) or that has our manifest
    system-wide (the Debian package's): is our native-messaging manifest there (per user or
    system-wide), and can the program it names run? ``root``: the system's root (tests)."""
    from cardbridge.nativemsg import install

    home = home or Path.home()
    try:
        entries = install.status(home=home, root=root)
    except Exception as exc:  # the native-messaging layer is optional for doctor
        return [_check("manifests", lang, Status.WARN, f"{type(exc).__name__}: {exc}")]
    by_browser: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_browser.setdefault(entry["browser"], []).append(entry)
    out: list[Check] = []
    for browser, found in by_browser.items():
        user = next((e for e in found if e["scope"] == "user"), None)
        installed = [e for e in found if e.get("installed")]
        uses_browser = user is not None and Path(user["manifest"]).parent.parent.is_dir()
        if not uses_browser and not any(e["scope"] == "system" for e in installed):
            continue  # this user does not use this browser, and nothing is installed for it
        name = _BROWSER_NAMES.get(browser, browser)
        fix = i18n.gettext(lang, "Run: cardbridge install-native-host --browser {browser}", browser=browser)
        good = [e for e in installed if e.get("launcherOk") and e.get("nameOk") and "error" not in e]
        if good:
            detail = f"{name}: {good[0]['manifest']}"
            data = {"browser": browser, "manifest": good[0]["manifest"], "scope": good[0]["scope"]}
            out.append(_check("manifests", lang, Status.OK, detail, **data))
        elif installed:
            detail = i18n.gettext(
                lang,
                "{browser}: the manifest {path} is broken or names a program that cannot run.",
                browser=name,
                path=installed[0]["manifest"],
            )
            out.append(_check("manifests", lang, Status.FAIL, detail, fix, browser=browser))
        else:
            path = user["manifest"] if user else found[0]["manifest"]
            detail = i18n.gettext(
                lang,
                "{browser}: the browser extension cannot reach cardbridge; the manifest is missing ({path}).",
                browser=name,
                path=path,
            )
            out.append(_check("manifests", lang, Status.FAIL, detail, fix, browser=browser))
    if not out:
        out.append(
            _check(
                "manifests",
                lang,
                Status.WARN,
                i18n.gettext(lang, "No browser (Chrome, Chromium, Edge, Brave or Firefox) was found for this user."),
            )
        )
    out += _webeid_checks(by_browser, lang)
    return out


def _webeid_checks(by_browser: dict[str, list[dict[str, Any]]], lang: str) -> list[Check]:
    """Who answers the Web eID extension (``eu.webeid``) in each browser this user has: the
    per-user manifest when there is one (the browser reads it first), else the system's."""
    out: list[Check] = []
    for browser, found in by_browser.items():
        user = next((e for e in found if e["scope"] == "user"), None)
        if user is None or not Path(user["manifest"]).parent.parent.is_dir():
            continue
        answering = next((e["webEid"] for e in found if e["webEid"]["answeredBy"] is not None), None)
        values = {"browser": _BROWSER_NAMES.get(browser, browser)}
        if answering is None:
            detail = i18n.gettext(
                lang,
                "{browser}: nothing answers the Web eID extension (eu.webeid). To use cardbridge "
                "with it: cardbridge install-native-host --web-eid",
                **values,
            )
        elif answering["answeredBy"] == "cardbridge":
            detail = i18n.gettext(
                lang,
                "{browser}: cardbridge answers the Web eID extension (eu.webeid, {path}).",
                path=answering["manifest"],
                **values,
            )
        else:
            detail = i18n.gettext(
                lang,
                "{browser}: another program answers the Web eID extension (eu.webeid): {program}.",
                program=answering["answeredBy"],
                **values,
            )
        data = {"browser": browser, "answeredBy": answering and answering["answeredBy"]}
        out.append(_check("webeid", lang, Status.OK, detail, **data))
    return out


# The profile folders of the Chromium-based browsers, where an installed extension's files are.
_PROFILE_ROOTS = (".config/chromium", ".config/google-chrome", ".config/microsoft-edge", ".config/BraveSoftware")


def _system(path: PurePosixPath, root: Path | None) -> Path:
    return (root or Path("/")) / str(path).lstrip("/")


def check_extension(lang: str, home: Path | None = None, root: Path | None = None) -> Check:
    """Is the cardbridge extension there: system-wide for Debian's Chromium (the package's
    ``/usr/share/chromium/extensions``, recognised by the id its key gives), or installed in
    one of this user's Chromium-based profiles?"""
    from cardbridge import sysinstall
    from cardbridge.nativemsg import EXTENSION_CHROME_ID

    folder = _system(sysinstall.CHROMIUM_EXTENSIONS, root)
    for manifest in sorted(folder.glob("*/manifest.json")) if folder.is_dir() else []:
        try:
            key = json.loads(manifest.read_text(encoding="utf-8")).get("key", "")
            ours = bool(key) and sysinstall.chrome_extension_id(str(key)) == EXTENSION_CHROME_ID
        except (OSError, ValueError, AttributeError):
            continue
        if ours:
            detail = i18n.gettext(
                lang,
                "The cardbridge extension ({id}) is installed: {path}",
                id=EXTENSION_CHROME_ID,
                path=manifest.parent,
            )
            return _check("extension", lang, Status.OK, detail, path=str(manifest.parent), scope="system")
    home = home or Path.home()
    for profiles in _PROFILE_ROOTS:
        for found in sorted((home / profiles).glob(f"**/Extensions/{EXTENSION_CHROME_ID}")):
            detail = i18n.gettext(
                lang, "The cardbridge extension ({id}) is installed: {path}", id=EXTENSION_CHROME_ID, path=found
            )
            return _check("extension", lang, Status.OK, detail, path=str(found), scope="user")
    fix = i18n.gettext(
        lang,
        "Install the cardbridge package (apt install cardbridge), or load "
        "native-host/extension in chrome://extensions. Without the extension, websites "
        "use the HTTP API (cardbridge serve).",
    )
    return _check(
        "extension",
        lang,
        Status.WARN,
        i18n.gettext(
            lang, "The cardbridge extension was not found in Chromium (neither system-wide nor in your profiles)."
        ),
        fix,
    )


def check_service(lang: str, environ: dict[str, str] | None = None, root: Path | None = None) -> Check:
    """Does ``cardbridge serve`` start with the person's session: a systemd user unit (this
    user's, or the package's in ``/usr/lib/systemd/user``) that is enabled (a ``*.wants``
    link, per user or for all users in ``/etc/systemd/user``), or an XDG autostart entry?"""
    from cardbridge import autostart, sysinstall

    user_unit = autostart.unit_path(environ)
    units = [user_unit, *(_system(d / autostart.UNIT_NAME, root) for d in sysinstall.SYSTEM_UNIT_DIRS)]
    unit = next((u for u in units if u.is_file()), None)
    wants = [user_unit.parent, _system(sysinstall.SYSTEM_UNIT_DIRS[0], root)]
    links = (w / autostart.UNIT_NAME for folder in wants for w in sorted(folder.glob("*.wants")))
    enabled = [link for link in links if link.is_symlink() or link.exists()]
    desktops = [autostart.desktop_path(environ), _system(sysinstall.SYSTEM_AUTOSTART, root)]
    desktop = next((d for d in desktops if d.is_file()), None)
    fix = i18n.gettext(lang, "Run: cardbridge install-service")
    if unit is not None and enabled:
        detail = i18n.gettext(lang, "cardbridge serve starts when you log in: {path}", path=unit)
        data: dict[str, Any] = {
            "unit": str(unit),
            "enabled": [str(e) for e in enabled],
            "autostart": str(desktop) if desktop else None,
        }
        return _check("service", lang, Status.OK, detail, **data)
    if unit is not None:
        detail = i18n.gettext(lang, "The unit {path} is there, but not enabled.", path=unit)
        return _check("service", lang, Status.WARN, detail, fix, unit=str(unit))
    if desktop is not None:
        detail = i18n.gettext(lang, "cardbridge serve starts when you log in: {path}", path=desktop)
        return _check("service", lang, Status.OK, detail, autostart=str(desktop))
    return _check(
        "service",
        lang,
        Status.WARN,
        i18n.gettext(lang, "cardbridge serve does not start by itself (no systemd user unit or autostart entry)."),
        fix,
    )


def _is_ours(port: int) -> bool:
    """Does the program on 127.0.0.1:``port`` serve cardbridge's OpenAPI document?"""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PORT_TIMEOUT)
    try:
        connection.request("GET", "/v1/openapi.json", headers={"Host": f"127.0.0.1:{port}"})
        response = connection.getresponse()
        body = response.read(1 << 20)
        document = json.loads(body)
        title = document.get("info", {}).get("title", "") if isinstance(document, dict) else ""
        return response.status == 200 and "cardbridge" in str(title)
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def check_port(config: Config, lang: str, port: int | None = None) -> Check:
    """The HTTP API's port on loopback: ours (the bridge runs), free, or someone else's."""
    port = config.port if port is None else port
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PORT_TIMEOUT):
            pass
    except OSError:
        fix = i18n.gettext(lang, "Start the background service: cardbridge install-service")
        return _check(
            "port",
            lang,
            Status.WARN,
            i18n.gettext(lang, "Port {port} is free: the background service is not running now.", port=port),
            fix,
            port=port,
        )
    if _is_ours(port):
        return _check(
            "port",
            lang,
            Status.OK,
            i18n.gettext(lang, "cardbridge answers on port {port}.", port=port),
            port=port,
            ours=True,
        )
    fix = i18n.gettext(
        lang,
        "Stop the other program, or choose another port with port = … in {path}.",
        path=config.path or config_path(),
    )
    return _check(
        "port", lang, Status.FAIL, i18n.gettext(lang, "Another program uses port {port}.", port=port), fix, port=port
    )


def check_pinentry(config: Config, lang: str) -> Check:
    import shlex

    fix = i18n.gettext(
        lang,
        "Install it: sudo apt install pinentry-gnome3, or set pinentry in {path}.",
        path=config.path or config_path(),
    )
    try:
        program = config.pinentry_program()
    except ConfigError:  # the development pinentry, outside `cardbridge demo`
        program = os.environ.get(ENV_PINENTRY) or config.pinentry or ""
        detail = i18n.gettext(
            lang,
            "The PIN window ({program}) is the development pinentry, which answers every PIN "
            "dialog by itself: only `cardbridge demo` may use it.",
            program=program,
        )
        return _check("pinentry", lang, Status.FAIL, detail, fix)
    try:
        argv = shlex.split(program)
    except ValueError:
        argv = []
    found = shutil.which(argv[0]) if argv else None
    if found:
        return _check("pinentry", lang, Status.OK, f"{program}: {found}")
    detail = i18n.gettext(lang, "The PIN window ({program}) is not installed.", program=program)
    return _check("pinentry", lang, Status.FAIL, detail, fix)


def check_log(lang: str) -> Check:
    path = log_dir() / LOG_FILE
    return _check("log", lang, Status.OK, str(path), path=str(path))


# -- all of them ---------------------------------------------------------------------------------


def run_checks(
    lang: str,
    *,
    module_flags: Sequence[str] | None = None,
    home: Path | None = None,
    port: int | None = None,
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every check, in the order a support desk goes through them. A check that fails
    unexpectedly (a bug) is a FAILED line of its own and the others still run: the person
    is told to send this report when something goes wrong, so it must come out whole."""
    checks = [_guarded("versions", lang, lambda: check_versions(lang))]
    config_check, config = _guarded_pair("config", lang, lambda: check_config(lang), None)
    checks.append(config_check)
    config = config or Config(path=config_path())
    checks.append(_guarded("origins", lang, lambda: check_origins(config, lang)))
    pcscd_check, readers = _guarded_pair("pcscd", lang, lambda: check_pcscd(lang), None)
    checks += [
        pcscd_check,
        _guarded("readers", lang, lambda: check_readers(readers, lang)),
        *_guarded_list("cards", lang, lambda: check_cards(readers, lang)),
    ]
    try:
        module_checks, modules = check_modules(config, lang, module_flags)
    except Exception as exc:  # a bug in the check: its line, and no modules for the next one
        module_checks, modules = [_failed("modules", lang, exc)], []
    checks += module_checks
    with_cards = any(r.card_present for r in readers or ())
    checks += _guarded_list("tokens", lang, lambda: check_tokens(modules, lang, now, config=config, pcsc=with_cards))
    checks += _guarded_list("manifests", lang, lambda: check_manifests(lang, home))
    checks.append(_guarded("extension", lang, lambda: check_extension(lang, home)))
    checks.append(_guarded("service", lang, lambda: check_service(lang)))
    checks.append(_guarded("port", lang, lambda: check_port(config, lang, port)))
    checks.append(_guarded("pinentry", lang, lambda: check_pinentry(config, lang)))
    checks.append(_guarded("log", lang, lambda: check_log(lang)))
    return checks


def _failed(check_id: str, lang: str, exc: Exception) -> Check:
    """The FAILED line of a check that raised what it should not (logged with its traceback)."""
    log.info("doctor: the %s check failed unexpectedly (a bug)", check_id, exc_info=True)
    error = f"{type(exc).__name__}: {exc}"
    detail = i18n.gettext(lang, "This check failed unexpectedly: {error}", error=error)
    fix = i18n.gettext(lang, "This is a fault in cardbridge. Send this report to support.")
    return _check(check_id, lang, Status.FAIL, detail, fix)


def _guarded(check_id: str, lang: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except Exception as exc:  # a bug in one check: say so, and go on with the others
        return _failed(check_id, lang, exc)


def _guarded_list(check_id: str, lang: str, run: Callable[[], list[Check]]) -> list[Check]:
    try:
        return run()
    except Exception as exc:
        return [_failed(check_id, lang, exc)]


def _guarded_pair(check_id: str, lang: str, run: Callable[[], tuple[Check, T]], default: T) -> tuple[Check, T]:
    """A check that also gives what later checks use (the config, the readers): on a bug,
    its FAILED line and ``default`` for them."""
    try:
        return run()
    except Exception as exc:
        return _failed(check_id, lang, exc), default


def format_checks(checks: Sequence[Check], lang: str) -> str:
    """The checks as plain text, one block per check, and a summary line."""
    lines: list[str] = []
    for check in checks:
        status = i18n.gettext(lang, _STATUSES[check.status])
        lines.append(f"[{status}] {check.name}: {check.detail}")
        if check.fix and check.status is not Status.OK:
            lines.append("    " + i18n.gettext(lang, "How to fix it: {fix}", fix=check.fix))
    failed = sum(1 for c in checks if c.status is Status.FAIL)
    lines.append("")
    lines.append(
        i18n.ngettext(
            lang,
            "{n} thing needs a fix. See “How to fix it” above.",
            "{n} things need a fix. See “How to fix it” above.",
            failed,
            n=failed,
        )
        if failed
        else i18n.gettext(lang, "All is well.")
    )
    return "\n".join(lines) + "\n"


def report_text(checks: Sequence[Check], lang: str, when: dt.datetime | None = None) -> str:
    """The text file a citizen sends to support: the checks and the settings in use.
    No PIN or secret is ever in a check; the text is redacted once more all the same."""
    made = f"{when or dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}".strip()
    lines = [
        i18n.gettext(lang, "cardbridge doctor: report for support"),
        i18n.gettext(lang, "Made: {when}", when=made),
        i18n.gettext(lang, "This report contains no PIN, no PUK and no secret keys."),
        f"cardbridge {__version__}, Python {platform.python_version()}, {sys.platform}",
        "",
        format_checks(checks, lang).rstrip("\n"),
    ]
    settings = next((c.data.get("settings") for c in checks if c.id == "config" and c.data.get("settings")), None)
    if settings:
        lines += ["", i18n.gettext(lang, "Settings in use:")]
        lines += [f"  {name} = {json.dumps(value, ensure_ascii=False)}" for name, value in settings.items()]
    return redact("\n".join(lines) + "\n")
