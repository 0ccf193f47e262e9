import asyncio
import os
from collections.abc import Awaitable

import pytest

from cardbridge.errors import PinentryError, PinIncorrectError, UserCancelledError, UserTimeoutError
from cardbridge.model import PinKind, PinStatus
from cardbridge.pinentry import PinentrySource, PinRequest, StreamPinSource, dialog_for
from cardbridge.pinentry.assuan import Pinentry, escape, unescape_into
from tests.conftest import ScriptedPinentry, ended, parent_of


def test_escape_round_trip() -> None:
    for text in ["plain", "50% off\nnext line\r", "%%%0A"]:
        out = bytearray()
        unescape_into(escape(text).encode(), out)
        assert out.decode() == text


def _request(**kw: object) -> PinRequest:
    values: dict[str, object] = {
        "origin": "https://login.example.no",
        "holder": "Kari Nordmann",
        "kind": PinKind.AUTHENTICATION,
        "status": PinStatus(),
        "lang": "en",
    }
    values.update(kw)
    return PinRequest(**values)  # type: ignore[arg-type]


async def test_dialog_names_origin_holder_and_pin(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("12%34")
    pin = await PinentrySource(pinentry.program).get_pin(_request())
    assert pin == bytearray(b"12%34")
    (desc,) = pinentry.texts("SETDESC")
    assert "https://login.example.no" in desc and "Kari Nordmann" in desc and "PIN1" in desc
    assert pinentry.texts("SETTITLE") == ["Log in with your ID card"]


async def test_norwegian_texts_and_tries_left(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    error = PinIncorrectError("wrong", retries_left=2)
    await PinentrySource(pinentry.program).get_pin(_request(lang="nb", error=error))
    assert pinentry.texts("SETERROR") == ["Feil PIN-kode. Du har 2 forsøk igjen."]
    pinentry.respond("1234")
    await PinentrySource(pinentry.program).get_pin(
        _request(lang="nn", status=PinStatus(retries_left=1, final_try=True))
    )
    (desc,) = pinentry.texts("SETDESC")
    assert "siste forsøket" in desc


async def test_cancel_and_timeout(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("CANCEL", "TIMEOUT")
    source = PinentrySource(pinentry.program)
    with pytest.raises(UserCancelledError):
        await source.get_pin(_request())
    with pytest.raises(UserTimeoutError):
        await source.get_pin(_request())


async def test_a_hung_dialog_is_killed_when_cancelled(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("HANG")
    task = asyncio.ensure_future(PinentrySource(pinentry.program).get_pin(_request()))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if pinentry.dialogs():
            break
    pid = pinentry.dialogs()[0]["pid"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    import os

    await asyncio.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_missing_program() -> None:
    with pytest.raises(PinentryError):
        async with Pinentry("/nonexistent/pinentry"):
            pass


async def test_stream_source_gives_one_pin_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pin"
    path.write_bytes(b"4321\n5678\n")
    with path.open("rb") as fh:
        source = StreamPinSource(fh)
        assert await source.get_pin(_request()) == bytearray(b"4321")
        with pytest.raises(UserCancelledError):
            await source.get_pin(_request())


def test_pin_pad_dialog() -> None:
    dialog = dialog_for(_request(status=PinStatus(protected_path=True)))
    assert "keypad" in dialog.description


async def _until_dialog(pinentry: ScriptedPinentry) -> int:
    for _ in range(500):
        if pinentry.dialogs():
            return int(pinentry.dialogs()[0]["pid"])
        await asyncio.sleep(0.02)
    raise AssertionError("the dialog did not open")


async def _within(seconds: float, awaitable: Awaitable[object]) -> object:
    async with asyncio.timeout(seconds):
        return await awaitable


async def test_a_wrapper_that_does_not_exec_is_ended_with_its_child(pinentry: ScriptedPinentry) -> None:
    # A wrapper shell script runs the dialog as a grandchild; cancelling must end both, and
    # must not wait for the pipes the grandchild holds.
    pinentry.respond("HANG")
    task = asyncio.ensure_future(PinentrySource(pinentry.wrapper()).get_pin(_request()))
    try:
        dialog = await _until_dialog(pinentry)
        wrapper = parent_of(dialog)
        assert wrapper != os.getpid()
        assert os.getpgid(dialog) == wrapper != os.getpgid(0), "the dialog runs in a process group of its own"
        task.cancel()
        async with asyncio.timeout(5):  # before the fix: waits for the grandchild's pipes (an hour)
            with pytest.raises(asyncio.CancelledError):
                await task
        assert ended(dialog) and ended(wrapper)
    finally:
        pinentry.kill_leftovers()


async def test_a_wrapper_dialog_that_times_out_is_ended_with_its_child(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("HANG")
    source = PinentrySource(pinentry.wrapper())
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_within(1, source.get_pin(_request())), 5)  # before the fix: never ends
        (dialog,) = pinentry.pids()
        assert ended(dialog)
    finally:
        pinentry.kill_leftovers()


async def test_a_wrapper_dialog_answers_and_leaves_nothing(pinentry: ScriptedPinentry) -> None:
    pinentry.respond("1234")
    assert await PinentrySource(pinentry.wrapper()).get_pin(_request()) == bytearray(b"1234")
    (dialog,) = pinentry.pids()
    assert ended(dialog)
