# ruff: noqa: E501  (messages read better unbroken)
"""``cardbridge doctor``: check names, what was found, and how to fix it."""

from __future__ import annotations


def _same(value: str) -> dict[str, str]:
    return {"nb": value, "nn": value, "en": value}


MESSAGES: dict[str, dict[str, str]] = {
    # Check names.
    "doctor.name.versions": {"nb": "Versjoner", "nn": "Versjonar", "en": "Versions"},
    "doctor.name.config": {"nb": "Innstillingsfil", "nn": "Innstillingsfil", "en": "Config file"},
    "doctor.name.origins": {"nb": "Tillatte nettsteder", "nn": "Tillatne nettstader", "en": "Allowed websites"},
    "doctor.name.pcscd": {
        "nb": "Korttjenesten (pcscd)",
        "nn": "Korttenesta (pcscd)",
        "en": "Smart card service (pcscd)",
    },
    "doctor.name.readers": {"nb": "Kortlesere", "nn": "Kortlesarar", "en": "Card readers"},
    "doctor.name.cards": {"nb": "Kort i kortleseren", "nn": "Kort i kortlesaren", "en": "Cards in the readers"},
    "doctor.name.modules": {"nb": "PKCS#11-moduler", "nn": "PKCS#11-modular", "en": "PKCS#11 modules"},
    "doctor.name.tokens": {
        "nb": "ID-kort og sertifikater",
        "nn": "ID-kort og sertifikat",
        "en": "ID cards and certificates",
    },
    "doctor.name.manifests": {"nb": "Nettleserutvidelsen", "nn": "Nettlesarutvidinga", "en": "Browser extension"},
    "doctor.name.webeid": {"nb": "Web eID-utvidelsen", "nn": "Web eID-utvidinga", "en": "Web eID extension"},
    "doctor.name.extension": {
        "nb": "Utvidelsen i Chromium",
        "nn": "Utvidinga i Chromium",
        "en": "Extension in Chromium",
    },
    "doctor.name.service": {"nb": "Bakgrunnstjenesten", "nn": "Bakgrunnstenesta", "en": "Background service"},
    "doctor.name.port": {"nb": "HTTP-porten", "nn": "HTTP-porten", "en": "HTTP port"},
    "doctor.name.pinentry": {"nb": "PIN-vinduet", "nn": "PIN-vindauget", "en": "PIN window"},
    "doctor.name.log": {"nb": "Loggfil", "nn": "Loggfil", "en": "Log file"},
    # Statuses and layout.
    "doctor.status.ok": {"nb": "OK", "nn": "OK", "en": "OK"},
    "doctor.status.warn": {"nb": "ADVARSEL", "nn": "ÅTVARING", "en": "WARNING"},
    "doctor.status.fail": {"nb": "FEIL", "nn": "FEIL", "en": "FAILED"},
    "doctor.fix": {"nb": "Slik retter du det: {fix}", "nn": "Slik rettar du det: {fix}", "en": "How to fix it: {fix}"},
    "doctor.summary.ok": {"nb": "Alt er i orden.", "nn": "Alt er i orden.", "en": "All is well."},
    "doctor.summary.fail": {
        "nb": "{n} ting må rettes. Se «Slik retter du det» over.",
        "nn": "{n} ting må rettast. Sjå «Slik rettar du det» over.",
        "en": "{n} things need a fix. See “How to fix it” above.",
    },
    "doctor.summary.fail.one": {
        "nb": "{n} ting må rettes. Se «Slik retter du det» over.",
        "nn": "{n} ting må rettast. Sjå «Slik rettar du det» over.",
        "en": "{n} thing needs a fix. See “How to fix it” above.",
    },
    "doctor.report.title": {
        "nb": "cardbridge doctor: rapport til brukerstøtte",
        "nn": "cardbridge doctor: rapport til brukarstøtta",
        "en": "cardbridge doctor: report for support",
    },
    "doctor.report.made": {"nb": "Laget: {when}", "nn": "Laga: {when}", "en": "Made: {when}"},
    "doctor.report.note": {
        "nb": "Rapporten inneholder ingen PIN-kode, PUK-kode eller hemmelige nøkler.",
        "nn": "Rapporten inneheld ingen PIN-kode, PUK-kode eller løynde nøklar.",
        "en": "This report contains no PIN, no PUK and no secret keys.",
    },
    "doctor.report.settings": {"nb": "Innstillinger i bruk:", "nn": "Innstillingar i bruk:", "en": "Settings in use:"},
    "doctor.report.written": {
        "nb": "Rapporten er lagret i {path}. Send den til brukerstøtte.",
        "nn": "Rapporten er lagra i {path}. Send han til brukarstøtta.",
        "en": "The report is saved in {path}. Send it to support.",
    },
    # Versions.
    "doctor.versions.detail": _same("cardbridge {version}, Python {python}, {platform}; {libraries}"),
    # Config file.
    "doctor.config.ok": {
        "nb": "{path} er lest og i orden.",
        "nn": "{path} er lesen og i orden.",
        "en": "{path} is read and in order.",
    },
    "doctor.config.missing": {
        "nb": "Ingen innstillingsfil ({path}); standardinnstillingene brukes.",
        "nn": "Inga innstillingsfil ({path}); standardinnstillingane vert brukte.",
        "en": "No config file ({path}); the defaults are used.",
    },
    "doctor.config.fail": _same("{error}"),
    "doctor.config.fix": {
        "nb": "Rett feilen som står over i {path}, eller flytt fila bort for å bruke standardinnstillingene.",
        "nn": "Rett feilen som står over i {path}, eller flytt fila bort for å bruke standardinnstillingane.",
        "en": "Correct the error above in {path}, or move the file away to use the defaults.",
    },
    # Allowed origins.
    "doctor.origins.ok": _same("{origins}"),
    "doctor.origins.ask": {
        "nb": "Et nytt nettsted blir spurt om én gang (origin_policy = ask). Tillatt i oppsettet: {listed}, "
        "av deg: {yours}, avvist: {denied} («cardbridge origins»).",
        "nn": "Ei ny nettstad vert spurd om éin gong (origin_policy = ask). Tillatne i oppsettet: {listed}, "
        "av deg: {yours}, avviste: {denied} («cardbridge origins»).",
        "en": "A new website is asked about once (origin_policy = ask). Allowed in the configuration: {listed}, "
        "by you: {yours}, denied: {denied} ('cardbridge origins').",
    },
    "doctor.origins.none": {
        "nb": "Ingen nettsteder har lov til å bruke ID-kortet gjennom HTTP ennå.",
        "nn": "Ingen nettstader har lov til å bruke ID-kortet gjennom HTTP enno.",
        "en": "No website may use the ID card through HTTP yet.",
    },
    "doctor.origins.fix": {
        "nb": 'Legg innloggingssiden til i {path}: allowed_origins = ["https://…"]',
        "nn": 'Legg innloggingssida til i {path}: allowed_origins = ["https://…"]',
        "en": 'Add the login page to {path}: allowed_origins = ["https://…"]',
    },
    # pcscd.
    "doctor.pcscd.ok": {
        "nb": "Korttjenesten kjører og svarer.",
        "nn": "Korttenesta køyrer og svarar.",
        "en": "The smart card service is running and answers.",
    },
    "doctor.pcscd.fail": {
        "nb": "Korttjenesten kjører ikke, eller den svarer ikke.",
        "nn": "Korttenesta køyrer ikkje, eller ho svarar ikkje.",
        "en": "The smart card service is not running, or it does not answer.",
    },
    "doctor.pcscd.fix": {
        "nb": "Start den: sudo systemctl enable --now pcscd.socket (mangler den, installer den først: sudo apt install pcscd).",
        "nn": "Start henne: sudo systemctl enable --now pcscd.socket (manglar ho, installer henne først: sudo apt install pcscd).",
        "en": "Start it: sudo systemctl enable --now pcscd.socket (if it is missing, install it first: sudo apt install pcscd).",
    },
    "doctor.pcscd.nolib": {
        "nb": "PC/SC-biblioteket mangler: {error}",
        "nn": "PC/SC-biblioteket manglar: {error}",
        "en": "The PC/SC library is missing: {error}",
    },
    "doctor.pcscd.nolib_fix": {
        "nb": "Installer det: sudo apt install pcscd libpcsclite1",
        "nn": "Installer det: sudo apt install pcscd libpcsclite1",
        "en": "Install it: sudo apt install pcscd libpcsclite1",
    },
    # Readers.
    "doctor.readers.ok": _same("{names}"),
    "doctor.readers.none": {
        "nb": "Fant ingen kortleser.",
        "nn": "Fann ingen kortlesar.",
        "en": "No card reader was found.",
    },
    "doctor.readers.fix": {
        "nb": "Koble kortleseren til datamaskinen (prøv en annen USB-port). Er den koblet til, installer driveren: sudo apt install libccid",
        "nn": "Kople kortlesaren til datamaskina (prøv ein annan USB-port). Er han kopla til, installer drivaren: sudo apt install libccid",
        "en": "Connect the card reader to the computer (try another USB port). If it is connected, install its driver: sudo apt install libccid",
    },
    "doctor.readers.skipped": {
        "nb": "Ikke sjekket, fordi korttjenesten ikke svarer.",
        "nn": "Ikkje sjekka, fordi korttenesta ikkje svarar.",
        "en": "Not checked, because the smart card service does not answer.",
    },
    # Cards.
    "doctor.cards.ok": _same("{reader}: {name} (ATR {atr})"),
    "doctor.cards.unknown": {
        "nb": "{reader}: ukjent kort (ATR {atr})",
        "nn": "{reader}: ukjent kort (ATR {atr})",
        "en": "{reader}: unknown card (ATR {atr})",
    },
    "doctor.cards.unknown_fix": {
        "nb": "Sjekk at det er ID-kortet ditt som står i kortleseren, med brikken først og opp.",
        "nn": "Sjekk at det er ID-kortet ditt som står i kortlesaren, med brikka først og opp.",
        "en": "Check that it is your ID card in the reader, chip first and facing up.",
    },
    "doctor.cards.none": {
        "nb": "Det er ikke noe kort i kortleseren.",
        "nn": "Det er ikkje noko kort i kortlesaren.",
        "en": "There is no card in the card reader.",
    },
    "doctor.cards.none_fix": {
        "nb": "Sett inn ID-kortet i kortleseren.",
        "nn": "Set inn ID-kortet i kortlesaren.",
        "en": "Insert your ID card into the card reader.",
    },
    # PKCS#11 modules.
    "doctor.modules.none": {
        "nb": "Fant ingen PKCS#11-moduler.",
        "nn": "Fann ingen PKCS#11-modular.",
        "en": "No PKCS#11 modules were found.",
    },
    "doctor.modules.none_fix": {
        "nb": "Installer OpenSC (sudo apt install opensc-pkcs11), eller sett pkcs11_modules i {path}.",
        "nn": "Installer OpenSC (sudo apt install opensc-pkcs11), eller set pkcs11_modules i {path}.",
        "en": "Install OpenSC (sudo apt install opensc-pkcs11), or set pkcs11_modules in {path}.",
    },
    "doctor.modules.bad": _same("{error}"),
    "doctor.modules.bad_fix": {
        "nb": "Rett stien i pkcs11_modules i {path} (eller --module, CARDBRIDGE_PKCS11_MODULE), eller installer modulen.",
        "nn": "Rett stien i pkcs11_modules i {path} (eller --module, CARDBRIDGE_PKCS11_MODULE), eller installer modulen.",
        "en": "Correct the path in pkcs11_modules in {path} (or --module, CARDBRIDGE_PKCS11_MODULE), or install the module.",
    },
    "doctor.modules.unsafe_fix": {
        "nb": "Bare du eller root skal kunne endre modulen: {error}",
        "nn": "Berre du eller root skal kunne endre modulen: {error}",
        "en": "Only you or root may be able to change the module: {error}",
    },
    "doctor.modules.ok": _same("{path}: {description} {version}"),
    "doctor.modules.fail": {
        "nb": "{path} kan ikke lastes: {error}",
        "nn": "{path} kan ikkje lastast: {error}",
        "en": "{path} cannot be loaded: {error}",
    },
    "doctor.modules.fail_fix": {
        "nb": "Installer modulen på nytt, eller fjern den fra pkcs11_modules i {path}.",
        "nn": "Installer modulen på nytt, eller fjern han frå pkcs11_modules i {path}.",
        "en": "Reinstall the module, or remove it from pkcs11_modules in {path}.",
    },
    # Tokens and certificates.
    "doctor.tokens.none": {
        "nb": "Fant ikke noe ID-kort gjennom PKCS#11-modulene.",
        "nn": "Fann ikkje noko ID-kort gjennom PKCS#11-modulane.",
        "en": "No ID card was found through the PKCS#11 modules.",
    },
    "doctor.tokens.none_fix": {
        "nb": "Sett inn ID-kortet i kortleseren.",
        "nn": "Set inn ID-kortet i kortlesaren.",
        "en": "Insert your ID card into the card reader.",
    },
    "doctor.tokens.error": _same("{label}: {error}"),
    "doctor.tokens.empty": {
        "nb": "{label}: ingen sertifikater",
        "nn": "{label}: ingen sertifikat",
        "en": "{label}: no certificates",
    },
    "doctor.cert.ok": {
        "nb": "{label}: {holder} ({purpose}), gyldig til {date}",
        "nn": "{label}: {holder} ({purpose}), gyldig til {date}",
        "en": "{label}: {holder} ({purpose}), valid until {date}",
    },
    "doctor.cert.soon": {
        "nb": "{label}: {holder} ({purpose}) går ut om {days} dager, {date}",
        "nn": "{label}: {holder} ({purpose}) går ut om {days} dagar, {date}",
        "en": "{label}: {holder} ({purpose}) expires in {days} days, on {date}",
    },
    "doctor.cert.soon.one": {
        "nb": "{label}: {holder} ({purpose}) går ut om {days} dag, {date}",
        "nn": "{label}: {holder} ({purpose}) går ut om {days} dag, {date}",
        "en": "{label}: {holder} ({purpose}) expires in {days} day, on {date}",
    },
    "doctor.cert.soon_fix": {
        "nb": "Bestill et nytt ID-kort i god tid.",
        "nn": "Bestill eit nytt ID-kort i god tid.",
        "en": "Order a new ID card in good time.",
    },
    "doctor.cert.expired": {
        "nb": "{label}: {holder} ({purpose}) gikk ut {date}",
        "nn": "{label}: {holder} ({purpose}) gjekk ut {date}",
        "en": "{label}: {holder} ({purpose}) expired on {date}",
    },
    "doctor.cert.expired_fix": {
        "nb": "Bestill et nytt ID-kort.",
        "nn": "Bestill eit nytt ID-kort.",
        "en": "Order a new ID card.",
    },
    "doctor.purpose.authentication": {"nb": "innlogging", "nn": "innlogging", "en": "authentication"},
    "doctor.purpose.signing": {"nb": "signering", "nn": "signering", "en": "signing"},
    # Native messaging manifests.
    "doctor.manifests.ok": _same("{browser}: {path}"),
    "doctor.manifests.missing": {
        "nb": "{browser}: nettleserutvidelsen kan ikke nå cardbridge; manifestet mangler ({path}).",
        "nn": "{browser}: nettlesarutvidinga kan ikkje nå cardbridge; manifestet manglar ({path}).",
        "en": "{browser}: the browser extension cannot reach cardbridge; the manifest is missing ({path}).",
    },
    "doctor.manifests.broken": {
        "nb": "{browser}: manifestet {path} er ødelagt eller peker på et program som ikke kan kjøres.",
        "nn": "{browser}: manifestet {path} er øydelagt eller peikar på eit program som ikkje kan køyrast.",
        "en": "{browser}: the manifest {path} is broken or names a program that cannot run.",
    },
    "doctor.manifests.fix": {
        "nb": "Kjør: cardbridge install-native-host --browser {browser}",
        "nn": "Køyr: cardbridge install-native-host --browser {browser}",
        "en": "Run: cardbridge install-native-host --browser {browser}",
    },
    "doctor.webeid.nobody": {
        "nb": "{browser}: ingen svarer Web eID-utvidelsen (eu.webeid). "
        "For å bruke cardbridge med den: cardbridge install-native-host --web-eid",
        "nn": "{browser}: ingen svarar Web eID-utvidinga (eu.webeid). "
        "For å bruke cardbridge med ho: cardbridge install-native-host --web-eid",
        "en": "{browser}: nothing answers the Web eID extension (eu.webeid). "
        "To use cardbridge with it: cardbridge install-native-host --web-eid",
    },
    "doctor.webeid.cardbridge": {
        "nb": "{browser}: cardbridge svarer Web eID-utvidelsen (eu.webeid, {path}).",
        "nn": "{browser}: cardbridge svarar Web eID-utvidinga (eu.webeid, {path}).",
        "en": "{browser}: cardbridge answers the Web eID extension (eu.webeid, {path}).",
    },
    "doctor.webeid.other": {
        "nb": "{browser}: et annet program svarer Web eID-utvidelsen (eu.webeid): {program}.",
        "nn": "{browser}: eit anna program svarar Web eID-utvidinga (eu.webeid): {program}.",
        "en": "{browser}: another program answers the Web eID extension (eu.webeid): {program}.",
    },
    "doctor.manifests.no_browser": {
        "nb": "Fant ingen nettleser (Chrome, Chromium, Edge, Brave eller Firefox) for denne brukeren.",
        "nn": "Fann ingen nettlesar (Chrome, Chromium, Edge, Brave eller Firefox) for denne brukaren.",
        "en": "No browser (Chrome, Chromium, Edge, Brave or Firefox) was found for this user.",
    },
    # The extension, and the background service.
    "doctor.extension.ok": {
        "nb": "cardbridge-utvidelsen ({id}) er installert: {path}",
        "nn": "cardbridge-utvidinga ({id}) er installert: {path}",
        "en": "The cardbridge extension ({id}) is installed: {path}",
    },
    "doctor.extension.missing": {
        "nb": "Fant ikke cardbridge-utvidelsen i Chromium (verken for hele systemet eller i profilene dine).",
        "nn": "Fann ikkje cardbridge-utvidinga i Chromium (verken for heile systemet eller i profilane dine).",
        "en": "The cardbridge extension was not found in Chromium (neither system-wide nor in your profiles).",
    },
    "doctor.extension.fix": {
        "nb": "Installer pakken cardbridge (apt install cardbridge), eller last inn native-host/extension i chrome://extensions. Uten utvidelsen bruker nettstedene HTTP-grensesnittet (cardbridge serve).",
        "nn": "Installer pakken cardbridge (apt install cardbridge), eller last inn native-host/extension i chrome://extensions. Utan utvidinga bruker nettstadene HTTP-grensesnittet (cardbridge serve).",
        "en": "Install the cardbridge package (apt install cardbridge), or load native-host/extension in chrome://extensions. Without the extension, websites use the HTTP API (cardbridge serve).",
    },
    "doctor.service.ok": {
        "nb": "cardbridge serve starter når du logger inn: {path}",
        "nn": "cardbridge serve startar når du loggar inn: {path}",
        "en": "cardbridge serve starts when you log in: {path}",
    },
    "doctor.service.disabled": {
        "nb": "Tjenesten {path} finnes, men er ikke slått på.",
        "nn": "Tenesta {path} finst, men er ikkje slått på.",
        "en": "The unit {path} is there, but not enabled.",
    },
    "doctor.service.missing": {
        "nb": "cardbridge serve starter ikke av seg selv (ingen systemd-brukertjeneste eller autostart-oppføring).",
        "nn": "cardbridge serve startar ikkje av seg sjølv (inga systemd-brukarteneste eller autostart-oppføring).",
        "en": "cardbridge serve does not start by itself (no systemd user unit or autostart entry).",
    },
    "doctor.service.fix": {
        "nb": "Kjør: cardbridge install-service",
        "nn": "Køyr: cardbridge install-service",
        "en": "Run: cardbridge install-service",
    },
    # HTTP port.
    "doctor.port.ours": {
        "nb": "cardbridge svarer på port {port}.",
        "nn": "cardbridge svarar på port {port}.",
        "en": "cardbridge answers on port {port}.",
    },
    "doctor.port.free": {
        "nb": "Port {port} er ledig: bakgrunnstjenesten kjører ikke nå.",
        "nn": "Port {port} er ledig: bakgrunnstenesta køyrer ikkje no.",
        "en": "Port {port} is free: the background service is not running now.",
    },
    "doctor.port.free_fix": {
        "nb": "Start bakgrunnstjenesten: cardbridge install-service",
        "nn": "Start bakgrunnstenesta: cardbridge install-service",
        "en": "Start the background service: cardbridge install-service",
    },
    "doctor.port.other": {
        "nb": "Et annet program bruker port {port}.",
        "nn": "Eit anna program bruker port {port}.",
        "en": "Another program uses port {port}.",
    },
    "doctor.port.other_fix": {
        "nb": "Stopp det andre programmet, eller velg en annen port med port = … i {path}.",
        "nn": "Stopp det andre programmet, eller vel ein annan port med port = … i {path}.",
        "en": "Stop the other program, or choose another port with port = … in {path}.",
    },
    # pinentry.
    "doctor.pinentry.ok": _same("{program}: {path}"),
    "doctor.pinentry.fail": {
        "nb": "PIN-vinduet ({program}) er ikke installert.",
        "nn": "PIN-vindauget ({program}) er ikkje installert.",
        "en": "The PIN window ({program}) is not installed.",
    },
    "doctor.pinentry.dev": {
        "nb": "PIN-vinduet ({program}) er utviklerens pinentry, som svarer på alle PIN-dialoger selv: "
        "bare «cardbridge demo» får bruke det.",
        "nn": "PIN-vindauget ({program}) er utviklaren sin pinentry, som svarar på alle PIN-dialogar sjølv: "
        "berre «cardbridge demo» får bruke det.",
        "en": "The PIN window ({program}) is the development pinentry, which answers every PIN dialog by "
        "itself: only `cardbridge demo` may use it.",
    },
    "doctor.pinentry.fix": {
        "nb": "Installer det: sudo apt install pinentry-gnome3, eller sett pinentry i {path}.",
        "nn": "Installer det: sudo apt install pinentry-gnome3, eller set pinentry i {path}.",
        "en": "Install it: sudo apt install pinentry-gnome3, or set pinentry in {path}.",
    },
    # Log.
    "doctor.log.ok": _same("{path}"),
}
