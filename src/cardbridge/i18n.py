"""Texts a person reads, in Norwegian bokmål (``nb``), nynorsk (``nn``) and English (``en``).

Language: the request's ``lang``, else ``--lang``, else the system locale, else bokmål.
Every message exists in all three languages (a test checks it).
"""

from __future__ import annotations

import locale
import os

LANGUAGES = ("nb", "nn", "en")
DEFAULT_LANGUAGE = "nb"

MESSAGES: dict[str, dict[str, str]] = {
    "dialog.title.authentication": {
        "nb": "Logg inn med ID-kort",
        "nn": "Logg inn med ID-kort",
        "en": "Log in with your ID card",
    },
    "dialog.title.signing": {
        "nb": "Signer med ID-kort",
        "nn": "Signer med ID-kort",
        "en": "Sign with your ID card",
    },
    "dialog.asking": {
        "nb": "Nettstedet\n\n    {origin}\n\nber om å få logge deg inn.",
        "nn": "Nettstaden\n\n    {origin}\n\nber om å få logge deg inn.",
        "en": "The website\n\n    {origin}\n\nasks to log you in.",
    },
    "dialog.asking.signing": {
        "nb": "Nettstedet\n\n    {origin}\n\nber deg signere et dokument.",
        "nn": "Nettstaden\n\n    {origin}\n\nber deg signere eit dokument.",
        "en": "The website\n\n    {origin}\n\nasks you to sign a document.",
    },
    "dialog.certificate": {
        "nb": "Sertifikat: {holder}",
        "nn": "Sertifikat: {holder}",
        "en": "Certificate: {holder}",
    },
    "dialog.pin.authentication": {
        "nb": "Skriv inn PIN-koden for innlogging (PIN1) hvis du godtar.",
        "nn": "Skriv inn PIN-koden for innlogging (PIN1) om du godtek.",
        "en": "Enter your login PIN (PIN1) if you agree.",
    },
    "dialog.pin.signing": {
        "nb": "Skriv inn PIN-koden for signering (PIN2) hvis du godtar.",
        "nn": "Skriv inn PIN-koden for signering (PIN2) om du godtek.",
        "en": "Enter your signing PIN (PIN2) if you agree.",
    },
    "dialog.pinpad": {
        "nb": "Trykk OK, og skriv så inn PIN-koden på tastaturet på kortleseren.",
        "nn": "Trykk OK, og skriv så inn PIN-koden på tastaturet på kortlesaren.",
        "en": "Press OK, then type your PIN on the card reader's keypad.",
    },
    "dialog.tries_left": {
        "nb": "Du har {n} forsøk igjen.",
        "nn": "Du har {n} forsøk att.",
        "en": "You have {n} tries left.",
    },
    "dialog.last_try": {
        "nb": "Dette er siste forsøk. Skriver du feil PIN-kode nå, blir kortet sperret.",
        "nn": "Dette er siste forsøket. Skriv du feil PIN-kode no, vert kortet sperra.",
        "en": "This is your last try. If you enter a wrong PIN now, the card will be blocked.",
    },
    "dialog.prompt": {"nb": "PIN-kode:", "nn": "PIN-kode:", "en": "PIN:"},
    "dialog.ok": {"nb": "Logg inn", "nn": "Logg inn", "en": "Log in"},
    "dialog.ok.signing": {"nb": "Signer", "nn": "Signer", "en": "Sign"},
    "dialog.cancel": {"nb": "Avbryt", "nn": "Avbryt", "en": "Cancel"},
    "dialog.error.pin_incorrect": {
        "nb": "Feil PIN-kode.",
        "nn": "Feil PIN-kode.",
        "en": "Wrong PIN.",
    },
    "dialog.error.pin_incorrect_tries": {
        "nb": "Feil PIN-kode. Du har {n} forsøk igjen.",
        "nn": "Feil PIN-kode. Du har {n} forsøk att.",
        "en": "Wrong PIN. You have {n} tries left.",
    },
    "dialog.error.pin_length": {
        "nb": "PIN-koden må ha {min} til {max} tegn.",
        "nn": "PIN-koden må ha {min} til {max} teikn.",
        "en": "The PIN must have {min} to {max} characters.",
    },
}


def system_language() -> str | None:
    """The system locale's language when it is one of ours (``no`` means bokmål)."""
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable)
        if value:
            break
    else:
        try:
            value = locale.getlocale(locale.LC_MESSAGES)[0]
        except (AttributeError, ValueError):
            value = None
    if not value:
        return None
    code = value.split(".")[0].split("_")[0].lower()
    if code == "no":
        return "nb"
    return code if code in LANGUAGES else None


def resolve_language(*choices: str | None) -> str:
    """The first of ``choices`` that is one of ours, else the system's, else bokmål."""
    for choice in choices:
        if choice and choice.lower() in LANGUAGES:
            return choice.lower()
    return system_language() or DEFAULT_LANGUAGE


def text(key: str, lang: str, **values: object) -> str:
    """The message ``key`` in ``lang`` (bokmål when missing), formatted with ``values``."""
    entry = MESSAGES[key]
    return entry.get(lang, entry[DEFAULT_LANGUAGE]).format(**values)
