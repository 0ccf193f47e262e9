"""Which websites may use the card: the policy, the person's remembered answers, the pause
after a refusal, and `cardbridge origins`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from cardbridge import origins
from cardbridge.config import Config
from cardbridge.errors import BusyError
from cardbridge.origins import QUESTION_LIMIT, QUESTION_WINDOW, REFUSAL_PAUSE, Decision, OriginStore, decide
from tests.conftest import ANSWERS_SETTLE, FileAccess

SITE = "https://login.example.no"


def test_denied_beats_allowed_and_allow_list_refuses_the_rest(tmp_path: Path) -> None:
    store = OriginStore(tmp_path / "origins.json")
    both = Config(allowed_origins=(SITE,), denied_origins=(SITE,))
    assert decide(SITE, both, store) is Decision.DENY
    assert decide(SITE, Config(allowed_origins=(SITE,), origin_policy="allow-list"), store) is Decision.ALLOW
    assert decide(SITE, Config(origin_policy="allow-list"), store) is Decision.DENY
    store.allow(SITE)
    assert decide(SITE, Config(origin_policy="allow-list"), store) is Decision.DENY  # the list alone decides


def test_ask_once_then_remembered_then_forgotten(tmp_path: Path) -> None:
    store = OriginStore(tmp_path / "state" / "origins.json")
    config = Config()
    assert config.origin_policy == "ask"
    assert decide(SITE, config, store) is Decision.ASK
    store.allow(SITE)
    assert decide(SITE, config, store) is Decision.ALLOW
    assert [r.origin for r in store.allowed()] == [SITE]
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert store.forget(SITE) and not store.forget(SITE)
    assert decide(SITE, config, store) is Decision.ASK


def test_a_refused_site_cannot_ask_again_for_a_while(tmp_path: Path) -> None:
    store = OriginStore(tmp_path / "origins.json")
    store.refuse(SITE, now=1000.0)
    assert decide(SITE, Config(), store, now=1000.0 + REFUSAL_PAUSE / 2) is Decision.DENY
    assert decide(SITE, Config(), store, now=1000.0 + REFUSAL_PAUSE + 1) is Decision.ASK
    assert decide("https://other.example", Config(), store, now=1001.0) is Decision.ASK


def test_refusals_of_ever_new_sites_pause_every_question(tmp_path: Path) -> None:
    # A page that asks from a fresh subdomain each time gets past the pause of one site;
    # the refusals of all sites together pause the questions.
    store = OriginStore(tmp_path / "origins.json")
    store.allow(SITE)
    fresh = [f"https://x{i}.evil.example" for i in range(QUESTION_LIMIT + 1)]
    for i, origin in enumerate(fresh[:-1]):
        assert decide(origin, Config(), store, now=1000.0 + i) is Decision.ASK
        store.refuse(origin, now=1000.0 + i)
    assert decide(fresh[-1], Config(), store, now=1000.0 + QUESTION_LIMIT) is Decision.DENY
    assert store.questions_paused_for(now=1000.0 + QUESTION_LIMIT) == QUESTION_WINDOW - QUESTION_LIMIT
    # Sites allowed before, by the person or the administrator, are not paused.
    assert decide(SITE, Config(), store, now=1000.0 + QUESTION_LIMIT) is Decision.ALLOW
    listed = Config(allowed_origins=(fresh[-1],))
    assert decide(fresh[-1], listed, store, now=1000.0 + QUESTION_LIMIT) is Decision.ALLOW
    # Once the first refusal has left the window, a new site may be asked about again.
    assert decide(fresh[-1], Config(), store, now=1000.0 + QUESTION_WINDOW + 0.5) is Decision.ASK
    assert store.questions_paused_for(now=1000.0 + QUESTION_WINDOW + 0.5) == 0


def test_one_site_refused_again_and_again_counts_each_time(tmp_path: Path) -> None:
    store = OriginStore(tmp_path / "origins.json")
    for i in range(QUESTION_LIMIT):
        store.refuse(SITE, now=1000.0 + i * (REFUSAL_PAUSE + 1))  # after each pause, asked again
    assert decide("https://other.example", Config(), store, now=1000.0 + QUESTION_LIMIT * REFUSAL_PAUSE) == "deny"


def test_a_file_from_before_the_global_pause_reads(tmp_path: Path) -> None:
    path = tmp_path / "origins.json"
    path.write_text(json.dumps({"allowed": {}, "refused": {SITE: 1000.0}}))
    store = OriginStore(path)
    assert store.questions_paused_for(now=1001.0) == 0
    store.refuse("https://other.example", now=1002.0)
    assert json.loads(path.read_text())["refusals"] == [1002.0]


_HOLD = """
import sys
from pathlib import Path
from cardbridge.origins import OriginStore
with OriginStore(Path(sys.argv[1])).asking():
    print("open", flush=True)
    sys.stdin.read()
"""


def test_one_question_is_open_at_a_time_in_all_processes(tmp_path: Path) -> None:
    path = tmp_path / "origins.json"
    store = OriginStore(path)
    for ending in ("exits", "is killed"):
        child = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "open\n"
            with pytest.raises(BusyError, match="another website"), store.asking():
                pass
        finally:
            if ending == "exits":
                child.communicate("", timeout=30)
            else:
                child.kill()
                child.communicate(timeout=30)
        # Free again once the process that asked ended, however it ended.
        with store.asking(), pytest.raises(BusyError), OriginStore(path).asking():
            pass


def test_a_damaged_file_is_a_clear_config_error(tmp_path: Path) -> None:
    from cardbridge.errors import ConfigError

    path = tmp_path / "origins.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        OriginStore(path).is_allowed(SITE)


def _allow(args: tuple[str, str]) -> None:
    OriginStore(Path(args[0])).allow(args[1])


def test_many_processes_at_once_lose_no_answer(tmp_path: Path) -> None:
    path = tmp_path / "origins.json"
    sites = [f"https://site{i}.example" for i in range(40)]
    with ProcessPoolExecutor(8) as pool:
        list(pool.map(_allow, [(str(path), s) for s in sites]))
    assert {r.origin for r in OriginStore(path).allowed()} == set(sites)


def test_the_origins_command(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CARDBRIDGE_STATE_DIR": str(tmp_path / "state"),
        "CARDBRIDGE_CONFIG": str(tmp_path / "none.toml"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cardbridge", "--lang", "en", "origins", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert "(none yet)" in cli().stdout
    assert cli("allow", f"{SITE}/").returncode == 0  # as copied from the address bar
    listed = json.loads(cli("list", "--json").stdout)
    assert [a["origin"] for a in listed["allowed"]] == [SITE] and listed["policy"] == "ask"
    assert f"{SITE}  # allowed by you" in cli("list").stdout
    assert "Forgotten" in cli("forget", SITE).stdout
    assert "nothing to forget" in cli("forget", SITE).stdout
    bad = cli("allow", "https://example.no/path")
    assert bad.returncode == 3 and "INVALID_ORIGIN" in bad.stderr


def _settle() -> None:
    """Let a file just written age past the time after which a reading of it is kept."""
    time.sleep(ANSWERS_SETTLE)


def test_a_decision_reads_the_file_once_and_an_unchanged_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OriginStore(tmp_path / "origins.json")
    store.allow("https://other.example")  # SITE was never answered: every condition is tested
    access = FileAccess(store.path).install(monkeypatch)
    assert decide(SITE, Config(), store) is Decision.ASK
    assert len(access.opens) == 1  # allowed, refused a moment ago, questions paused: one reading
    _settle()
    assert decide(SITE, Config(), store) is Decision.ASK  # this reading is kept
    access.clear()
    for _ in range(3):
        assert decide(SITE, Config(), store) is Decision.ASK
    assert access.opens == [] and len(access.stats) == 3  # unchanged: a stat each, no reading


def _cli(state: Path, *args: str) -> None:
    env = {**os.environ, "CARDBRIDGE_STATE_DIR": str(state), "CARDBRIDGE_CONFIG": str(state / "none.toml")}
    command = [sys.executable, "-m", "cardbridge", "--lang", "en", "origins", *args]
    subprocess.run(command, env=env, capture_output=True, timeout=60, check=True)


_REFUSE = """
import sys
from pathlib import Path
from cardbridge.origins import OriginStore
OriginStore(Path(sys.argv[1])).refuse(sys.argv[2])
"""


def test_a_change_by_another_process_is_seen_by_the_next_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    store = OriginStore(state / "origins.json")
    config = Config()
    store.allow("https://other.example")
    access = FileAccess(store.path).install(monkeypatch)
    for change, then in (
        (lambda: _cli(state, "allow", SITE), Decision.ALLOW),
        (lambda: _cli(state, "forget", SITE), Decision.ASK),
        (lambda: subprocess.run([sys.executable, "-c", _REFUSE, str(store.path), SITE], check=True), Decision.DENY),
    ):
        _settle()
        before = decide(SITE, config, store)  # read and kept: the file has settled
        access.clear()
        assert decide(SITE, config, store) is before and access.opens == []  # the kept reading
        change()  # another process (the CLI, another bridge) replaces the file
        assert decide(SITE, config, store) is then
    # A change in place (an editor; same inode, same size) is seen too.
    _settle()
    assert decide("https://other.example", config, store) is Decision.ALLOW
    text = store.path.read_bytes()
    with open(store.path, "r+b") as fh:
        fh.write(text.replace(b"https://other.example", b"https://rethe.example"))
    assert decide("https://other.example", config, store) is Decision.ASK
    assert decide("https://rethe.example", config, store) is Decision.ALLOW


def test_a_reading_is_kept_only_once_the_file_has_settled() -> None:
    assert origins._SETTLED * 3 < ANSWERS_SETTLE  # the tests' wait is long enough
    now = time.time_ns()

    def stat(ctime_ns: int) -> os.stat_result:
        return os.stat_result((0o100600, 1, 2, 1, 0, 0, 10, 0, 0, 0, 0.0, 0.0, 0.0, ctime_ns, ctime_ns, ctime_ns))

    young = now - int(origins._SETTLED * 1e9) // 2
    assert not origins._settled(stat(young), now)
    assert origins._settled(stat(now - int(origins._SETTLED * 2e9) - 1), now)
    # Whole-second times (FAT, ext3, some network file systems): a change in the same second
    # would keep them, so the reading is kept only after a longer while.
    second = (now // 1_000_000_000 - 1) * 1_000_000_000
    assert not origins._settled(stat(second), second + int(origins._SETTLED * 2e9))
    assert origins._settled(stat(second), second + int(origins._SETTLED_WHOLE_SECONDS * 1e9) + 1)
