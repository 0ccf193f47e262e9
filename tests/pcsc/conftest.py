"""PC/SC fixtures: a real pcscd with the vsmartcard vpcd readers, and the virtual PIV card.

pcscd is started (``pcscd --foreground``) only when none runs, and then stopped by its pid.
Tests that stop and start pcscd themselves need the one this fixture started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge.emulator.piv_card import PivCardData
from cardbridge.emulator.virtual_card import VirtualCard, VirtualPivCard, load_or_create_card
from cardbridge.pcsc import PcscBackend

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")  # Debian's opensc-pkcs11
READER_0 = "Virtual PCD 00 00"
READER_1 = "Virtual PCD 00 01"


def _pcscd_answers() -> bool:
    from cardbridge.pcsc.scard import PcscContext

    ctx = PcscContext()
    try:
        ctx.readers()
        return True
    except Exception:
        return False
    finally:
        ctx.release()


class Pcscd:
    """The pcscd the tests use; ``owned`` when the fixture started it (then stop/start work)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.owned = False

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(["pcscd", "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.owned = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if PCSCD_SOCKET.exists() and _pcscd_answers():
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail("pcscd did not start")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    if shutil.which("pcscd") is None or not VPCD_DRIVER.exists():
        pytest.skip("pcscd or vsmartcard-vpcd is not installed")
    daemon = Pcscd()
    if PCSCD_SOCKET.exists() and _pcscd_answers():
        yield daemon  # someone else's pcscd: use it, never stop it
        return
    if os.geteuid() != 0:
        pytest.skip("starting pcscd needs root")
    PCSCD_SOCKET.unlink(missing_ok=True)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def card_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("virtual-card")


_DATA: dict[str, PivCardData] = {}


def card_data(folder: Path, key: str) -> PivCardData:
    """Keys and certificates per key type, made once per session."""
    if key not in _DATA:
        _DATA[key] = load_or_create_card(folder / key, key=key, reader=0)
    return _DATA[key]


def wait_for_card(reader: str, present: bool, timeout: float = 10.0) -> None:
    """Block (in SCardGetStatusChange) until pcscd sees the card in or out of ``reader``."""
    from cardbridge.pcsc.scard import E_TIMEOUT, STATE_UNAWARE, PcscContext

    ctx = PcscContext()
    try:
        deadline = time.monotonic() + timeout
        state = STATE_UNAWARE
        while time.monotonic() < deadline:
            try:
                code, states = ctx.status([(reader, state)], 500)
            except Exception:  # pcscd restarting
                ctx.release()
                time.sleep(0.2)
                continue
            if code == E_TIMEOUT:
                continue
            if code != 0:
                ctx.release()
                time.sleep(0.2)
                state = STATE_UNAWARE
                continue
            if states[0].present == present:
                return
            state = states[0].event_state & ~0x2
        pytest.fail(f"pcscd did not see the card {'inserted' if present else 'removed'} in {reader}")
    finally:
        ctx.release()


def start_card(folder: Path, key: str = "ec-p256", reader: int = 0, pin: str = "123456") -> VirtualPivCard:
    card = VirtualPivCard(card_data(folder, key), pin=pin, reader=reader).start()
    assert card.insert(wait=10), "vpcd did not accept the virtual card"
    wait_for_card((READER_0, READER_1)[reader], True)
    return card


def start_kind(
    folder: Path,
    kind: str,
    reader: int = 0,
    key: str | None = None,
    pins: dict[str, str] | None = None,
    not_active: tuple[str, ...] = (),
    pin_tries: int | None = None,
) -> VirtualCard:
    """A virtual card of ``kind`` (``cardbridge dev card --kind``), inserted and seen by pcscd.
    Keys and certificates are made once per ``folder`` (use the session's card_folder).
    ``not_active``: the PINs (``pin``, ``pin2``) issued not activated yet. ``pin_tries``: the
    holder's PINs personalised with that retry limit (another issuer profile) instead of the
    kind's own."""
    from cardbridge.emulator.iso7816 import Iso7816Card
    from cardbridge.emulator.kinds import card_kind, pins_with_defaults

    chosen = card_kind(kind)
    made = chosen.create(
        folder, reader=reader, key=key, pins=pins_with_defaults(chosen, pins or {}), not_active=not_active
    )
    if pin_tries is not None:
        assert isinstance(made.applet, Iso7816Card)
        made.applet.set_pin_tries(pin_tries)
    card = made.start()
    assert card.insert(wait=10), "vpcd did not accept the virtual card"
    wait_for_card((READER_0, READER_1)[reader], True)
    return card


def stop_card(card: VirtualCard) -> None:
    card.stop()
    wait_for_card(card.reader_name, False)


@pytest.fixture
def virtual_card(pcscd: Pcscd, card_folder: Path) -> Iterator[VirtualPivCard]:
    """A fresh EC P-256 virtual PIV card (PIN 123456, 3 tries) in reader 0."""
    card = start_card(card_folder, "ec-p256")
    try:
        yield card
    finally:
        stop_card(card)


@pytest.fixture
def backend() -> Iterator[PcscBackend]:
    """A PC/SC backend of the test's own (its reader threads and card connections), closed after."""
    b = PcscBackend()
    try:
        yield b
    finally:
        b.close()
