"""cardbridge with a C_Login as slow as a real card's, for the tests of a SIGTERM mid-login.

``slow_login.py host ARGS`` runs the native host (as ``python -m cardbridge.nativemsg``),
``slow_login.py cli ARGS`` the command (as ``python -m cardbridge``).

A real card takes 50-500 ms to check a PIN (SoftHSM2 a few milliseconds, too short to
terminate the host inside it reliably): the real SoftHSM2 C_Login runs after
``CARDBRIDGE_TEST_LOGIN_DELAY`` seconds (default 1.5), or, with
``CARDBRIDGE_TEST_LOGIN_RELEASE`` (a file's path), once that file exists (at most 60 s): a
test that must act while the call is under way releases it when it has, whatever the load
of the machine. ``CARDBRIDGE_TEST_LOGIN_MARK`` names a file that gets a line ``entered``
when the call starts and ``returned`` when the real call has returned.
"""

from __future__ import annotations

import os
import sys
import time

from cardbridge.pkcs11 import _cryptoki

_real_login = _cryptoki.Cryptoki.login


def _mark(line: str) -> None:
    with open(os.environ["CARDBRIDGE_TEST_LOGIN_MARK"], "a", encoding="ascii") as mark:
        mark.write(line + "\n")


def _slow_login(raw: _cryptoki.Cryptoki, session: int, pin: bytearray | None) -> None:
    _mark("entered")
    release = os.environ.get("CARDBRIDGE_TEST_LOGIN_RELEASE")
    if release:
        deadline = time.monotonic() + 60
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(float(os.environ.get("CARDBRIDGE_TEST_LOGIN_DELAY", "1.5")))
    try:
        _real_login(raw, session, pin)
    finally:
        _mark("returned")


_cryptoki.Cryptoki.login = _slow_login  # type: ignore[method-assign]

if __name__ == "__main__":
    if sys.argv[1] == "host":
        from cardbridge.nativemsg.host import launch

        launch(sys.argv[2:])
    else:
        from cardbridge.cli import main

        sys.exit(main(sys.argv[2:]))
