"""Whose is a loopback connection? Loopback is shared by every user of the machine, and
``Host`` and ``Origin`` are plain headers for a client that is not a browser: without this
check another user's program could ask the bridge for a login with an allowed origin, and
the person at the screen would see a genuine dialog.

Linux: the kernel's socket table names the uid of the peer's socket, the one whose local
address is the connection's peer address and whose remote address is ours. It is asked
through sock_diag (a NETLINK_SOCK_DIAG request for that one socket, as ``ss`` does: a
lookup, whatever the number of sockets); where netlink is unavailable, the rows of
``/proc/net/tcp`` (or ``tcp6``) are read instead (a busy machine has a thousand rows, and
the kernel takes about 2 ms to write them). Other platforms have no such table: there every
local connection is served, as before.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from typing import Any

__all__ = ["PEER_CHECK", "peer_uid", "same_user"]

# Whether this platform can tell a connection's user.
PEER_CHECK = sys.platform.startswith("linux")
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")

_Address = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def _address(host: str, port: int) -> _Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, port
    return ip, port


def _from_proc(field: str) -> _Address:
    """``0100007F:1F90`` (the address as the kernel's 32-bit words, in host byte order)."""
    hex_ip, hex_port = field.split(":")
    raw = b"".join(struct.pack("=I", int(hex_ip[i : i + 8], 16)) for i in range(0, len(hex_ip), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, int(hex_port, 16)
    return ip, int(hex_port, 16)


# linux/sock_diag.h, linux/inet_diag.h, linux/netlink.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
# inet_diag_req_v2: family, protocol, extensions, pad, states; then inet_diag_sockid:
# source port, destination port (network order), source, destination (16 bytes each),
# interface, cookie (two words; all ones = no cookie).
_DIAG_HEAD = struct.Struct("=BBBxI")
_DIAG_PORTS = struct.Struct(">HH")
_DIAG_TAIL = struct.Struct("=III")
_DIAG_MESSAGE_UID = 4 + 48 + 12  # inet_diag_msg: 4 bytes, the sockid, expires/rqueue/wqueue


def _diag_uid(family: int, source: bytes, sport: int, destination: bytes, dport: int) -> int | None:
    """The uid of the TCP socket source:sport → destination:dport of ``family``, asked of
    the kernel by sock_diag; None when it has no such socket. OSError when netlink cannot
    be used."""
    request = b"".join((
        _DIAG_HEAD.pack(family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF),
        _DIAG_PORTS.pack(sport, dport),
        source.ljust(16, b"\0"),
        destination.ljust(16, b"\0"),
        _DIAG_TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF),
    ))  # fmt: skip
    header = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as link:
        link.settimeout(1.0)
        link.send(header + request)
        answer = link.recv(65536)
    length, kind, _flags, _sequence, _port = _NLMSG_HEADER.unpack_from(answer)
    if kind == _NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", answer, _NLMSG_HEADER.size)
        if -error == 2:  # ENOENT: no such socket (the peer has closed already)
            return None
        raise OSError(-error, os.strerror(-error))
    if kind != _SOCK_DIAG_BY_FAMILY or length < _NLMSG_HEADER.size + _DIAG_MESSAGE_UID + 4:
        raise OSError("sock_diag gave an answer of another kind")
    (uid,) = struct.unpack_from("=I", answer, _NLMSG_HEADER.size + _DIAG_MESSAGE_UID)
    return int(uid)


def _kernel_uid(theirs: _Address, ours: _Address) -> int | None:
    """sock_diag for the peer's socket, as IPv4 and (for an IPv4 address) as an IPv6
    socket with IPv4-mapped addresses, which is how a dual-stack client's row looks."""
    (their_ip, their_port), (our_ip, our_port) = theirs, ours
    if isinstance(their_ip, ipaddress.IPv4Address) and isinstance(our_ip, ipaddress.IPv4Address):
        found = _diag_uid(socket.AF_INET, their_ip.packed, their_port, our_ip.packed, our_port)
        if found is not None:
            return found
        mapped = b"\0" * 10 + b"\xff\xff"
        return _diag_uid(socket.AF_INET6, mapped + their_ip.packed, their_port, mapped + our_ip.packed, our_port)
    if isinstance(their_ip, ipaddress.IPv6Address) and isinstance(our_ip, ipaddress.IPv6Address):
        return _diag_uid(socket.AF_INET6, their_ip.packed, their_port, our_ip.packed, our_port)
    return None


def peer_uid(peer: tuple[Any, ...], local: tuple[Any, ...]) -> int | None:
    """The uid owning the other end of the TCP connection ``peer`` → ``local`` (the
    ``getpeername()`` and ``getsockname()`` of our socket); None when the kernel has no
    such socket (the peer has closed already). Raises OSError when neither sock_diag nor
    the tables can be read."""
    theirs, ours = _address(peer[0], peer[1]), _address(local[0], local[1])
    try:
        return _kernel_uid(theirs, ours)
    except OSError:
        return _table_uid(theirs, ours)


def _table_uid(theirs: _Address, ours: _Address) -> int | None:
    """:func:`peer_uid` from the rows of ``/proc/net/tcp`` and ``tcp6``."""
    # A busy machine has a thousand rows (TIME_WAIT ones too): only rows that name the
    # peer's port (``:1F90 ``, the hex after an address) are parsed and compared in full.
    port = f":{theirs[1]:04X} "
    read = 0
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as rows:
                text = rows.read()
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        read += 1
        at = text.find(port, text.find("\n") + 1)  # after the header
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            fields = text[start : end if end >= 0 else len(text)].split()
            if len(fields) > 7 and _from_proc(fields[1]) == theirs and _from_proc(fields[2]) == ours:
                return int(fields[7])
            at = text.find(port, end) if end >= 0 else -1
    if not read:
        raise OSError("no /proc/net/tcp table to read")
    return None


def same_user(peer: tuple[Any, ...] | None, local: tuple[Any, ...] | None) -> bool:
    """True when the connection's client runs as this process's user (always True where
    the platform cannot tell, see :data:`PEER_CHECK`)."""
    if not PEER_CHECK:
        return True
    if peer is None or local is None:
        return False
    try:
        return peer_uid(peer, local) == os.geteuid()
    except OSError:
        return False
