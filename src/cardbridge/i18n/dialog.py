"""The PIN and consent dialog (pinentry): who asks, with which certificate, which PIN."""

from __future__ import annotations

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
    "dialog.pin.named.authentication": {
        "nb": "Skriv inn {name} for innlogging hvis du godtar.",
        "nn": "Skriv inn {name} for innlogging om du godtek.",
        "en": "Enter your {name} to log in if you agree.",
    },
    "dialog.pin.named.signing": {
        "nb": "Skriv inn {name} for signering hvis du godtar.",
        "nn": "Skriv inn {name} for signering om du godtek.",
        "en": "Enter your {name} to sign if you agree.",
    },
    "dialog.prompt.named": {"nb": "{name}:", "nn": "{name}:", "en": "{name}:"},
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
    "dialog.tries_left.one": {
        "nb": "Du har {n} forsøk igjen.",
        "nn": "Du har {n} forsøk att.",
        "en": "You have {n} try left.",
    },
    "dialog.count_low": {
        "nb": "Det er skrevet feil PIN-kode på dette kortet før. Kortet blir sperret etter for mange feil.",
        "nn": "Det er skrive feil PIN-kode på dette kortet før. Kortet vert sperra etter for mange feil.",
        "en": "A wrong PIN was entered on this card before. The card is blocked after too many wrong tries.",
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
    "dialog.error.pin_incorrect_tries.one": {
        "nb": "Feil PIN-kode. Du har {n} forsøk igjen.",
        "nn": "Feil PIN-kode. Du har {n} forsøk att.",
        "en": "Wrong PIN. You have {n} try left.",
    },
    "dialog.error.pin_repeated": {
        "nb": "Dette er PIN-koden kortet nettopp avviste. Den ble ikke sendt til kortet igjen.",
        "nn": "Dette er PIN-koden kortet nett avviste. Han vart ikkje send til kortet att.",
        "en": "This is the PIN the card just refused. It was not sent to the card again.",
    },
    "dialog.error.pin_length": {
        "nb": "PIN-koden må ha {min} til {max} tegn.",
        "nn": "PIN-koden må ha {min} til {max} teikn.",
        "en": "The PIN must have {min} to {max} characters.",
    },
    # Before a web page gets the signing certificate (it names the person).
    "dialog.consent.title": {
        "nb": "Del sertifikatet ditt",
        "nn": "Del sertifikatet ditt",
        "en": "Share your certificate",
    },
    "dialog.consent.asking": {
        "nb": "Nettstedet\n\n    {origin}\n\nber om sertifikatet ditt for signering.",
        "nn": "Nettstaden\n\n    {origin}\n\nber om sertifikatet ditt for signering.",
        "en": "The website\n\n    {origin}\n\nasks for your signing certificate.",
    },
    "dialog.consent.shares": {
        "nb": "Nettstedet får se navnet ditt og fødselsnummeret ditt. Trykk Del hvis du godtar.",
        "nn": "Nettstaden får sjå namnet ditt og fødselsnummeret ditt. Trykk Del om du godtek.",
        "en": "The website will see your name and your national identity number. Press Share if you agree.",
    },
    "dialog.consent.ok": {"nb": "Del", "nn": "Del", "en": "Share"},
    # A website that has not used the card before (origin_policy = "ask").
    "dialog.site.title": {
        "nb": "Nytt nettsted vil bruke ID-kortet",
        "nn": "Ny nettstad vil bruke ID-kortet",
        "en": "A new website wants your ID card",
    },
    "dialog.site.asking": {
        "nb": "{origin}\n\nvil bruke ID-kortet ditt. Dette nettstedet har ikke brukt det før.",
        "nn": "{origin}\n\nvil bruke ID-kortet ditt. Denne nettstaden har ikkje brukt det før.",
        "en": "{origin}\n\nwants to use your ID card. This website has not used it before.",
    },
    "dialog.site.advice": {
        "nb": "Tillat bare et nettsted du kjenner og ventet å logge inn på. "
        "Svaret blir husket; du kan angre med «cardbridge origins forget».",
        "nn": "Tillat berre ei nettstad du kjenner og venta å logge inn på. "
        "Svaret vert hugsa; du kan angre med «cardbridge origins forget».",
        "en": "Allow only a website you know and meant to log in to. "
        "Your answer is remembered; undo it with 'cardbridge origins forget'.",
    },
    "dialog.site.ok": {"nb": "Tillat", "nn": "Tillat", "en": "Allow"},
    # No usable card yet: the dialog stays until a card arrives (the bridge closes it).
    "dialog.wait.title": {
        "nb": "Sett inn ID-kortet",
        "nn": "Set inn ID-kortet",
        "en": "Insert your ID card",
    },
    "dialog.wait.for": {
        "nb": "{origin}\n\nber om ID-kortet ditt.",
        "nn": "{origin}\n\nber om ID-kortet ditt.",
        "en": "{origin}\n\nasks for your ID card.",
    },
    "dialog.wait.no_card": {
        "nb": "Sett ID-kortet inn i kortleseren. Dette vinduet lukkes av seg selv når kortet er funnet.",
        "nn": "Set ID-kortet inn i kortlesaren. Dette vindauget lèt seg att av seg sjølv når kortet er funne.",
        "en": "Put your ID card in the card reader. This window closes by itself once the card is found.",
    },
    "dialog.wait.no_reader": {
        "nb": "Ingen kortleser er koblet til. Koble til kortleseren og sett inn ID-kortet. "
        "Dette vinduet lukkes av seg selv når kortet er funnet.",
        "nn": "Ingen kortlesar er kopla til. Kopla til kortlesaren og set inn ID-kortet. "
        "Dette vindauget lèt seg att av seg sjølv når kortet er funne.",
        "en": "No card reader is connected. Connect the card reader and put in your ID card. "
        "This window closes by itself once the card is found.",
    },
    "dialog.wait.no_service": {
        "nb": "Korttjenesten (pcscd) kjører ikke, så kortleseren kan ikke brukes. Start den "
        "(«sudo systemctl start pcscd.socket») eller start maskinen på nytt. "
        "Dette vinduet lukkes av seg selv når kortet er funnet.",
        "nn": "Korttenesta (pcscd) køyrer ikkje, så kortlesaren kan ikkje brukast. Start ho "
        "(«sudo systemctl start pcscd.socket») eller start maskina på nytt. "
        "Dette vindauget lèt seg att av seg sjølv når kortet er funne.",
        "en": "The smart card service (pcscd) is not running, so the card reader cannot be used. Start it "
        "('sudo systemctl start pcscd.socket') or restart the computer. "
        "This window closes by itself once the card is found.",
    },
    "dialog.wait.no_certificate": {
        "nb": "Kortet i leseren har ikke sertifikatet som trengs. Sett inn ID-kortet ditt. "
        "Dette vinduet lukkes av seg selv når kortet er funnet.",
        "nn": "Kortet i lesaren har ikkje sertifikatet som trengst. Set inn ID-kortet ditt. "
        "Dette vindauget lèt seg att av seg sjølv når kortet er funne.",
        "en": "The card in the reader does not have the certificate needed. Put in your ID card. "
        "This window closes by itself once the card is found.",
    },
    # Several usable certificates: one dialog per certificate, "Use" or "Next".
    "dialog.choose.title": {
        "nb": "Velg sertifikat",
        "nn": "Vel sertifikat",
        "en": "Choose a certificate",
    },
    "dialog.choose.asking": {
        "nb": "{origin}\n\nber om ID-kortet ditt. Du har {n} sertifikater som passer.",
        "nn": "{origin}\n\nber om ID-kortet ditt. Du har {n} sertifikat som passar.",
        "en": "{origin}\n\nasks for your ID card. You have {n} certificates that fit.",
    },
    "dialog.choose.option": {
        "nb": "Sertifikat {index} av {n}:\n    Innehaver: {holder}\n    Utsteder: {issuer}\n    Kort: {card}",
        "nn": "Sertifikat {index} av {n}:\n    Innehavar: {holder}\n    Utferdar: {issuer}\n    Kort: {card}",
        "en": "Certificate {index} of {n}:\n    Holder: {holder}\n    Issuer: {issuer}\n    Card: {card}",
    },
    "dialog.choose.question": {
        "nb": "Vil du bruke dette sertifikatet?",
        "nn": "Vil du bruke dette sertifikatet?",
        "en": "Do you want to use this certificate?",
    },
    "dialog.choose.ok": {"nb": "Bruk dette", "nn": "Bruk dette", "en": "Use this one"},
    "dialog.choose.next": {"nb": "Neste", "nn": "Neste", "en": "Next"},
}
