"""Frozen data shared by every layer, and the Token protocol that every card backend meets.

A backend (PKCS#11 in ``cardbridge.pkcs11``, the built-in PC/SC drivers in
``cardbridge.pcsc``) hands out :class:`Token` objects. Their methods block (they talk to a
card) and must run on the token's own ``executor``; the service does that, so callers never
do card I/O on an event loop.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class Purpose(enum.StrEnum):
    """What a certificate on an ID card is for."""

    AUTHENTICATION = "authentication"
    SIGNING = "signing"
    OTHER = "other"


class PinKind(enum.StrEnum):
    """Which PIN a dialog asks for."""

    AUTHENTICATION = "authentication"
    SIGNING = "signing"


# The names below are Web eID's (``supportedSignatureAlgorithms``) and the token format's:
# StrEnum members are their strings, on the wire and in comparisons.


class CryptoAlgorithm(enum.StrEnum):
    """A signature's public-key algorithm (Web eID's ``cryptoAlgorithm``)."""

    ECC = "ECC"
    RSA = "RSA"


class HashFunction(enum.StrEnum):
    """A hash (Web eID's ``hashFunction``)."""

    SHA224 = "SHA-224"
    SHA256 = "SHA-256"
    SHA384 = "SHA-384"
    SHA512 = "SHA-512"


class Padding(enum.StrEnum):
    """A signature's padding (Web eID's ``paddingScheme``): NONE for ECDSA."""

    NONE = "NONE"
    PKCS1_5 = "PKCS1.5"
    PSS = "PSS"


class KeyType(enum.StrEnum):
    """A certificate's key type, as ``list`` shows it (``keyType``)."""

    EC = "EC"
    RSA = "RSA"


class BackendKind(enum.StrEnum):
    """Which backend reaches a token (``TokenInfo.backend``)."""

    PKCS11 = "pkcs11"
    PCSC = "pcsc"


# The hashes a card is asked to sign with, in order of preference after a curve's own.
SIGNING_HASHES = (HashFunction.SHA256, HashFunction.SHA384, HashFunction.SHA512)
HASH_LENGTHS: dict[str, int] = {
    HashFunction.SHA224: 28,
    HashFunction.SHA256: 32,
    HashFunction.SHA384: 48,
    HashFunction.SHA512: 64,
}
# The hash that goes with each ECDSA curve (its natural strength): ES256, ES384, ES512.
CURVE_HASHES: dict[str, HashFunction] = {
    "secp256r1": HashFunction.SHA256,
    "secp384r1": HashFunction.SHA384,
    "secp521r1": HashFunction.SHA512,
}
DIGEST_INFO_PREFIXES: dict[str, bytes] = {
    HashFunction.SHA224: bytes.fromhex("302d300d06096086480165030402040500041c"),
    HashFunction.SHA256: bytes.fromhex("3031300d060960864801650304020105000420"),
    HashFunction.SHA384: bytes.fromhex("3041300d060960864801650304020205000430"),
    HashFunction.SHA512: bytes.fromhex("3051300d060960864801650304020305000440"),
}
"""The DER DigestInfo before a digest of each hash (RFC 8017, 9.2, note 1): PKCS#1 v1.5."""
_HASHLIB_NAMES: dict[str, str] = {
    HashFunction.SHA224: "sha224",
    HashFunction.SHA256: "sha256",
    HashFunction.SHA384: "sha384",
    HashFunction.SHA512: "sha512",
}


def hash_bytes(hash_function: str, data: bytes) -> bytes:
    """``hash_function`` (``SHA-256`` …) of ``data``."""
    return hashlib.new(_HASHLIB_NAMES[hash_function], data).digest()


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """A signature algorithm as Web eID names it: crypto, hash and padding."""

    crypto: CryptoAlgorithm
    hash_function: HashFunction
    padding: Padding

    @property
    def jws(self) -> str:
        """The JWS name (ES384, RS256, PS256, …)."""
        prefix = {Padding.NONE: "ES", Padding.PKCS1_5: "RS", Padding.PSS: "PS"}[self.padding]
        return prefix + self.hash_function.removeprefix("SHA-")

    @classmethod
    def from_jws(cls, name: str) -> SignatureAlgorithm:
        """Parse a JWS name; raises ``KeyError`` for anything else."""
        crypto, padding = {
            "ES": (CryptoAlgorithm.ECC, Padding.NONE),
            "RS": (CryptoAlgorithm.RSA, Padding.PKCS1_5),
            "PS": (CryptoAlgorithm.RSA, Padding.PSS),
        }[name[:2]]
        bits = name[2:]
        if bits not in ("256", "384", "512"):
            raise KeyError(name)
        return cls(crypto, HashFunction("SHA-" + bits), padding)

    def to_webeid(self) -> dict[str, str]:
        """The ``supportedSignatureAlgorithms`` entry."""
        return {"cryptoAlgorithm": self.crypto, "hashFunction": self.hash_function, "paddingScheme": self.padding}


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """A certificate found on a token, parsed leniently (see ``cardbridge.certs``)."""

    der: bytes
    subject: str
    issuer: str
    serial: str  # hex
    not_before: dt.datetime
    not_after: dt.datetime
    key_type: KeyType | str  # another key's algorithm name, upper case, as the certificate gives it
    key_size: int  # bits
    curve: str | None  # "secp256r1", …
    purpose: Purpose
    common_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    id_code: str | None = None  # subject serialNumber, e.g. PNONO-…
    country: str | None = None
    key_id: bytes = b""  # CKA_ID or the PIV key reference
    label: str = ""

    @property
    def sha256(self) -> str:
        """SHA-256 of the DER, lower-case hex: how a caller picks a certificate."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def holder_name(self) -> str:
        """The person's name as a dialog shows it."""
        if self.given_name and self.surname:
            return f"{self.given_name} {self.surname}"
        return self.common_name or self.subject

    def to_dict(self) -> dict[str, Any]:
        """The ``cardbridge list --json`` shape of a certificate."""
        return {
            "sha256": self.sha256,
            "label": self.label,
            "purpose": str(self.purpose),
            "subject": self.subject,
            "issuer": self.issuer,
            "serialNumber": self.serial,
            "notBefore": self.not_before.isoformat(),
            "notAfter": self.not_after.isoformat(),
            "keyType": self.key_type,
            "keySize": self.key_size,
            "curve": self.curve,
            "holder": {
                "commonName": self.common_name,
                "givenName": self.given_name,
                "surname": self.surname,
                "idCode": self.id_code,
                "country": self.country,
            },
        }


@dataclass(frozen=True, slots=True)
class PinStatus:
    """What the token tells about a PIN before it is used."""

    retries_left: int | None = None  # when the token tells an exact number
    count_low: bool = False  # CKF_USER_PIN_COUNT_LOW: at least one wrong try
    final_try: bool = False  # CKF_USER_PIN_FINAL_TRY: one more wrong try blocks it
    blocked: bool = False
    not_active: bool = False  # the holder must change (activate) the PIN before it is used
    # When another PIN than the one asked for is the one not active: the Estonian Thales card
    # signs nothing while PIN1 is not active (the card itself is not activated yet).
    not_active_pin: PinKind | None = None
    min_length: int = 4
    max_length: int = 64
    protected_path: bool = False  # PIN pad reader: the PIN is typed on the reader
    name: str = ""  # the PIN's name as the card and its country call it ("PIN1", "PIN2", …)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """Where a token is and what it calls itself."""

    backend: BackendKind
    source: str  # module path or reader name
    label: str
    serial: str = ""
    manufacturer: str = ""
    model: str = ""
    slot: int | None = None
    reader: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "source": self.source,
            "label": self.label,
            "serial": self.serial,
            "manufacturer": self.manufacturer,
            "model": self.model,
        }
        if self.slot is not None:
            out["slot"] = self.slot
        if self.reader is not None:
            out["reader"] = self.reader
        out.update(self.extra)
        return out


@runtime_checkable
class Token(Protocol):
    """One card (or soft token) that can sign. Methods block: run them on ``executor``."""

    @property
    def info(self) -> TokenInfo: ...

    @property
    def executor(self) -> Executor: ...

    def certificates(self) -> Sequence[CertificateInfo]:
        """Every certificate on the token."""
        ...

    def pin_status(self, certificate: CertificateInfo) -> PinStatus:
        """The state of the PIN that guards ``certificate``'s key, read fresh."""
        ...

    def supported_algorithms(self, certificate: CertificateInfo) -> Sequence[SignatureAlgorithm]:
        """The signature algorithms the token can make with ``certificate``'s key."""
        ...

    def sign_digest(
        self,
        certificate: CertificateInfo,
        pin: bytearray | None,
        digest: bytes,
        algorithm: SignatureAlgorithm,
    ) -> bytes:
        """Log in once with ``pin`` (None on a PIN pad), sign ``digest``, log out.

        ECDSA signatures come back raw ``r || s``. A wrong PIN raises PinIncorrectError
        and is never retried. The caller wipes ``pin``.
        """
        ...


@dataclass(frozen=True, slots=True)
class TokenListing:
    """A token and its certificates, for ``list``."""

    info: TokenInfo
    certificates: tuple[CertificateInfo, ...]
    pin: PinStatus | None = None  # the PIN of the first certificate
    error: dict[str, Any] | None = None
    # The PIN of each certificate, in their order (``list_tokens(every_pin=True)``, for
    # ``doctor``): a two-PIN card signs with another PIN than it logs in with. None where
    # the token could not tell.
    pins: tuple[PinStatus | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"token": self.info.to_dict(), "certificates": [c.to_dict() for c in self.certificates]}
        if self.pin is not None:
            out["pin"] = {
                "retriesLeft": self.pin.retries_left,
                "countLow": self.pin.count_low,
                "finalTry": self.pin.final_try,
                "blocked": self.pin.blocked,
                "notActive": self.pin.not_active,
                "protectedAuthenticationPath": self.pin.protected_path,
            }
        if self.error is not None:
            out["error"] = self.error
        return out


# Every PC/SC reader with pcsc-lite's count of card insertions and removals in it, sorted.
ReadersState = tuple[tuple[str, int], ...]


@runtime_checkable
class Backend(Protocol):
    """A source of tokens: one PKCS#11 module, or the PC/SC readers with built-in drivers."""

    @property
    def name(self) -> str: ...

    @property
    def executor(self) -> Executor: ...

    @property
    def tokens_share_worker(self) -> bool:
        """True when its tokens' calls run on the backend's own worker (their ``executor``
        is the backend's: a PKCS#11 module's one thread), so one call on that worker can
        read its tokens too; False when each token has a thread of its own (a PC/SC
        reader's)."""
        ...

    def tokens(self, skip_readers: Collection[str] = (), readers: ReadersState | None = None) -> Sequence[Token]:
        """The tokens present now, but none in ``skip_readers``: readers whose card a
        built-in driver of this process serves (the direct driver wins), left out before
        the token is asked anything, since a module may read the card to answer (OpenSC's
        C_GetTokenInfo reads the PIN counters). ``readers``: the PC/SC readers as the
        built-in drivers saw them just before (:meth:`readers_state`); a module whose slots
        are those readers and that saw nothing but the drivers' cards is not asked again
        while they stay as they were (OpenSC 0.23 tries every driver it has on a card it
        does not know at each listing). Blocks: run on ``executor``."""
        ...

    def readers_state(self) -> ReadersState | None:
        """The PC/SC readers and pcsc-lite's count of card insertions and removals in each,
        read now without an APDU; None for a backend that is not the PC/SC readers. Blocks:
        run on ``executor``."""
        ...

    def close(self) -> None:
        """Release the backend (finalize the module, release the PC/SC context)."""
        ...


SLOT_DESCRIPTION_LENGTH = 64  # CK_SLOT_INFO.slotDescription: a longer reader name comes cut


def names_reader(slot_description: str | None, readers: Collection[str]) -> bool:
    """Whether a PKCS#11 slot's description names one of ``readers`` (a module such as
    OpenSC names a slot by its PC/SC reader, cut to the description's 64 characters)."""
    if not slot_description:
        return False
    cut = len(slot_description) == SLOT_DESCRIPTION_LENGTH
    return any(reader == slot_description or (cut and reader.startswith(slot_description)) for reader in readers)
