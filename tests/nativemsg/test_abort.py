"""The browser leaves in the middle of a login (or the host is terminated): the token survives.

The real host process, a SoftHSM2 token and the scripted pinentry. The pinentry answers a
wrong and/or the right PIN; the test closes the host's stdin (what the browser does when
the page gives up) at a random moment around the dialogs' answers, so that many aborts fall
inside C_Login, when SoftHSM2 writes the token's flags to ``token.object``. A host that
left the process during that write truncated the file: the token lost its PIN and keys.

Aborts run in parallel lanes, each lane with its own copy of the token (its own SoftHSM2
store), so the test stays short on two cores.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cardbridge.emulator.softhsm import write_config
from tests.conftest import ScriptedPinentry
from tests.nativemsg.conftest import ORIGIN, Card, HostProcess
from tests.nativemsg.conftest import write_config as write_cardbridge_config
from tests.nativemsg.test_host import nonce

pytestmark = pytest.mark.softhsm

ABORTS = int(os.environ.get("CARDBRIDGE_TEST_ABORTS", "200"))
LANES = 6
WRONG = ("1111", "2222", "3333")


@dataclass
class Lane:
    """One copy of the card in its own SoftHSM2 store, and the host's environment for it."""

    folder: Path
    tokens: Path
    env: dict[str, str]
    pinentry: ScriptedPinentry
    outcomes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _lane(card: Card, folder: Path) -> Lane:
    conf = write_config(folder / "softhsm")
    shutil.copytree(Path(card.softhsm2_conf).parent / "tokens", folder / "softhsm" / "tokens", dirs_exist_ok=True)
    (folder / "cfg").mkdir(mode=0o700)
    config = write_cardbridge_config(folder / "cfg", allowed_origins=[ORIGIN], user_timeout=20)
    pinentry = ScriptedPinentry(folder)
    env = {
        **os.environ,
        "CARDBRIDGE_CONFIG": str(config),
        "CARDBRIDGE_DATA_DIR": str(folder / "data"),
        "CARDBRIDGE_LOG_DIR": str(folder / "log"),
        "SOFTHSM2_CONF": str(conf),
        "CARDBRIDGE_PKCS11_MODULE": card.module,
        # No PC/SC for these hosts (libpcsclite finds no pcscd there): only this lane's token,
        # whatever virtual cards other tests put in pcscd's readers meanwhile.
        "PCSCLITE_CSOCK_NAME": str(folder / "no-pcscd.comm"),
        **pinentry.env(),
    }
    return Lane(folder, folder / "softhsm" / "tokens", env, pinentry)


def _empty_files(tokens: Path) -> list[str]:
    return [str(p.relative_to(tokens)) for p in tokens.rglob("*.object") if p.stat().st_size == 0]


def _objects(card: Card, lane: Lane, pin: str) -> tuple[int, list[str]]:
    """OpenSC's pkcs11-tool logs in with ``pin`` and lists the objects (the outside judge)."""
    result = subprocess.run(
        ["pkcs11-tool", "--module", card.module, "--login", "--pin", pin, "--list-objects"],
        env=lane.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    kinds = sorted(re.findall(r"^(\w[\w ]* Object);", result.stdout, flags=re.MULTILINE))
    return result.returncode, kinds


def _wait(condition: Callable[[], bool], host: HostProcess, poll: float) -> None:
    deadline = time.monotonic() + 20
    while not condition() and host.proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("the login did not get that far within 20 s")
        time.sleep(poll)


def _abort_once(lane: Lane, rng: random.Random, pin: str) -> None:
    """One login, left by the browser (stdin closed), or terminated, at a random moment.

    Most aborts fall just after a dialog has closed (its program has ended and been
    reaped), when the host checks that PIN with C_Login; the others anywhere in the 150 ms
    after a dialog was answered."""
    # Mostly one dialog (each costs a process start): a wrong PIN, the right one, or both.
    responses = rng.choice([[WRONG[0]], [WRONG[0]], [pin], [WRONG[0], pin], [WRONG[0], WRONG[1], pin]])
    answered = rng.randrange(len(responses))  # the dialog whose answer the abort follows
    at_login = rng.random() < 0.75
    delay = rng.uniform(0.0, 0.02) if at_login else rng.uniform(0.0, 0.15)
    terminate = rng.random() < 0.2  # SIGTERM (a logout, a shutdown) instead of the browser leaving
    lane.pinentry.respond(*responses)
    log = lane.pinentry.log
    host = HostProcess(env=lane.env)
    try:
        host.read()
        host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})

        seen = [-1]

        def shown() -> bool:  # the log grows by one line per dialog: read it only when it grew
            try:
                size = os.stat(log).st_size
            except FileNotFoundError:
                return False
            if size == seen[0]:
                return False
            seen[0] = size
            return log.read_bytes().count(b"\n") > answered

        _wait(shown, host, 0.004)
        if len(lane.pinentry.dialogs()) <= answered:  # the host ended before that dialog
            raise AssertionError(f"no dialog {answered + 1}: {host.read()} {host.finish()[-800:]}")
        if at_login and host.proc.poll() is None:
            pid = lane.pinentry.dialogs()[answered]["pid"]
            _wait(lambda: not os.path.exists(f"/proc/{pid}"), host, 0.0005)
        time.sleep(delay)
        if terminate:
            host.proc.terminate()
        else:
            host.close_stdin()
        rest = host.rest()
        stderr = host.finish()
        lane.outcomes.append("answered" if rest else "left")
        for bad in ("Traceback", "BufferError", "still runs"):
            if bad in stderr:
                lane.problems.append(f"{bad} in the host's stderr: {stderr[-800:]}")
        empty = _empty_files(lane.tokens)
        if empty:
            when = "at the PIN check" if at_login else "after the answer"
            lane.problems.append(f"empty after an abort {delay * 1000:.0f} ms {when} of dialog {answered + 1}: {empty}")
            shutil.rmtree(lane.tokens)  # a fresh copy, to count the next abort on its own
            shutil.copytree(lane.folder.parent / "template", lane.tokens)
    finally:
        host.kill()


@pytest.fixture
def lanes(card: Card, tmp_path: Path) -> list[Lane]:
    shutil.copytree(Path(card.softhsm2_conf).parent / "tokens", tmp_path / "template")
    made = []
    for n in range(LANES):
        (tmp_path / f"lane{n}").mkdir()
        made.append(_lane(card, tmp_path / f"lane{n}"))
    return made


def test_aborted_logins_leave_the_token_whole(card: Card, lanes: list[Lane]) -> None:
    before = _objects(card, lanes[0], card.pin)
    assert before[0] == 0 and before[1], before
    seed = random.randrange(1 << 32)
    errors: list[BaseException] = []

    def run(lane: Lane, count: int, rng: random.Random) -> None:
        try:
            for _ in range(count):
                _abort_once(lane, rng, card.pin)
        except BaseException as exc:  # reported below, with the seed
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(lane, ABORTS // LANES + (n < ABORTS % LANES), random.Random(seed + n)))
        for n, lane in enumerate(lanes)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    assert not errors, f"seed {seed}: {errors[0]!r}"
    outcomes = [o for lane in lanes for o in lane.outcomes]
    problems = [p for lane in lanes for p in lane.problems]
    print(f"{len(outcomes)} aborts in {took:.1f} s ({outcomes.count('left')} left mid-login), seed {seed}")
    assert len(outcomes) == ABORTS
    assert problems == [], f"seed {seed}: {len(problems)} of {ABORTS} aborts broke the token: {problems[:3]}"
    for lane in lanes:
        # Every copy still lists its objects and logs in with the right PIN.
        assert _objects(card, lane, card.pin) == before


SLOW_LOGIN = Path(__file__).parents[1] / "tools" / "slow_login.py"


@pytest.mark.parametrize(
    ("leave", "login", "second"),
    [
        ("sigterm", 1.5, 0.4),  # the second SIGTERM while the host unwinds the login
        # The card call outlasts the service's wait (SHUTDOWN_WAIT, 5 s): the loop has ended
        # and the process's last shutdown waits for the call when the second SIGTERM comes.
        ("stdin", 7.5, 6.0),
    ],
)
def test_a_sigterm_while_the_host_ends_waits_for_the_pin_check(
    card: Card, tmp_path: Path, leave: str, login: float, second: float
) -> None:
    """The browser leaves during C_Login (stdin closed, or a SIGTERM), then sends SIGTERM
    while the host ends (Chrome terminates a host it has disconnected): the host still lets
    the PIN check finish before it leaves, and the token stays whole."""
    (tmp_path / "lane").mkdir()
    lane = _lane(card, tmp_path / "lane")
    mark = tmp_path / "login.mark"
    launcher = tmp_path / "host"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SLOW_LOGIN}" host "$@"\n', encoding="utf-8")
    launcher.chmod(0o755)
    before = _objects(card, lane, card.pin)
    assert before[0] == 0 and before[1], before
    lane.pinentry.respond(card.pin)
    env = {**lane.env, "CARDBRIDGE_TEST_LOGIN_MARK": str(mark), "CARDBRIDGE_TEST_LOGIN_DELAY": str(login)}
    host = HostProcess(env=env, program=str(launcher))
    try:
        host.read()
        host.send({"command": "authenticate", "arguments": {"challengeNonce": nonce(), "origin": ORIGIN}})
        _wait(mark.exists, host, 0.01)
        if leave == "stdin":
            host.close_stdin()
        else:
            host.proc.terminate()
        time.sleep(second)
        host.proc.terminate()
        status = host.proc.wait(30)
        stderr = host.finish()
    finally:
        host.kill()
    assert status >= 0, f"the host was killed by signal {-status} while it ended: {stderr[-800:]}"
    assert "Bad file descriptor" not in stderr
    assert mark.read_text(encoding="ascii").split() == ["entered", "returned"]
    assert not _empty_files(lane.tokens)
    assert _objects(card, lane, card.pin) == before
