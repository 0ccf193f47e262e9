"""A warm login on each emulated national card through pcscd and vpcd: the PIN's tries left
kept between logins (``cardbridge.pcsc.pinstate``) — no APDU before the dialog, every
VERIFY's answer keeps the count right, and what another PC/SC client does in between is
either seen (it holds the card, the card is put back) or corrected by the card itself on the
next VERIFY — and no selection relied on that another program or a reset could change."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cardbridge.emulator.belpic_card import DF_BELPIC, BelpicCard, load_or_create_belpic
from cardbridge.emulator.iso7816 import CommandApdu, sw
from cardbridge.emulator.kinds import card_kind, pins_with_defaults
from cardbridge.emulator.virtual_card import VirtualCard
from cardbridge.errors import CardError, PinIncorrectError
from cardbridge.model import CertificateInfo, Purpose, Token
from cardbridge.pcsc import PcscBackend
from cardbridge.pcsc.belpic import BelpicToken
from cardbridge.pcsc.filesystem import FileSystemToken
from cardbridge.pcsc.scard import RESET_CARD, PcscContext
from tests.pcsc.conftest import READER_0, Pcscd, start_kind, stop_card, wait_for_card

pytestmark = pytest.mark.pcsc
T = TypeVar("T")
KINDS = ("esteid", "fineid", "belpic")
MAX_TRIES = {"esteid": 3, "fineid": 5, "belpic": 3}
# A warm login once the tries left are known: the sign transaction only (the card's minimum
# to log in and sign, and the logout).
WARM = {
    "esteid": [0xA4, 0x20, 0x22, 0x88, 0xA4],  # SELECT ADF1, VERIFY, MSE SET, INTERNAL AUTHENTICATE, SELECT (logout)
    "fineid": [0xA4, 0x20, 0x22, 0x2A, 0x2A, 0xA4],  # SELECT, VERIFY, MSE SET, PSO HASH, PSO CDS, SELECT (logout)
    "belpic": [0x22, 0x20, 0x2A, 0xC0, 0xE6],  # MSE SET (DF(BELPIC) current), VERIFY, PSO CDS, GET RESPONSE, LOG OFF
}
# A wrong PIN1 as another program would send it (VERIFY with the card's padding).
WRONG_VERIFY = {
    "esteid": bytes.fromhex("002000010C") + b"0000" + b"\xff" * 8,
    "fineid": bytes.fromhex("002000110C") + b"0000" + b"\x00" * 8,
    "belpic": bytes.fromhex("002000010824" + "0000" + "FF" * 5),
}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def card(pcscd: Pcscd, card_folder: Path, kind: str) -> Iterator[VirtualCard]:
    """A fresh emulated card of ``kind`` (full tries) in reader 0."""
    started = start_kind(card_folder, kind)
    try:
        yield started
    finally:
        stop_card(started)


def on(token: Token, fn: Callable[..., T], *args: object) -> T:
    return token.executor.submit(fn, *args).result(timeout=30)


def token_of(backend: PcscBackend) -> FileSystemToken:
    token = backend.executor.submit(backend.token, READER_0).result(timeout=30)
    assert isinstance(token, FileSystemToken)
    return token


def auth_cert(token: Token) -> CertificateInfo:
    return next(c for c in on(token, token.certificates) if c.purpose is Purpose.AUTHENTICATION)


def pin_of(kind: str) -> bytearray:
    return bytearray(pins_with_defaults(card_kind(kind), {})["pin"].encode())


def login(token: FileSystemToken, pin: bytearray) -> int | None:
    """What the service does for one login: the tries left for the dialog, then log in and
    sign. Returns the tries left the dialog would show."""
    cert = auth_cert(token)
    status = on(token, token.pin_status, cert)
    algorithm = on(token, token.supported_algorithms, cert)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"login").digest()
    on(token, token.sign_digest, cert, pin, digest, algorithm)
    return status.retries_left


def wrong_login(token: FileSystemToken) -> PinIncorrectError:
    cert = auth_cert(token)
    algorithm = on(token, token.supported_algorithms, cert)[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"login").digest()
    with pytest.raises(PinIncorrectError) as info:
        on(token, token.sign_digest, cert, bytearray(b"0000"), digest, algorithm)
    return info.value


def card_tries(card: VirtualCard) -> int:
    """PIN1's counter inside the emulated card."""
    applet = card.applet
    if hasattr(applet, "pin_tries_left"):
        return int(applet.pin_tries_left)
    return int(applet.pin1.tries_left)  # type: ignore[attr-defined]


class OtherProgram:
    """Another PC/SC client on the same reader (its own context and connection, as a second
    program has), sending a wrong PIN1 as that program would."""

    def __init__(self) -> None:
        self.context = PcscContext()
        self.connection = self.context.connect(READER_0)

    def wrong_pin(self, kind: str) -> int:
        with self.connection.transaction():
            _data, sw = self.connection.transmit(WRONG_VERIFY[kind])
        return sw

    def close(self, *, reset: bool = False) -> None:
        if reset:
            self.connection.disposition = RESET_CARD
        self.connection.close()
        self.context.release()


def test_warm_login_asks_the_card_nothing_before_the_dialog(card: VirtualCard, backend: PcscBackend, kind: str) -> None:
    token = token_of(backend)
    assert login(token, pin_of(kind)) == MAX_TRIES[kind]
    card.reset_count()
    assert login(token_of(backend), pin_of(kind)) == MAX_TRIES[kind]
    assert [r.ins for r in card.records] == WARM[kind]


def test_a_wrong_pin_then_the_dialog_shows_the_tries_left_the_card_gave(
    card: VirtualCard, backend: PcscBackend, kind: str
) -> None:
    token = token_of(backend)
    login(token, pin_of(kind))
    error = wrong_login(token)
    assert error.retries_left == MAX_TRIES[kind] - 1 == card_tries(card)
    card.reset_count()
    status = on(token, token.pin_status, auth_cert(token))  # the service's next dialog
    assert (status.retries_left, status.blocked) == (MAX_TRIES[kind] - 1, False)
    assert card.records == [], "the count came from the VERIFY's answer"
    # A right PIN puts the card's counter back to its maximum, and the count with it.
    assert login(token, pin_of(kind)) == MAX_TRIES[kind] - 1
    assert on(token, token.pin_status, auth_cert(token)).retries_left == MAX_TRIES[kind] == card_tries(card)


def test_a_program_holding_the_card_makes_the_dialog_ask_the_card(
    card: VirtualCard, backend: PcscBackend, kind: str
) -> None:
    token = token_of(backend)
    login(token, pin_of(kind))
    other = OtherProgram()
    try:
        assert other.wrong_pin(kind) == 0x63C0 | (MAX_TRIES[kind] - 1)
        card.reset_count()
        status = on(token, token.pin_status, auth_cert(token))  # while the other program is connected
        assert status.retries_left == MAX_TRIES[kind] - 1 == card_tries(card)
        assert card.records, "read from the card"
        if kind == "belpic":  # it may move the card at any time: SELECT before MSE SET
            card.reset_count()
            cert = auth_cert(token)
            algorithm = on(token, token.supported_algorithms, cert)[0]
            digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"held").digest()
            on(token, token.sign_digest, cert, pin_of(kind), digest, algorithm)
            assert [r.ins for r in card.records] == [0xA4, 0x22, 0x20, 0x2A, 0xC0, 0xE6]
    finally:
        other.close()


def test_a_program_that_came_and_went_is_corrected_by_the_cards_answer(
    card: VirtualCard, backend: PcscBackend, kind: str
) -> None:
    """What pcsc-lite cannot show: another program connected, sent a wrong PIN and left
    between two logins. The dialog shows the count from before (the documented limit); the
    card enforces its own counter, and its answer to the next VERIFY gives the true count."""
    token = token_of(backend)
    login(token, pin_of(kind))
    other = OtherProgram()
    other.wrong_pin(kind)
    other.close()
    assert on(token, token.pin_status, auth_cert(token)).retries_left == MAX_TRIES[kind]  # not seen
    error = wrong_login(token)
    assert error.retries_left == MAX_TRIES[kind] - 2 == card_tries(card), "the card's own count"
    assert on(token, token.pin_status, auth_cert(token)).retries_left == MAX_TRIES[kind] - 2


def test_a_reset_by_another_program_between_logins_leaves_nothing_stale(
    card: VirtualCard, backend: PcscBackend, kind: str
) -> None:
    token = token_of(backend)
    login(token, pin_of(kind))
    other = OtherProgram()
    other.close(reset=True)  # SCARD_RESET_CARD: pcscd resets the card (vpcd control 2)
    card.reset_count()
    assert login(token_of(backend), pin_of(kind)) == MAX_TRIES[kind]
    assert card_tries(card) == MAX_TRIES[kind]
    if kind == "belpic":  # the MF is current after a reset: the card says so before any PIN
        assert [(r.ins, r.response_sw) for r in card.records[:3]] == [(0x22, 0x6A88), (0xA4, 0x9000), (0x22, 0x9000)]
        assert [r.ins for r in card.records[3:]] == [0x20, 0x2A, 0xC0, 0xE6]


def test_the_card_put_back_is_asked_again(card: VirtualCard, backend: PcscBackend, kind: str) -> None:
    token = token_of(backend)
    login(token, pin_of(kind))
    assert card.remove(wait=10)
    wait_for_card(READER_0, False)
    # Used elsewhere while out of this reader: a wrong PIN in another computer's reader.
    applet = card.applet
    if hasattr(applet, "pin_tries_left"):
        applet.pin_tries_left -= 1
    else:
        applet.pin1.tries_left -= 1  # type: ignore[attr-defined]
    assert card.insert(wait=10)
    wait_for_card(READER_0, True)
    again = token_of(backend)
    assert again is not token, "a new card presence"
    assert on(again, again.pin_status, auth_cert(again)).retries_left == MAX_TRIES[kind] - 1


def test_a_count_older_than_its_time_to_live_is_asked_again(card: VirtualCard, backend: PcscBackend, kind: str) -> None:
    token = token_of(backend)
    login(token, pin_of(kind))
    token.pin_counters.ttl = 0.0
    card.reset_count()
    assert on(token, token.pin_status, auth_cert(token)).retries_left == MAX_TRIES[kind]
    assert card.records, "read from the card"


class TakesMseAnywhere(BelpicCard):
    """A Belpic card that takes MSE SET outside DF(BELPIC) and refuses the signature then.

    The Belpic manuals do not say what a card answers to MSE SET outside DF(BELPIC) (the
    emulator answers 6A88, the key not found; the Belgian middleware always selects first);
    this copies the emulated card with that check moved to PSO CDS, the other way a real card
    could behave."""

    def _mse(self, apdu: CommandApdu) -> bytes:
        current = self.current_df
        belpic = self.mf.child(DF_BELPIC)
        assert belpic is not None
        self.current_df = belpic  # type: ignore[assignment]
        try:
            return super()._mse(apdu)
        finally:
            self.current_df = current

    def _pso(self, apdu: CommandApdu) -> bytes:
        if self.current_df.fid != DF_BELPIC:
            return sw(0x6A88)
        return super()._pso(apdu)


def test_belpic_card_taking_mse_anywhere_fails_one_login_then_is_selected_first(
    pcscd: Pcscd, card_folder: Path
) -> None:
    data = load_or_create_belpic(card_folder / "belpic-mse-anywhere", key="ec-p384", reader=0)
    card = VirtualCard(TakesMseAnywhere(data, "1234"), reader=0).start()
    assert card.insert(wait=10)
    wait_for_card(READER_0, True)
    backend = PcscBackend()
    try:
        token = token_of(backend)
        assert isinstance(token, BelpicToken)
        login(token, bytearray(b"1234"))
        OtherProgram().close(reset=True)  # the MF is current after the reset
        with pytest.raises(CardError):
            login(token, bytearray(b"1234"))
        applet = card.applet
        assert isinstance(applet, TakesMseAnywhere)
        assert token.select_first and not applet.pin_verified, "logged off after the refused signature"
        card.reset_count()
        assert login(token, bytearray(b"1234")) == 3
        # The failure forgot the count (asked again), then SELECT before MSE SET from now on.
        assert [r.ins for r in card.records] == [0x20, 0xA4, 0x22, 0x20, 0x2A, 0xC0, 0xE6]
    finally:
        backend.close()
        stop_card(card)


@pytest.mark.parametrize("kind", ["fineid"])
def test_fineid_asks_pin1_where_the_card_stands_and_pin2_in_the_application(
    card: VirtualCard, backend: PcscBackend
) -> None:
    token = token_of(backend)
    certificates = on(token, token.certificates)
    card.reset_count()
    auth, sign = (next(c for c in certificates if c.purpose is p) for p in (Purpose.AUTHENTICATION, Purpose.SIGNING))
    assert on(token, token.pin_status, auth).retries_left == 5
    assert [r.ins for r in card.records] == [0xCB, 0xC0]  # PIN1 (11) is global: no SELECT
    card.reset_count()
    assert on(token, token.pin_status, sign).retries_left == 5
    assert [r.ins for r in card.records] == [0xA4, 0xCB, 0xC0]  # PIN2 (82) is the application's


# A retry limit other than the kind's own, as a card of another issuer profile could have.
OTHER_MAXIMUM = {"esteid": 5, "fineid": 10, "belpic": 5, "esteid-thales": 5, "fineid-v3": 8}


@pytest.mark.parametrize("kind", sorted(OTHER_MAXIMUM))
def test_after_a_right_pin_the_dialog_shows_the_cards_own_maximum(
    pcscd: Pcscd, card_folder: Path, backend: PcscBackend, kind: str
) -> None:
    """The count after a right PIN is the card's own maximum, never a number the driver
    assumes; learnt from the card once per card presence, then the warm login is as short
    as with the kind's own limit."""
    maximum = OTHER_MAXIMUM[kind]
    card = start_kind(card_folder, kind, pin_tries=maximum)
    try:
        token = token_of(backend)
        assert login(token, pin_of(kind)) == maximum  # read from the card: the card is full
        cert = auth_cert(token)
        assert on(token, token.pin_status, cert).retries_left == maximum == card_tries(card)
        error = wrong_login(token)
        assert error.retries_left == maximum - 1 == card_tries(card)
        assert login(token, pin_of(kind)) == maximum - 1
        card.reset_count()
        assert on(token, token.pin_status, cert).retries_left == maximum == card_tries(card)
        assert card.records == [], "known from the card's own answers"
        if kind in WARM:
            assert login(token, pin_of(kind)) == maximum
            assert [r.ins for r in card.records] == WARM[kind]
    finally:
        stop_card(card)
