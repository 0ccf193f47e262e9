"""The kernel's socket tables through sock_diag (NETLINK_SOCK_DIAG, Linux), as ``ss`` reads
them: one TCP socket looked up by its addresses (whose is a loopback connection,
``cardbridge.server.peers``), and the Unix sockets bound to one path with their peers (who
is connected to pcscd, ``cardbridge.pcsc.clients``). Every function raises OSError where
netlink cannot be used (another platform, a sandbox that forbids it); the callers decide
what that means.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["UnixSocket", "tcp_socket_uid", "unix_sockets_at"]

# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h, linux/unix_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_ENOENT = 2
_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_ATTRIBUTE = struct.Struct("=HH")  # length, type
_ERROR = struct.Struct("=i")

# inet_diag_req_v2: family, protocol, extensions, pad, states; then inet_diag_sockid:
# source port, destination port (network order), source, destination (16 bytes each),
# interface, cookie (two words; all ones = no cookie).
_INET_HEAD = struct.Struct("=BBBxI")
_INET_PORTS = struct.Struct(">HH")
_INET_TAIL = struct.Struct("=III")
_INET_MESSAGE_UID = 4 + 48 + 12  # inet_diag_msg: 4 bytes, the sockid, expires/rqueue/wqueue

# unix_diag_req: family, protocol, pad, states, inode, what to show, cookie (two words).
_UNIX_REQUEST = struct.Struct("=BBxxIIIII")
_UNIX_MESSAGE = struct.Struct("=BBBxI8x")  # family, type, state, pad, inode, cookie
_UDIAG_SHOW_VFS = 0x2
_UDIAG_SHOW_PEER = 0x4
_UNIX_DIAG_VFS = 1  # unix_diag_vfs: inode, device of the bound file
_UNIX_DIAG_PEER = 2  # the inode of the socket at the other end
_STATE_ESTABLISHED = 1  # the kernel's TCP state numbers, used for Unix sockets too
_STATE_LISTEN = 10


def _exchange(request: bytes, *, dump: bool) -> Iterator[bytes]:
    """Send one SOCK_DIAG_BY_FAMILY request; yield the payload of each answer."""
    flags = _NLM_F_REQUEST | (_NLM_F_DUMP if dump else 0)
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as link:
        link.settimeout(1.0)
        link.send(header + request)
        while True:
            answer = link.recv(1 << 16)
            at = 0
            while at + _HEADER.size <= len(answer):
                length, kind, _flags, _sequence, _port = _HEADER.unpack_from(answer, at)
                if length < _HEADER.size:
                    raise OSError("sock_diag gave a malformed answer")
                if kind == _NLMSG_DONE:
                    return
                if kind == _NLMSG_ERROR:
                    (error,) = _ERROR.unpack_from(answer, at + _HEADER.size)
                    if error == 0:
                        return
                    raise OSError(-error, os.strerror(-error))
                if kind != _SOCK_DIAG_BY_FAMILY:
                    raise OSError("sock_diag gave an answer of another kind")
                yield answer[at + _HEADER.size : at + length]
                at += (length + 3) & ~3
            if not dump:
                return


def tcp_socket_uid(family: int, source: bytes, sport: int, destination: bytes, dport: int) -> int | None:
    """The uid of the TCP socket source:sport → destination:dport of ``family``; None when
    the kernel has no such socket."""
    request = b"".join((
        _INET_HEAD.pack(family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF),
        _INET_PORTS.pack(sport, dport),
        source.ljust(16, b"\0"),
        destination.ljust(16, b"\0"),
        _INET_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF),
    ))  # fmt: skip
    try:
        for payload in _exchange(request, dump=False):
            if len(payload) < _INET_MESSAGE_UID + 4:
                raise OSError("sock_diag gave a short answer")
            (uid,) = struct.unpack_from("=I", payload, _INET_MESSAGE_UID)
            return int(uid)
    except OSError as exc:
        if exc.errno == _ENOENT:  # no such socket (the peer has closed already)
            return None
        raise
    return None


@dataclass(frozen=True)
class UnixSocket:
    """A stream socket bound to a path (a listener, or a connection it accepted)."""

    inode: int
    listening: bool
    peer: int | None  # the inode of the client's end, for an accepted connection


def unix_sockets_at(file_inode: int) -> list[UnixSocket]:
    """The listening and connected Unix sockets bound to the file with inode
    ``file_inode`` (an accepted connection carries its listener's file), each with the
    inode of its peer: one dump of the table, filtered here."""
    states = (1 << _STATE_ESTABLISHED) | (1 << _STATE_LISTEN)
    show = _UDIAG_SHOW_VFS | _UDIAG_SHOW_PEER
    request = _UNIX_REQUEST.pack(socket.AF_UNIX, 0, states, 0, show, 0xFFFFFFFF, 0xFFFFFFFF)
    found: list[UnixSocket] = []
    for payload in _exchange(request, dump=True):
        _family, _type, state, inode = _UNIX_MESSAGE.unpack_from(payload)
        bound, peer = None, None
        at = _UNIX_MESSAGE.size
        while at + _ATTRIBUTE.size <= len(payload):
            length, kind = _ATTRIBUTE.unpack_from(payload, at)
            if length < _ATTRIBUTE.size:
                break
            if kind == _UNIX_DIAG_VFS and length >= _ATTRIBUTE.size + 8:
                (bound,) = struct.unpack_from("=I", payload, at + _ATTRIBUTE.size)
            elif kind == _UNIX_DIAG_PEER and length >= _ATTRIBUTE.size + 4:
                (peer,) = struct.unpack_from("=I", payload, at + _ATTRIBUTE.size)
            at += (length + 3) & ~3
        if bound == file_inode:
            found.append(UnixSocket(int(inode), state == _STATE_LISTEN, None if peer is None else int(peer)))
    return found
