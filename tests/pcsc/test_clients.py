"""Who is connected to pcscd: this process only, or another program too — with the real
pcscd, a PC/SC context of this process, and another process's."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cardbridge.pcsc import clients
from cardbridge.pcsc.scard import PcscContext
from tests.pcsc.conftest import Pcscd

pytestmark = pytest.mark.pcsc

# Another program with a PC/SC context (a connection to pcscd) until its stdin closes.
OTHER_CONTEXT = """
import sys
from smartcard import scard
code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
print("connected" if code == scard.SCARD_S_SUCCESS else "error", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def own_context(pcscd: Pcscd) -> Iterator[PcscContext]:
    context = PcscContext()
    context.readers()  # connected to pcscd
    try:
        yield context
    finally:
        context.release()


def settled(expected: bool, timeout: float = 10.0) -> bool:
    """others_connected() once it says ``expected`` (pcscd closes its end of a connection
    when it reads the client's end of file, a moment after the client closed it)."""
    deadline = time.monotonic() + timeout
    while clients.others_connected() != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return clients.others_connected()


def test_only_this_process_then_another_program_then_only_this_process_again(own_context: PcscContext) -> None:
    assert settled(False) is False, "no program but this test's process is connected to pcscd"
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_CONTEXT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "connected"
        assert clients.others_connected() is True
        second = PcscContext()  # another context of this process is still this process
        second.readers()
        second.release()
    finally:
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=30)
        assert other.stdout is not None
        other.stdout.close()
    assert settled(False) is False


def test_what_cannot_be_told_counts_as_another_program(
    own_context: PcscContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settled(False) is False
    real_socket = socket.socket

    def no_netlink(family: int = -1, *args: object, **kwargs: object) -> socket.socket:
        if family == socket.AF_NETLINK:
            raise PermissionError(1, "Operation not permitted")
        return real_socket(family, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(socket, "socket", no_netlink)
        assert clients.others_connected() is True, "netlink refused"
    with monkeypatch.context() as patch:
        patch.setenv(clients.SOCKET_ENV, "/nonexistent/pcscd.comm")
        assert clients.others_connected() is True, "no such socket file"
    with monkeypatch.context() as patch:
        patch.setattr(clients, "unix_sockets_at", lambda inode: [])
        assert clients.others_connected() is True, "pcscd's listener not in this namespace's table"
    assert clients.others_connected() is False
