"""What a person reads for each error code: what happened and what to do, in plain words.

:data:`ERROR_TEXTS` maps each code to its message (English, marked with ``N_``; translated
when it is shown). A code with details may have a more precise message, which
:func:`variant` picks: the tries left after a wrong PIN, the PIN length the card takes, the blocked
PIN's name (``pinName``, as the card names it),
and for a PIN not active yet where to activate it (``country`` of the card's certificate,
``pin`` ``authentication`` or ``signing``; as the Web eID app says it for the Estonian card).
"""

from __future__ import annotations

from collections.abc import Mapping

from cardbridge.i18n import N_, gettext, ngettext, pgettext

# A PIN not active yet (PIN_NOT_ACTIVE), by (country, which PIN): what to do.
NOT_ACTIVE_TEXTS: dict[tuple[str, str], str] = {
    ("EE", "authentication"): N_(
        "Your ID card has not been activated yet, so it cannot be used to log in or to sign. Activate it in "
        "the Police and Border Guard Board’s self-service portal (politsei.ee), then try again."
    ),
    ("EE", "signing"): N_(
        "You cannot sign with your ID card yet: its PIN2 must first be changed in the DigiDoc4 application. "
        "Change it there, then try again."
    ),
    ("FI", "authentication"): N_(
        "The PIN1 (basic PIN) of your ID card is not active yet. Change (activate) it in DigiSign Client, the "
        "Finnish card reader software (dvv.fi), then try again."
    ),
    ("FI", "signing"): N_(
        "The PIN2 (signature PIN) of your ID card is not active yet. Change (activate) it in DigiSign Client, "
        "the Finnish card reader software (dvv.fi), then try again."
    ),
}

ERROR_TEXTS: dict[str, str] = {
    "INVALID_ORIGIN": N_("The website that asked you to log in has an invalid address. The login was stopped."),
    "INVALID_NONCE": N_("The login page sent an invalid request. Reload the page and try again."),
    "INVALID_ARGUMENT": N_("The request is invalid. Reload the page and try again."),
    "NO_TOKEN": N_("No ID card was found. Insert your ID card into the card reader."),
    "NO_CERTIFICATE": N_(
        "The ID card does not have the certificate needed for this. Check that you are using the right card."
    ),
    "AMBIGUOUS_CERTIFICATE": N_(
        "Several ID cards or certificates fit. Remove the cards you do not want to use and try again."
    ),
    "KEY_NOT_FOUND": N_("The ID card is missing the key for its certificate. Contact the card's issuer."),
    "DUAL_USE_KEY": N_(
        "The ID card's signing key can also be used to log in, so cardbridge does not sign "
        "with it. Contact the card's issuer."
    ),
    "UNSUPPORTED_KEY": N_("This kind of ID card cannot be used here. Contact support."),
    "PIN_INCORRECT": N_("Wrong PIN."),
    "PIN_BLOCKED": N_("The PIN is blocked. Unblock it with your PUK code, or contact the card's issuer."),
    "PIN_INVALID_LENGTH": N_("The PIN has the wrong length. Try again."),
    "PIN_NOT_ACTIVE": N_(
        "The PIN is not active yet, so it was not asked for. Change (activate) it first with the ID card "
        "software from your card's issuer, then try again."
    ),
    "USER_CANCELLED": N_("The login was cancelled."),
    "USER_TIMEOUT": N_("You did not answer in time, so the login was stopped. Try again."),
    "PINENTRY_FAILED": N_("The PIN window could not be shown. Run “cardbridge doctor” or contact support."),
    "CARD_REMOVED": N_("The ID card was removed. Insert it again and try again."),
    "CARD_BUSY": N_("Another program is using the ID card. Close the other program and try again."),
    "CARD_RESET": N_("Another program reset the ID card. Try again."),
    "NO_CARD": N_("There is no card in the card reader. Insert your ID card into the card reader."),
    "NO_READERS": N_("No card reader was found. Connect the card reader to the computer."),
    "SERVICE_NOT_RUNNING": N_(
        "The computer's smart card service (pcscd) is not running. Restart the computer, or run “cardbridge doctor”."
    ),
    "UNSUPPORTED_CARD": N_("The card in the reader cannot be used to log in. Check that it is your ID card."),
    "CARD_ERROR": N_(
        "Something went wrong with the ID card or the card reader. Take the card out, insert it again and try again."
    ),
    "MODULE_ERROR": N_("The ID card software (PKCS#11 module) failed. Run “cardbridge doctor” or contact support."),
    "MODULE_NOT_FOUND": N_(
        "The ID card software (PKCS#11 module) was not found. Check the settings, or reinstall the software."
    ),
    "BUSY": N_("The ID card is busy with another login or signing. Finish or cancel it first."),
    "CONFIG_ERROR": N_("cardbridge's settings are wrong or unsafe. Run “cardbridge doctor” to see what to fix."),
    "ORIGIN_NOT_ALLOWED": N_("This website is not allowed to use your ID card."),
    "HOST_NOT_ALLOWED": N_("The request did not come from this computer and was refused."),
    "INTERNAL": N_(
        "An unexpected error occurred. Try again. If it happens again, run “cardbridge "
        "doctor --report file.txt” and send the file to support."
    ),
    "PORT_IN_USE": N_(
        "Another program uses the port cardbridge listens on. Run “cardbridge doctor” to see what to fix."
    ),
    "NOT_FOUND": N_("The request went to an address that does not exist. Reload the page and try again."),
    "METHOD_NOT_ALLOWED": N_("The request is invalid. Reload the page and try again."),
    "REQUEST_TOO_LARGE": N_("The request is too large. Reload the page and try again."),
    "UNSUPPORTED_MEDIA_TYPE": N_("The request has the wrong format. Reload the page and try again."),
    "REQUEST_TIMEOUT": N_("The request did not arrive in time. Reload the page and try again."),
    "BRIDGE_STOPPING": N_("cardbridge was stopped. Nothing was signed. Start cardbridge and try again."),
    "TOKEN_INVALID": N_("The login could not be verified. Try to log in again."),
    "TOKEN_MALFORMED": N_("The answer from the ID card was invalid. Try to log in again."),
    "TOKEN_FORMAT_UNSUPPORTED": N_(
        "Your ID card program is too old or unknown to this service. Update the program and try again."
    ),
    "TOKEN_ALGORITHM_UNSUPPORTED": N_("This service does not accept the kind of signature your ID card makes."),
    "TOKEN_ALGORITHM_KEY_MISMATCH": N_(
        "The signature does not match the certificate on the ID card. Try to log in again."
    ),
    "TOKEN_SIGNATURE_INVALID": N_("The ID card's signature is invalid. Try to log in again."),
    "CERTIFICATE_MALFORMED": N_("The certificate on the ID card cannot be read. Contact the card's issuer."),
    "CERTIFICATE_WRONG_PURPOSE": N_("The certificate on the ID card is not for logging in."),
    "CERTIFICATE_POLICY_DISALLOWED": N_("This service does not accept this kind of ID card."),
    "CERTIFICATE_NO_IDENTITY": N_("The certificate on the ID card does not say who you are."),
    "CERTIFICATE_NOT_YET_VALID": N_("The ID card is not valid yet. Check that the computer's date and time are right."),
    "CERTIFICATE_EXPIRED": N_("The ID card has expired. Order a new ID card."),
    "CERTIFICATE_UNTRUSTED": N_("This service does not accept the issuer of your ID card."),
    "OCSP_UNAVAILABLE": N_("The service could not check whether your ID card is valid just now. Try again in a while."),
    "OCSP_INVALID_RESPONSE": N_(
        "The service could not check whether your ID card is valid just now. Try again in a while."
    ),
    "OCSP_NONCE_MISMATCH": N_(
        "The service could not check whether your ID card is valid just now. Try again in a while."
    ),
    "OCSP_SIGNER_UNTRUSTED": N_(
        "The service could not check whether your ID card is valid just now. Try again in a while."
    ),
    "OCSP_STALE": N_("The service could not check whether your ID card is valid just now. Try again in a while."),
    "OCSP_REVOKED": N_("The ID card has been revoked. Contact the card's issuer."),
    "OCSP_UNKNOWN": N_("The card's issuer does not know this ID card. Contact the card's issuer."),
    "NONCE_UNKNOWN": N_("The login is unknown or too old. Reload the page and try again."),
    "NONCE_EXPIRED": N_("The login took too long. Reload the page and try again."),
    "NONCE_USED": N_("This login has already been used. Reload the page and try again."),
    "NONCE_STORE_UNAVAILABLE": N_("The login service has a temporary problem. Try again in a while."),
}


def variant(code: str, lang: str, given: Mapping[str, object]) -> str | None:
    """The more precise message of ``code`` for the details in ``given``, in ``lang``; None
    when ``code`` has none for them."""
    if code == "PIN_INCORRECT":
        tries = given.get("retries_left")
        if not isinstance(tries, int) or isinstance(tries, bool):
            return None
        if tries == 1 and isinstance(given.get("pinName"), str) and given["pinName"]:
            return pgettext(  # a two-PIN card: only this PIN will be blocked
                lang,
                "the last try",
                "Wrong PIN. You have 1 try left. If you enter a wrong PIN once more, {pinName} will be blocked.",
                pinName=given["pinName"],
            )
        if tries == 1:
            return pgettext(
                lang,
                "the last try",
                "Wrong PIN. You have 1 try left. If you enter a wrong PIN once more, the card will be blocked.",
            )
        return ngettext(
            lang, "Wrong PIN. You have {n} try left.", "Wrong PIN. You have {n} tries left.", tries, n=tries
        )
    if code == "PIN_BLOCKED" and isinstance(given.get("pinName"), str) and given["pinName"]:
        # The card names its PINs (PIN1, PIN2): on a two-PIN card the other one still works.
        return gettext(
            lang,
            "{pinName} is blocked. Unblock it with your PUK code, or contact the card's issuer.",
            pinName=given["pinName"],
        )
    if code == "PIN_NOT_ACTIVE":
        advice = NOT_ACTIVE_TEXTS.get((str(given.get("country", "")), str(given.get("pin", ""))))
        return gettext(lang, advice) if advice else None
    if code == "PIN_INVALID_LENGTH" and "minLength" in given and "maxLength" in given:
        return gettext(
            lang,
            "The PIN must have {minLength} to {maxLength} characters. Try again.",
            minLength=given["minLength"],
            maxLength=given["maxLength"],
        )
    return None
