"""sock_diag's Unix-socket table against sockets of the test's own (no pcscd needed)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge.sockdiag import UnixSocket, unix_sockets_at

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag is Linux's")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, Path]]:
    path = tmp_path / "server.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    try:
        yield server, path
    finally:
        server.close()


def test_the_listener_and_each_accepted_connection_with_its_clients_inode(
    listener: tuple[socket.socket, Path],
) -> None:
    server, path = listener
    file_inode = os.stat(path).st_ino & 0xFFFFFFFF
    assert unix_sockets_at(file_inode) == [UnixSocket(os.fstat(server.fileno()).st_ino, True, None)]
    clients = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
    accepted = []
    try:
        for client in clients:
            client.connect(str(path))
            accepted.append(server.accept()[0])
        found = unix_sockets_at(file_inode)
        connections = {s.inode: s.peer for s in found if not s.listening}
        assert connections == {
            os.fstat(ours.fileno()).st_ino: os.fstat(theirs.fileno()).st_ino
            for ours, theirs in zip(accepted, clients, strict=True)
        }
        # A socket bound elsewhere is not listed.
        assert all(s.inode != os.fstat(clients[0].fileno()).st_ino for s in found)
    finally:
        for sock in [*clients, *accepted]:
            sock.close()
    assert [s for s in unix_sockets_at(file_inode) if not s.listening] == []


def test_a_file_no_socket_is_bound_to_lists_nothing(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    assert unix_sockets_at(os.stat(tmp_path / "plain").st_ino & 0xFFFFFFFF) == []
