"""Whose is a loopback connection: the kernel's answer (sock_diag) and the /proc table's
agree, for this user's and another user's sockets, over IPv4, IPv6 and IPv4-mapped IPv6."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cardbridge.server import peers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's socket table is Linux's")

SYSTEM_PYTHON = "/usr/bin/python3"  # a Python another user may run (the test's venv is root's)
NOBODY = 65534


@contextmanager
def connection(family: int, host: str, client_host: str | None = None) -> Iterator[socket.socket]:
    """Our end (the accepted socket) of a loopback connection made by this process."""
    with socket.socket(family) as server:
        server.bind((host, 0))
        server.listen()
        client = socket.socket(socket.AF_INET6 if client_host and ":" in client_host else family)
        client.connect((client_host or host, server.getsockname()[1]))
        accepted, _ = server.accept()
        try:
            yield accepted
        finally:
            accepted.close()
            client.close()


def both_ways(ours: socket.socket) -> tuple[int | None, int | None]:
    theirs_address = peers._address(*ours.getpeername()[:2])
    ours_address = peers._address(*ours.getsockname()[:2])
    return peers._kernel_uid(theirs_address, ours_address), peers._table_uid(theirs_address, ours_address)


@pytest.mark.parametrize(
    ("family", "host", "client_host"),
    [
        (socket.AF_INET, "127.0.0.1", None),
        (socket.AF_INET6, "::1", None),
        (socket.AF_INET, "127.0.0.1", "::ffff:127.0.0.1"),  # a dual-stack client's IPv4-mapped socket
    ],
)
def test_the_kernel_and_the_table_name_this_user(family: int, host: str, client_host: str | None) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with connection(family, host, client_host) as ours:
        assert both_ways(ours) == (os.geteuid(), os.geteuid())
        assert peers.same_user(ours.getpeername(), ours.getsockname())


def test_a_socket_nobody_has_gives_none() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert peers.peer_uid(("127.0.0.1", port), ("127.0.0.1", 1)) is None


_CONNECT = "import socket, sys, time; s = socket.create_connection((sys.argv[1], int(sys.argv[2]))); time.sleep(30)"


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK), reason="as root (the client becomes nobody)"
)
def test_the_kernel_and_the_table_name_another_user() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        other = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", _CONNECT, "127.0.0.1", str(server.getsockname()[1])], user=NOBODY, cwd="/"
        )
        try:
            server.settimeout(30)
            ours, _ = server.accept()
            with ours:
                assert both_ways(ours) == (NOBODY, NOBODY)
                assert not peers.same_user(ours.getpeername(), ours.getsockname())
        finally:
            other.kill()
            other.wait()


def test_without_netlink_the_table_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox that forbids netlink sockets (seccomp, some containers: socket() gives
    EPERM/EAFNOSUPPORT) still gets the answer from /proc/net/tcp."""
    real_socket = socket.socket

    def no_netlink(family: int = -1, *args: object, **kwargs: object) -> socket.socket:
        if family == socket.AF_NETLINK:
            raise PermissionError(1, "Operation not permitted")
        return real_socket(family, *args, **kwargs)  # type: ignore[arg-type]

    with connection(socket.AF_INET, "127.0.0.1") as ours:
        monkeypatch.setattr(peers.socket, "socket", no_netlink)
        assert peers.peer_uid(ours.getpeername(), ours.getsockname()) == os.geteuid()
