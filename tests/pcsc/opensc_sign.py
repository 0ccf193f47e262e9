"""Sign a digest (ECDSA) with the PIV Authentication key through OpenSC's PKCS#11 module.

Run as a separate process (``python opensc_sign.py MODULE READER PIN DIGEST_HEX``) so that
OpenSC's hold on the card, and python-pkcs11's one-module-per-process state, end with it.
Prints the raw signature in hex.
"""

from __future__ import annotations

import sys

import pkcs11
from pkcs11 import Mechanism, ObjectClass


def main() -> int:
    module, reader, pin, digest_hex = sys.argv[1:5]
    lib = pkcs11.lib(module)
    slots = [s for s in lib.get_slots(token_present=True) if s.slot_description.strip() == reader]
    if not slots:
        print("no slot for " + reader, file=sys.stderr)
        return 2
    token = slots[0].get_token()
    with token.open(user_pin=pin) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=b"\x01")
        print(key.sign(bytes.fromhex(digest_hex), mechanism=Mechanism.ECDSA).hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
