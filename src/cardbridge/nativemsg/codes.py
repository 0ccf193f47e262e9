"""How cardbridge's stable error codes map onto the Web eID error codes.

The host answers an error with ``{"error": {"code": WEB_EID_CODE, "message": ...,
"cardbridgeCode": OUR_CODE[, "retriesLeft": n]}}``: a Web eID extension or web-eid.js sees
a code it knows, and our extension maps ``cardbridgeCode`` straight back (the page gets our
stable codes). Web eID has no codes for PIN, card or allow-list failures; its own app reports
them as ERR_WEBEID_NATIVE_FATAL too, so we do the same and keep the detail in
``cardbridgeCode``. PIN_NOT_ACTIVE (the card says the PIN must be changed or the card
activated first) is one of them: the Web eID app shows that in its window and lets the
person only cancel, where cardbridge opens no window and answers at once.

| cardbridge code                                   | Web eID code                          |
|---------------------------------------------------|---------------------------------------|
| USER_CANCELLED                                    | ERR_WEBEID_USER_CANCELLED             |
| USER_TIMEOUT                                      | ERR_WEBEID_USER_TIMEOUT               |
| INVALID_ORIGIN, INVALID_NONCE, INVALID_ARGUMENT   | ERR_WEBEID_NATIVE_INVALID_ARGUMENT    |
| BUSY                                              | ERR_WEBEID_ACTION_PENDING             |
| every other code (PIN_*, NO_*, CARD_*, MODULE_*,  | ERR_WEBEID_NATIVE_FATAL               |
| ORIGIN_NOT_ALLOWED, CONFIG_ERROR, INTERNAL, …)    |                                       |

The reverse (what our extension does with an error that has no ``cardbridgeCode``) is
:data:`FROM_WEBEID`; ``native-host/extension/codes.js`` carries the same table.

Strings only: the host imports this at start-up.
"""

from __future__ import annotations

USER_CANCELLED = "ERR_WEBEID_USER_CANCELLED"
USER_TIMEOUT = "ERR_WEBEID_USER_TIMEOUT"
INVALID_ARGUMENT = "ERR_WEBEID_NATIVE_INVALID_ARGUMENT"
ACTION_PENDING = "ERR_WEBEID_ACTION_PENDING"
NATIVE_FATAL = "ERR_WEBEID_NATIVE_FATAL"

TO_WEBEID: dict[str, str] = {
    "USER_CANCELLED": USER_CANCELLED,
    "USER_TIMEOUT": USER_TIMEOUT,
    "INVALID_ORIGIN": INVALID_ARGUMENT,
    "INVALID_NONCE": INVALID_ARGUMENT,
    "INVALID_ARGUMENT": INVALID_ARGUMENT,
    "BUSY": ACTION_PENDING,
}

FROM_WEBEID: dict[str, str] = {
    USER_CANCELLED: "USER_CANCELLED",
    USER_TIMEOUT: "USER_TIMEOUT",
    INVALID_ARGUMENT: "INVALID_ARGUMENT",
    ACTION_PENDING: "BUSY",
    NATIVE_FATAL: "INTERNAL",
}


def webeid_code(code: str) -> str:
    """The Web eID code for one of our codes."""
    return TO_WEBEID.get(code, NATIVE_FATAL)


def error_frame(code: str, message: str, retries_left: int | None = None) -> dict[str, object]:
    """The error message the host sends."""
    error: dict[str, object] = {"code": webeid_code(code), "message": message, "cardbridgeCode": code}
    if retries_left is not None:
        error["retriesLeft"] = retries_left
    return {"error": error}
