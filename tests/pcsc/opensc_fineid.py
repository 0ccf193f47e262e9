"""OpenSC's PKCS#11 module over the emulated FINEID card, in a process of its own (python-pkcs11
keeps one module per process; OpenSC's hold on the card ends with it).

    python opensc_fineid.py MODULE READER STEP...

Steps: ``login:PINLABEL:PIN`` (C_Login on the slot whose token label ends in "(PINLABEL)",
prints ``ok`` or the error's class name), ``mechanisms:PINLABEL`` (prints the mechanism names),
``sign:PINLABEL:PIN:KEYID_HEX`` (C_Login, then ECDSA over a SHA-384 digest with the key;
prints ``signed`` or the error's class name). One line per step.
"""

from __future__ import annotations

import hashlib
import sys

import pkcs11
from pkcs11 import Mechanism, ObjectClass


def main() -> int:
    module, reader, *steps = sys.argv[1:]
    lib = pkcs11.lib(module)
    slots = {
        s.get_token().label.strip().rsplit("(", 1)[-1].rstrip(")"): s
        for s in lib.get_slots(token_present=True)
        if s.slot_description.strip() == reader
    }
    print("slots " + ",".join(sorted(slots)), flush=True)
    for step in steps:
        verb, label, *rest = step.split(":")
        token = slots[label].get_token()
        try:
            if verb == "login":
                with token.open(user_pin=rest[0]):
                    print("ok", flush=True)
            elif verb == "mechanisms":
                print(",".join(sorted(m.name for m in slots[label].get_mechanisms())), flush=True)
            elif verb == "sign":
                with token.open(user_pin=rest[0]) as session:
                    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(rest[1]))
                    key.sign(hashlib.sha384(b"x").digest(), mechanism=Mechanism.ECDSA)
                    print("signed", flush=True)
        except pkcs11.PKCS11Error as exc:
            print(type(exc).__name__, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
