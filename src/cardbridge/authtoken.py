"""Origin and nonce rules, the signing input, and the Web eID ``web-eid:1.0`` auth token.

What is signed (DESIGN.md): ``M = H(origin) || H(nonce)`` where ``H`` is the algorithm's
hash; the card signs ``H(M)``. ``origin`` is the browser's ASCII serialization of the origin;
``nonce`` is the nonce string as given, not base64-decoded.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from cardbridge import __version__
from cardbridge.errors import InvalidNonceError, InvalidOriginError
from cardbridge.model import SignatureAlgorithm, hash_bytes

TOKEN_FORMAT = "web-eid:1.0"
APP_VERSION_URL = "https://cardbridge.invalid/cardbridge/releases/" + __version__

ORIGIN_MAX_LENGTH = 255
NONCE_MIN_LENGTH = 44
NONCE_MAX_LENGTH = 128

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")
_DEV_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_DEFAULT_PORTS = {"https": "443", "http": "80"}


def check_origin(origin: object, *, allow_http_localhost: bool = False) -> str:
    """Return ``origin`` when it is a canonical web origin; else raise InvalidOriginError.

    Canonical means exactly what a browser sends in ``Origin``: ``https://host[:port]`` with
    the host in lower case and punycode, the port only when not 443, nothing after it.
    ``http`` is accepted only for localhost and 127.0.0.1, and only when
    ``allow_http_localhost`` (development).
    """
    if not isinstance(origin, str):
        raise InvalidOriginError("The origin must be a string.")
    if len(origin) > ORIGIN_MAX_LENGTH:
        raise InvalidOriginError(f"The origin is longer than {ORIGIN_MAX_LENGTH} characters.")
    if not origin.isascii() or not origin.isprintable():
        raise InvalidOriginError("The origin must be ASCII (a Unicode host is written in punycode).")
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("https", "http"):
        raise InvalidOriginError("The origin must start with https://.")
    if not rest:
        raise InvalidOriginError("The origin has no host.")
    if any(c in rest for c in "/?#@\\ "):
        raise InvalidOriginError("The origin must not have a path, query, fragment, user or trailing slash.")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise InvalidOriginError("The origin's IPv6 address is not closed.")
        host, port_part = rest[: end + 1], rest[end + 1 :]
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise InvalidOriginError("The origin's IPv6 address is invalid.") from exc
        if f"[{address.compressed}]" != host:
            raise InvalidOriginError("The origin's IPv6 address is not in its canonical form.")
    else:
        host, colon, port = rest.partition(":")
        port_part = colon + port
        _check_host(host)
    if port_part:
        port = port_part[1:]
        if not port_part.startswith(":") or not _PORT.match(port) or int(port) > 65535:
            raise InvalidOriginError("The origin's port is invalid.")
        if port == _DEFAULT_PORTS[scheme]:
            raise InvalidOriginError(f"The origin must not name the default port {port}.")
    if scheme == "http":
        if host not in _DEV_HOSTS:
            raise InvalidOriginError("Only https:// origins are allowed.")
        if not allow_http_localhost:
            raise InvalidOriginError("http:// is allowed only for localhost in development mode.")
    return origin


def _check_host(host: str) -> None:
    if not host:
        raise InvalidOriginError("The origin has no host.")
    if host != host.lower():
        raise InvalidOriginError("The origin's host must be in lower case.")
    if host.endswith("."):
        raise InvalidOriginError("The origin's host must not end with a dot.")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise InvalidOriginError("The origin's IPv4 address is invalid.") from exc
        return
    labels = host.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidOriginError("The origin's host is not a valid domain name.")
        if label.startswith("xn--"):
            try:
                label[4:].encode("ascii").decode("punycode")
            except UnicodeError as exc:
                raise InvalidOriginError("The origin's host has an invalid punycode label.") from exc


def check_nonce(nonce: object) -> str:
    """Return ``nonce`` when it has 44–128 visible ASCII characters; else raise InvalidNonceError."""
    if not isinstance(nonce, str):
        raise InvalidNonceError("The challenge nonce must be a string.")
    if not NONCE_MIN_LENGTH <= len(nonce) <= NONCE_MAX_LENGTH:
        raise InvalidNonceError(
            f"The challenge nonce must have {NONCE_MIN_LENGTH} to {NONCE_MAX_LENGTH} characters, not {len(nonce)}."
        )
    if not all("\x21" <= c <= "\x7e" for c in nonce):
        raise InvalidNonceError("The challenge nonce may hold only visible ASCII characters.")
    return nonce


def signing_input(origin: str, nonce: str, hash_function: str) -> bytes:
    """``M = H(origin) || H(nonce)``: what the authentication key signs (over ``H(M)``)."""
    return hash_bytes(hash_function, origin.encode("utf-8")) + hash_bytes(hash_function, nonce.encode("utf-8"))


def authentication_digest(origin: str, nonce: str, algorithm: SignatureAlgorithm) -> bytes:
    """``H(M)``: the digest the card signs for a login to ``origin`` with ``nonce``."""
    message = signing_input(origin, nonce, algorithm.hash_function)
    return hash_bytes(algorithm.hash_function, message)


def b64(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class AuthToken:
    """The token a login page posts to its portal (Web eID ``web-eid:1.0``)."""

    unverified_certificate: bytes
    algorithm: str
    signature: bytes
    format: str = TOKEN_FORMAT
    app_version: str = APP_VERSION_URL

    def to_dict(self) -> dict[str, Any]:
        return {
            "unverifiedCertificate": b64(self.unverified_certificate),
            "algorithm": self.algorithm,
            "signature": b64(self.signature),
            "format": self.format,
            "appVersion": self.app_version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))
