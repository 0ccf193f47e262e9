"""One error tree with stable codes.

Every failure that leaves a layer is a :class:`CardbridgeError` with a ``code`` from
:class:`Code`. Library errors (python-pkcs11, pyscard, aiohttp, OS errors) are converted
once, at the boundary of the layer that imports the library, with ``raise ... from``.
The codes are part of the public interface: the CLI prints them, the HTTP API returns them
in ``problem+json``, the native host maps them onto Web eID codes. Never rename one.

A message never contains a PIN.
"""

from __future__ import annotations

import enum
from typing import Any


class Code(enum.StrEnum):
    """Stable error codes."""

    # Input the caller gave.
    INVALID_ORIGIN = "INVALID_ORIGIN"
    INVALID_NONCE = "INVALID_NONCE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    # Finding the card, certificate and key.
    NO_TOKEN = "NO_TOKEN"
    NO_CERTIFICATE = "NO_CERTIFICATE"
    AMBIGUOUS_CERTIFICATE = "AMBIGUOUS_CERTIFICATE"
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    UNSUPPORTED_KEY = "UNSUPPORTED_KEY"
    DUAL_USE_KEY = "DUAL_USE_KEY"
    # The PIN.
    PIN_INCORRECT = "PIN_INCORRECT"
    PIN_BLOCKED = "PIN_BLOCKED"
    PIN_INVALID_LENGTH = "PIN_INVALID_LENGTH"
    PIN_NOT_ACTIVE = "PIN_NOT_ACTIVE"
    # The person.
    USER_CANCELLED = "USER_CANCELLED"
    USER_TIMEOUT = "USER_TIMEOUT"
    PINENTRY_FAILED = "PINENTRY_FAILED"
    # The card, reader and PC/SC service.
    CARD_REMOVED = "CARD_REMOVED"
    CARD_BUSY = "CARD_BUSY"
    CARD_RESET = "CARD_RESET"
    NO_CARD = "NO_CARD"
    NO_READERS = "NO_READERS"
    SERVICE_NOT_RUNNING = "SERVICE_NOT_RUNNING"
    UNSUPPORTED_CARD = "UNSUPPORTED_CARD"
    CARD_ERROR = "CARD_ERROR"
    # PKCS#11 modules.
    MODULE_ERROR = "MODULE_ERROR"
    MODULE_NOT_FOUND = "MODULE_NOT_FOUND"
    # The bridge itself.
    BUSY = "BUSY"
    CONFIG_ERROR = "CONFIG_ERROR"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    HOST_NOT_ALLOWED = "HOST_NOT_ALLOWED"
    INTERNAL = "INTERNAL"
    # The localhost HTTP API (cardbridge.server).
    PORT_IN_USE = "PORT_IN_USE"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"
    BRIDGE_STOPPING = "BRIDGE_STOPPING"
    # The portal: auth token validation (cardbridge.portal).
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_MALFORMED = "TOKEN_MALFORMED"
    TOKEN_FORMAT_UNSUPPORTED = "TOKEN_FORMAT_UNSUPPORTED"
    TOKEN_ALGORITHM_UNSUPPORTED = "TOKEN_ALGORITHM_UNSUPPORTED"
    TOKEN_ALGORITHM_KEY_MISMATCH = "TOKEN_ALGORITHM_KEY_MISMATCH"
    TOKEN_SIGNATURE_INVALID = "TOKEN_SIGNATURE_INVALID"
    CERTIFICATE_MALFORMED = "CERTIFICATE_MALFORMED"
    CERTIFICATE_WRONG_PURPOSE = "CERTIFICATE_WRONG_PURPOSE"
    CERTIFICATE_POLICY_DISALLOWED = "CERTIFICATE_POLICY_DISALLOWED"
    CERTIFICATE_NO_IDENTITY = "CERTIFICATE_NO_IDENTITY"
    CERTIFICATE_NOT_YET_VALID = "CERTIFICATE_NOT_YET_VALID"
    CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
    CERTIFICATE_UNTRUSTED = "CERTIFICATE_UNTRUSTED"
    OCSP_UNAVAILABLE = "OCSP_UNAVAILABLE"
    OCSP_INVALID_RESPONSE = "OCSP_INVALID_RESPONSE"
    OCSP_NONCE_MISMATCH = "OCSP_NONCE_MISMATCH"
    OCSP_SIGNER_UNTRUSTED = "OCSP_SIGNER_UNTRUSTED"
    OCSP_STALE = "OCSP_STALE"
    OCSP_REVOKED = "OCSP_REVOKED"
    OCSP_UNKNOWN = "OCSP_UNKNOWN"
    # The portal: challenge nonces.
    NONCE_UNKNOWN = "NONCE_UNKNOWN"
    NONCE_EXPIRED = "NONCE_EXPIRED"
    NONCE_USED = "NONCE_USED"
    NONCE_STORE_UNAVAILABLE = "NONCE_STORE_UNAVAILABLE"


class CardbridgeError(Exception):
    """Base of every error cardbridge raises on purpose."""

    code: Code = Code.INTERNAL

    def __init__(self, message: str, *, retries_left: int | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.retries_left = retries_left
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON object (the CLI's ``--json`` shape)."""
        out: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.retries_left is not None:
            out["retriesLeft"] = self.retries_left
        out.update(self.details)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r})"


class InvalidInputError(CardbridgeError):
    """Input from the caller broke a rule; nothing touched a card."""

    code = Code.INVALID_ARGUMENT


class InvalidOriginError(InvalidInputError):
    """The origin is not a valid serialized web origin."""

    code = Code.INVALID_ORIGIN


class InvalidNonceError(InvalidInputError):
    """The challenge nonce breaks the length or character rules."""

    code = Code.INVALID_NONCE


class NoTokenError(CardbridgeError):
    """No token (card) could be found."""

    code = Code.NO_TOKEN


class NoCertificateError(CardbridgeError):
    """No certificate for the purpose asked for."""

    code = Code.NO_CERTIFICATE


class AmbiguousCertificateError(CardbridgeError):
    """Several certificates fit; the caller must choose (``candidates`` lists them)."""

    code = Code.AMBIGUOUS_CERTIFICATE


class KeyNotFoundError(CardbridgeError):
    """The certificate's private key is missing or not unique."""

    code = Code.KEY_NOT_FOUND


class UnsupportedKeyError(CardbridgeError):
    """A key type or size that cardbridge does not sign with."""

    code = Code.UNSUPPORTED_KEY


class DualUseKeyError(CardbridgeError):
    """The signing key's certificate (or another certificate of the same key) is also
    accepted for login: a signature over a caller's hash could be a login token for another
    site, so the bridge does not sign with it."""

    code = Code.DUAL_USE_KEY


class PinError(CardbridgeError):
    """Base of the PIN errors."""

    code = Code.PIN_INCORRECT


class PinIncorrectError(PinError):
    """The card refused the PIN; ``retries_left`` when the card tells."""

    code = Code.PIN_INCORRECT


class PinRepeatedError(PinIncorrectError):
    """The PIN is one the card already refused in this login; it was not sent again."""

    code = Code.PIN_INCORRECT


class PinBlockedError(PinError):
    """The PIN is blocked; it is never tried."""

    code = Code.PIN_BLOCKED


class PinInvalidLengthError(PinError):
    """The PIN is shorter or longer than the card allows; it was not sent."""

    code = Code.PIN_INVALID_LENGTH


class PinNotActiveError(PinError):
    """The card says its holder has not activated the PIN yet (it must be changed, or the
    card activated, with the country's own card software first); it is never asked for nor
    tried. ``pin`` (``login``/``signing``) and ``country`` (the certificate's) pick the advice."""

    code = Code.PIN_NOT_ACTIVE


class UserCancelledError(CardbridgeError):
    """The person cancelled the dialog (or the caller went away)."""

    code = Code.USER_CANCELLED


class UserTimeoutError(CardbridgeError):
    """The person did not answer in time."""

    code = Code.USER_TIMEOUT


class PinentryError(CardbridgeError):
    """The PIN dialog program could not be started or broke the protocol."""

    code = Code.PINENTRY_FAILED


class CardError(CardbridgeError):
    """Base of card, reader and PC/SC errors."""

    code = Code.CARD_ERROR


class CardRemovedError(CardError):
    """The card was removed during the operation."""

    code = Code.CARD_REMOVED


class CardBusyError(CardError):
    """Another program holds the card."""

    code = Code.CARD_BUSY


class CardResetError(CardError):
    """The card was reset by another program during the operation."""

    code = Code.CARD_RESET


class NoCardError(CardError):
    """No card in the reader."""

    code = Code.NO_CARD


class NoReadersError(CardError):
    """No card reader is connected."""

    code = Code.NO_READERS


class ServiceNotRunningError(CardError):
    """The PC/SC service (pcscd) does not run or cannot be reached."""

    code = Code.SERVICE_NOT_RUNNING


class UnsupportedCardError(CardError):
    """The card in the reader is not one cardbridge can use."""

    code = Code.UNSUPPORTED_CARD


class ModuleError(CardbridgeError):
    """A PKCS#11 module failed."""

    code = Code.MODULE_ERROR


class ModuleMissingError(ModuleError):
    """A PKCS#11 module path does not exist or is not absolute."""

    code = Code.MODULE_NOT_FOUND


class BusyError(CardbridgeError):
    """Another card operation is under way."""

    code = Code.BUSY


class ConfigError(CardbridgeError):
    """The configuration is invalid or unsafe."""

    code = Code.CONFIG_ERROR


class OriginNotAllowedError(CardbridgeError):
    """The origin is valid but not on the allow-list."""

    code = Code.ORIGIN_NOT_ALLOWED


class HostNotAllowedError(CardbridgeError):
    """The HTTP Host header is not the bridge's own loopback address."""

    code = Code.HOST_NOT_ALLOWED


class PortInUseError(ConfigError):
    """The HTTP API's port is taken; the bridge never moves to another port by itself."""

    code = Code.PORT_IN_USE


class NotFoundError(InvalidInputError):
    """No such HTTP endpoint."""

    code = Code.NOT_FOUND


class MethodNotAllowedError(InvalidInputError):
    """The HTTP endpoint exists but not with this method."""

    code = Code.METHOD_NOT_ALLOWED


class RequestTooLargeError(InvalidInputError):
    """The HTTP request body is larger than the limit; it was not read."""

    code = Code.REQUEST_TOO_LARGE


class UnsupportedMediaTypeError(InvalidInputError):
    """The HTTP request body is not ``application/json``."""

    code = Code.UNSUPPORTED_MEDIA_TYPE


class RequestTimeoutError(InvalidInputError):
    """The HTTP request body did not arrive in time; the connection is closed."""

    code = Code.REQUEST_TIMEOUT


class BridgeStoppingError(CardbridgeError):
    """The bridge is stopping (SIGTERM, SIGINT): what was under way was cancelled, unsigned."""

    code = Code.BRIDGE_STOPPING


class InternalError(CardbridgeError):
    """A bug: something that should not happen happened."""

    code = Code.INTERNAL


__all__ = [name for name in dir() if name.endswith("Error") or name == "Code"]
