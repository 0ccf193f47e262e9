"""What the PIN and consent dialog tells the person, checked through the scripted pinentry
(tests/tools/scripted_pinentry.py), which records SETTITLE, SETDESC, SETPROMPT, SETERROR …
exactly as a real pinentry would receive them."""

from __future__ import annotations

import base64
import secrets

import pytest

from cardbridge.errors import PinIncorrectError, PinInvalidLengthError
from cardbridge.model import PinKind, PinStatus
from cardbridge.pinentry import PinentrySource, PinRequest
from tests.conftest import ScriptedPinentry

ORIGIN = "https://login.example.no"
HOLDER = "Kari Nordmann"

# The wording a person reads, written out here rather than taken from the catalogue.
EXPECTED = {
    "nb": {
        "title_login": "Logg inn med ID-kort",
        "title_sign": "Signer med ID-kort",
        "asking_login": "ber om å få logge deg inn",
        "asking_sign": "ber deg signere et dokument",
        "certificate": f"Sertifikat: {HOLDER}",
        "login_pin": "PIN-koden for innlogging (PIN1)",
        "sign_pin": "PIN-koden for signering (PIN2)",
        "tries_3": "Du har 3 forsøk igjen.",
        "wrong_2": "Feil PIN-kode. Du har 2 forsøk igjen.",
        "wrong_1": "Feil PIN-kode. Du har 1 forsøk igjen.",
        "wrong": "Feil PIN-kode.",
        "last": "Dette er siste forsøk. Skriver du feil PIN-kode nå, blir kortet sperret.",
        "last_pin2": "Dette er siste forsøk. Skriver du feil PIN-kode nå, blir PIN2 (allekirjoitustunnusluku) sperret.",
        "prompt": "PIN-kode:",
        "pinpad": "skriv så inn PIN-koden på tastaturet på kortleseren",
        "length": "PIN-koden må ha 4 til 8 tegn.",
    },
    "nn": {
        "title_login": "Logg inn med ID-kort",
        "title_sign": "Signer med ID-kort",
        "asking_login": "ber om å få logge deg inn",
        "asking_sign": "ber deg signere eit dokument",
        "certificate": f"Sertifikat: {HOLDER}",
        "login_pin": "PIN-koden for innlogging (PIN1)",
        "sign_pin": "PIN-koden for signering (PIN2)",
        "tries_3": "Du har 3 forsøk att.",
        "wrong_2": "Feil PIN-kode. Du har 2 forsøk att.",
        "wrong_1": "Feil PIN-kode. Du har 1 forsøk att.",
        "wrong": "Feil PIN-kode.",
        "last": "Dette er siste forsøket. Skriv du feil PIN-kode no, vert kortet sperra.",
        "last_pin2": "Dette er siste forsøket. Skriv du feil PIN-kode no, vert PIN2 (allekirjoitustunnusluku) sperra.",
        "prompt": "PIN-kode:",
        "pinpad": "skriv så inn PIN-koden på tastaturet på kortlesaren",
        "length": "PIN-koden må ha 4 til 8 teikn.",
    },
    "en": {
        "title_login": "Log in with your ID card",
        "title_sign": "Sign with your ID card",
        "asking_login": "asks to log you in",
        "asking_sign": "asks you to sign a document",
        "certificate": f"Certificate: {HOLDER}",
        "login_pin": "login PIN (PIN1)",
        "sign_pin": "signing PIN (PIN2)",
        "tries_3": "You have 3 tries left.",
        "wrong_2": "Wrong PIN. You have 2 tries left.",
        "wrong_1": "Wrong PIN. You have 1 try left.",
        "wrong": "Wrong PIN.",
        "last": "This is your last try. If you enter a wrong PIN now, the card will be blocked.",
        "last_pin2": (
            "This is your last try. If you enter a wrong PIN now, PIN2 (allekirjoitustunnusluku) will be blocked."
        ),
        "prompt": "PIN:",
        "pinpad": "then type your PIN on the card reader's keypad",
        "length": "The PIN must have 4 to 8 characters.",
    },
}
LANGS = sorted(EXPECTED)


def _request(lang: str, **kw: object) -> PinRequest:
    values: dict[str, object] = {
        "origin": ORIGIN,
        "holder": HOLDER,
        "kind": PinKind.AUTHENTICATION,
        "status": PinStatus(retries_left=3, min_length=4, max_length=8),
        "lang": lang,
    }
    values.update(kw)
    return PinRequest(**values)  # type: ignore[arg-type]


async def _show(pinentry: ScriptedPinentry, request: PinRequest) -> dict[str, list[str]]:
    """Show one dialog (the person types a PIN or presses OK); what pinentry was told."""
    pinentry.respond("1234")
    pin = await PinentrySource(pinentry.program).get_pin(request)
    assert pin in (bytearray(b"1234"), bytearray())
    (dialog,) = pinentry.dialogs()
    told: dict[str, list[str]] = {}
    for verb, argument in dialog["commands"]:
        told.setdefault(verb, []).append(argument)
    return told


@pytest.mark.parametrize("lang", LANGS)
async def test_origin_is_shown_first_and_on_a_line_of_its_own(pinentry: ScriptedPinentry, lang: str) -> None:
    told = await _show(pinentry, _request(lang))
    (desc,) = told["SETDESC"]
    lines = [line.strip() for line in desc.splitlines()]
    assert ORIGIN in lines, "the origin stands alone on its line"
    assert lines.index(ORIGIN) <= 2, "the origin comes at the top"
    want = EXPECTED[lang]
    assert desc.index(ORIGIN) < desc.index(HOLDER) < desc.index(want["login_pin"])
    assert told["SETTITLE"] == [want["title_login"]]
    assert told["SETPROMPT"] == [want["prompt"]]
    assert want["asking_login"] in desc
    # The dialog texts are set before the PIN is asked for.
    verbs = [verb for verb, _ in pinentry.dialogs()[0]["commands"]]
    assert verbs.index("SETDESC") < verbs.index("GETPIN")


@pytest.mark.parametrize("lang", LANGS)
async def test_names_the_certificate_holder(pinentry: ScriptedPinentry, lang: str) -> None:
    told = await _show(pinentry, _request(lang, holder="Ærlige Østen Ålesund"))
    (desc,) = told["SETDESC"]
    assert EXPECTED[lang]["certificate"].replace(HOLDER, "Ærlige Østen Ålesund") in desc


@pytest.mark.parametrize("lang", LANGS)
async def test_login_pin_and_signing_pin_are_told_apart(pinentry: ScriptedPinentry, lang: str) -> None:
    want = EXPECTED[lang]
    login = await _show(pinentry, _request(lang))
    signing = await _show(pinentry, _request(lang, kind=PinKind.SIGNING))
    assert want["login_pin"] in login["SETDESC"][0] and want["sign_pin"] not in login["SETDESC"][0]
    assert want["sign_pin"] in signing["SETDESC"][0] and want["login_pin"] not in signing["SETDESC"][0]
    assert want["asking_sign"] in signing["SETDESC"][0]
    assert signing["SETTITLE"] == [want["title_sign"]]


@pytest.mark.parametrize("lang", LANGS)
async def test_tries_left_before_any_wrong_pin(pinentry: ScriptedPinentry, lang: str) -> None:
    told = await _show(pinentry, _request(lang))
    assert EXPECTED[lang]["tries_3"] in told["SETDESC"][0]
    assert "SETERROR" not in told
    assert EXPECTED[lang]["last"] not in told["SETDESC"][0]


@pytest.mark.parametrize("lang", LANGS)
async def test_after_a_wrong_pin_it_says_so_with_the_tries_left(pinentry: ScriptedPinentry, lang: str) -> None:
    error = PinIncorrectError("The card refused the PIN.", retries_left=2)
    told = await _show(pinentry, _request(lang, status=PinStatus(retries_left=2), error=error))
    assert told["SETERROR"] == [EXPECTED[lang]["wrong_2"]]
    assert EXPECTED[lang]["last"] not in told["SETDESC"][0]


@pytest.mark.parametrize("lang", LANGS)
async def test_after_a_wrong_pin_without_a_count(pinentry: ScriptedPinentry, lang: str) -> None:
    error = PinIncorrectError("The card refused the PIN.")
    told = await _show(pinentry, _request(lang, status=PinStatus(count_low=True), error=error))
    assert told["SETERROR"] == [EXPECTED[lang]["wrong"]]


@pytest.mark.parametrize("lang", LANGS)
async def test_before_the_last_try_it_warns_that_the_card_will_be_blocked(
    pinentry: ScriptedPinentry, lang: str
) -> None:
    want = EXPECTED[lang]
    # After a wrong PIN that left one try.
    error = PinIncorrectError("The card refused the PIN.", retries_left=1)
    told = await _show(pinentry, _request(lang, status=PinStatus(retries_left=1), error=error))
    assert told["SETERROR"] == [want["wrong_1"]]
    assert want["last"] in told["SETDESC"][0]
    # A PKCS#11 token that only says "final try" (CKF_USER_PIN_FINAL_TRY), no count.
    told = await _show(pinentry, _request(lang, status=PinStatus(final_try=True)))
    assert want["last"] in told["SETDESC"][0]
    assert "SETERROR" not in told
    # One try left, told before the first PIN of this login.
    told = await _show(pinentry, _request(lang, status=PinStatus(retries_left=1)))
    assert want["last"] in told["SETDESC"][0]


@pytest.mark.parametrize("lang", LANGS)
async def test_the_last_try_names_the_pin_the_card_names(pinentry: ScriptedPinentry, lang: str) -> None:
    """On a two-PIN card only that PIN is blocked, not the card: the warning says which."""
    want = EXPECTED[lang]
    status = PinStatus(retries_left=1, final_try=True, name="PIN2 (allekirjoitustunnusluku)")
    told = await _show(pinentry, _request(lang, kind=PinKind.SIGNING, status=status))
    assert want["last_pin2"] in told["SETDESC"][0]
    assert want["last"] not in told["SETDESC"][0]


@pytest.mark.parametrize("lang", LANGS)
async def test_wrong_length_names_the_limits(pinentry: ScriptedPinentry, lang: str) -> None:
    error = PinInvalidLengthError("too short", minLength=4, maxLength=8)
    told = await _show(pinentry, _request(lang, error=error))
    assert told["SETERROR"] == [EXPECTED[lang]["length"]]


@pytest.mark.parametrize("lang", LANGS)
async def test_pin_pad_reader_asks_for_consent_with_the_origin(pinentry: ScriptedPinentry, lang: str) -> None:
    status = PinStatus(retries_left=3, protected_path=True)
    told = await _show(pinentry, _request(lang, status=status))
    assert "CONFIRM" in told and "GETPIN" not in told
    (desc,) = told["SETDESC"]
    assert ORIGIN in desc and HOLDER in desc and EXPECTED[lang]["pinpad"] in desc


# Through the whole service, against SoftHSM2: the card's real answers drive the texts.


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.mark.softhsm
@pytest.mark.parametrize("lang", LANGS)
async def test_service_dialogs_in_each_language(softhsm, pinentry: ScriptedPinentry, lang: str) -> None:  # type: ignore[no-untyped-def]
    from cardbridge.errors import UserCancelledError
    from cardbridge.service import CardService, Selection, open_backends

    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        pinentry.respond("9999", "CANCEL")
        with pytest.raises(UserCancelledError):
            await service.authenticate(
                ORIGIN, _nonce(), PinentrySource(pinentry.program), lang=lang, selection=Selection(token_label="p256")
            )
    finally:
        await service.aclose()
    first, second = pinentry.texts("SETDESC")
    for desc in (first, second):
        assert ORIGIN in desc and softhsm.citizen.common_name in desc and EXPECTED[lang]["login_pin"] in desc
    # SoftHSM2 gives no count of tries left: the second dialog says only that it was wrong.
    assert pinentry.texts("SETERROR") == [EXPECTED[lang]["wrong"]]
    assert pinentry.texts("SETTITLE") == [EXPECTED[lang]["title_login"]] * 2


@pytest.mark.parametrize("lang", LANGS)
async def test_a_card_that_names_its_pin_gets_that_name_in_the_dialog(pinentry: ScriptedPinentry, lang: str) -> None:
    status = PinStatus(retries_left=3, min_length=5, max_length=12, name="PIN2")
    told = await _show(pinentry, _request(lang, kind=PinKind.SIGNING, status=status))
    assert "PIN2" in told["SETDESC"][0]
    assert EXPECTED[lang]["sign_pin"] not in told["SETDESC"][0]
    assert told["SETPROMPT"] == ["PIN2:"]


CONSENT = {
    "nb": ("Del sertifikatet ditt", "ber om sertifikatet ditt for signering", "navnet ditt og fødselsnummeret", "Del"),
    "nn": ("Del sertifikatet ditt", "ber om sertifikatet ditt for signering", "namnet ditt og fødselsnummeret", "Del"),
    "en": (
        "Share your certificate",
        "asks for your signing certificate",
        "your name and your national identity number",
        "Share",
    ),
}


@pytest.mark.parametrize("lang", LANGS)
async def test_consent_to_share_the_signing_certificate(pinentry: ScriptedPinentry, lang: str) -> None:
    from cardbridge.pinentry import ConsentRequest

    title, asking, shares, ok = CONSENT[lang]
    pinentry.respond("OK")
    await PinentrySource(pinentry.program).confirm(ConsentRequest(origin=ORIGIN, holder=HOLDER, lang=lang))
    (dialog,) = pinentry.dialogs()
    told: dict[str, list[str]] = {}
    for verb, argument in dialog["commands"]:
        told.setdefault(verb, []).append(argument)
    assert told["SETTITLE"] == [title] and told["SETOK"] == [ok] and "CONFIRM" in told and "GETPIN" not in told
    (desc,) = told["SETDESC"]
    lines = [line.strip() for line in desc.splitlines()]
    assert ORIGIN in lines and lines.index(ORIGIN) <= 2, "the origin at the top, on a line of its own"
    assert asking in desc and f"{HOLDER}" in desc and shares in desc
    assert desc.index(ORIGIN) < desc.index(HOLDER)
