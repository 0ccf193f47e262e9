"""What every atheris harness in this folder does when run as the fuzzer (``make fuzz``)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with libFuzzer's options from the command line."""
    try:
        import atheris
    except ModuleNotFoundError:
        sys.exit("atheris is not installed: make fuzz installs it (pip install -e '.[fuzz]').")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
