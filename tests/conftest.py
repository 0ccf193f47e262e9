"""Fixtures shared by the whole suite: SoftHSM2 tokens and a scripted pinentry."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cardbridge.origins import OriginStore
from tests.softhsm import LoginSpy, SoftHsm, make_softhsm

TOOLS = Path(__file__).parent / "tools"

_LOG_DIR = pytest.StashKey[str]()

# The machine's system config (/etc/cardbridge/config.toml, e.g. from an installed package)
# never reaches the tests: tests that want one point CARDBRIDGE_SYSTEM_CONFIG at their own.
os.environ["CARDBRIDGE_SYSTEM_CONFIG"] = str(Path(__file__).parent / "no-system-config.toml")


def pytest_configure(config: pytest.Config) -> None:
    """Commands run by the tests log to a folder of the test run's own, never the user's;
    it is removed when the run ends (a CARDBRIDGE_LOG_DIR given from outside is kept)."""
    if os.environ.get("CARDBRIDGE_LOG_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="cardbridge-test-logs-")
    os.environ["CARDBRIDGE_LOG_DIR"] = folder
    # The person's answers about websites (origins.json) too: never the user's own.
    os.environ.setdefault("CARDBRIDGE_STATE_DIR", os.path.join(folder, "state"))
    config.stash[_LOG_DIR] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_LOG_DIR, None)
    if folder is None:
        return
    if os.environ.get("CARDBRIDGE_LOG_DIR") == folder:
        del os.environ["CARDBRIDGE_LOG_DIR"]
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_origin_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test has the person's answers about websites (origins.json) in a folder of its
    own: an Allow in one test never lets another test's site through."""
    monkeypatch.setenv("CARDBRIDGE_STATE_DIR", str(tmp_path / "origin-answers"))


@pytest.fixture
def origin_store() -> OriginStore:
    """The person's answers about websites for this test (see ``_own_origin_answers``)."""
    return OriginStore()


# How long a test waits for origins.json, just written, to settle: a reading of it is kept from
# then on (well past cardbridge.origins._SETTLED, whatever the machine's load).
ANSWERS_SETTLE = 0.5


class FileAccess:
    """Who opens and stats one file, and on which thread. Opens are seen through the
    interpreter's ``open`` audit event (``open()``, ``Path.read_bytes`` and ``os.open`` all
    raise it, whoever calls them), stats through a wrapper of ``os.stat``; the real file
    system does the work. One spy is active at a time (an audit hook cannot be removed: the
    one hook of the test process passes the events to the active spy)."""

    _active: ClassVar[FileAccess | None] = None
    _hooked: ClassVar[bool] = False

    def __init__(self, path: Path) -> None:
        self.path = os.fspath(path)
        self.opens: list[int] = []  # the thread of each open
        self.stats: list[int] = []  # the thread of each stat

    def clear(self) -> None:
        self.opens.clear()
        self.stats.clear()

    def threads(self) -> set[int]:
        return set(self.opens) | set(self.stats)

    def _is_it(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and os.fspath(path) == self.path

    @staticmethod
    def _audit(event: str, args: tuple[Any, ...]) -> None:
        spy = FileAccess._active
        if spy is not None and event == "open" and args and spy._is_it(args[0]):
            spy.opens.append(threading.get_ident())

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FileAccess:
        """Watch the file for the rest of the test."""
        if not FileAccess._hooked:
            sys.addaudithook(FileAccess._audit)
            FileAccess._hooked = True
        real_stat = os.stat

        def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            if self._is_it(path):
                self.stats.append(threading.get_ident())
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", stat)
        monkeypatch.setattr(FileAccess, "_active", self)
        return self


@pytest.fixture
def login_spy(monkeypatch: pytest.MonkeyPatch) -> LoginSpy:
    """The real C_Login, counted; ``login_spy.hold()`` holds the calls open (see LoginSpy)."""
    return LoginSpy().install(monkeypatch)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed")
    return make_softhsm(tmp_path_factory.mktemp("softhsm"))


class ScriptedPinentry:
    """Drives tests/tools/scripted_pinentry.py: what it answers, and what it was told."""

    program = str(TOOLS / "scripted_pinentry.py")

    def __init__(self, folder: Path) -> None:
        self.script = folder / "pinentry-script.json"
        self.log = folder / "pinentry-log.jsonl"
        self.respond()

    def respond(self, *responses: str) -> None:
        self.script.write_text(json.dumps({"responses": list(responses), "log": str(self.log)}), encoding="utf-8")
        self.log.unlink(missing_ok=True)

    def dialogs(self) -> list[dict[str, Any]]:
        """One entry per dialog shown: its commands as [verb, argument] pairs."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def texts(self, verb: str) -> list[str]:
        """Every argument sent with ``verb`` (SETDESC, SETERROR, …), in order."""
        return [arg for dialog in self.dialogs() for v, arg in dialog["commands"] if v == verb]

    def env(self) -> dict[str, str]:
        return {"CARDBRIDGE_PINENTRY": self.program, "CARDBRIDGE_TEST_PINENTRY_SCRIPT": str(self.script)}

    def wrapper(self) -> str:
        """A shell script that runs the scripted pinentry as its child, without ``exec`` (as
        distributions' pinentry wrapper scripts do): the dialog is a grandchild."""
        path = self.script.with_name("pinentry-wrapper.sh")
        path.write_text(
            f'#!/bin/sh\n"{sys.executable}" "{self.program}" "$@"\nstatus=$?\nexit $status\n', encoding="utf-8"
        )
        path.chmod(0o700)
        return str(path)

    def kill_leftovers(self) -> None:
        """Kill the dialogs that code under test failed to end (a failing test leaves none)."""
        for pid in self.pids():
            try:
                if b"scripted_pinentry" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def pids(self) -> list[int]:
        """The pids of the scripted pinentry processes that showed a dialog."""
        return [dialog["pid"] for dialog in self.dialogs()]


def alive(pid: int) -> bool:
    """``pid`` runs (from /proc; a zombie has ended: it shows nothing and holds no pipes)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ended(pid: int, within: float = 5.0) -> bool:
    """``pid`` ends within ``within`` seconds (a killed process closes its pipes a moment
    before the kernel marks it ended)."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def pinentry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedPinentry]:
    scripted = ScriptedPinentry(tmp_path)
    for key, value in scripted.env().items():
        monkeypatch.setenv(key, value)
    yield scripted
    scripted.kill_leftovers()
