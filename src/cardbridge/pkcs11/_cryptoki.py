"""The few Cryptoki calls python-pkcs11 does not give us in the form we need.

python-pkcs11 logs in with a ``str`` PIN (which cannot be wiped), leaks the session when
C_Login fails, and does not expose ``ulMinPinLen``/``ulMaxPinLen``. This module reaches the
same, already initialised module through its own ``C_GetFunctionList`` and calls
``C_GetTokenInfo``, ``C_Login`` (from a wipeable ``bytearray``, no copy) and ``C_Logout``
on the session handle that python-pkcs11 opened, and ``C_CloseAllSessions`` at shutdown.
``dlopen`` of a loaded library returns the same handle, so both see one module state.
Only Unix ABIs (natural alignment) are handled.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

CK_ULONG = ctypes.c_ulong
CK_RV = CK_ULONG

CKU_USER = 1

CKF_LOGIN_REQUIRED = 0x00000004
CKF_USER_PIN_INITIALIZED = 0x00000008
CKF_PROTECTED_AUTHENTICATION_PATH = 0x00000100
CKF_USER_PIN_COUNT_LOW = 0x00010000
CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000

# Positions of the functions in CK_FUNCTION_LIST (after the CK_VERSION).
_GET_TOKEN_INFO = 6
_CLOSE_ALL_SESSIONS = 14
_LOGIN = 18
_LOGOUT = 19
_FUNCTIONS = 68


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _TokenInfo(ctypes.Structure):
    _fields_ = (
        ("label", ctypes.c_ubyte * 32),
        ("manufacturerID", ctypes.c_ubyte * 32),
        ("model", ctypes.c_ubyte * 16),
        ("serialNumber", ctypes.c_ubyte * 16),
        ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG),
        ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG),
        ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG),
        ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG),
        ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG),
        ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", _Version),
        ("firmwareVersion", _Version),
        ("utcTime", ctypes.c_ubyte * 16),
    )


class _FunctionList(ctypes.Structure):
    _fields_ = (("version", _Version), *((f"f{i}", ctypes.c_void_p) for i in range(_FUNCTIONS)))


_GetTokenInfo = ctypes.CFUNCTYPE(CK_RV, CK_ULONG, ctypes.POINTER(_TokenInfo))
_Login = ctypes.CFUNCTYPE(CK_RV, CK_ULONG, CK_ULONG, ctypes.c_void_p, CK_ULONG)
_Logout = ctypes.CFUNCTYPE(CK_RV, CK_ULONG)
_CloseAllSessions = ctypes.CFUNCTYPE(CK_RV, CK_ULONG)


@dataclass(frozen=True, slots=True)
class TokenState:
    """Flags and PIN limits read with C_GetTokenInfo."""

    flags: int
    min_pin_length: int
    max_pin_length: int


class CryptokiError(Exception):
    """A Cryptoki call returned ``rv`` (converted by ``pkcs11.errors``)."""

    def __init__(self, function: str, rv: int) -> None:
        super().__init__(f"{function} returned CKR 0x{rv:08X}")
        self.function = function
        self.rv = rv


class Cryptoki:
    """Raw calls into one loaded module."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)
        get_list = self._lib.C_GetFunctionList
        get_list.restype = CK_RV
        get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        pointer = ctypes.POINTER(_FunctionList)()
        rv = get_list(ctypes.byref(pointer))
        if rv != 0:
            raise CryptokiError("C_GetFunctionList", rv)
        functions = pointer.contents
        self._get_token_info = _GetTokenInfo(getattr(functions, f"f{_GET_TOKEN_INFO}"))
        self._login = _Login(getattr(functions, f"f{_LOGIN}"))
        self._logout = _Logout(getattr(functions, f"f{_LOGOUT}"))
        self._close_all_sessions = _CloseAllSessions(getattr(functions, f"f{_CLOSE_ALL_SESSIONS}"))

    def token_state(self, slot_id: int) -> TokenState:
        info = _TokenInfo()
        rv = self._get_token_info(slot_id, ctypes.byref(info))
        if rv != 0:
            raise CryptokiError("C_GetTokenInfo", rv)
        return TokenState(int(info.flags), int(info.ulMinPinLen), int(info.ulMaxPinLen))

    def login(self, session: int, pin: bytearray | None) -> None:
        """C_Login as the user: with ``pin``, or with none on a protected path (PIN pad)."""
        if pin is None or len(pin) == 0:
            rv = self._login(session, CKU_USER, None, 0)
        else:
            # The module reads the caller's buffer itself (no copy); the export ends with
            # this call, so the caller can wipe the buffer as soon as it returns.
            buffer = (ctypes.c_ubyte * len(pin)).from_buffer(pin)
            try:
                rv = self._login(session, CKU_USER, ctypes.addressof(buffer), len(pin))
            finally:
                del buffer
        if rv != 0:
            raise CryptokiError("C_Login", rv)

    def logout(self, session: int) -> None:
        rv = self._logout(session)
        if rv != 0:
            raise CryptokiError("C_Logout", rv)

    def close_all_sessions(self, slot_id: int) -> None:
        """C_CloseAllSessions: closing a token's last session also logs its user out."""
        rv = self._close_all_sessions(slot_id)
        if rv != 0:
            raise CryptokiError("C_CloseAllSessions", rv)
