# ruff: noqa: E501  (messages read better unbroken)
"""The ``cardbridge`` command's lines (not its ``--help``, which stays English): kept here
until the CLI marks its messages for gettext as the other modules do (transitional)."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    # Errors on standard error: ``error: CODE: <error text>`` and, indented, the details.
    "cli.error.details": {"nb": "  detaljer: {details}", "nn": "  detaljar: {details}", "en": "  details: {details}"},
    "cli.error.choose": {
        "nb": "  Velg ett av sertifikatene med --certificate:",
        "nn": "  Vel eitt av sertifikata med --certificate:",
        "en": "  Choose one of the certificates with --certificate:",
    },
    # cardbridge list
    "cli.list.none": {
        "nb": "Fant ikke noe ID-kort. Sett inn ID-kortet i kortleseren.",
        "nn": "Fann ikkje noko ID-kort. Set inn ID-kortet i kortlesaren.",
        "en": "No ID card found. Insert your ID card into the card reader.",
    },
    "cli.list.error": {
        "nb": "  feil: {code}: {message}",
        "nn": "  feil: {code}: {message}",
        "en": "  error: {code}: {message}",
    },
    "cli.list.purpose.authentication": {"nb": "innlogging", "nn": "innlogging", "en": "authentication"},
    "cli.list.purpose.signing": {"nb": "signering", "nn": "signering", "en": "signing"},
    "cli.list.subject": {"nb": "subjekt", "nn": "subjekt", "en": "subject"},
    "cli.list.issuer": {"nb": "utsteder", "nn": "utferdar", "en": "issuer"},
    "cli.list.serial": {"nb": "serienummer", "nn": "serienummer", "en": "serial"},
    "cli.list.valid": {"nb": "gyldig", "nn": "gyldig", "en": "valid"},
    "cli.list.valid_range": {"nb": "{start} til {end}", "nn": "{start} til {end}", "en": "{start} to {end}"},
    "cli.list.key": {"nb": "nøkkel", "nn": "nøkkel", "en": "key"},
    # cardbridge dev token create
    "cli.dev.ready": {
        "nb": "Det emulerte ID-kortet (SoftHSM2-token) er klart.",
        "nn": "Det emulerte ID-kortet (SoftHSM2-token) er klart.",
        "en": "The emulated ID card (SoftHSM2 token) is ready.",
    },
    "cli.dev.holder": {"nb": "innehaver", "nn": "innehavar", "en": "holder"},
    "cli.dev.key": {"nb": "nøkkel", "nn": "nøkkel", "en": "key"},
    "cli.dev.label": {"nb": "token-navn", "nn": "token-namn", "en": "token label"},
    "cli.dev.pin": {"nb": "PIN-kode", "nn": "PIN-kode", "en": "PIN"},
    "cli.dev.pin_note": {"nb": "(bare for utvikling)", "nn": "(berre for utvikling)", "en": "(development only)"},
    "cli.dev.module": {"nb": "modul", "nn": "modul", "en": "module"},
    "cli.dev.ca": {"nb": "CA-sertifikat", "nn": "CA-sertifikat", "en": "CA certificate"},
    "cli.dev.use": {"nb": "Bruk det:", "nn": "Bruk det:", "en": "Use it:"},
    # cardbridge demo
    "cli.demo.card": {
        "nb": "Emulert ID-kort: {holder} ({id_code}), token {label}, PIN-kode {pin}",
        "nn": "Emulert ID-kort: {holder} ({id_code}), token {label}, PIN-kode {pin}",
        "en": "Emulated ID card: {holder} ({id_code}), token {label}, PIN {pin}",
    },
    "cli.demo.challenge": {
        "nb": "Portalen {origin} laget utfordringen {nonce}",
        "nn": "Portalen {origin} laga utfordringa {nonce}",
        "en": "Portal {origin} issued the challenge {nonce}",
    },
    "cli.demo.token": {"nb": "Innloggingsbevis:", "nn": "Innloggingsprov:", "en": "Auth token:"},
    "cli.demo.signed_by": {
        "nb": "Signert av: {holder}, {id_code} (utsteder: {issuer})",
        "nn": "Signert av: {holder}, {id_code} (utferdar: {issuer})",
        "en": "Signed by: {holder}, {id_code} (issuer: {issuer})",
    },
    # cardbridge config
    "cli.config.file": {"nb": "Innstillingsfil: {path}", "nn": "Innstillingsfil: {path}", "en": "Config file: {path}"},
    "cli.config.missing": {
        "nb": "(fila finnes ikke; dette er standardinnstillingene)",
        "nn": "(fila finst ikkje; dette er standardinnstillingane)",
        "en": "(the file does not exist; these are the defaults)",
    },
    "cli.config.unset": {"nb": "(ikke satt)", "nn": "(ikkje sett)", "en": "(not set)"},
    "cli.origins.policy.ask": {
        "nb": "Nye nettsteder: du blir spurt første gang. Tillatte nettsteder:",
        "nn": "Nye nettstader: du blir spurd første gong. Tillatne nettstader:",
        "en": "New websites: you are asked the first time. Allowed websites:",
    },
    "cli.origins.policy.allow-list": {
        "nb": "Bare nettstedene på listen kan bruke ID-kortet:",
        "nn": "Berre nettstadene på lista kan bruke ID-kortet:",
        "en": "Only the websites on the list may use the ID card:",
    },
    "cli.origins.by_config": {"nb": "i innstillingene", "nn": "i innstillingane", "en": "in the settings"},
    "cli.origins.by_you": {"nb": "tillatt av deg {at}", "nn": "tillate av deg {at}", "en": "allowed by you {at}"},
    "cli.origins.denied": {"nb": "nektet", "nn": "nekta", "en": "refused"},
    "cli.origins.none": {
        "nb": "  (ingen ennå)",
        "nn": "  (ingen enno)",
        "en": "  (none yet)",
    },
    "cli.origins.allow": {
        "nb": "{origin} kan nå bruke ID-kortet (du blir fortsatt bedt om PIN-koden).",
        "nn": "{origin} kan no bruke ID-kortet (du blir framleis beden om PIN-koden).",
        "en": "{origin} may now use the ID card (you are still asked for the PIN).",
    },
    "cli.origins.forget": {
        "nb": "Glemt: {origin}. Du blir spurt igjen neste gang nettstedet vil bruke kortet.",
        "nn": "Gløymt: {origin}. Du blir spurd igjen neste gong nettstaden vil bruke kortet.",
        "en": "Forgotten: {origin}. You will be asked again the next time it wants the card.",
    },
    "cli.origins.forget_none": {
        "nb": "Du hadde ikke svart for {origin}; ingenting å glemme.",
        "nn": "Du hadde ikkje svart for {origin}; ingenting å gløyme.",
        "en": "You had not answered for {origin}; nothing to forget.",
    },
    "cli.config.system_file": {
        "nb": "Systemets innstillingsfil: {path}",
        "nn": "Systemet si innstillingsfil: {path}",
        "en": "System config file: {path}",
    },
    "cli.config.source.default": {"nb": "standard", "nn": "standard", "en": "default"},
    "cli.config.source.system": {"nb": "fra systemets fil", "nn": "frå systemet si fil", "en": "from the system file"},
    "cli.config.source.user": {"nb": "fra din fil", "nn": "frå fila di", "en": "from your file"},
    "cli.config.source.system_user": {
        "nb": "fra begge filene",
        "nn": "frå begge filene",
        "en": "from both files",
    },
    # cardbridge install-service
    "cli.service.unit": {
        "nb": "Bakgrunnstjenesten er installert: {path}",
        "nn": "Bakgrunnstenesta er installert: {path}",
        "en": "The background service is installed: {path}",
    },
    "cli.service.autostart": {
        "nb": "Oppstartsoppføringen er installert: {path}",
        "nn": "Oppstartsoppføringa er installert: {path}",
        "en": "The autostart entry is installed: {path}",
    },
    "cli.service.started": {
        "nb": "Bakgrunnstjenesten er startet og starter hver gang du logger på.",
        "nn": "Bakgrunnstenesta er starta og startar kvar gong du loggar på.",
        "en": "The background service is started, and it starts every time you log in.",
    },
    "cli.service.run_start": {
        "nb": "Start den nå og ved hver pålogging med:",
        "nn": "Start henne no og ved kvar pålogging med:",
        "en": "Start it now and at every login with:",
    },
    "cli.service.removed": {"nb": "Fjernet: {path}", "nn": "Fjerna: {path}", "en": "Removed: {path}"},
    "cli.service.stopped": {
        "nb": "Bakgrunnstjenesten er stoppet og fjernet.",
        "nn": "Bakgrunnstenesta er stoppa og fjerna.",
        "en": "The background service is stopped and removed.",
    },
    "cli.service.run_stop": {
        "nb": "Stopp den med:",
        "nn": "Stopp henne med:",
        "en": "Stop it with:",
    },
    "cli.service.failed": {
        "nb": "Kommandoen mislyktes (kode {code}): {command}",
        "nn": "Kommandoen mislukkast (kode {code}): {command}",
        "en": "The command failed (code {code}): {command}",
    },
    "cli.service.unsupported": {
        "nb": "install-service setter opp systemd og XDG-autostart på Linux. For macOS (launchd) og Windows: se README.",
        "nn": "install-service set opp systemd og XDG-autostart på Linux. For macOS (launchd) og Windows: sjå README.",
        "en": "install-service sets up systemd and XDG autostart on Linux. For macOS (launchd) and Windows, see the README.",
    },
    "cli.service.nothing": {
        "nb": "Ingenting å fjerne: bakgrunnstjenesten var ikke installert.",
        "nn": "Ingenting å fjerne: bakgrunnstenesta var ikkje installert.",
        "en": "Nothing to remove: the background service was not installed.",
    },
    # cardbridge serve (the "listening on" line stays as it is: scripts read it)
    "cli.serve.allowed": {
        "nb": "tillatte nettsteder: {origins}",
        "nn": "tillatne nettstader: {origins}",
        "en": "allowed origins: {origins}",
    },
    "cli.serve.asks": {
        "nb": "En ny nettside som vil bruke ID-kortet, blir spurt om én gang (origin_policy = ask).",
        "nn": "Ei ny nettside som vil bruke ID-kortet, vert spurd om éin gong (origin_policy = ask).",
        "en": "A new website that wants the ID card is asked about once (origin_policy = ask).",
    },
    "cli.serve.no_origins": {
        "nb": 'Ingen nettsteder er tillatt ennå, så alle forespørsler avvises (ORIGIN_NOT_ALLOWED). Tillat en innloggingsside med --allow-origin https://login.example.no, eller allowed_origins = ["https://login.example.no"] i {path}.',
        "nn": 'Ingen nettstader er tillatne enno, så alle førespurnader vert avviste (ORIGIN_NOT_ALLOWED). Tillat ei innloggingsside med --allow-origin https://login.example.no, eller allowed_origins = ["https://login.example.no"] i {path}.',
        "en": 'No origin is allowed yet, so every request is refused (ORIGIN_NOT_ALLOWED). Allow a login page with --allow-origin https://login.example.no, or allowed_origins = ["https://login.example.no"] in {path}.',
    },
    # cardbridge list: a reader and its card
    "cli.list.reader": {"nb": "[{reader}] {card}", "nn": "[{reader}] {card}", "en": "[{reader}] {card}"},
    "cli.list.reader_card": {
        "nb": "{name} (ATR {atr})",
        "nn": "{name} (ATR {atr})",
        "en": "{name} (ATR {atr})",
    },
    "cli.list.reader_empty": {"nb": "ingen kort", "nn": "inkje kort", "en": "no card"},
    # cardbridge dev card
    "cli.card.ready": {
        "nb": "Virtuelt kort ({title}) i leseren «{reader}» (nøkkel {kind}, {pin}).",
        "nn": "Virtuelt kort ({title}) i lesaren «{reader}» (nøkkel {kind}, {pin}).",
        "en": "Virtual card ({title}) in reader '{reader}' (key {kind}, {pin}).",
    },
    "cli.card.control": {
        "nb": "Ta ut: kill -USR1 $(cat {pidfile})   Sett inn: kill -USR2 $(cat {pidfile})   Stopp: Ctrl-C",
        "nn": "Ta ut: kill -USR1 $(cat {pidfile})   Set inn: kill -USR2 $(cat {pidfile})   Stopp: Ctrl-C",
        "en": "Remove: kill -USR1 $(cat {pidfile})   Insert: kill -USR2 $(cat {pidfile})   Stop: Ctrl-C",
    },
    "cli.card.inserted": {"nb": "kortet er satt inn", "nn": "kortet er sett inn", "en": "card inserted"},
    "cli.card.removed": {"nb": "kortet er tatt ut", "nn": "kortet er teke ut", "en": "card removed"},
    # cardbridge install-native-host
    "cli.nativehost.change": {
        "nb": "{action:8} {path}  ({browser})",
        "nn": "{action:8} {path}  ({browser})",
        "en": "{action:8} {path}  ({browser})",
    },
    "doctor.report.written": {
        "nb": "Rapporten er lagret i {path}. Send den til brukerstøtte.",
        "nn": "Rapporten er lagra i {path}. Send han til brukarstøtta.",
        "en": "The report is saved in {path}. Send it to support.",
    },
    "cli.nativehost.next": {
        "nb": "Start nettleseren på nytt, og installer så cardbridge-utvidelsen (native-host/extension).",
        "nn": "Start nettlesaren på nytt, og installer så cardbridge-utvidinga (native-host/extension).",
        "en": "Restart the browser, then install the cardbridge extension (native-host/extension).",
    },
}
