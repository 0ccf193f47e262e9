"""The native-messaging host: the browser extension's way to the card.

The browser starts ``cardbridge native-host`` (through the launcher that
``cardbridge install-native-host`` writes) and speaks to it over stdin and stdout: each
message is a 32-bit length in native byte order followed by UTF-8 JSON. The protocol is the
one the Web eID extension speaks to its native app (``framing``, ``host``); errors carry
Web eID codes where one fits, and our own stable code beside it (``codes``).

Start-up must stay fast: this package imports nothing heavy until a command needs it.
"""

HOST_NAME = "no.cardbridge.host"

# Our extension (native-host/extension): the Chrome id follows from the "key" in its
# manifest.json (the first 32 hex digits of SHA-256 of the public key, 0-f → a-p); the
# Firefox id is the "browser_specific_settings.gecko.id" there.
EXTENSION_CHROME_ID = "lpofidgjknhefhoajeebdlcfmapohlip"
EXTENSION_FIREFOX_ID = "cardbridge@cardbridge.invalid"
# The Web eID extension: Chrome Web Store, Edge Add-ons, and Firefox (addons.mozilla.org).
WEBEID_CHROME_IDS = ("ncibgoaomkmdpilpocfeponihegamlic", "gnmckgbandlkacikdndelhfghdejfido")
WEBEID_FIREFOX_ID = "{e68418bc-f2b0-4459-a9ea-3e72b6751b07}"

CHROME_EXTENSION_IDS = (EXTENSION_CHROME_ID, *WEBEID_CHROME_IDS)
FIREFOX_EXTENSION_IDS = (EXTENSION_FIREFOX_ID, WEBEID_FIREFOX_ID)
