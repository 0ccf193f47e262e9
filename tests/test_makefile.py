"""The Makefile's entry points, as ``make -n`` (print the commands, run none) shows them."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def demo_command(*variables: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-s", "demo", *variables], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_picks_the_card_with_card() -> None:
    """``make demo CARD=KIND`` is ``cardbridge demo --card KIND``; plain ``make demo`` keeps
    the command's own default."""
    assert demo_command("CARD=esteid").endswith("/bin/cardbridge demo --card esteid")
    assert demo_command().endswith("/bin/cardbridge demo")
