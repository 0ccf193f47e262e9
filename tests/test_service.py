import asyncio
import base64
import contextlib
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from cardbridge.authtoken import authentication_digest
from cardbridge.config import Config, load_config
from cardbridge.errors import (
    AmbiguousCertificateError,
    BusyError,
    InvalidInputError,
    InvalidNonceError,
    InvalidOriginError,
    OriginNotAllowedError,
    PinIncorrectError,
    UserCancelledError,
    UserTimeoutError,
)
from cardbridge.model import Purpose
from cardbridge.origins import QUESTION_LIMIT, REFUSAL_PAUSE, OriginStore, SitePolicy
from cardbridge.pinentry import FixedPinSource, PinentrySource
from cardbridge.service import CardService, Selection, open_backends
from tests.conftest import ScriptedPinentry, alive, ended
from tests.softhsm import LoginSpy, SoftHsm
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm
ORIGIN = "https://login.example.no"
OTHER = "https://skatt.example.no"


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
async def service(softhsm: SoftHsm):  # type: ignore[no-untyped-def]
    svc = CardService(open_backends([softhsm.module]), user_timeout=10)
    yield svc
    await svc.aclose()


@pytest.mark.parametrize(("label", "algorithm"), [("p256", "ES256"), ("p384", "ES384"), ("rsa", "RS256")])
async def test_token_verifies_and_one_changed_character_does_not(
    service: CardService, pinentry: ScriptedPinentry, label: str, algorithm: str
) -> None:
    pinentry.respond("1234")
    challenge = nonce()
    token = await service.authenticate(
        ORIGIN, challenge, PinentrySource(pinentry.program), selection=Selection(token_label=label)
    )
    data = token.to_dict()
    assert data["algorithm"] == algorithm and data["format"] == "web-eid:1.0"
    verify_token(data, ORIGIN, challenge)
    with pytest.raises(InvalidSignature):
        verify_token(data, "https://login.example.nu", challenge)
    other = challenge[:-2] + ("B" if challenge[-2] != "B" else "C") + challenge[-1]
    with pytest.raises(InvalidSignature):
        verify_token(data, ORIGIN, other)
    # The authentication certificate signed, not the signing one.
    (cert,) = [
        c
        for c in (await service.list_tokens())
        if c.info.label == label
        for c in c.certificates
        if c.purpose is Purpose.AUTHENTICATION
    ]
    assert token.unverified_certificate == cert.der


async def test_wrong_pin_is_reported_in_the_next_dialog_then_cancel_is_a_cancel(
    service: CardService, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("9999", "CANCEL")
    with pytest.raises(UserCancelledError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    dialogs = pinentry.dialogs()
    assert len(dialogs) == 2
    assert pinentry.texts("SETERROR") == ["Feil PIN-kode."]


async def test_wrong_then_right_pin_logs_in_once_each(service: CardService, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("9999", "1234")
    challenge = nonce()
    token = await service.authenticate(
        ORIGIN, challenge, PinentrySource(pinentry.program), lang="en", selection=Selection(token_label="p384")
    )
    verify_token(token.to_dict(), ORIGIN, challenge)
    assert pinentry.texts("SETERROR") == ["Wrong PIN."]


async def test_short_pin_is_not_sent(service: CardService, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("12", "CANCEL")
    with pytest.raises(UserCancelledError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    assert pinentry.texts("SETERROR") == ["PIN-koden må ha 4 til 255 tegn."]


async def test_cancel(service: CardService, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("CANCEL")
    with pytest.raises(UserCancelledError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )


async def test_walked_away_times_out_and_a_second_request_is_busy(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=1.5)
    pinentry.respond("HANG")
    first = asyncio.ensure_future(
        service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256"))
    )
    for _ in range(100):
        await asyncio.sleep(0.02)
        if pinentry.dialogs():
            break
    assert service.busy
    with pytest.raises(BusyError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    assert len(pinentry.dialogs()) == 1, "no second dialog"
    with pytest.raises(UserTimeoutError):
        await first
    assert not service.busy
    # The bridge still answers the next request.
    pinentry.respond("1234")
    challenge = nonce()
    token = await service.authenticate(
        ORIGIN, challenge, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
    )
    verify_token(token.to_dict(), ORIGIN, challenge)
    await service.aclose()


async def test_bad_input_never_reaches_a_backend(pinentry: ScriptedPinentry) -> None:
    class Untouchable:
        """Stands in for a backend only to prove it is never called."""

        name = "untouchable"

        @property
        def executor(self):  # type: ignore[no-untyped-def]
            raise AssertionError("touched")

        def tokens(self, skip_readers=(), readers=None):  # type: ignore[no-untyped-def]
            raise AssertionError("touched")

        def close(self) -> None:
            pass

    service = CardService([Untouchable()])  # type: ignore[list-item]
    with pytest.raises(InvalidOriginError):
        await service.authenticate("https://A.example", nonce(), PinentrySource(pinentry.program))
    with pytest.raises(InvalidNonceError):
        await service.authenticate(ORIGIN, "x" * 43, PinentrySource(pinentry.program))
    with pytest.raises(InvalidInputError):
        await service.sign(ORIGIN, b"", b"\x00" * 31, "SHA-256", PinentrySource(pinentry.program))
    assert pinentry.dialogs() == []


async def test_sign_with_the_signing_key(service: CardService, pinentry: ScriptedPinentry) -> None:
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

    pinentry.respond("OK")  # the person agrees to share the certificate
    cert, algorithms = await service.signing_certificate(
        ORIGIN, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
    )
    assert cert.purpose is Purpose.SIGNING
    assert {a.hash_function for a in algorithms} >= {"SHA-256", "SHA-384"}
    pinentry.respond("1234")
    digest = hashlib.sha384(b"document").digest()
    signature, algorithm = await service.sign(ORIGIN, cert.der, digest, "SHA-384", PinentrySource(pinentry.program))
    assert algorithm.jws == "ES384"
    (desc,) = pinentry.texts("SETDESC")
    assert "PIN2" in desc
    key = x509.load_der_x509_certificate(cert.der).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    half = len(signature) // 2
    der = encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))
    key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def test_algorithm_choice() -> None:
    import datetime as dt

    from cardbridge.errors import UnsupportedKeyError
    from cardbridge.model import CertificateInfo, SignatureAlgorithm
    from cardbridge.service import authentication_algorithm

    def cert(key_type: str, size: int) -> CertificateInfo:
        now = dt.datetime.now(dt.UTC)
        return CertificateInfo(b"", "", "", "1", now, now, key_type, size, None, Purpose.AUTHENTICATION)

    every = [
        SignatureAlgorithm(c, h, p)
        for c, p in (("ECC", "NONE"), ("RSA", "PKCS1.5"), ("RSA", "PSS"))
        for h in ("SHA-256", "SHA-384", "SHA-512")
    ]
    assert authentication_algorithm(cert("EC", 256), every).jws == "ES256"
    assert authentication_algorithm(cert("EC", 384), every).jws == "ES384"
    assert authentication_algorithm(cert("EC", 521), every).jws == "ES512"
    assert authentication_algorithm(cert("RSA", 2048), every).jws == "RS256"
    only_pss = [a for a in every if a.padding == "PSS"]
    assert authentication_algorithm(cert("RSA", 2048), only_pss).jws == "PS256"
    with pytest.raises(UnsupportedKeyError):
        authentication_algorithm(cert("EC", 224), every)
    with pytest.raises(UnsupportedKeyError):
        authentication_algorithm(cert("RSA", 2048), [a for a in every if a.crypto == "ECC"])


async def test_certificate_without_its_key(service: CardService, pinentry: ScriptedPinentry) -> None:
    from cardbridge.errors import KeyNotFoundError

    pinentry.respond("1234")
    with pytest.raises(KeyNotFoundError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="orphan")
        )


class HungModule:
    """A fake for a fault no real component here can produce on demand: a PKCS#11 module whose
    C_GetSlotList never returns (as a module stuck on a dead reader does). It blocks its
    one worker thread until the test releases it."""

    name = "hung-module"

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor
        from threading import Event

        self.release = Event()
        self.calls = 0
        self._executor = ThreadPoolExecutor(max_workers=1)

    @property
    def executor(self):  # type: ignore[no-untyped-def]
        return self._executor

    def tokens(self, skip_readers: object = (), readers: object = None) -> list[object]:
        self.calls += 1
        self.release.wait(30)
        return []

    def close(self) -> None:
        self.release.set()
        self._executor.shutdown(wait=False)


async def test_a_hung_module_gives_an_error_and_the_bridge_goes_on(
    softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    from cardbridge.errors import ModuleError

    hung = HungModule()
    service = CardService([hung, *open_backends([softhsm.module])], card_timeout=0.5)  # type: ignore[list-item]
    try:
        # The hung module times out; the other module's card is still used.
        pinentry.respond("1234")
        challenge = nonce()
        token = await service.authenticate(
            ORIGIN, challenge, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
        verify_token(token.to_dict(), ORIGIN, challenge)
        # While it is stuck it is refused at once: no second call queues behind the first,
        # and the other module's tokens are still listed.
        infos, errors = await service.token_infos()
        assert "p256" in {info.label for info in infos}
        assert [type(e) for e in errors] == [ModuleError]
        assert hung.calls == 1
        # Once the stuck call returns, the module is asked again.
        hung.release.set()
        for _ in range(100):
            _, errors = await service.token_infos()
            if not errors:
                break
            await asyncio.sleep(0.02)
        assert errors == []
        assert hung.calls >= 2
    finally:
        await service.aclose()


def _pinentry_children() -> list[int]:
    """Child processes of this test process running the scripted pinentry (from /proc)."""
    import os
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"scripted_pinentry" in cmdline and " Z " not in stat:
            found.append(int(proc.name))
    return found


async def test_the_dialog_program_started_ahead_is_ended_when_no_pin_is_needed(
    service: CardService, pinentry: ScriptedPinentry
) -> None:
    # The pinentry starts while the card is looked up; the lookup fails (two certificates),
    # so no dialog is shown and the program is gone when the call returns.
    with pytest.raises(AmbiguousCertificateError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="two-auth")
        )
    assert pinentry.dialogs() == []
    assert _pinentry_children() == []
    # And when it is used, it is the one that asks.
    pinentry.respond("1234")
    await service.authenticate(
        ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
    )
    assert len(pinentry.dialogs()) == 1
    assert _pinentry_children() == []


# -- wrong PINs: never the same one twice, at most 3 without a retry counter --------------


async def test_a_token_without_a_retry_counter_gets_at_most_three_pins_per_login(
    service: CardService, pinentry: ScriptedPinentry, login_spy: LoginSpy
) -> None:
    # SoftHSM2 reports no tries left; a dialog that keeps answering (10 different wrong PINs).
    wrong = [str(n) * 4 for n in range(10) if n != 1] + ["4321"]
    pinentry.respond(*wrong)
    with pytest.raises(PinIncorrectError) as info:
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    assert login_spy.count == 3
    assert len(pinentry.dialogs()) == 3
    assert info.value.code == "PIN_INCORRECT" and "3 times" in info.value.message


async def test_the_pin_the_card_refused_is_not_sent_again(
    service: CardService, pinentry: ScriptedPinentry, login_spy: LoginSpy
) -> None:
    pinentry.respond("9999", "9999", "CANCEL")
    with pytest.raises(UserCancelledError):  # the person cancelled (the Web eID app says the same)
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), lang="en", selection=Selection(token_label="p256")
        )
    assert login_spy.count == 1, "the same wrong PIN went to the card twice"
    assert pinentry.texts("SETERROR") == [
        "Wrong PIN.",
        "This is the PIN the card just refused. It was not sent to the card again.",
    ]
    # Another PIN after the notice is sent, and the right one logs in.
    pinentry.respond("9999", "9999", "1234")
    login_spy.sessions.clear()
    challenge = nonce()
    token = await service.authenticate(
        ORIGIN, challenge, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
    )
    verify_token(token.to_dict(), ORIGIN, challenge)
    assert login_spy.count == 2


async def test_a_dialog_that_repeats_one_wrong_pin_forever_is_stopped(
    service: CardService, pinentry: ScriptedPinentry, login_spy: LoginSpy
) -> None:
    from cardbridge.service import MAX_DIALOGS

    pinentry.respond(*["9999"] * 50)
    with pytest.raises(PinIncorrectError):
        await service.authenticate(
            ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    assert login_spy.count == 1
    assert len(pinentry.dialogs()) == MAX_DIALOGS


# -- the PIN buffer is wiped after the module has read it, never during -------------------


async def test_the_pin_is_wiped_only_after_c_login_returns(
    service: CardService, pinentry: ScriptedPinentry, login_spy: LoginSpy
) -> None:
    """The login is cancelled (the browser left) while C_Login still reads the PIN buffer
    (the spy holds the real call open, with the buffer exported as the module sees it)."""
    login_spy.hold()
    pinentry.respond("1234")
    task = asyncio.ensure_future(
        service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="p256"))
    )
    assert await asyncio.to_thread(login_spy.entered.wait, 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # not a BufferError from a wipe during the call
        await task
    (buffer,) = login_spy.buffers
    assert buffer == b"1234", "wiped while the module reads it"
    login_spy.release.set()
    for _ in range(200):
        if login_spy.seen and not buffer:
            break
        await asyncio.sleep(0.01)
    assert login_spy.seen == [b"1234"]
    assert buffer == bytearray(), "wiped once the call is over"


async def _until_dialogs(pinentry: ScriptedPinentry, count: int) -> None:
    for _ in range(500):
        if len(pinentry.dialogs()) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the dialog did not open")


async def test_a_wrapper_dialog_is_ended_on_cancel_and_timeout_and_the_bridge_is_free(
    softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    # A pinentry wrapper script that does not exec: the dialog is its child. A cancel (the
    # caller went away) and a timeout must end both, at once, and free the bridge.
    service = CardService(open_backends([softhsm.module]), user_timeout=30)
    wrapper = pinentry.wrapper()
    p256 = Selection(token_label="p256")
    try:
        pinentry.respond("HANG", "HANG")
        task = asyncio.ensure_future(service.authenticate(ORIGIN, nonce(), PinentrySource(wrapper), selection=p256))
        await _until_dialogs(pinentry, 1)
        task.cancel()
        async with asyncio.timeout(5):  # before the fix: waits for the dialog's pipes
            with pytest.raises(asyncio.CancelledError):
                await task
        assert not service.busy
        service.user_timeout = 1.5
        with pytest.raises(UserTimeoutError):
            async with asyncio.timeout(8):
                await service.authenticate(ORIGIN, nonce(), PinentrySource(wrapper), selection=p256)
        assert not service.busy
        service.user_timeout = 30
        assert all(ended(pid) for pid in pinentry.pids())
        pinentry.respond("1234")
        challenge = nonce()
        token = await service.authenticate(ORIGIN, challenge, PinentrySource(wrapper), selection=p256)
        verify_token(token.to_dict(), ORIGIN, challenge)
    finally:
        pinentry.kill_leftovers()
        await service.aclose()


async def test_open_service_puts_the_pcsc_drivers_before_the_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, softhsm: SoftHsm
) -> None:
    """Every entry point (CLI, serve, native host, doctor) gets its backends here: the
    built-in PC/SC drivers first (a card both reach is used through the direct driver)."""
    from cardbridge.config import Config
    from cardbridge.service import open_service

    monkeypatch.delenv("CARDBRIDGE_PKCS11_MODULE", raising=False)
    module = softhsm.module
    config = Config(path=tmp_path / "config.toml", pkcs11_modules=(module,))
    service = open_service(config)
    try:
        assert [b.name for b in service.backends][:1] == ["pcsc"]
        assert len(service.backends) == 2
    finally:
        await service.aclose()
    only = open_service(config, modules=[module])  # --module: those modules, no PC/SC
    try:
        assert "pcsc" not in [b.name for b in only.backends]
    finally:
        await only.aclose()


# -- the signing certificate goes to a page only after the person agreed ---------------------


async def test_signing_certificate_only_after_the_person_agrees(
    service: CardService, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("OK")
    cert, _ = await service.signing_certificate(
        ORIGIN, PinentrySource(pinentry.program), lang="en", selection=Selection(token_label="p256")
    )
    assert cert.purpose is Purpose.SIGNING
    (dialog,) = pinentry.dialogs()
    verbs = [verb for verb, _ in dialog["commands"]]
    assert "CONFIRM" in verbs and "GETPIN" not in verbs, "a question, no PIN"
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc and softhsm.citizen.common_name in desc and "national identity number" in desc
    assert desc.index(ORIGIN) < desc.index(softhsm.citizen.common_name)
    assert pinentry.texts("SETTITLE") == ["Share your certificate"]
    assert pinentry.texts("SETOK") == ["Share"]


async def test_signing_certificate_cancelled_is_user_cancelled_and_gives_nothing(
    service: CardService, pinentry: ScriptedPinentry
) -> None:
    pinentry.respond("CANCEL")
    with pytest.raises(UserCancelledError):
        await service.signing_certificate(
            ORIGIN, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
        )
    assert len(pinentry.dialogs()) == 1
    assert not service.busy


async def test_signing_certificate_unanswered_is_user_timeout(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=1)
    pinentry.respond("HANG")
    try:
        with pytest.raises(UserTimeoutError):
            await asyncio.wait_for(
                service.signing_certificate(
                    ORIGIN, PinentrySource(pinentry.program), selection=Selection(token_label="p256")
                ),
                10,
            )
        assert not service.busy
        assert all(ended(pid) for pid in pinentry.pids())
    finally:
        pinentry.kill_leftovers()
        await service.aclose()


# -- a caller's hash is never signed with a key that is also a login key -----------------------


@pytest.mark.parametrize("label", ["dual-use", "shared-key"])
async def test_a_signing_key_that_also_logs_in_signs_no_callers_hash(
    service: CardService, softhsm: SoftHsm, pinentry: ScriptedPinentry, label: str
) -> None:
    from cryptography.hazmat.primitives import serialization

    from cardbridge.errors import DualUseKeyError
    from cardbridge.model import SignatureAlgorithm

    pinentry.respond("OK", softhsm.pin)
    cert, _ = await service.signing_certificate(
        ORIGIN, PinentrySource(pinentry.program), selection=Selection(token_label=label)
    )
    assert cert.purpose is Purpose.SIGNING
    # The hash of another site's login: H(H(origin) || H(nonce)).
    other, challenge = "https://other.example.no", nonce()
    algorithm = SignatureAlgorithm("ECC", "SHA-256", "NONE")
    digest = authentication_digest(other, challenge, algorithm)
    with pytest.raises(DualUseKeyError) as info:
        await service.sign(ORIGIN, cert.der, digest, "SHA-256", PinentrySource(pinentry.program))
    assert info.value.code == "DUAL_USE_KEY"
    assert len(pinentry.dialogs()) == 1, "refused before the PIN dialog"
    assert not service.busy
    # Why: the validator's purpose check accepts this key for login — the signing certificate
    # itself, or the authentication certificate of the same key.
    from cryptography import x509

    def spki(der: bytes) -> bytes:
        return (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    (listing,) = [t for t in await service.list_tokens() if t.info.label == label]
    login = [c for c in listing.certificates if spki(c.der) == spki(cert.der) and _login_purpose(c.der)]
    assert [c.purpose for c in login] == [Purpose.SIGNING if label == "dual-use" else Purpose.AUTHENTICATION]


def _login_purpose(der: bytes) -> bool:
    from cardbridge.portal._certificate import check_purpose, parse_subject_certificate
    from cardbridge.portal.errors import CertificatePurposeError

    try:
        check_purpose(parse_subject_certificate(der))
    except CertificatePurposeError:
        return False
    return True


async def test_an_ordinary_signing_key_still_signs(service: CardService, pinentry: ScriptedPinentry) -> None:
    pinentry.respond("OK", "1234")
    cert, _ = await service.signing_certificate(
        ORIGIN, PinentrySource(pinentry.program), selection=Selection(token_label="p384")
    )
    signature, algorithm = await service.sign(
        ORIGIN, cert.der, hashlib.sha256(b"doc").digest(), "SHA-256", PinentrySource(pinentry.program)
    )
    assert signature and algorithm.hash_function == "SHA-256"


async def test_a_status_poll_that_gave_up_does_not_stay_queued_behind_a_long_login(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch, login_spy: LoginSpy
) -> None:
    from cardbridge.pkcs11.backend import ModuleBackend

    listings: list[int] = []
    tokens = ModuleBackend.tokens

    def counted(self: ModuleBackend, skip_readers: frozenset[str] = frozenset(), readers: object = None) -> object:
        listings.append(1)
        return tokens(self, skip_readers, readers)  # type: ignore[arg-type]

    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    try:
        await service.token_infos()
        monkeypatch.setattr(ModuleBackend, "tokens", counted)
        held = login_spy.hold()
        login = asyncio.ensure_future(
            service.authenticate(ORIGIN, nonce(), FixedPinSource("1234"), selection=Selection(token_label="p256"))
        )
        assert await asyncio.to_thread(held.entered.wait, 20)
        before = len(listings)
        for _ in range(3):  # /v1/status polls that give up while C_Login holds the worker
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await service.token_infos()
        held.release.set()
        await login
        infos, errors = await service.token_infos()  # the worker runs what is asked now
        assert infos and not errors
        assert len(listings) == before + 1, "the abandoned polls ran after the login"
    finally:
        held.release.set()
        await service.aclose()


async def test_closing_the_service_does_not_block_the_event_loop(softhsm: SoftHsm, login_spy: LoginSpy) -> None:
    service = CardService(open_backends([softhsm.module]), user_timeout=10)
    held = login_spy.hold()
    login = asyncio.ensure_future(
        service.authenticate(ORIGIN, nonce(), FixedPinSource("1234"), selection=Selection(token_label="p256"))
    )
    try:
        assert await asyncio.to_thread(held.entered.wait, 20)
        closing = asyncio.ensure_future(service.aclose())
        await asyncio.sleep(0.3)  # the loop runs while the module waits for its call
        assert not closing.done(), "aclose returned (or blocked the loop) while C_Login still ran"
        held.release.set()
        async with asyncio.timeout(20):
            await closing
    finally:
        held.release.set()
        login.cancel()
        with contextlib.suppress(BaseException):
            await login


# -- the question about a new website (origin_policy = "ask") ------------------------------


def service_for(softhsm: SoftHsm, config: Config, store: OriginStore, *, user_timeout: float = 10) -> CardService:
    return CardService(open_backends([softhsm.module]), user_timeout=user_timeout, sites=SitePolicy(config, store))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


P384 = Selection(token_label="p384")


# -- a new website ------------------------------------------------------------------------


async def test_first_login_asks_naming_the_origin_and_the_second_does_not(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("OK", "1234")
        challenge = nonce()
        token = await service.authenticate(ORIGIN, challenge, PinentrySource(pinentry.program), selection=P384)
        verify_token(token.to_dict(), ORIGIN, challenge)
        question, pin = pinentry.dialogs()
        assert ["CONFIRM", ""] in question["commands"]
        (title, desc) = (arg for verb, arg in question["commands"] if verb in ("SETTITLE", "SETDESC"))
        assert desc.splitlines()[0] == ORIGIN  # first, and on a line of its own
        assert "nettsted" in title.lower()
        assert any(verb == "GETPIN" for verb, _ in pin["commands"])
        assert origin_store.is_allowed(ORIGIN)

        pinentry.respond("1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384, lang="en")
        (only,) = pinentry.dialogs()
        assert any(verb == "GETPIN" for verb, _ in only["commands"])  # the PIN, no question

        assert origin_store.forget(ORIGIN)  # what `cardbridge origins forget` does
        pinentry.respond("OK", "1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384, lang="en")
        question, _ = pinentry.dialogs()
        texts = dict((verb, arg) for verb, arg in question["commands"] if verb.startswith("SET"))
        assert texts["SETTITLE"] == "A new website wants your ID card" and texts["SETOK"] == "Allow"
        assert texts["SETDESC"].startswith(f"{ORIGIN}\n\nwants to use your ID card.")
    finally:
        await service.aclose()


async def test_cancel_refuses_this_time_and_the_site_cannot_ask_again_at_once(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("CANCEL", "OK", "1234")
        with pytest.raises(UserCancelledError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1  # the question only: no card touched, no PIN asked
        assert not origin_store.is_allowed(ORIGIN)
        for _ in range(3):  # the pause: refused at once, no dialog
            with pytest.raises(OriginNotAllowedError) as refused:
                await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert "30" in refused.value.message
        assert len(pinentry.dialogs()) == 1
        # Another site is not paused; after the pause the first may ask again.
        assert SitePolicy(Config(), origin_store).decide(OTHER) == "ask"
        later = time.time() + REFUSAL_PAUSE + 1
        from cardbridge.origins import decide

        assert decide(ORIGIN, Config(), origin_store, now=later) == "ask"
    finally:
        await service.aclose()


@pytest.mark.parametrize("answer", ["CANCEL", "OK"])
async def test_the_answer_is_on_file_before_the_question_lock_goes(
    softhsm: SoftHsm,
    pinentry: ScriptedPinentry,
    origin_store: OriginStore,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    """Another bridge process that takes the question's lock next sees the answer (no second
    question about a site just refused), and one that waited decides again under the lock."""
    seen: list[str] = []
    asking = origin_store.asking

    @contextlib.contextmanager
    def spy() -> Iterator[None]:
        with asking():
            try:
                yield
            finally:  # the lock is still held here
                seen.append(SitePolicy(Config(), origin_store).decide(ORIGIN))

    monkeypatch.setattr(origin_store, "asking", spy)
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond(answer, "1234")
        if answer == "CANCEL":
            with pytest.raises(UserCancelledError):
                await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert seen == ["deny"]
        else:
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert seen == ["allow"]

        # The site was allowed (or refused) by another process while this one waited for the
        # lock: no question.
        origin_store.forget(ORIGIN)
        before = len(pinentry.dialogs())

        @contextlib.contextmanager
        def another_process_answered() -> Iterator[None]:
            with asking():
                origin_store.allow(ORIGIN)
                yield

        monkeypatch.setattr(origin_store, "asking", another_process_answered)
        pinentry.respond("1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert all(verb != "CONFIRM" for d in pinentry.dialogs()[before:] for verb, _ in d["commands"])
    finally:
        await service.aclose()


@pytest.mark.parametrize(
    "config",
    [
        Config(denied_origins=(ORIGIN,)),
        Config(denied_origins=(ORIGIN,), allowed_origins=(ORIGIN,)),  # denied wins
        Config(origin_policy="allow-list"),
        Config(origin_policy="allow-list", allowed_origins=(OTHER,)),
    ],
)
async def test_denied_or_unlisted_is_never_asked(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore, config: Config
) -> None:
    origin_store.allow(ORIGIN)  # even a site the person allowed before, when the config denies it
    if config.origin_policy == "allow-list":
        origin_store.forget(ORIGIN)
    service = service_for(softhsm, config, origin_store)
    try:
        pinentry.respond("OK", "1234")
        with pytest.raises(OriginNotAllowedError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert pinentry.dialogs() == []
    finally:
        await service.aclose()


async def test_a_locked_system_setting_wins_over_the_users_file(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore, tmp_path: Path
) -> None:
    system = write(
        tmp_path / "system.toml",
        f'origin_policy = "allow-list"\nallowed_origins = ["{OTHER}"]\nlocked = ["origin_policy", "allowed_origins"]\n',
    )
    user = write(tmp_path / "user.toml", f'origin_policy = "ask"\nallowed_origins = ["{ORIGIN}"]\n')
    config = load_config(user, system_path=system)
    assert (config.origin_policy, config.allowed_origins) == ("allow-list", (OTHER,))
    service = service_for(softhsm, config, origin_store)
    try:
        pinentry.respond("OK", "1234")
        with pytest.raises(OriginNotAllowedError) as refused:
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert "allowed_origins" in refused.value.message
        assert pinentry.dialogs() == []
        # Unlocked, the user's file would have let it through.
        write(system, f'origin_policy = "allow-list"\nallowed_origins = ["{OTHER}"]\n')
        service.sites = SitePolicy(load_config(user, system_path=system), origin_store)
        pinentry.respond("OK", "1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
    finally:
        await service.aclose()


async def test_one_question_at_a_time(softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore) -> None:
    service = service_for(softhsm, Config(), origin_store, user_timeout=30)
    try:
        pinentry.respond("HANG")
        first = asyncio.create_task(
            service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        )
        for _ in range(200):
            if pinentry.dialogs():
                break
            await asyncio.sleep(0.05)
        with pytest.raises(BusyError):
            await service.authenticate(OTHER, nonce(), PinentrySource(pinentry.program), selection=P384)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        (dialog,) = pinentry.dialogs()
        assert not alive(dialog["pid"])
        assert not origin_store.is_allowed(ORIGIN)
    finally:
        await service.aclose()


# -- waiting for a card -------------------------------------------------------------------


async def test_the_question_and_the_wait_share_one_timeout(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # A page's client waits user_timeout (plus a margin) for the whole login, not per dialog.
    service = service_for(softhsm, Config(), origin_store, user_timeout=6)
    try:
        pinentry.respond("AFTER 4 OK", "WAIT")  # 4 s to allow the site, then no card
        started = time.monotonic()
        with pytest.raises(UserTimeoutError):
            await service.authenticate(
                ORIGIN, nonce(), PinentrySource(pinentry.program), selection=Selection(token_label="missing")
            )
        assert time.monotonic() - started < 8.5  # one budget of 6 s, not 4 s + 6 s
        question, notice = pinentry.dialogs()
        timeouts = [int(arg) for d in (question, notice) for verb, arg in d["commands"] if verb == "SETTIMEOUT"]
        assert timeouts[0] <= 6 and timeouts[1] <= 2  # the notice gets what is left
    finally:
        await service.aclose()


async def test_an_unanswered_question_counts_as_no_for_the_pause(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # A page in a background tab must not raise the question again and again by leaving it
    # unanswered: the pinentry times out (as pinentry does with --timeout), then the pause.
    service = service_for(softhsm, Config(), origin_store)
    try:
        pinentry.respond("TIMEOUT")
        with pytest.raises(UserTimeoutError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1
        with pytest.raises(OriginNotAllowedError):
            await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1  # no second question
        assert not origin_store.is_allowed(ORIGIN)
    finally:
        await service.aclose()


async def test_ever_new_sites_refused_pause_every_question(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # A page that asks from a fresh subdomain each time: questions nobody answers pause only
    # their own site (the person may be away: no pause of every site on their behalf); after
    # QUESTION_LIMIT refusals (Cancel) of any sites, a new one is refused at once, no dialog.
    service = service_for(softhsm, Config(), origin_store)
    origin_store.allow(ORIGIN)
    unanswered = [f"https://away{i}.evil.example" for i in range(QUESTION_LIMIT)]
    fresh = [f"https://x{i}.evil.example" for i in range(QUESTION_LIMIT + 1)]
    try:
        for origin in unanswered:
            pinentry.respond("TIMEOUT")
            with pytest.raises(UserTimeoutError):
                await service.authenticate(origin, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert len(pinentry.dialogs()) == 1
        with pytest.raises(OriginNotAllowedError):  # its own pause
            await service.authenticate(unanswered[0], nonce(), PinentrySource(pinentry.program), selection=P384)
        for origin in fresh[:-1]:
            pinentry.respond("CANCEL")
            with pytest.raises(UserCancelledError):
                await service.authenticate(origin, nonce(), PinentrySource(pinentry.program), selection=P384)
            assert len(pinentry.dialogs()) == 1  # each new site is asked about
        pinentry.respond("OK", "1234")
        with pytest.raises(OriginNotAllowedError) as refused:
            await service.authenticate(fresh[-1], nonce(), PinentrySource(pinentry.program), selection=P384)
        assert f"cardbridge origins allow {fresh[-1]}" in refused.value.message
        assert pinentry.dialogs() == []  # no question
        # A site the person allowed before still logs in.
        pinentry.respond("1234")
        await service.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert any(verb == "GETPIN" for verb, _ in pinentry.dialogs()[-1]["commands"])
    finally:
        await service.aclose()


async def test_one_question_open_for_every_bridge_of_the_user(
    softhsm: SoftHsm, pinentry: ScriptedPinentry, origin_store: OriginStore
) -> None:
    # Two bridges (the native host runs once per request, serve beside it) share the
    # person's answers: while one asks about a site, the other asks about none.
    first = service_for(softhsm, Config(), origin_store, user_timeout=30)
    second = service_for(softhsm, Config(), OriginStore(origin_store.path))
    try:
        pinentry.respond("HANG")
        asking = asyncio.create_task(
            first.authenticate(ORIGIN, nonce(), PinentrySource(pinentry.program), selection=P384)
        )
        for _ in range(200):
            if pinentry.dialogs():
                break
            await asyncio.sleep(0.05)
        with pytest.raises(BusyError, match="another website"):
            await second.authenticate(OTHER, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert len(pinentry.dialogs()) == 1
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        pinentry.respond("OK", "1234")  # the question is closed: the other bridge may ask now
        await second.authenticate(OTHER, nonce(), PinentrySource(pinentry.program), selection=P384)
        assert origin_store.is_allowed(OTHER)
    finally:
        await asyncio.gather(first.aclose(), second.aclose())
