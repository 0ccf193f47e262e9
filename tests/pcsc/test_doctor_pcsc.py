"""cardbridge doctor with a real pcscd: up, a virtual card in the vpcd reader, and no
reader at all (a pcscd of our own with an empty reader configuration)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pcsc.conftest import PCSCD_SOCKET, Pcscd, _pcscd_answers
from tests.test_doctor import _doctor, _env

pytestmark = pytest.mark.pcsc


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_pcscd_up(tmp_path: Path, home: Path, pcscd: Pcscd) -> None:
    from cardbridge.pcsc import list_readers

    _, checks, _ = _doctor("--lang", "en", env=_env(tmp_path, home))
    assert checks["pcscd"][0]["status"] == "ok"
    assert checks["pcscd"][0]["detail"] == "The smart card service is running and answers."
    names = [r.name for r in list_readers()]
    readers = checks["readers"][0]
    if names:
        assert readers["status"] == "ok" and readers["data"]["readers"] == names
    else:
        assert readers["status"] == "fail"


def test_pcscd_up_with_a_card_names_it_by_its_atr(tmp_path: Path, home: Path, pcscd: Pcscd) -> None:
    from tests.pcsc.conftest import start_card, stop_card

    try:
        card = start_card(tmp_path / "card")
    except BaseException as exc:  # the shared vpcd reader may be taken by another test run
        pytest.skip(f"no virtual card: {exc}")
    try:
        _, checks, _ = _doctor("--lang", "en", env=_env(tmp_path, home))
    finally:
        stop_card(card)
    cards = [c for c in checks.get("cards", []) if c.get("data", {}).get("reader") == card.reader_name]
    assert cards, checks.get("cards")
    assert cards[0]["status"] in ("ok", "warn")
    assert cards[0]["data"]["atr"] and cards[0]["data"]["atr"] in cards[0]["detail"]


@pytest.fixture
def pcscd_without_readers(tmp_path: Path, pcscd: Pcscd) -> Iterator[None]:
    """Our own pcscd with an empty reader configuration (no vpcd). The session's pcscd is
    stopped for it and started again after, when this session started it; a pcscd that
    someone else runs is never stopped (the test is skipped then)."""
    if shutil.which("pcscd") is None or os.geteuid() != 0:
        pytest.skip("needs pcscd and root")
    restart = pcscd.owned and pcscd.process is not None
    if restart:
        pcscd.stop()
    elif PCSCD_SOCKET.exists() and _pcscd_answers():
        pytest.skip("another program's pcscd runs (with its readers); not ours to stop")
    empty = tmp_path / "reader.conf.d"
    empty.mkdir()
    PCSCD_SOCKET.unlink(missing_ok=True)
    process = subprocess.Popen(
        ["pcscd", "--foreground", "--config", str(empty)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not (PCSCD_SOCKET.exists() and _pcscd_answers()):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.skip("our pcscd did not start")
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if restart:
            PCSCD_SOCKET.unlink(missing_ok=True)
            pcscd.start()


def test_without_a_reader(tmp_path: Path, home: Path, pcscd_without_readers: None) -> None:
    code, checks, _ = _doctor("--lang", "en", env=_env(tmp_path, home))
    assert code == 1
    assert checks["pcscd"][0]["status"] == "ok"
    (readers,) = checks["readers"]
    assert readers["status"] == "fail" and readers["detail"] == "No card reader was found."
    assert "Connect the card reader to the computer" in readers["fix"]
