"""A reusable ISO 7816-4 card engine for the emulated cards (the card side, in Python).

:class:`Applet` is what the vpcd reader (``virtual_card.VirtualCard``) drives: an ATR,
``process(command) -> response``, ``power_off()`` and ``reset()``. :class:`Iso7816Card` is
an applet with what file-system cards (the national ID cards) share, each part as ISO/IEC
7816-4 describes it:

- command APDUs, short and extended (:class:`CommandApdu`); answers longer than Le come
  in parts with ``61xx`` and GET RESPONSE; ``t0=True`` answers every case-4 command with
  ``61xx`` first, as T=0 cards must; a command flagged exact (GET DATA of a fixed object,
  …) with the wrong short Le gets ``6Cxx``;
- a file system: the MF, DFs (FID and DF name), transparent EFs; SELECT by FID (P1 00,
  01, 02, 03), by DF name (04), by path from the MF (08) or the current DF (09), answering
  with an FCI (P2 00), FCP (04) or nothing (0C) — a card with SELECT rules of its own gives
  them in ``select_target`` and keeps the rest; READ BINARY with an offset (P1 bit 8 0)
  or a short EF identifier (P1 bit 8 1);
- PINs (:class:`Pin`): reference, global or local to a DF (bit 8 of the reference), length
  rules, padding, a retry counter, blocked at zero; VERIFY, VERIFY without data (tries left
  as ``63Cx``, ``9000`` when verified, ``6983`` when blocked), VERIFY with P1 FF (logout),
  CHANGE REFERENCE DATA (P1 00: old and new; 01: new after VERIFY), RESET RETRY COUNTER
  (P1 00: PUK and new; 01: PUK; 02: new after the PUK's VERIFY; 03: after the PUK's VERIFY);
- a security environment: MSE SET (P1 41) with the CRT for authentication (A4), digital
  signature (B6) or confidentiality (B8), its algorithm (80) and key reference (84); MSE
  RESTORE (P1 F3) clears it;
- PSO COMPUTE DIGITAL SIGNATURE (2A 9E 9A) and INTERNAL AUTHENTICATE (88) with the key the
  environment names (:class:`CardKey`): ECDSA over the digest sent (left-padded or cut to
  the curve's size), raw ``r || s`` or DER as the card does it; an RSA key signs the data
  sent (a DigestInfo) with PKCS#1 v1.5 padding added on the card. The signing primitives
  (:func:`ecdsa_raw`, :func:`rsa_pkcs1_v15`, :func:`rsa_pkcs1_digest`, :func:`rsa_pss`)
  are here once for every card whose own algorithm references differ.

Choices the standard leaves open, made here (a card subclass may change them):
- SELECT by DF name ends the security status of every PIN (``select_resets_security``);
  so does a reset or power-off.
- Selecting by FID looks in the current DF, then its parent, then the MF.
- READ BINARY past the end: ``6B00``; at the end: ``6282`` (``read_at_end_sw``); fewer
  bytes than a non-maximal Le asked for: the bytes and ``6282``; Le 00 (maximal) gets what
  there is with ``9000``.
- A VERIFY whose data is not the padded length: ``6700``; a PIN outside its length rules:
  ``6A80``; neither spends a try. A wrong PIN: ``63Cx`` with the tries left (``63C0`` on
  the try that blocks it), ``6983`` afterwards.
- A key with ``pin_always`` needs a VERIFY before each use. A key with a ``df`` (a local
  key) can be named in MSE SET only while its DF is the current DF (else ``6A88``).
- Unknown INS: ``6D00``; a CLA other than 00 (and its chaining bit 10): ``6E00``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from cardbridge.emulator.devpki import PrivateKey
from cardbridge.iso7816 import (
    CRT_AT,
    CRT_CT,
    CRT_DST,
    INS_CHANGE_REFERENCE_DATA,
    INS_GET_RESPONSE,
    INS_INTERNAL_AUTHENTICATE,
    INS_MSE,
    INS_PSO,
    INS_READ_BINARY,
    INS_RESET_RETRY_COUNTER,
    INS_SELECT,
    INS_VERIFY,
    tlv,
)

log = logging.getLogger(__name__)

SW_OK = 0x9000
SW_END_OF_FILE = 0x6282
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_STATUS = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_CONDITIONS = 0x6985
SW_WRONG_DATA = 0x6A80
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_INCORRECT_P1P2 = 0x6A86
SW_REF_NOT_FOUND = 0x6A88
SW_WRONG_OFFSET = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_COMMAND_NOT_ALLOWED = 0x6986
SW_LC_INCONSISTENT = 0x6A87
SW_CHAINING_NOT_SUPPORTED = 0x6884


# The DER DigestInfo before a digest (RFC 8017, 9.2, note 1), by the hash's name in
# ``cryptography`` (what a card puts in front of a hash for PKCS#1 v1.5).
DIGEST_INFO: dict[str, bytes] = {
    "md5": bytes.fromhex("3020300c06082a864886f70d020505000410"),
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


_PREHASHED: dict[int, hashes.HashAlgorithm] = {
    28: hashes.SHA224(),
    32: hashes.SHA256(),
    48: hashes.SHA384(),
    64: hashes.SHA512(),
}


def ecdsa_raw(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """ECDSA over ``digest`` as ``r || s``: the digest's leftmost bits (a shorter one is the
    same number left-padded), as the cards take any hash length. ValueError for a curve
    of another size than P-224/256/384/521."""
    size = (key.curve.key_size + 7) // 8
    width = min(size, 64)  # P-521: a hash of at most 512 bits is taken whole
    prehashed = _PREHASHED.get(width)
    if prehashed is None:
        raise ValueError("no such curve on a card")
    value = digest[:width].rjust(width, b"\x00")
    r, s = utils.decode_dss_signature(key.sign(value, ec.ECDSA(utils.Prehashed(prehashed))))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def rsa_pkcs1_v15(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """The raw RSA signature of ``data`` (a DigestInfo, or any bytes up to the modulus less
    11) in an EMSA-PKCS1-v1_5 block: the padding a card adds itself. ValueError when too long."""
    size = (key.key_size + 7) // 8
    if len(data) > size - 11:
        raise ValueError("too long for PKCS#1 v1.5")
    block = b"\x00\x01" + b"\xff" * (size - len(data) - 3) + b"\x00" + data
    numbers = key.private_numbers()
    return pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n).to_bytes(size, "big")


def rsa_pkcs1_digest(key: rsa.RSAPrivateKey, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """PKCS#1 v1.5 over a hash: the card puts the hash's DigestInfo in front. ValueError when
    the digest's length is not the hash's."""
    if len(digest) != algorithm.digest_size:
        raise ValueError("the hash's length does not fit the algorithm")
    return rsa_pkcs1_v15(key, DIGEST_INFO[algorithm.name] + digest)


def rsa_pss(key: rsa.RSAPrivateKey, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """RSASSA-PSS over a hash, MGF1 with the same hash, salt as long as the hash."""
    if len(digest) != algorithm.digest_size:
        raise ValueError("the hash's length does not fit the algorithm")
    return key.sign(digest, padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), utils.Prehashed(algorithm))


def parse_tlv(data: bytes) -> list[tuple[int, bytes]]:
    """A flat list of (tag, value); raises ValueError on malformed input."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                if i >= len(data):
                    raise ValueError("truncated tag")
                tag = (tag << 8) | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
        if i >= len(data):
            raise ValueError("truncated length")
        length = data[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 3 or i + count > len(data):
                raise ValueError("bad length")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > len(data):
            raise ValueError("truncated value")
        out.append((tag, data[i : i + length]))
        i += length
    return out


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A parsed command APDU (ISO 7816-4 cases 1–4, short and extended)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None: no Le; 0 is never used, "all" is 256 or 65536
    extended: bool

    @property
    def le_is_max(self) -> bool:
        """Le 00 (short) or 0000 (extended): as much as there is."""
        return self.le in (256, 65536)

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        if len(raw) < 4:
            raise ValueError("APDU shorter than 4 bytes")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2, b"", None, False)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, b"", body[0] or 256, False)
        if body[0] != 0:  # short Lc
            lc = body[0]
            data = body[1 : 1 + lc]
            if len(data) != lc:
                raise ValueError("short Lc does not match")
            rest = body[1 + lc :]
            if len(rest) > 1:
                raise ValueError("trailing bytes")
            le = (rest[0] or 256) if rest else None
            return cls(cla, ins, p1, p2, data, le, False)
        if len(body) == 3:
            return cls(cla, ins, p1, p2, b"", int.from_bytes(body[1:3], "big") or 65536, True)
        lc = int.from_bytes(body[1:3], "big")
        data = body[3 : 3 + lc]
        if len(data) != lc or lc == 0:
            raise ValueError("extended Lc does not match")
        rest = body[3 + lc :]
        if len(rest) not in (0, 2):
            raise ValueError("bad extended Le")
        le = (int.from_bytes(rest, "big") or 65536) if rest else None
        return cls(cla, ins, p1, p2, data, le, True)


def sw(status: int, data: bytes = b"") -> bytes:
    """A response APDU."""
    return data + status.to_bytes(2, "big")


class Applet:
    """What the vpcd reader drives: an ATR and one response per command.

    ``on_apdu`` (if set) sees every command and response (for counting; the
    ``VirtualCard`` drops VERIFY data before it keeps anything).
    """

    atr: bytes = b""

    def __init__(self) -> None:
        self.on_apdu: Callable[[bytes, bytes], None] | None = None
        self.apdu_count = 0

    def process(self, raw: bytes) -> bytes:
        self.apdu_count += 1
        response = self.respond(raw)
        if self.on_apdu is not None:
            self.on_apdu(raw, response)
        return response

    def respond(self, raw: bytes) -> bytes:
        raise NotImplementedError

    def power_off(self) -> None:
        """Lose the volatile state."""

    def reset(self) -> None:
        self.power_off()


# -- the file system ------------------------------------------------------------------------
@dataclass(eq=False)
class EF:
    """A transparent elementary file."""

    fid: bytes
    data: bytes
    sfi: int | None = None
    parent: DF | None = field(default=None, repr=False)

    def fcp(self) -> bytes:
        return tlv(
            0x62,
            tlv(0x80, len(self.data).to_bytes(2, "big"))
            + tlv(0x82, b"\x01")
            + tlv(0x83, self.fid)
            + tlv(0x8A, b"\x05"),
        )


@dataclass(eq=False)
class DF:
    """A dedicated file (the MF is the DF 3F00): children by FID, an optional DF name."""

    fid: bytes
    name: bytes = b""
    children: list[DF | EF] = field(default_factory=list)
    parent: DF | None = field(default=None, repr=False)
    fci_extra: bytes = b""  # more FCI data objects (proprietary A5 …)

    def add(self, node: DF | EF) -> DF | EF:
        node.parent = self
        self.children.append(node)
        return node

    def child(self, fid: bytes) -> DF | EF | None:
        return next((c for c in self.children if c.fid == fid), None)

    def walk(self) -> Iterator[DF]:
        yield self
        for c in self.children:
            if isinstance(c, DF):
                yield from c.walk()

    def fcp(self) -> bytes:
        name = tlv(0x84, self.name) if self.name else b""
        return tlv(0x62, tlv(0x82, b"\x38") + tlv(0x83, self.fid) + name + tlv(0x8A, b"\x05"))

    def fci(self) -> bytes:
        name = tlv(0x84, self.name) if self.name else b""
        return tlv(0x6F, name + self.fci_extra)


@dataclass(eq=False)
class Pin:
    """A PIN (or PUK): global, or local to ``df`` when bit 8 of the reference is set."""

    reference: int
    value: bytes
    min_length: int
    max_length: int
    max_tries: int = 3
    pad_length: int = 0  # the VERIFY data is padded to this length (0: not padded)
    pad_byte: int = 0xFF
    unblocked_by: int | None = None  # the PUK's reference
    df: DF | None = field(default=None, repr=False)
    tries_left: int = -1

    def __post_init__(self) -> None:
        if self.tries_left < 0:
            self.tries_left = self.max_tries

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0

    def unpad(self, data: bytes) -> bytes | None:
        """The PIN in ``data`` (None when the padding or length is wrong)."""
        if self.pad_length:
            if len(data) != self.pad_length:
                return None
            data = data.rstrip(bytes([self.pad_byte]))
        return data


@dataclass(eq=False)
class CardKey:
    """A private key on the card, used through the security environment."""

    reference: int
    private_key: PrivateKey
    pin_reference: int
    pin_always: bool = False  # a VERIFY before each use
    operations: frozenset[int] = frozenset({CRT_AT, CRT_DST})  # which CRTs may name it
    raw_signature: bool = True  # r || s (else DER)
    df: DF | None = field(default=None, repr=False)  # a local key (bit 8 of the reference): only there


class Iso7816Card(Applet):
    """An ISO 7816-4 file-system card. Build it with :meth:`add_pin`, :meth:`add_key`
    and files under :attr:`mf`; override :meth:`handle` for the card's own commands."""

    select_resets_security = True
    t0 = False
    read_at_end_sw = SW_END_OF_FILE  # READ BINARY at offset == size

    def __init__(self, atr: bytes) -> None:
        super().__init__()
        self.atr = atr
        self.mf = DF(b"\x3f\x00")
        self.pins: list[Pin] = []
        self.keys: dict[int, CardKey] = {}
        self.power_off()

    # -- building --------------------------------------------------------------------------
    def add_pin(self, pin: Pin) -> Pin:
        self.pins.append(pin)
        return pin

    def add_key(self, key: CardKey) -> CardKey:
        self.keys[key.reference] = key
        return key

    def set_pin_tries(self, tries: int) -> None:
        """The retry limit of the holder's PINs (every PIN but those that unblock others),
        as a card of another issuer profile is personalised: each counter full at ``tries``.
        The card reports the limit only where its own commands do (see each card)."""
        if not 1 <= tries <= 15:
            raise ValueError("a retry counter of 1 to 15 tries (63Cx has one hex digit)")
        unblocking = {p.unblocked_by for p in self.pins}
        for pin in self.pins:
            if pin.reference not in unblocking:
                pin.max_tries = pin.tries_left = tries

    # -- state -----------------------------------------------------------------------------
    def power_off(self) -> None:
        self.current_df: DF = getattr(self, "mf", DF(b"\x3f\x00"))
        self.current_ef: EF | None = None
        self.verified: set[int] = set()
        self.environment: dict[int, dict[int, bytes]] = {}
        self._pending = b""

    # -- dispatch --------------------------------------------------------------------------
    def respond(self, raw: bytes) -> bytes:
        try:
            apdu = CommandApdu.parse(raw)
        except ValueError:
            return sw(SW_WRONG_LENGTH)
        if apdu.cla & ~0x10 & 0xFF != 0x00:
            return sw(SW_CLA_NOT_SUPPORTED)
        if apdu.cla & 0x10:
            return sw(SW_CHAINING_NOT_SUPPORTED)
        if apdu.ins == INS_GET_RESPONSE:
            return self._get_response(apdu)
        self._pending = b""
        return self.handle(apdu)

    def handle(self, apdu: CommandApdu) -> bytes:
        """One command (GET RESPONSE and chaining are done). Override for more INS."""
        handler = {
            INS_SELECT: self.select,
            INS_READ_BINARY: self.read_binary,
            INS_VERIFY: self.verify,
            INS_CHANGE_REFERENCE_DATA: self.change_reference_data,
            INS_RESET_RETRY_COUNTER: self.reset_retry_counter,
            INS_MSE: self.manage_security_environment,
            INS_PSO: self.perform_security_operation,
            INS_INTERNAL_AUTHENTICATE: self.internal_authenticate,
        }.get(apdu.ins)
        if handler is None:
            return sw(SW_INS_NOT_SUPPORTED)
        return handler(apdu)

    # -- answers ---------------------------------------------------------------------------
    def answer(self, data: bytes, apdu: CommandApdu, *, exact: bool = False) -> bytes:
        """``data`` with 9000, as Le allows: parts with 61xx (and all of it behind 61xx on a
        T=0 card for a case-4 command); ``exact``: a wrong short Le gets 6Cxx."""
        if not data:
            return sw(SW_OK)
        short_le = apdu.le is not None and not apdu.extended and not apdu.le_is_max
        if exact and short_le and apdu.le != len(data) and len(data) < 256:
            return sw(0x6C00 | len(data))
        if self.t0 and apdu.data and not apdu.extended:
            self._pending = data
            return sw(0x6100 | (len(data) if len(data) < 256 else 0))
        limit = apdu.le if apdu.le is not None else (65536 if apdu.extended else 256)
        if len(data) <= limit:
            return sw(SW_OK, data)
        part, self._pending = data[:limit], data[limit:]
        remaining = len(self._pending)
        return sw(0x6100 | (remaining if remaining < 256 else 0), part)

    def _get_response(self, apdu: CommandApdu) -> bytes:
        if not self._pending:
            return sw(SW_CONDITIONS)
        data, self._pending = self._pending, b""
        limit = apdu.le or 256
        if len(data) <= limit:
            return sw(SW_OK, data)
        part, self._pending = data[:limit], data[limit:]
        remaining = len(self._pending)
        return sw(0x6100 | (remaining if remaining < 256 else 0), part)

    # -- SELECT ----------------------------------------------------------------------------
    def find_df_by_name(self, name: bytes) -> DF | None:
        for df in self.mf.walk():
            if df.name and df.name == name:
                return df
        return None

    def _by_fid(self, fid: bytes) -> DF | EF | None:
        if fid == self.mf.fid:
            return self.mf
        here: DF | None = self.current_df
        for candidate in (here, here.parent if here else None, self.mf):
            if candidate is None:
                continue
            if candidate.fid == fid:
                return candidate
            found = candidate.child(fid)
            if found is not None:
                return found
        return None

    def _by_path(self, start: DF, path: bytes) -> DF | EF | None:
        if len(path) % 2 or not path:
            return None
        node: DF | EF = start
        for i in range(0, len(path), 2):
            if not isinstance(node, DF):
                return None
            fid = path[i : i + 2]
            if i == 0 and fid == self.mf.fid and start is self.mf:
                continue
            found = node.child(fid)
            if found is None:
                return None
            node = found
        return node

    def select(self, apdu: CommandApdu) -> bytes:
        """SELECT: the file :meth:`select_target` names becomes the current one, and the
        answer is what P2 asks for (FCI, FCP or nothing)."""
        node = self.select_target(apdu)
        if isinstance(node, int):
            return sw(node)
        if node is None:
            return sw(SW_FILE_NOT_FOUND)
        if isinstance(node, DF):
            self.current_df, self.current_ef = node, None
        else:
            self.current_df, self.current_ef = node.parent or self.mf, node
        p2 = apdu.p2 & 0xFC
        if p2 == 0x04:
            return self.answer(node.fcp(), apdu)
        if p2 == 0x00:
            return self.answer(node.fci() if isinstance(node, DF) else node.fcp(), apdu)
        return sw(SW_OK)

    def select_target(self, apdu: CommandApdu) -> DF | EF | int | None:
        """The card's SELECT rules: the file a SELECT names (None: not found, 6A82) or the
        status word to answer instead. These are ISO 7816-4's (P1 00-04, 08, 09; P2 00, 04,
        08, 0C); a card with rules of its own overrides this hook."""
        p1, p2 = apdu.p1, apdu.p2 & 0xFC
        if p2 not in (0x00, 0x04, 0x08, 0x0C):
            return SW_INCORRECT_P1P2
        if p1 == 0x00:
            return self.mf if not apdu.data else (self._by_fid(apdu.data) if len(apdu.data) == 2 else None)
        if p1 in (0x01, 0x02):
            found = self.current_df.child(apdu.data)
            return found if isinstance(found, DF if p1 == 0x01 else EF) else None
        if p1 == 0x03:
            return self.current_df.parent or self.mf
        if p1 == 0x04:
            node = self.find_df_by_name(apdu.data)
            if node is not None and self.select_resets_security:
                self.verified.clear()
                self.environment.clear()
            return node
        if p1 in (0x08, 0x09):
            return self._by_path(self.mf if p1 == 0x08 else self.current_df, apdu.data)
        return SW_INCORRECT_P1P2

    # -- READ BINARY -----------------------------------------------------------------------
    def read_binary(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 & 0x80:  # short EF identifier
            sfi = apdu.p1 & 0x1F
            ef = next((c for c in self.current_df.children if isinstance(c, EF) and c.sfi == sfi), None)
            if ef is None:
                return sw(SW_FILE_NOT_FOUND)
            self.current_ef = ef
            offset = apdu.p2
        else:
            ef = self.current_ef
            offset = (apdu.p1 << 8) | apdu.p2
        if ef is None:
            return sw(SW_COMMAND_NOT_ALLOWED)
        if offset > len(ef.data):
            return sw(SW_WRONG_OFFSET)
        if offset == len(ef.data):
            return sw(self.read_at_end_sw)
        want = apdu.le if apdu.le is not None else 256
        part = ef.data[offset : offset + want]
        if len(part) < want and not apdu.le_is_max:
            return sw(SW_END_OF_FILE, part)
        return sw(SW_OK, part)

    # -- PINs ------------------------------------------------------------------------------
    def find_pin(self, reference: int) -> Pin | None:
        """A global PIN, or a local one (bit 8) when its DF is the current DF."""
        for pin in self.pins:
            if pin.reference != reference:
                continue
            if reference & 0x80 and pin.df is not None and pin.df is not self.current_df:
                continue
            return pin
        return None

    def _check_pin(self, pin: Pin, data: bytes) -> int:
        """Compare and count; the status word of a VERIFY with data."""
        if pin.blocked:
            return SW_AUTH_BLOCKED
        value = pin.unpad(data)
        if value is None:
            return SW_WRONG_LENGTH
        if not pin.min_length <= len(value) <= pin.max_length:
            return SW_WRONG_DATA
        if value == pin.value:
            pin.tries_left = pin.max_tries
            self.verified.add(pin.reference)
            return SW_OK
        pin.tries_left -= 1
        self.verified.discard(pin.reference)
        return 0x63C0 | pin.tries_left

    def verify(self, apdu: CommandApdu) -> bytes:
        pin = self.find_pin(apdu.p2)
        if pin is None:
            return sw(SW_REF_NOT_FOUND)
        if apdu.p1 == 0xFF:
            if apdu.data:
                return sw(SW_WRONG_DATA)
            self.verified.discard(pin.reference)
            return sw(SW_OK)
        if apdu.p1 != 0x00:
            return sw(SW_INCORRECT_P1P2)
        if not apdu.data:
            if pin.blocked:
                return sw(SW_AUTH_BLOCKED)
            if pin.reference in self.verified:
                return sw(SW_OK)
            return sw(0x63C0 | pin.tries_left)
        return sw(self._check_pin(pin, apdu.data))

    def _split(self, pin: Pin, data: bytes) -> tuple[bytes, bytes] | None:
        if not pin.pad_length or len(data) != 2 * pin.pad_length:
            return None
        return data[: pin.pad_length], data[pin.pad_length :]

    def _set_value(self, pin: Pin, padded: bytes) -> int:
        value = pin.unpad(padded)
        if value is None:
            return SW_WRONG_LENGTH
        if not pin.min_length <= len(value) <= pin.max_length:
            return SW_WRONG_DATA
        pin.value = value
        pin.tries_left = pin.max_tries
        return SW_OK

    def change_reference_data(self, apdu: CommandApdu) -> bytes:
        pin = self.find_pin(apdu.p2)
        if pin is None:
            return sw(SW_REF_NOT_FOUND)
        if apdu.p1 == 0x00:
            parts = self._split(pin, apdu.data)
            if parts is None:
                return sw(SW_WRONG_LENGTH)
            status = self._check_pin(pin, parts[0])
            return sw(status if status != SW_OK else self._set_value(pin, parts[1]))
        if apdu.p1 == 0x01:
            if pin.reference not in self.verified:
                return sw(SW_SECURITY_STATUS)
            return sw(self._set_value(pin, apdu.data))
        return sw(SW_INCORRECT_P1P2)

    def reset_retry_counter(self, apdu: CommandApdu) -> bytes:
        pin = self.find_pin(apdu.p2)
        if pin is None or pin.unblocked_by is None:
            return sw(SW_REF_NOT_FOUND)
        puk = next((p for p in self.pins if p.reference == pin.unblocked_by), None)
        if puk is None:
            return sw(SW_REF_NOT_FOUND)
        if apdu.p1 in (0x00, 0x01):
            if apdu.p1 == 0x00:
                if not puk.pad_length or len(apdu.data) <= puk.pad_length:
                    return sw(SW_WRONG_LENGTH)
                puk_data, new = apdu.data[: puk.pad_length], apdu.data[puk.pad_length :]
            else:
                puk_data, new = apdu.data, b""
            status = self._check_pin(puk, puk_data)
            if status != SW_OK:
                return sw(status)
        elif apdu.p1 in (0x02, 0x03):
            if puk.reference not in self.verified:
                return sw(SW_SECURITY_STATUS)
            new = apdu.data if apdu.p1 == 0x02 else b""
        else:
            return sw(SW_INCORRECT_P1P2)
        if new:
            status = self._set_value(pin, new)
            if status != SW_OK:
                return sw(status)
        pin.tries_left = pin.max_tries
        return sw(SW_OK)

    # -- security environment --------------------------------------------------------------
    def manage_security_environment(self, apdu: CommandApdu) -> bytes:
        if apdu.p1 == 0xF3:  # RESTORE
            self.environment.clear()
            return sw(SW_OK)
        if apdu.p1 & 0x0F != 0x01 or apdu.p2 not in (CRT_AT, CRT_DST, CRT_CT):
            return sw(SW_INCORRECT_P1P2)
        try:
            items = dict(parse_tlv(apdu.data))
        except ValueError:
            return sw(SW_WRONG_DATA)
        ref = items.get(0x84)
        if ref is None or len(ref) != 1:
            return sw(SW_WRONG_DATA)
        key = self.keys.get(ref[0])
        if key is None or apdu.p2 not in key.operations:
            return sw(SW_REF_NOT_FOUND)
        if key.df is not None and key.df is not self.current_df:  # a local key outside its DF
            return sw(SW_REF_NOT_FOUND)
        if not self.algorithm_ok(apdu.p2, key, items.get(0x80)):
            return sw(SW_WRONG_DATA)
        self.environment[apdu.p2] = items
        return sw(SW_OK)

    def algorithm_ok(self, template: int, key: CardKey, algorithm: bytes | None) -> bool:
        """Whether the CRT's algorithm reference fits the key (any, unless a card says)."""
        return True

    def _key_for(self, template: int) -> CardKey | int:
        items = self.environment.get(template)
        if items is None:
            return SW_CONDITIONS
        key = self.keys[items[0x84][0]]
        if key.pin_reference not in self.verified:
            return SW_SECURITY_STATUS
        pin = next((p for p in self.pins if p.reference == key.pin_reference), None)
        if pin is not None and pin.blocked:
            return SW_AUTH_BLOCKED
        return key

    def _sign(self, template: int, apdu: CommandApdu) -> bytes:
        key = self._key_for(template)
        if isinstance(key, int):
            return sw(key)
        private = key.private_key
        if isinstance(private, rsa.RSAPrivateKey):  # the data is the DigestInfo; the card pads
            try:
                signature = rsa_pkcs1_v15(private, apdu.data)
            except ValueError:
                return sw(SW_WRONG_LENGTH)
        else:
            if not apdu.data or len(apdu.data) > 64:
                return sw(SW_WRONG_LENGTH)
            try:
                signature = ecdsa_raw(private, apdu.data)
            except ValueError:
                return sw(SW_CONDITIONS)
            if not key.raw_signature:
                half = len(signature) // 2
                signature = utils.encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
                )
        if key.pin_always:
            self.verified.discard(key.pin_reference)
        return self.answer(signature, apdu)

    def perform_security_operation(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x9E, 0x9A):
            return sw(SW_INCORRECT_P1P2)
        return self._sign(CRT_DST, apdu)

    def internal_authenticate(self, apdu: CommandApdu) -> bytes:
        if (apdu.p1, apdu.p2) != (0x00, 0x00):
            return sw(SW_INCORRECT_P1P2)
        return self._sign(CRT_AT, apdu)
