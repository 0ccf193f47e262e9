"""A warm login on each emulated national card through pcscd and vpcd: the PIN's tries left
kept between logins (``cardbridge.pcsc.pinstate``) — no APDU before the dialog, every
VERIFY's answer keeps the count right, and what another PC/SC client does in between is
either seen (it holds the card, the card is put back) or corrected by the card itself on the
next VERIFY — and no selection relied on that another program or a reset could change."""

from __future__ import annotations

import hashlib
import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
from cardbridge.pcsc.scard import PcscContext
from cardbridge.pkcs11.backend import ModuleBackend
from tests.conftest import ScriptedPinentry
from tests.pcsc.conftest import OPENSC, READER_0, READER_1, Pcscd, start_card, start_kind, stop_card, wait_for_card
from tests.pcsc.national import ORIGIN, bridge_env, http_login, nonce
from tests.pcsc.other_program import OtherProgram

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
    other = OtherProgram(READER_0)
    try:
        assert other.transmit(WRONG_VERIFY[kind]) == 0x63C0 | (MAX_TRIES[kind] - 1)
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
    other = OtherProgram(READER_0)
    other.transmit(WRONG_VERIFY[kind])
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
    other = OtherProgram(READER_0)
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
        OtherProgram(READER_0).close(reset=True)  # the MF is current after the reset
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


@pytest.fixture
def opensc_in_process(card: VirtualCard) -> Iterator[ModuleBackend]:
    """OpenSC's module loaded into this process beside the direct driver, as Debian's
    p11-kit registration loads it into the bridge: listing its tokens leaves the card
    connected (SCARD_STATE_INUSE for every other client)."""
    if not OPENSC.exists():
        pytest.skip("opensc-pkcs11 is not installed")
    module = ModuleBackend(str(OPENSC))
    try:
        module.executor.submit(module.tokens).result(timeout=60)
        yield module
    finally:
        module.close()


def reader_in_use() -> bool:
    context = PcscContext()
    try:
        return context.reader_status(READER_0).in_use
    finally:
        context.release()


# The cards Debian's OpenSC (0.23) binds a driver to, and so keeps connected.
OPENSC_HOLDS = ("esteid", "belpic")


@pytest.mark.parametrize("kind", OPENSC_HOLDS)
def test_opensc_in_this_process_holding_the_card_asks_the_card_nothing_before_the_dialog(
    card: VirtualCard, backend: PcscBackend, kind: str, opensc_in_process: ModuleBackend
) -> None:
    token = token_of(backend)
    assert login(token, pin_of(kind)) == MAX_TRIES[kind]
    assert reader_in_use(), "OpenSC holds the card: another connection than the driver's"
    card.reset_count()
    module = opensc_in_process
    # The service lists every backend per login, not asking a module about a card the driver serves.
    module.executor.submit(module.tokens, frozenset({READER_0})).result(timeout=60)
    assert login(token_of(backend), pin_of(kind)) == MAX_TRIES[kind]
    assert [r.ins for r in card.records] == WARM[kind]
    # Another program connected as well: the dialog asks the card again.
    with OtherProgram(READER_0) as other:
        assert other.transmit(WRONG_VERIFY[kind]) == 0x63C0 | (MAX_TRIES[kind] - 1)
        card.reset_count()
        status = on(token, token.pin_status, auth_cert(token))
        assert status.retries_left == MAX_TRIES[kind] - 1 == card_tries(card)
        assert card.records, "read from the card"


@pytest.mark.parametrize("kind", OPENSC_HOLDS)
def test_a_login_through_a_module_in_this_process_makes_the_dialog_ask_the_card(
    card: VirtualCard, backend: PcscBackend, kind: str, opensc_in_process: ModuleBackend
) -> None:
    """OpenSC in this process is not another program, but a C_Login the bridge asks of it
    sends the card a VERIFY that the driver's count does not see."""
    token = token_of(backend)
    login(token, pin_of(kind))
    module = opensc_in_process
    listed = [t for t in module.executor.submit(module.tokens).result(timeout=60) if t.info.reader == READER_0]
    slot, cert = next((t, c) for t in listed for c in on(t, t.certificates) if c.purpose is Purpose.AUTHENTICATION)
    algorithm = on(token, token.supported_algorithms, auth_cert(token))[0]
    digest = hashlib.new(algorithm.hash_function.replace("-", "").lower(), b"login").digest()
    with pytest.raises(PinIncorrectError):
        on(slot, slot.sign_digest, cert, bytearray(b"0000"), digest, algorithm)
    card.reset_count()
    status = on(token, token.pin_status, auth_cert(token))
    assert status.retries_left == MAX_TRIES[kind] - 1 == card_tries(card)
    assert card.records, "read from the card"


def status_of(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/v1/status", headers={"Origin": ORIGIN})
        response = conn.getresponse()
        return dict(json.loads(response.read()))
    finally:
        conn.close()


def test_serve_with_p11kits_opensc_sends_the_card_the_drivers_warm_login_alone(
    card: VirtualCard, kind: str, tmp_path: Path, pinentry: ScriptedPinentry
) -> None:
    """Debian's set-up: OpenSC's module registered with p11-kit, so ``serve`` loads it beside
    the direct drivers. After the first login, a status poll sends the card nothing, and a
    login sends only the direct driver's warm login: the module is not asked about a card
    the driver serves (its C_GetTokenInfo reads the PIN counters), nor asked at all while the
    readers stay as they were (OpenSC 0.23 tries all its drivers on a Finnish card at every
    C_GetSlotList), and its connection from inside the bridge does not make the driver read
    the PIN state."""
    from tests.server.conftest import start_serve

    if not OPENSC.exists() or not Path("/usr/share/p11-kit/modules/opensc-pkcs11.module").exists():
        pytest.skip("opensc-pkcs11 is not installed (with its p11-kit registration)")
    served = start_serve("--allow-origin", ORIGIN, env=bridge_env(tmp_path, pinentry.env()))
    try:
        pinentry.respond(pin_of(kind).decode())
        assert http_login(served.port, nonce())[0] == 200
        assert reader_in_use() == (kind in OPENSC_HOLDS), "OpenSC's module in the bridge holds the cards it knows"
        card.reset_count()
        assert status_of(served.port)["tokens"], "the card is listed"
        assert card.records == [], "a status poll asks the card nothing"
        pinentry.respond(pin_of(kind).decode())
        assert http_login(served.port, nonce())[0] == 200
        assert [r.ins for r in card.records] == WARM[kind]
    finally:
        served.stop()


@pytest.mark.parametrize("kind", ["fineid"])
def test_opensc_in_this_process_is_asked_again_once_a_reader_changes(
    card: VirtualCard, backend: PcscBackend, kind: str, opensc_in_process: ModuleBackend, card_folder: Path
) -> None:
    """A module whose slots are all PC/SC readers and that saw only the drivers' cards is
    not asked while the readers stay as they were; a card put into another reader makes it
    list again, and the card it knows there is found."""
    module = opensc_in_process
    login(token_of(backend), pin_of(kind))

    def listing() -> list[str | None]:
        readers = backend.executor.submit(backend.readers_state).result(timeout=30)
        found = module.executor.submit(module.tokens, frozenset({READER_0}), readers).result(timeout=60)
        return [t.info.reader for t in found]

    assert listing() == []  # asked: OpenSC tries its drivers on the Finnish card
    card.reset_count()
    assert listing() == []
    assert card.records == [], "not asked again: no reader or card came or went"
    piv = start_card(card_folder, "ec-p256", reader=1)
    try:
        assert listing() == [READER_1], "the PIV card OpenSC knows, in the other reader"
    finally:
        stop_card(piv)
    assert listing() == []
