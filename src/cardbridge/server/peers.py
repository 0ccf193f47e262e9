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

from cardbridge.sockdiag import tcp_socket_uid

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


def _kernel_uid(theirs: _Address, ours: _Address) -> int | None:
    """sock_diag for the peer's socket, as IPv4 and (for an IPv4 address) as an IPv6
    socket with IPv4-mapped addresses, which is how a dual-stack client's row looks."""
    (their_ip, their_port), (our_ip, our_port) = theirs, ours
    if isinstance(their_ip, ipaddress.IPv4Address) and isinstance(our_ip, ipaddress.IPv4Address):
        found = tcp_socket_uid(socket.AF_INET, their_ip.packed, their_port, our_ip.packed, our_port)
        if found is not None:
            return found
        mapped = b"\0" * 10 + b"\xff\xff"
        return tcp_socket_uid(socket.AF_INET6, mapped + their_ip.packed, their_port, mapped + our_ip.packed, our_port)
    if isinstance(their_ip, ipaddress.IPv6Address) and isinstance(our_ip, ipaddress.IPv6Address):
        return tcp_socket_uid(socket.AF_INET6, their_ip.packed, their_port, our_ip.packed, our_port)
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
