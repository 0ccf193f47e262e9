"""Whether a program other than this process is connected to pcscd.

pcsc-lite tells a client that a reader's card is held by some connection
(SCARD_STATE_INUSE), not whose. The bridge often holds one itself besides its direct
driver's: a PKCS#11 module loaded into the same process (OpenSC's, which Debian registers
with p11-kit, keeps a connection to every card it has a driver for). Every PC/SC client
talks to pcscd over its Unix socket, one connection per context, and pcscd lets go of a
client's cards when that connection closes; so when every connection pcscd has accepted
comes from a socket of this process, no other program can hold a card or send it an APDU.

The kernel's table of Unix sockets (sock_diag, as ``ss -x`` reads it) names, for each
connection pcscd accepted on its socket file, the inode of the client's end; this
process's sockets are the ``socket:[inode]`` links in ``/proc/self/fd``. Where this cannot
be read (another platform, netlink refused, pcscd's socket not visible in this network
namespace: a sandbox), the answer is that others may be connected.
"""

from __future__ import annotations

import logging
import os

from cardbridge.sockdiag import unix_sockets_at

log = logging.getLogger(__name__)

# pcsc-lite's client library honours this variable, else its built-in path (Debian's).
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
DEFAULT_SOCKET = "/run/pcscd/pcscd.comm"


def pcscd_socket() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def own_socket_inodes() -> set[int]:
    """The inodes of this process's sockets (its file descriptors that are sockets)."""
    found: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile, or the listing's own descriptor
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def others_connected() -> bool:
    """True unless every connection to pcscd comes from this process (True also when that
    cannot be told)."""
    try:
        file_inode = os.stat(pcscd_socket()).st_ino & 0xFFFFFFFF  # unix_diag gives 32 bits
        sockets = unix_sockets_at(file_inode)
        ours = own_socket_inodes()
    except OSError as exc:
        log.debug("cannot tell who is connected to pcscd: %s", exc)
        return True
    if not any(s.listening for s in sockets):
        return True  # pcscd's listener is not in this namespace's table: cannot tell
    return any(s.peer is None or s.peer not in ours for s in sockets if not s.listening)
