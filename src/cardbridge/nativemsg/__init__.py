"""The native-messaging host: the browser extension's way to the card.

The browser starts ``cardbridge native-host`` (through the launcher that
``cardbridge install-native-host`` writes) and speaks to it over stdin and stdout: each
message is a 32-bit length in native byte order followed by UTF-8 JSON. The protocol is the
one the Web eID extension speaks to its native app (``framing``, ``host``); errors carry
Web eID codes where one fits, and our own stable code beside it (``codes``).

Start-up must stay fast: this package imports nothing heavy until a command needs it.
"""

HOST_NAME = "no.cardbridge.host"
# The name the Web eID extension connects to; cardbridge answers it when installed with
# ``install-native-host --web-eid`` (standing in for the Web eID app).
WEBEID_HOST_NAME = "eu.webeid"
# The Web eID native protocol that the host speaks: the commands, frames and errors of the
# Web eID app 2.x, as the Web eID extension 2.5 and web-eid.js 2.x use them. The extension
# and web-eid.js read the handshake's version as SemVer and refuse a native app whose major
# version is below their own (2), so the handshake says this protocol version, with
# cardbridge's own version as SemVer build metadata (which both parsers accept and ignore
# when they compare): e.g. ``2.5.0+cardbridge.0.1.0``.
WEBEID_PROTOCOL_VERSION = "2.5.0"

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


def handshake_message(version: str) -> bytes:
    """The handshake, ``{"version":"…"}`` with :func:`handshake_version`, encoded as
    ``framing.encode_message`` would (the host writes it before ``json`` is loaded): the
    characters of that version need no escaping in JSON."""
    return b'{"version":"' + handshake_version(version).encode("ascii") + b'"}'


def handshake_version(version: str) -> str:
    """The ``version`` the host says first: the Web eID protocol version it implements, with
    cardbridge's ``version`` as build metadata (characters SemVer does not allow there
    become ``-``)."""
    build = "".join(c if c.isascii() and (c.isalnum() or c in ".-") else "-" for c in version).strip(".") or "0"
    return f"{WEBEID_PROTOCOL_VERSION}+cardbridge.{build}"
