"""Shutting a module down: never while a call is in flight; then sessions closed and the
module finalized (``ModuleBackend.close`` and ``shutdown``), against SoftHSM2."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cardbridge.errors import UserCancelledError
from cardbridge.model import Purpose, SignatureAlgorithm
from cardbridge.pkcs11 import _cryptoki
from cardbridge.pkcs11 import backend as backend_module
from cardbridge.pkcs11.backend import ModuleBackend, Pkcs11Token
from tests.softhsm import LoginSpy, SoftHsm

pytestmark = pytest.mark.softhsm
ES256 = SignatureAlgorithm.from_jws("ES256")


class FinalizeSpy:
    """Stands for a backend's module handle (python-pkcs11's ``lib``) and counts its
    C_Finalize calls; every call, C_Finalize too, goes on to the real module."""

    def __init__(self, backend: ModuleBackend) -> None:
        self._real = backend._lib
        self.finalized = 0
        backend._lib = self

    def finalize(self) -> None:
        self.finalized += 1
        assert self._real is not None
        self._real.finalize()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def alone(softhsm: SoftHsm) -> Iterator[str]:
    """The module's path, with no other backend of this process using it (so that closing
    the test's backend finalizes it)."""
    gc.collect()
    others = [b for b in backend_module._backends if b.name == softhsm.module]
    assert others == [], "another test left a ModuleBackend open"
    yield softhsm.module
    assert backend_module.shutdown(10)


def _p256(backend: ModuleBackend) -> tuple[Pkcs11Token, Any]:
    (token,) = [t for t in backend.executor.submit(backend.tokens).result() if t.info.label == "p256"]
    certificates = backend.executor.submit(token.certificates).result()
    return token, next(c for c in certificates if c.purpose is Purpose.AUTHENTICATION)


def test_close_waits_for_the_call_in_progress_then_closes_sessions_and_finalizes(
    alone: str, monkeypatch: pytest.MonkeyPatch, login_spy: LoginSpy
) -> None:
    closed_slots: list[int] = []
    close_all = _cryptoki.Cryptoki.close_all_sessions

    def spy(raw: _cryptoki.Cryptoki, slot_id: int) -> None:
        closed_slots.append(slot_id)
        close_all(raw, slot_id)

    monkeypatch.setattr(_cryptoki.Cryptoki, "close_all_sessions", spy)
    logouts: list[int] = []
    logout = _cryptoki.Cryptoki.logout

    def logout_spy(raw: _cryptoki.Cryptoki, session: int) -> None:
        logouts.append(session)
        logout(raw, session)

    monkeypatch.setattr(_cryptoki.Cryptoki, "logout", logout_spy)
    backend = ModuleBackend(alone)
    token, certificate = _p256(backend)
    finalize = FinalizeSpy(backend)
    slow = login_spy.hold()
    pin = bytearray(b"1234")
    in_progress = backend.executor.submit(token.sign_digest, certificate, pin, b"\x01" * 32, ES256)
    assert slow.entered.wait(20)
    queued = backend.executor.submit(backend.tokens)
    closer = threading.Thread(target=backend.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close returned while C_Login was still running"
    slow.release.set()
    closer.join(20)
    assert not closer.is_alive()
    assert slow.returned.is_set()
    # The login in progress ended, then logged out without signing: the bridge was closing.
    assert isinstance(in_progress.exception(0), UserCancelledError)
    assert len(logouts) == 1
    assert queued.cancelled(), "a call that had not started was cancelled"
    assert token.info.slot in closed_slots
    assert finalize.finalized == 1, "C_Finalize"
    backend.close()  # idempotent
    assert finalize.finalized == 1
    # The module loads again for the next user, and the token is whole.
    again = ModuleBackend(alone)
    token, certificate = _p256(again)
    signed = again.executor.submit(token.sign_digest, certificate, bytearray(b"1234"), b"\x02" * 32, ES256)
    assert len(signed.result()) == 64
    again.close()


def test_a_module_used_by_another_backend_is_not_finalized_under_it(alone: str) -> None:
    first, second = ModuleBackend(alone), ModuleBackend(alone)
    _p256(first)
    _p256(second)
    spies = FinalizeSpy(first), FinalizeSpy(second)
    first.close()
    assert [spy.finalized for spy in spies] == [0, 0]
    token, certificate = _p256(second)
    assert second.executor.submit(token.sign_digest, certificate, bytearray(b"1234"), b"\x03" * 32, ES256).result()
    second.close()
    assert [spy.finalized for spy in spies] == [0, 1], "the last backend finalizes the module"


def test_shutdown_gives_up_on_a_call_that_outlasts_the_wait_and_says_so(alone: str, login_spy: LoginSpy) -> None:
    backend = ModuleBackend(alone)
    token, certificate = _p256(backend)
    finalize = FinalizeSpy(backend)
    slow = login_spy.hold()
    in_progress = backend.executor.submit(token.sign_digest, certificate, bytearray(b"1234"), b"\x04" * 32, ES256)
    assert slow.entered.wait(20)
    assert backend_module.shutdown(0.2) is False, "a call still runs: the process must leave without it"
    assert backend.wait_closed(0.1) is False
    assert finalize.finalized == 0, "finalized under a running call"
    slow.release.set()
    assert backend_module.shutdown(20) is True  # waits for the backend already closing
    assert isinstance(in_progress.exception(0), UserCancelledError)
    assert finalize.finalized == 1


def test_shutting_down_a_backend_that_never_loaded_its_module_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from cardbridge import pkcs11 as layer

    loads: list[str] = []
    real_lib = backend_module.pkcs11.lib

    def counted(path: str) -> Any:
        loads.append(path)
        return real_lib(path)

    monkeypatch.setattr(backend_module.pkcs11, "lib", counted)
    gc.collect()
    unused = ModuleBackend("/nonexistent/module.so")  # never used: nothing to close or finalize
    assert layer.shutdown() is True
    assert unused.closing and unused.wait_closed(0) is True
    assert loads == [], "shutdown loaded a module to finalize it"
    unused.close()


def test_the_module_is_not_finalized_while_another_backends_call_runs(alone: str, login_spy: LoginSpy) -> None:
    busy, idle = ModuleBackend(alone), ModuleBackend(alone)
    token, certificate = _p256(busy)
    _p256(idle)
    spies = FinalizeSpy(busy), FinalizeSpy(idle)
    slow = login_spy.hold()
    closing = threading.Thread(target=busy.close)
    in_progress = busy.executor.submit(token.sign_digest, certificate, bytearray(b"1234"), b"\x05" * 32, ES256)
    assert slow.entered.wait(20)
    closing.start()  # busy is closing, its C_Login still runs
    idle.close()  # the other backend is done with the module, but busy is not
    assert [spy.finalized for spy in spies] == [0, 0]
    slow.release.set()
    closing.join(20)
    assert isinstance(in_progress.exception(0), UserCancelledError)
    assert [spy.finalized for spy in spies] == [1, 0]
