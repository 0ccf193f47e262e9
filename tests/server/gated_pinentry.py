#!/usr/bin/env python3
"""A pinentry for tests whose answer waits for a gate: a person who takes their time.

Same wire behaviour as tests/tools/scripted_pinentry.py (Assuan: ``OK`` greeting, ``OK``
per command, ``D <pin>`` + ``OK`` after GETPIN, ``ERR 83886179`` on cancel). On GETPIN it
writes its pid to ``$GATE_DIR/open-<pid>``, then waits until ``$GATE_DIR/answer`` exists
and answers with its content (``CANCEL`` cancels). The test opens the gate by writing that
file. It gives up after 60 s (cancels), so it never outlives a test by long.
"""

import os
import sys
import time
from pathlib import Path


def main():
    gate = Path(os.environ["GATE_DIR"])
    out = sys.stdout
    out.write("OK Pleased to meet you\n")
    out.flush()
    for raw in sys.stdin:
        verb = raw.rstrip("\n").partition(" ")[0]
        if verb == "GETPIN":
            # Written aside and renamed, so a reader never sees the file empty.
            (gate / f".open-{os.getpid()}").write_text(str(os.getpid()), encoding="utf-8")
            (gate / f".open-{os.getpid()}").rename(gate / f"open-{os.getpid()}")
            answer_file = gate / "answer"
            deadline = time.monotonic() + 60
            while not answer_file.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            answer = answer_file.read_text(encoding="utf-8").strip() if answer_file.exists() else "CANCEL"
            if answer == "CANCEL":
                out.write("ERR 83886179 Operation cancelled <Pinentry>\n")
            else:
                out.write(f"D {answer}\nOK\n")
        elif verb == "BYE":
            out.write("OK closing connection\n")
            out.flush()
            return
        else:
            out.write("OK\n")
        out.flush()


if __name__ == "__main__":
    main()
