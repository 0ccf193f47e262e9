"""``cardbridge dev pinentry``: the service's pinentry client talks to it as to pinentry-tty."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from cardbridge.errors import UserCancelledError
from cardbridge.model import PinKind, PinStatus
from cardbridge.pinentry import PinentrySource, PinRequest

PROGRAM = f"{shlex.quote(sys.executable)} -m cardbridge dev pinentry"


def request(kind: PinKind = PinKind.AUTHENTICATION, *, pinpad: bool = False) -> PinRequest:
    return PinRequest(
        origin="http://localhost:8123",
        holder="Kari Nordmann",
        kind=kind,
        status=PinStatus(protected_path=pinpad),
        lang="en",
        timeout=30,
    )


async def test_answers_getpin_with_the_dev_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "dialogs.jsonl"
    monkeypatch.setenv("CARDBRIDGE_DEV_PIN", "12%3\n4")
    monkeypatch.setenv("CARDBRIDGE_DEV_PINENTRY_LOG", str(log))
    pin = await PinentrySource(PROGRAM).get_pin(request())
    assert pin == bytearray(b"12%3\n4")
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == 1
    assert entries[0]["command"] == "GETPIN"
    assert "http://localhost:8123" in entries[0]["setdesc"]
    assert "12%3" not in log.read_text(encoding="utf-8")


async def test_confirms_on_a_pinpad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDBRIDGE_DEV_PIN", "1234")
    monkeypatch.delenv("CARDBRIDGE_DEV_PINENTRY_LOG", raising=False)
    assert await PinentrySource(PROGRAM).get_pin(request(pinpad=True)) == bytearray()


async def test_cancels_without_a_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDBRIDGE_DEV_PIN", raising=False)
    monkeypatch.delenv("CARDBRIDGE_DEV_PINENTRY_LOG", raising=False)
    with pytest.raises(UserCancelledError):
        await PinentrySource(PROGRAM).get_pin(request(PinKind.SIGNING))
