"""Hold a card with SCARD_SHARE_EXCLUSIVE until stdin closes (another program using it).

``python hold_exclusive.py READER`` prints ``held`` once it has the card.
"""

from __future__ import annotations

import sys

from smartcard import scard


def main() -> int:
    reader = sys.argv[1]
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if code != scard.SCARD_S_SUCCESS:
        return 2
    code, card, _protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_EXCLUSIVE, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    if code != scard.SCARD_S_SUCCESS:
        print(f"error {code & 0xFFFFFFFF:08X}", flush=True)
        return 3
    print("held", flush=True)
    sys.stdin.read()
    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    scard.SCardReleaseContext(context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
