"""The one place where a PKCS#11 return value becomes a cardbridge error."""

from __future__ import annotations

import pkcs11.exceptions as p11x

from cardbridge.errors import (
    CardbridgeError,
    CardRemovedError,
    ModuleError,
    NoTokenError,
    PinBlockedError,
    PinIncorrectError,
    PinInvalidLengthError,
    UnsupportedKeyError,
    UserCancelledError,
)
from cardbridge.pkcs11._cryptoki import CryptokiError

# CKR_ values, named as in the PKCS#11 specification.
CKR_FUNCTION_CANCELED = 0x50
CKR_DEVICE_REMOVED = 0x32
CKR_PIN_INCORRECT = 0xA0
CKR_PIN_INVALID = 0xA1
CKR_PIN_LEN_RANGE = 0xA2
CKR_PIN_EXPIRED = 0xA3
CKR_PIN_LOCKED = 0xA4
CKR_SESSION_CLOSED = 0xB0
CKR_SESSION_HANDLE_INVALID = 0xB3
CKR_TOKEN_NOT_PRESENT = 0xE0
CKR_TOKEN_NOT_RECOGNIZED = 0xE1
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_USER_PIN_NOT_INITIALIZED = 0x102

_BY_RV: dict[int, tuple[type[CardbridgeError], str]] = {
    CKR_PIN_INCORRECT: (PinIncorrectError, "The PIN is wrong."),
    CKR_PIN_INVALID: (PinIncorrectError, "The PIN has characters the card does not accept."),
    CKR_PIN_LEN_RANGE: (PinInvalidLengthError, "The PIN is too short or too long."),
    CKR_PIN_LOCKED: (PinBlockedError, "The PIN is blocked."),
    CKR_PIN_EXPIRED: (PinBlockedError, "The PIN has expired and must be changed."),
    CKR_DEVICE_REMOVED: (CardRemovedError, "The card was removed."),
    CKR_TOKEN_NOT_PRESENT: (CardRemovedError, "The card was removed."),
    CKR_SESSION_CLOSED: (CardRemovedError, "The card was removed or reset."),
    CKR_SESSION_HANDLE_INVALID: (CardRemovedError, "The card was removed or reset."),
    CKR_TOKEN_NOT_RECOGNIZED: (NoTokenError, "The module does not recognise the card."),
    CKR_FUNCTION_CANCELED: (UserCancelledError, "The operation was cancelled."),
    CKR_USER_PIN_NOT_INITIALIZED: (PinBlockedError, "The card has no PIN set."),
}

_BY_CLASS: dict[type[Exception], int] = {
    p11x.PinIncorrect: CKR_PIN_INCORRECT,
    p11x.PinInvalid: CKR_PIN_INVALID,
    p11x.PinLenRange: CKR_PIN_LEN_RANGE,
    p11x.PinLocked: CKR_PIN_LOCKED,
    p11x.PinExpired: CKR_PIN_EXPIRED,
    p11x.DeviceRemoved: CKR_DEVICE_REMOVED,
    p11x.TokenNotPresent: CKR_TOKEN_NOT_PRESENT,
    p11x.SessionClosed: CKR_SESSION_CLOSED,
    p11x.SessionHandleInvalid: CKR_SESSION_HANDLE_INVALID,
    p11x.TokenNotRecognised: CKR_TOKEN_NOT_RECOGNIZED,
    p11x.FunctionCancelled: CKR_FUNCTION_CANCELED,
    p11x.UserPinNotInitialized: CKR_USER_PIN_NOT_INITIALIZED,
}


def convert(exc: BaseException, context: str) -> CardbridgeError:
    """Turn a python-pkcs11 exception or a raw ``CryptokiError`` into our error tree.

    ``context`` says what was being done ("signing", "reading the certificates", …).
    """
    if isinstance(exc, CardbridgeError):
        return exc
    rv: int | None = None
    if isinstance(exc, CryptokiError):
        rv = exc.rv
    else:
        for cls, value in _BY_CLASS.items():
            if isinstance(exc, cls):
                rv = value
                break
    if rv is not None and rv in _BY_RV:
        error_type, message = _BY_RV[rv]
        return error_type(message)
    if isinstance(exc, p11x.MechanismInvalid | p11x.KeyTypeInconsistent | p11x.KeySizeRange):
        return UnsupportedKeyError(f"The card cannot sign with this key ({type(exc).__name__}).")
    detail = f"CKR 0x{rv:08X}" if rv is not None else type(exc).__name__
    return ModuleError(f"The PKCS#11 module failed while {context} ({detail}).")
