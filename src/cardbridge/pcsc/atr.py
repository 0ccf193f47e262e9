"""ATR identification: which driver or PKCS#11 module a card needs, and what it is called.

:data:`KNOWN_CARDS` lists national eID cards and PIV tokens (ATR and mask), each mapped to
a built-in driver (``"piv"``) or to the PKCS#11 module its citizens use. Anything else is
named from pcsc-tools' ``smartcard_list.txt`` (read lazily, once) for the message.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

SMARTCARD_LIST_PATHS = (
    "/usr/share/pcsc/smartcard_list.txt",
    "/usr/local/share/pcsc/smartcard_list.txt",
    "/opt/homebrew/share/pcsc/smartcard_list.txt",
)
PKCS11_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib", "/usr/lib64")


@dataclass(frozen=True, slots=True)
class KnownCard:
    """One row of the ATR table. ``mask`` has 0 bits where the ATR may differ."""

    name: str
    atr: bytes
    mask: bytes
    driver: str | None = None  # built-in driver (cardbridge.pcsc.drivers): "piv", "esteid", …
    module: str | None = None  # PKCS#11 module file name when there is no built-in driver
    country: str | None = None

    def matches(self, atr: bytes) -> bool:
        if len(atr) != len(self.atr):
            return False
        return all((a & m) == (b & m) for a, b, m in zip(atr, self.atr, self.mask, strict=True))


def _row(
    name: str,
    atr: str,
    mask: str | None = None,
    *,
    driver: str | None = None,
    module: str | None = None,
    country: str | None = None,
) -> KnownCard:
    value = bytes.fromhex(atr)
    return KnownCard(name, value, bytes.fromhex(mask) if mask else b"\xff" * len(value), driver, module, country)


KNOWN_CARDS: tuple[KnownCard, ...] = (
    # cardbridge's own virtual PIV card (cardbridge.emulator.piv_card.ATR).
    _row("cardbridge virtual PIV card", "3B 8E 80 01 80 73 C0 21 C0 58 63 61 72 64 62 72 64 67 82", driver="piv"),
    # PIV tokens.
    _row("YubiKey 5 (PIV)", "3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40", driver="piv"),
    _row("YubiKey 5 NFC over NFC (PIV)", "3B 8D 80 01 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 F9", driver="piv"),
    _row("YubiKey 4 (PIV)", "3B F8 13 00 00 81 31 FE 15 59 75 62 69 6B 65 79 34 D4", driver="piv"),
    # The Finnish ID card, S4-1 v4.0/v4.1 (DVV's ATR note: Thales MultiApp v5.0, since 2023;
    # bytes 12-13 differ between batches: 05 00 11 … and 05 10 24 …, as libelectronic-id masks).
    _row(
        "Finnish ID card (FINEID v4)",
        "3B 7F 96 00 00 80 31 B8 65 B0 85 05 00 11 12 24 60 82 90 00",
        "FF FF FF FF FF FF FF FF FF FF FF FF 00 00 FF FF FF FF FF FF",
        driver="fineid",
        country="FI",
    ),
    # The Finnish ID card, S4-1 v3.0 (Gemalto MultiApp v3.0, 2017-2021; pcsc-tools: "Finnish
    # identity card") and v3.1 (MultiApp v4.2, 2021-2023; pcsc-tools: "Finnish ID-card v5.0(?)").
    _row(
        "Finnish ID card (FINEID v3)",
        "3B 7F 96 00 00 80 31 B8 65 B0 85 03 00 EF 12 00 F6 82 90 00",
        driver="fineid-v3",
        country="FI",
    ),
    _row(
        "Finnish ID card (FINEID v3.1)",
        "3B 7F 96 00 00 80 31 B8 65 B0 85 04 02 1B 12 00 F6 82 90 00",
        driver="fineid-v3",
        country="FI",
    ),
    # National eID cards that need a PKCS#11 module.
    # National eID cards with a built-in driver.
    _row(
        "Estonian ID card (IDEMIA, 2018)",
        "3B DB 96 00 80 B1 FE 45 1F 83 00 12 23 3F 53 65 49 44 0F 90 00 F1",
        driver="esteid",
        country="EE",
    ),
    _row(
        "Estonian ID card (IDEMIA, 2018, later ATR)",
        "3B DC 96 00 80 B1 FE 45 1F 83 00 12 23 3F 54 65 49 44 32 0F 90 00 C3",
        driver="esteid",
        country="EE",
    ),
    _row(  # OpenSC master's card-esteid2025.c ("EstEID 2025")
        "Estonian ID card (Thales, 2025)",
        "3B FF 96 00 00 80 31 FE 43 80 31 B8 53 65 49 44 64 B0 85 05 10 12 23 3F 1D",
        driver="esteid-thales",
        country="EE",
    ),
    _row(
        "Belgian eID card (applet 1.8)",
        "3B 7F 96 00 00 80 31 80 65 B0 85 04 01 20 12 0F FF 82 90 00",
        driver="belpic",
        country="BE",
    ),
    _row(  # applet 1.1 to 1.7 (Web eID's mask)
        "Belgian eID card",
        "3B 98 13 40 0A A5 03 01 01 01 AD 13 11",
        "FF FF 00 FF 00 FF FF FF FF FF FF FF 00",
        driver="belpic",
        country="BE",
    ),
)


@dataclass(frozen=True, slots=True)
class CardIdentity:
    """What the ATR says about a card."""

    atr: bytes
    name: str
    driver: str | None = None
    module: str | None = None
    known: bool = False

    @property
    def atr_hex(self) -> str:
        return self.atr.hex(" ").upper()

    def to_dict(self) -> dict[str, object]:
        return {
            "atr": self.atr_hex,
            "name": self.name,
            "driver": self.driver,
            "module": self.module,
            "known": self.known,
        }


def identify(atr: bytes) -> CardIdentity:
    """Look ``atr`` up in :data:`KNOWN_CARDS`, then in ``smartcard_list.txt`` for a name."""
    for card in KNOWN_CARDS:
        if card.matches(atr):
            return CardIdentity(atr, card.name, card.driver, card.module, True)
    names = smartcard_list_names(atr)
    return CardIdentity(atr, names[0] if names else "unknown card")


def module_path(module: str) -> str | None:
    """An absolute path for a PKCS#11 module file name, when it is installed."""
    if os.path.isabs(module):
        return module if os.path.exists(module) else None
    for folder in PKCS11_DIRS:
        for candidate in (Path(folder) / module, Path(folder) / "pkcs11" / module):
            if candidate.exists():
                return str(candidate)
    return None


@functools.lru_cache(maxsize=1)
def _smartcard_list() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    path = next((p for p in SMARTCARD_LIST_PATHS if os.path.exists(p)), None)
    if path is None:
        return ()
    entries: list[tuple[re.Pattern[str], tuple[str, ...]]] = []
    pattern: str | None = None
    texts: list[str] = []

    def flush() -> None:
        if pattern is not None and texts:
            with contextlib.suppress(re.error):
                entries.append((re.compile(pattern, re.IGNORECASE), tuple(texts)))

    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                flush()
                pattern, texts = None, []
            elif line.startswith("\t"):
                texts.append(line.strip())
            else:
                flush()
                pattern, texts = line.strip(), []
        flush()
    return tuple(entries)


def smartcard_list_names(atr: bytes) -> list[str]:
    """The descriptions pcsc-tools gives for ``atr`` (``[]`` when it does not know it)."""
    text = atr.hex(" ").upper()
    for pattern, texts in _smartcard_list():
        if pattern.fullmatch(text):
            return [t for t in texts if not t.startswith("http")]
    return []


def historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ATR (ISO 7816-3), b"" if it cannot be parsed."""
    if len(atr) < 2:
        return b""
    t0 = atr[1]
    count = t0 & 0x0F
    i, y = 2, t0 >> 4
    while True:
        i += bin(y & 0x0F).count("1")
        if not y & 0x8:
            break
        if i - 1 >= len(atr):
            return b""
        y = atr[i - 1] >> 4
    return atr[i : i + count] if i + count <= len(atr) else b""


def supports_extended_length(atr: bytes) -> bool:
    """Whether the card capabilities in the ATR (compact-TLV tag 7) allow extended Lc/Le."""
    hist = historical_bytes(atr)
    if not hist or hist[0] != 0x80:
        return False
    i = 1
    while i < len(hist):
        tag, length = hist[i] >> 4, hist[i] & 0x0F
        value = hist[i + 1 : i + 1 + length]
        if tag == 0x7 and length >= 3:
            return bool(value[2] & 0x40)
        i += 1 + length
    return False
