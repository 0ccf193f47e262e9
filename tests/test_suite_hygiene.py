"""The suite itself: a test run leaves nothing of cardbridge's in the temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_a_test_run_leaves_no_cardbridge_folder_in_the_temp_dir(tmp_path: Path) -> None:
    # A pytest run of its own, with a temporary folder of its own and no log folder given
    # from outside (the conftest makes one then): tests that start cardbridge commands as
    # subprocesses, which log there, and use tmp_path. Afterwards nothing named cardbridge-*
    # is left, and no test's folder.
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CARDBRIDGE_LOG_DIR", "PYTEST_ADDOPTS")}
    env["TMPDIR"] = str(temp)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/nativemsg/test_host.py::test_handshake_and_quit",
            "tests/nativemsg/test_host.py::test_empty_allow_list_says_how_to_add_an_origin",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    assert sorted(p.name for p in temp.iterdir() if p.name.startswith("cardbridge-")) == []
    # pytest's own folders of passed tests are gone too (tmp_path_retention_policy): what
    # is left is at most the empty pytest-of-USER folder it reuses.
    left = [str(p.relative_to(temp)) for p in temp.rglob("*")]
    assert all(name.startswith("pytest-of-") and "/" not in name for name in left), left
