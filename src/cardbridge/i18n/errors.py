# ruff: noqa: E501  (messages read better unbroken)
"""What a person reads for each error code: what happened and what to do, in plain words.

Keys are ``error.<CODE>``; a key with a suffix (``error.PIN_INCORRECT.retries``) is a
variant that :func:`cardbridge.i18n.error_text` picks when its placeholders are given, and
``….one`` is its form for the number 1.
"""

from __future__ import annotations

_RELOAD = {
    "nb": "Last inn siden på nytt og prøv igjen.",
    "nn": "Last inn sida på nytt og prøv igjen.",
    "en": "Reload the page and try again.",
}
_LOGIN_AGAIN = {
    "nb": "Prøv å logge inn på nytt.",
    "nn": "Prøv å logge inn på nytt.",
    "en": "Try to log in again.",
}
_OCSP = {
    "nb": "Tjenesten fikk ikke sjekket om ID-kortet ditt er gyldig akkurat nå. Prøv igjen om litt.",
    "nn": "Tenesta fekk ikkje sjekka om ID-kortet ditt er gyldig akkurat no. Prøv igjen om litt.",
    "en": "The service could not check whether your ID card is valid just now. Try again in a while.",
}


def _then(first: dict[str, str], then: dict[str, str]) -> dict[str, str]:
    return {lang: f"{first[lang]} {then[lang]}" for lang in first}


MESSAGES: dict[str, dict[str, str]] = {
    # Input the caller gave.
    "error.INVALID_ORIGIN": {
        "nb": "Nettstedet som ba om innlogging, har en ugyldig adresse. Innloggingen ble stoppet.",
        "nn": "Nettstaden som bad om innlogging, har ei ugyldig adresse. Innlogginga vart stoppa.",
        "en": "The website that asked you to log in has an invalid address. The login was stopped.",
    },
    "error.INVALID_NONCE": _then(
        {
            "nb": "Innloggingssiden sendte en ugyldig forespørsel.",
            "nn": "Innloggingssida sende ein ugyldig førespurnad.",
            "en": "The login page sent an invalid request.",
        },
        _RELOAD,
    ),
    "error.INVALID_ARGUMENT": _then(
        {
            "nb": "Forespørselen er ugyldig.",
            "nn": "Førespurnaden er ugyldig.",
            "en": "The request is invalid.",
        },
        _RELOAD,
    ),
    # Finding the card, certificate and key.
    "error.NO_TOKEN": {
        "nb": "Fant ikke noe ID-kort. Sett inn ID-kortet i kortleseren.",
        "nn": "Fann ikkje noko ID-kort. Set inn ID-kortet i kortlesaren.",
        "en": "No ID card was found. Insert your ID card into the card reader.",
    },
    "error.NO_CERTIFICATE": {
        "nb": "ID-kortet har ikke sertifikatet som trengs for dette. Sjekk at du bruker riktig kort.",
        "nn": "ID-kortet har ikkje sertifikatet som trengst for dette. Sjekk at du bruker rett kort.",
        "en": "The ID card does not have the certificate needed for this. Check that you are using the right card.",
    },
    "error.AMBIGUOUS_CERTIFICATE": {
        "nb": "Flere ID-kort eller sertifikater passer. Ta ut de kortene du ikke vil bruke, og prøv igjen.",
        "nn": "Fleire ID-kort eller sertifikat passar. Ta ut dei korta du ikkje vil bruke, og prøv igjen.",
        "en": "Several ID cards or certificates fit. Remove the cards you do not want to use and try again.",
    },
    "error.KEY_NOT_FOUND": {
        "nb": "ID-kortet mangler nøkkelen til sertifikatet. Kontakt den som utstedte kortet.",
        "nn": "ID-kortet manglar nøkkelen til sertifikatet. Kontakt den som gav ut kortet.",
        "en": "The ID card is missing the key for its certificate. Contact the card's issuer.",
    },
    "error.DUAL_USE_KEY": {
        "nb": "Signeringsnøkkelen på ID-kortet kan også brukes til innlogging, så cardbridge signerer ikke med den. "
        "Kontakt den som utstedte kortet.",
        "nn": "Signeringsnøkkelen på ID-kortet kan òg brukast til innlogging, så cardbridge signerer ikkje med han. "
        "Kontakt den som gav ut kortet.",
        "en": "The ID card's signing key can also be used to log in, so cardbridge does not sign with it. "
        "Contact the card's issuer.",
    },
    "error.UNSUPPORTED_KEY": {
        "nb": "Denne typen ID-kort kan ikke brukes her. Kontakt brukerstøtte.",
        "nn": "Denne typen ID-kort kan ikkje brukast her. Kontakt brukarstøtta.",
        "en": "This kind of ID card cannot be used here. Contact support.",
    },
    # The PIN.
    "error.PIN_INCORRECT": {
        "nb": "Feil PIN-kode.",
        "nn": "Feil PIN-kode.",
        "en": "Wrong PIN.",
    },
    "error.PIN_INCORRECT.retries": {
        "nb": "Feil PIN-kode. Du har {retries_left} forsøk igjen.",
        "nn": "Feil PIN-kode. Du har {retries_left} forsøk att.",
        "en": "Wrong PIN. You have {retries_left} tries left.",
    },
    "error.PIN_INCORRECT.retries.one": {
        "nb": "Feil PIN-kode. Du har {retries_left} forsøk igjen. Skriver du feil PIN-kode en gang til, blir kortet sperret.",
        "nn": "Feil PIN-kode. Du har {retries_left} forsøk att. Skriv du feil PIN-kode ein gong til, vert kortet sperra.",
        "en": "Wrong PIN. You have {retries_left} try left. If you enter a wrong PIN once more, the card will be blocked.",
    },
    "error.PIN_BLOCKED": {
        "nb": "PIN-koden er sperret. Lås den opp med PUK-koden din, eller kontakt den som utstedte kortet.",
        "nn": "PIN-koden er sperra. Lås han opp med PUK-koden din, eller kontakt den som gav ut kortet.",
        "en": "The PIN is blocked. Unblock it with your PUK code, or contact the card's issuer.",
    },
    "error.PIN_INVALID_LENGTH": {
        "nb": "PIN-koden har feil lengde. Prøv igjen.",
        "nn": "PIN-koden har feil lengd. Prøv igjen.",
        "en": "The PIN has the wrong length. Try again.",
    },
    "error.PIN_INVALID_LENGTH.range": {
        "nb": "PIN-koden må ha {minLength} til {maxLength} tegn. Prøv igjen.",
        "nn": "PIN-koden må ha {minLength} til {maxLength} teikn. Prøv igjen.",
        "en": "The PIN must have {minLength} to {maxLength} characters. Try again.",
    },
    # The person.
    "error.USER_CANCELLED": {
        "nb": "Innloggingen ble avbrutt.",
        "nn": "Innlogginga vart avbroten.",
        "en": "The login was cancelled.",
    },
    "error.USER_TIMEOUT": {
        "nb": "Du svarte ikke i tide, så innloggingen ble stoppet. Prøv igjen.",
        "nn": "Du svara ikkje i tide, så innlogginga vart stoppa. Prøv igjen.",
        "en": "You did not answer in time, so the login was stopped. Try again.",
    },
    "error.PINENTRY_FAILED": {
        "nb": "Vinduet for PIN-koden kunne ikke vises. Kjør «cardbridge doctor», eller kontakt brukerstøtte.",
        "nn": "Vindauget for PIN-koden kunne ikkje visast. Køyr «cardbridge doctor», eller kontakt brukarstøtta.",
        "en": "The PIN window could not be shown. Run “cardbridge doctor” or contact support.",
    },
    # The card, reader and PC/SC service.
    "error.CARD_REMOVED": {
        "nb": "ID-kortet ble tatt ut. Sett det inn igjen og prøv på nytt.",
        "nn": "ID-kortet vart teke ut. Set det inn att og prøv på nytt.",
        "en": "The ID card was removed. Insert it again and try again.",
    },
    "error.CARD_BUSY": {
        "nb": "Et annet program bruker ID-kortet. Lukk det andre programmet og prøv igjen.",
        "nn": "Eit anna program bruker ID-kortet. Lukk det andre programmet og prøv igjen.",
        "en": "Another program is using the ID card. Close the other program and try again.",
    },
    "error.CARD_RESET": {
        "nb": "Et annet program nullstilte ID-kortet. Prøv igjen.",
        "nn": "Eit anna program nullstilte ID-kortet. Prøv igjen.",
        "en": "Another program reset the ID card. Try again.",
    },
    "error.NO_CARD": {
        "nb": "Det er ikke noe kort i kortleseren. Sett inn ID-kortet i kortleseren.",
        "nn": "Det er ikkje noko kort i kortlesaren. Set inn ID-kortet i kortlesaren.",
        "en": "There is no card in the card reader. Insert your ID card into the card reader.",
    },
    "error.NO_READERS": {
        "nb": "Fant ingen kortleser. Koble kortleseren til datamaskinen.",
        "nn": "Fann ingen kortlesar. Kople kortlesaren til datamaskina.",
        "en": "No card reader was found. Connect the card reader to the computer.",
    },
    "error.SERVICE_NOT_RUNNING": {
        "nb": "Korttjenesten på datamaskinen (pcscd) kjører ikke. Start datamaskinen på nytt, "
        "eller kjør «cardbridge doctor».",
        "nn": "Korttenesta på datamaskina (pcscd) køyrer ikkje. Start datamaskina på nytt, "
        "eller køyr «cardbridge doctor».",
        "en": "The computer's smart card service (pcscd) is not running. Restart the computer, "
        "or run “cardbridge doctor”.",
    },
    "error.UNSUPPORTED_CARD": {
        "nb": "Kortet i kortleseren kan ikke brukes til innlogging. Sjekk at det er ID-kortet ditt.",
        "nn": "Kortet i kortlesaren kan ikkje brukast til innlogging. Sjekk at det er ID-kortet ditt.",
        "en": "The card in the reader cannot be used to log in. Check that it is your ID card.",
    },
    "error.CARD_ERROR": {
        "nb": "Noe gikk galt med ID-kortet eller kortleseren. Ta ut kortet, sett det inn igjen og prøv på nytt.",
        "nn": "Noko gjekk gale med ID-kortet eller kortlesaren. Ta ut kortet, set det inn att og prøv på nytt.",
        "en": "Something went wrong with the ID card or the card reader. "
        "Take the card out, insert it again and try again.",
    },
    # PKCS#11 modules.
    "error.MODULE_ERROR": {
        "nb": "Programvaren for ID-kortet (PKCS#11-modulen) svarte med en feil. Kjør «cardbridge doctor», "
        "eller kontakt brukerstøtte.",
        "nn": "Programvara for ID-kortet (PKCS#11-modulen) svara med ein feil. Køyr «cardbridge doctor», "
        "eller kontakt brukarstøtta.",
        "en": "The ID card software (PKCS#11 module) failed. Run “cardbridge doctor” or contact support.",
    },
    "error.MODULE_NOT_FOUND": {
        "nb": "Fant ikke programvaren for ID-kortet (PKCS#11-modulen). Sjekk innstillingene, "
        "eller installer programvaren på nytt.",
        "nn": "Fann ikkje programvara for ID-kortet (PKCS#11-modulen). Sjekk innstillingane, "
        "eller installer programvara på nytt.",
        "en": "The ID card software (PKCS#11 module) was not found. Check the settings, or reinstall the software.",
    },
    # The bridge itself.
    "error.BUSY": {
        "nb": "ID-kortet er opptatt med en annen innlogging eller signering. Fullfør eller avbryt den først.",
        "nn": "ID-kortet er oppteke med ei anna innlogging eller signering. Fullfør eller avbryt ho først.",
        "en": "The ID card is busy with another login or signing. Finish or cancel it first.",
    },
    "error.CONFIG_ERROR": {
        "nb": "Innstillingene til cardbridge er feil eller usikre. Kjør «cardbridge doctor» for å se hva som må rettes.",
        "nn": "Innstillingane til cardbridge er feil eller usikre. Køyr «cardbridge doctor» for å sjå kva som må rettast.",
        "en": "cardbridge's settings are wrong or unsafe. Run “cardbridge doctor” to see what to fix.",
    },
    "error.ORIGIN_NOT_ALLOWED": {
        "nb": "Dette nettstedet har ikke lov til å bruke ID-kortet ditt.",
        "nn": "Denne nettstaden har ikkje lov til å bruke ID-kortet ditt.",
        "en": "This website is not allowed to use your ID card.",
    },
    "error.HOST_NOT_ALLOWED": {
        "nb": "Forespørselen kom ikke fra denne datamaskinen og ble avvist.",
        "nn": "Førespurnaden kom ikkje frå denne datamaskina og vart avvist.",
        "en": "The request did not come from this computer and was refused.",
    },
    "error.INTERNAL": {
        "nb": "Det oppstod en uventet feil. Prøv igjen. Skjer det igjen, kjør «cardbridge doctor --report fil.txt» "
        "og send fila til brukerstøtte.",
        "nn": "Det oppstod ein uventa feil. Prøv igjen. Skjer det igjen, køyr «cardbridge doctor --report fil.txt» "
        "og send fila til brukarstøtta.",
        "en": "An unexpected error occurred. Try again. If it happens again, run "
        "“cardbridge doctor --report file.txt” and send the file to support.",
    },
    # The localhost HTTP API.
    "error.PORT_IN_USE": {
        "nb": "Et annet program bruker porten som cardbridge skal lytte på. Kjør «cardbridge doctor» "
        "for å se hva som må rettes.",
        "nn": "Eit anna program bruker porten som cardbridge skal lytte på. Køyr «cardbridge doctor» "
        "for å sjå kva som må rettast.",
        "en": "Another program uses the port cardbridge listens on. Run “cardbridge doctor” to see what to fix.",
    },
    "error.NOT_FOUND": _then(
        {
            "nb": "Forespørselen gikk til en adresse som ikke finnes.",
            "nn": "Førespurnaden gjekk til ei adresse som ikkje finst.",
            "en": "The request went to an address that does not exist.",
        },
        _RELOAD,
    ),
    "error.METHOD_NOT_ALLOWED": _then(
        {
            "nb": "Forespørselen er ugyldig.",
            "nn": "Førespurnaden er ugyldig.",
            "en": "The request is invalid.",
        },
        _RELOAD,
    ),
    "error.REQUEST_TOO_LARGE": _then(
        {
            "nb": "Forespørselen er for stor.",
            "nn": "Førespurnaden er for stor.",
            "en": "The request is too large.",
        },
        _RELOAD,
    ),
    "error.UNSUPPORTED_MEDIA_TYPE": _then(
        {
            "nb": "Forespørselen har feil format.",
            "nn": "Førespurnaden har feil format.",
            "en": "The request has the wrong format.",
        },
        _RELOAD,
    ),
    "error.REQUEST_TIMEOUT": _then(
        {
            "nb": "Forespørselen kom ikke fram i tide.",
            "nn": "Førespurnaden kom ikkje fram i tide.",
            "en": "The request did not arrive in time.",
        },
        _RELOAD,
    ),
    "error.BRIDGE_STOPPING": {
        "nb": "cardbridge ble avsluttet. Ingenting ble signert. Start cardbridge og prøv igjen.",
        "nn": "cardbridge vart avslutta. Ingenting vart signert. Start cardbridge og prøv igjen.",
        "en": "cardbridge was stopped. Nothing was signed. Start cardbridge and try again.",
    },
    # The portal: auth token validation (shown on the login page).
    "error.TOKEN_INVALID": _then(
        {
            "nb": "Innloggingen kunne ikke bekreftes.",
            "nn": "Innlogginga kunne ikkje stadfestast.",
            "en": "The login could not be verified.",
        },
        _LOGIN_AGAIN,
    ),
    "error.TOKEN_MALFORMED": _then(
        {
            "nb": "Svaret fra ID-kortet var ugyldig.",
            "nn": "Svaret frå ID-kortet var ugyldig.",
            "en": "The answer from the ID card was invalid.",
        },
        _LOGIN_AGAIN,
    ),
    "error.TOKEN_FORMAT_UNSUPPORTED": {
        "nb": "Programmet for ID-kortet er for gammelt eller ukjent for denne tjenesten. Oppdater programmet og prøv igjen.",
        "nn": "Programmet for ID-kortet er for gamalt eller ukjent for denne tenesta. Oppdater programmet og prøv igjen.",
        "en": "Your ID card program is too old or unknown to this service. Update the program and try again.",
    },
    "error.TOKEN_ALGORITHM_UNSUPPORTED": {
        "nb": "Denne tjenesten godtar ikke signaturtypen fra ID-kortet ditt.",
        "nn": "Denne tenesta godtek ikkje signaturtypen frå ID-kortet ditt.",
        "en": "This service does not accept the kind of signature your ID card makes.",
    },
    "error.TOKEN_ALGORITHM_KEY_MISMATCH": _then(
        {
            "nb": "Signaturen passer ikke til sertifikatet på ID-kortet.",
            "nn": "Signaturen passar ikkje til sertifikatet på ID-kortet.",
            "en": "The signature does not match the certificate on the ID card.",
        },
        _LOGIN_AGAIN,
    ),
    "error.TOKEN_SIGNATURE_INVALID": _then(
        {
            "nb": "Signaturen fra ID-kortet er ugyldig.",
            "nn": "Signaturen frå ID-kortet er ugyldig.",
            "en": "The ID card's signature is invalid.",
        },
        _LOGIN_AGAIN,
    ),
    "error.CERTIFICATE_MALFORMED": {
        "nb": "Sertifikatet på ID-kortet kan ikke leses. Kontakt den som utstedte kortet.",
        "nn": "Sertifikatet på ID-kortet kan ikkje lesast. Kontakt den som gav ut kortet.",
        "en": "The certificate on the ID card cannot be read. Contact the card's issuer.",
    },
    "error.CERTIFICATE_WRONG_PURPOSE": {
        "nb": "Sertifikatet på ID-kortet er ikke for innlogging.",
        "nn": "Sertifikatet på ID-kortet er ikkje for innlogging.",
        "en": "The certificate on the ID card is not for logging in.",
    },
    "error.CERTIFICATE_POLICY_DISALLOWED": {
        "nb": "Denne tjenesten godtar ikke denne typen ID-kort.",
        "nn": "Denne tenesta godtek ikkje denne typen ID-kort.",
        "en": "This service does not accept this kind of ID card.",
    },
    "error.CERTIFICATE_NO_IDENTITY": {
        "nb": "Sertifikatet på ID-kortet sier ikke hvem du er.",
        "nn": "Sertifikatet på ID-kortet seier ikkje kven du er.",
        "en": "The certificate on the ID card does not say who you are.",
    },
    "error.CERTIFICATE_NOT_YET_VALID": {
        "nb": "ID-kortet er ikke gyldig ennå. Sjekk at dato og klokkeslett på datamaskinen er riktige.",
        "nn": "ID-kortet er ikkje gyldig enno. Sjekk at dato og klokkeslett på datamaskina er rette.",
        "en": "The ID card is not valid yet. Check that the computer's date and time are right.",
    },
    "error.CERTIFICATE_EXPIRED": {
        "nb": "ID-kortet er utløpt. Bestill et nytt ID-kort.",
        "nn": "ID-kortet har gått ut. Bestill eit nytt ID-kort.",
        "en": "The ID card has expired. Order a new ID card.",
    },
    "error.CERTIFICATE_UNTRUSTED": {
        "nb": "Denne tjenesten godtar ikke den som utstedte ID-kortet ditt.",
        "nn": "Denne tenesta godtek ikkje den som gav ut ID-kortet ditt.",
        "en": "This service does not accept the issuer of your ID card.",
    },
    "error.OCSP_UNAVAILABLE": _OCSP,
    "error.OCSP_INVALID_RESPONSE": _OCSP,
    "error.OCSP_NONCE_MISMATCH": _OCSP,
    "error.OCSP_SIGNER_UNTRUSTED": _OCSP,
    "error.OCSP_STALE": _OCSP,
    "error.OCSP_REVOKED": {
        "nb": "ID-kortet er sperret (tilbakekalt). Kontakt den som utstedte kortet.",
        "nn": "ID-kortet er sperra (trekt tilbake). Kontakt den som gav ut kortet.",
        "en": "The ID card has been revoked. Contact the card's issuer.",
    },
    "error.OCSP_UNKNOWN": {
        "nb": "Den som utstedte ID-kortet, kjenner ikke til det. Kontakt den som utstedte kortet.",
        "nn": "Den som gav ut ID-kortet, kjenner ikkje til det. Kontakt den som gav ut kortet.",
        "en": "The card's issuer does not know this ID card. Contact the card's issuer.",
    },
    # The portal: challenge nonces.
    "error.NONCE_UNKNOWN": _then(
        {
            "nb": "Innloggingen er ukjent eller for gammel.",
            "nn": "Innlogginga er ukjend eller for gamal.",
            "en": "The login is unknown or too old.",
        },
        _RELOAD,
    ),
    "error.NONCE_EXPIRED": _then(
        {
            "nb": "Innloggingen tok for lang tid.",
            "nn": "Innlogginga tok for lang tid.",
            "en": "The login took too long.",
        },
        _RELOAD,
    ),
    "error.NONCE_USED": _then(
        {
            "nb": "Denne innloggingen er allerede brukt.",
            "nn": "Denne innlogginga er alt brukt.",
            "en": "This login has already been used.",
        },
        _RELOAD,
    ),
    "error.NONCE_STORE_UNAVAILABLE": {
        "nb": "Innloggingstjenesten har et midlertidig problem. Prøv igjen om litt.",
        "nn": "Innloggingstenesta har eit mellombels problem. Prøv igjen om litt.",
        "en": "The login service has a temporary problem. Try again in a while.",
    },
    # A code this catalogue does not know yet (a newer layer): still plain words.
    "error.unknown": {
        "nb": "Noe gikk galt ({code}). Prøv igjen, eller kontakt brukerstøtte.",
        "nn": "Noko gjekk gale ({code}). Prøv igjen, eller kontakt brukarstøtta.",
        "en": "Something went wrong ({code}). Try again, or contact support.",
    },
}
