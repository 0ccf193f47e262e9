"""Inside the clean root, with the package installed: two logins with a SoftHSM2 token and
the scripted pinentry (run by Debian's /usr/bin/python3, standard library only).

    inside.py FREE_PORT

1. Through the native-messaging host as a browser starts it: the launcher named by
   /etc/chromium/native-messaging-hosts/no.cardbridge.host.json, the extension's origin as
   its argument, frames (32-bit native-order length + JSON) over its stdin and stdout.
2. Through ``cardbridge serve`` on 127.0.0.1:FREE_PORT: POST /v1/authenticate.

Each token's signature is checked over H(origin) || H(nonce) with the certificate it carries
(by the package's own Python, which has ``cryptography``). The last line printed is JSON
that the browser step uses: the environment for the host, and the CA certificate.
"""

import base64
import json
import os
import struct
import subprocess
import sys
import time
import urllib.request

ORIGIN = "https://login.example.no"
EXTENSION = "chrome-extension://lpofidgjknhefhoajeebdlcfmapohlip/"
MANIFEST = "/etc/chromium/native-messaging-hosts/no.cardbridge.host.json"
WORK = "/root/cb"
VENV_PYTHON = "/usr/lib/cardbridge/bin/python3"
VERIFY = """
import base64, hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
token, origin, nonce = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
assert token["format"] == "web-eid:1.0" and token["algorithm"] == "ES384", token
cert = x509.load_der_x509_certificate(base64.b64decode(token["unverifiedCertificate"]))
raw = base64.b64decode(token["signature"])
half = len(raw) // 2
der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
signed = hashlib.sha384(origin.encode()).digest() + hashlib.sha384(nonce.encode()).digest()
cert.public_key().verify(der, signed, ec.ECDSA(hashes.SHA384()))
print(cert.subject.rfc4514_string())
"""


def nonce(tag):
    return base64.b64encode(tag.encode().ljust(32, b"-")[:32]).decode()


def check_token(token, origin, challenge):
    result = subprocess.run(
        [VENV_PYTHON, "-I", "-c", VERIFY, json.dumps(token), origin, challenge],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"the token does not verify: {result.stderr}")
    return result.stdout.strip()


def read_frame(stream):
    header = stream.read(4)
    if len(header) != 4:
        raise SystemExit("the host closed its output without a frame")
    (length,) = struct.unpack("=I", header)
    return json.loads(stream.read(length))


def write_frame(stream, message):
    body = json.dumps(message).encode()
    stream.write(struct.pack("=I", len(body)) + body)
    stream.flush()


def main():
    port = int(sys.argv[1])
    os.makedirs(WORK, mode=0o700, exist_ok=True)
    env = {"HOME": "/root", "PATH": "/usr/bin:/bin", "CARDBRIDGE_DATA_DIR": f"{WORK}/data"}
    created = subprocess.run(
        ["cardbridge", "dev", "token", "create", "--json"], env=env, capture_output=True, text=True, check=True
    )
    token_info = json.loads(created.stdout)
    config = f"{WORK}/config.toml"
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(f'allowed_origins = ["{ORIGIN}"]\npkcs11_modules = ["{token_info["module"]}"]\n')
    os.chmod(config, 0o600)
    script = f"{WORK}/pinentry-script.json"
    log = f"{WORK}/pinentry-log.jsonl"
    with open(script, "w", encoding="utf-8") as fh:
        json.dump({"responses": [token_info["pin"], token_info["pin"]], "log": log}, fh)
    env.update(
        SOFTHSM2_CONF=token_info["softhsm2_conf"],
        CARDBRIDGE_CONFIG=config,
        CARDBRIDGE_PINENTRY="/root/tools/pinentry",
        CARDBRIDGE_TEST_PINENTRY_SCRIPT=script,
    )

    # 1. The native-messaging host, as the browser starts it.
    with open(MANIFEST, encoding="utf-8") as fh:
        launcher = json.load(fh)["path"]
    started = time.monotonic()
    host = subprocess.Popen(
        [launcher, EXTENSION], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    hello = read_frame(host.stdout)
    handshake = time.monotonic() - started
    challenge = nonce("native")
    write_frame(host.stdin, {"command": "authenticate", "arguments": {"challengeNonce": challenge, "origin": ORIGIN}})
    answer = read_frame(host.stdout)
    host.stdin.close()
    host.wait(timeout=30)
    if "error" in answer:
        raise SystemExit(f"native host: {answer} {host.stderr.read().decode()[-2000:]}")
    subject = check_token(answer, ORIGIN, challenge)
    print(f"native host {launcher}: handshake {hello} in {handshake * 1000:.0f} ms; token for {subject} verifies")
    with open(log, encoding="utf-8") as fh:
        dialog = json.loads(fh.readline())
    descriptions = [arg for verb, arg in dialog["commands"] if verb == "SETDESC"]
    if not any(ORIGIN in d for d in descriptions):
        raise SystemExit(f"the PIN dialog did not name the origin: {descriptions}")

    # 2. cardbridge serve on loopback.
    serve = subprocess.Popen(
        ["cardbridge", "serve", "--port", str(port), "--no-pcsc"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/v1/openapi.json", timeout=2).read()  # noqa: S310 - http on loopback
                break
            except OSError:
                if time.monotonic() > deadline or serve.poll() is not None:
                    error = serve.stderr.read().decode()[-2000:]
                    raise SystemExit(f"cardbridge serve did not start: {error}") from None
                time.sleep(0.2)
        challenge = nonce("serve")
        request = urllib.request.Request(  # noqa: S310 - http on loopback
            base + "/v1/authenticate",
            data=json.dumps({"challengeNonce": challenge}).encode(),
            headers={"Origin": ORIGIN, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            token = json.loads(response.read())
        subject = check_token(token, ORIGIN, challenge)
        print(f"cardbridge serve on {base}: token for {subject} verifies")
    finally:
        serve.terminate()
        serve.wait(timeout=30)

    browser_env = {k: v for k, v in env.items() if k != "CARDBRIDGE_CONFIG"}
    browser_env.update(MODULE=token_info["module"], HOLDER=token_info["holder"], PIN=token_info["pin"])
    print(json.dumps({"env": browser_env, "ca": token_info["ca_certificate"], "script": script, "log": log}))


main()
