"""Another PC/SC program on one reader, in a process of its own (for pcscd, and for
``cardbridge.pcsc.clients``, another client: a connection from a socket that is not the
bridge's).

As a script: ``python other_program.py READER [--exclusive]`` connects (shared, or
SCARD_SHARE_EXCLUSIVE), prints ``held`` (or ``error XXXXXXXX``), then reads lines from stdin:
``apdu HEX`` sends the command in a transaction and prints the status word in hex;
``reset`` disconnects with SCARD_RESET_CARD and ends; the end of stdin disconnects leaving
the card as it is. :class:`OtherProgram` runs it for a test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class OtherProgram:
    """The script in a process of its own, holding the card until :meth:`close`."""

    def __init__(self, reader: str, *, exclusive: bool = False) -> None:
        command = [sys.executable, str(Path(__file__)), reader, *(["--exclusive"] if exclusive else [])]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        said = self.stdout.readline().strip()
        if said != "held":
            self.close()
            raise AssertionError(f"the other program could not connect: {said!r}")

    def transmit(self, apdu: bytes) -> int:
        """Send ``apdu``; the card's status word."""
        self.stdin.write(f"apdu {apdu.hex()}\n")
        self.stdin.flush()
        return int(self.stdout.readline(), 16)

    def close(self, *, reset: bool = False) -> None:
        """Disconnect (resetting the card when ``reset``) and wait for the process to end."""
        try:
            if reset:
                self.stdin.write("reset\n")
            self.stdin.close()
        except BrokenPipeError:
            pass
        self.process.wait(timeout=30)
        self.stdout.close()

    def __enter__(self) -> OtherProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> int:
    from smartcard import scard

    reader, exclusive = sys.argv[1], "--exclusive" in sys.argv[2:]
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        print(f"error {code & 0xFFFFFFFF:08X}", flush=True)
        return 2
    share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
    code, card, protocol = scard.SCardConnect(context, reader, share, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    if code != scard.SCARD_S_SUCCESS:
        print(f"error {code & 0xFFFFFFFF:08X}", flush=True)
        return 3
    print("held", flush=True)
    disposition = scard.SCARD_LEAVE_CARD
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "apdu":
            scard.SCardBeginTransaction(card)
            code, answer = scard.SCardTransmit(card, protocol, list(bytes.fromhex(argument)))
            scard.SCardEndTransaction(card, scard.SCARD_LEAVE_CARD)
            sw = (answer[-2] << 8 | answer[-1]) if code == scard.SCARD_S_SUCCESS and len(answer) >= 2 else 0
            print(f"{sw:04X}", flush=True)
        elif command == "reset":
            disposition = scard.SCARD_RESET_CARD
            break
    scard.SCardDisconnect(card, disposition)
    scard.SCardReleaseContext(context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
