"""Tests of the ``cardbridge`` command (``cardbridge.cli``), one module per module of the
package, run as a real process (:func:`run`)."""

from __future__ import annotations

import os
import subprocess
import sys


def run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m cardbridge ARGS`` with ``stdin``; the result, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=60,
        check=False,
    )
