"""Which websites may use the card: the policy, the person's remembered answers, the pause
after a refusal, and `cardbridge origins`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from cardbridge.config import Config
from cardbridge.origins import REFUSAL_PAUSE, Decision, OriginStore, decide

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
