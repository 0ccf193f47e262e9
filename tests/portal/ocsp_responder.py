"""A real OCSP responder for the tests: http.server on loopback, responses built with cryptography.

It answers every request like a CA's responder would, and can be told to misbehave the ways
responders do: revoked/unknown status, stale times, another signer, no or another nonce,
HTTP errors, slowness, garbage.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from cardbridge.emulator.devpki import PrivateKey


@dataclass
class Behaviour:
    status: str = "good"  # good | revoked | unknown
    this_update: dt.timedelta = dt.timedelta(0)  # offset from now
    next_update: dt.timedelta | None = dt.timedelta(hours=1)
    signer_key: PrivateKey | None = None  # None: the CA's key
    signer_cert: x509.Certificate | None = None  # None: the CA's certificate
    include_signer_cert: bool = False
    responder_id_by_name: bool = False
    nonce: str = "echo"  # echo | omit | other
    serial_offset: int = 0  # answer about another serial number
    http_status: int = 200
    unsuccessful: bool = False
    garbage: bool = False
    delay: float = 0.0


@dataclass
class Responder:
    ca_key: PrivateKey
    ca_cert: x509.Certificate
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[ocsp.OCSPRequest] = field(default_factory=list)
    url: str = ""

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.requests.clear()

    def answer(self, body: bytes) -> tuple[int, bytes]:
        b = self.behaviour
        if b.delay:
            time.sleep(b.delay)
        if b.http_status != 200:
            return b.http_status, b"responder broken"
        if b.garbage:
            return 200, b"\x30\x03\x0a\x01\x00garbage"
        if b.unsuccessful:
            return 200, ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
                serialization.Encoding.DER
            )
        request = ocsp.load_der_ocsp_request(body)
        self.requests.append(request)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[b.status]
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number + b.serial_offset,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=now + b.this_update,
            next_update=None if b.next_update is None else now + b.this_update + b.next_update,
            revocation_time=now - dt.timedelta(days=1) if b.status == "revoked" else None,
            revocation_reason=x509.ReasonFlags.key_compromise if b.status == "revoked" else None,
        )
        signer_cert = b.signer_cert or self.ca_cert
        signer_key = b.signer_key or self.ca_key
        encoding = ocsp.OCSPResponderEncoding.NAME if b.responder_id_by_name else ocsp.OCSPResponderEncoding.HASH
        builder = builder.responder_id(encoding, signer_cert)
        if b.include_signer_cert:
            builder = builder.certificates([signer_cert])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
        if b.nonce == "other":
            nonce = b"\x00" * 32
        if nonce is not None and b.nonce != "omit":
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        algorithm = hashes.SHA256() if isinstance(signer_key, ec.EllipticCurvePrivateKey) else hashes.SHA384()
        response = builder.sign(signer_key, algorithm)
        return 200, response.public_bytes(serialization.Encoding.DER)


@contextmanager
def serve(responder: Responder) -> Iterator[Responder]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            code, payload = responder.answer(body)
            self.send_response(code)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (timeout tests)
                self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-ocsp-responder", daemon=True)
    thread.start()
    responder.url = f"http://127.0.0.1:{server.server_address[1]}/ocsp"
    try:
        yield responder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
