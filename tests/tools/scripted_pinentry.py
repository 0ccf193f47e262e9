#!/usr/bin/env python3
"""A pinentry for tests that speaks GnuPG's Assuan protocol, scripted by a JSON file.

It copies what pinentry-tty/-curses do on the wire: greets with ``OK``, answers each
command with ``OK``, returns the PIN in a percent-escaped ``D`` line after GETPIN, and
``ERR 83886179 Operation cancelled`` (GPG_ERR_CANCELED) when the person cancels. It reads
``$CARDBRIDGE_TEST_PINENTRY_SCRIPT``: ``{"responses": [...], "log": "path"}``. Each GETPIN
or CONFIRM takes the next response: a PIN string (for CONFIRM any other string is OK),
``"CANCEL"``, ``"TIMEOUT"`` (answers GPG_ERR_TIMEOUT), ``"NOTOK"`` (the SETNOTOK button:
``ERR 83886194 Not confirmed``, GPG_ERR_NOT_CONFIRMED, as gpg-agent's "No"), ``"HANG"``
(never answers, like a person who walked away) or ``"WAIT"`` (shows the dialog until the
caller ends the program, as a notice the person leaves open); ``"AFTER 2.5 X"`` answers
X after 2.5 seconds (a person who takes their time); when none are left it cancels.
Every command line it receives is appended to the log (one JSON object per dialog), so
tests can check what the dialog said. Only the standard library.
"""

import fcntl
import json
import os
import sys
import time


def take_response(script_path):
    with open(script_path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        script = json.load(fh)
        responses = script.get("responses", [])
        response = responses.pop(0) if responses else "CANCEL"
        script["responses"] = responses
        fh.seek(0)
        fh.truncate()
        json.dump(script, fh)
        return response, script.get("log")


def unescape(value):
    return value.replace("%0A", "\n").replace("%0D", "\r").replace("%25", "%")


def main():
    script_path = os.environ["CARDBRIDGE_TEST_PINENTRY_SCRIPT"]
    record = {"pid": os.getpid(), "commands": []}
    log_path = None
    out = sys.stdout
    out.write("OK Pleased to meet you\n")
    out.flush()
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        verb, _, arg = line.partition(" ")
        record["commands"].append([verb, unescape(arg)])
        if verb in ("GETPIN", "CONFIRM"):
            response, log_path = take_response(script_path)
            if response.startswith("AFTER "):
                _, seconds, response = response.split(" ", 2)
                time.sleep(float(seconds))
            special = ("CANCEL", "TIMEOUT", "HANG", "NOTOK", "WAIT")
            record["response"] = response if response in special else ("PIN" if verb == "GETPIN" else "OK")
            if log_path:
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
            if response == "HANG":
                time.sleep(3600)
            if response == "WAIT":
                for _ in sys.stdin:  # until the caller closes our input or ends us
                    pass
                return
            if response == "CANCEL":
                out.write("ERR 83886179 Operation cancelled <Pinentry>\n")
            elif response == "TIMEOUT":
                out.write("ERR 83886142 Timeout <Pinentry>\n")
            elif response == "NOTOK":
                out.write("ERR 83886194 Not confirmed <Pinentry>\n")
            else:
                if verb == "GETPIN":
                    escaped = response.replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")
                    out.write(f"D {escaped}\n")
                out.write("OK\n")
        elif verb == "BYE":
            out.write("OK closing connection\n")
            out.flush()
            return
        else:
            out.write("OK\n")
        out.flush()


if __name__ == "__main__":
    main()
