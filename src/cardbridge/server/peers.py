"""Whose is a loopback connection? Loopback is shared by every user of the machine, and
``Host`` and ``Origin`` are plain headers for a client that is not a browser: without this
check another user's program could ask the bridge for a login with an allowed origin, and
the person at the screen would see a genuine dialog.

Linux: the peer's socket is a row of ``/proc/net/tcp`` (or ``tcp6``) whose local address
is the connection's peer address and whose remote address is ours; the row names its uid.
Other platforms have no such table: there every local connection is served, as before.
"""

from __future__ import annotations

import ipaddress
import os
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


def peer_uid(peer: tuple[Any, ...], local: tuple[Any, ...]) -> int | None:
    """The uid owning the other end of the TCP connection ``peer`` → ``local`` (the
    ``getpeername()`` and ``getsockname()`` of our socket); None when no table has it
    (the peer has closed already). Raises OSError when the tables cannot be read."""
    theirs, ours = _address(peer[0], peer[1]), _address(local[0], local[1])
    read = 0
    for table in _TABLES:
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)  # the header
                read += 1
                for row in rows:
                    fields = row.split()
                    if len(fields) > 7 and _from_proc(fields[1]) == theirs and _from_proc(fields[2]) == ours:
                        return int(fields[7])
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
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
