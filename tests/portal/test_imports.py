"""A portal server installs ``cardbridge[portal]``: importing :mod:`cardbridge.portal` and
validating a token needs neither pyscard (``smartcard``) nor python-pkcs11 (``pkcs11``), nor
aiohttp or Playwright. Checked in a fresh interpreter where a meta-path finder refuses
those packages, as on a server where they are not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("smartcard", "pkcs11", "aiohttp", "playwright")

PROGRAM = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    {body}
    """
)


def run(body: str) -> subprocess.CompletedProcess[str]:
    program = PROGRAM.format(blocked=BLOCKED, body=textwrap.dedent(body))
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)


def test_the_block_works() -> None:
    result = run("import smartcard")
    assert result.returncode != 0 and "blocked by the test" in result.stderr


def test_the_portal_library_imports_without_card_libraries() -> None:
    result = run(
        """
        import cardbridge.portal
        from cardbridge.portal import AuthTokenValidator, InMemoryNonceStore, JS_CLIENT, TokenValidationError
        import cardbridge.portal.ocsp

        import datetime as dt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        assert JS_CLIENT.is_file()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
        now = dt.datetime.now(dt.timezone.utc)
        ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        store = InMemoryNonceStore()
        nonce = store.issue()
        pem = ca.public_bytes(serialization.Encoding.PEM)
        validator = AuthTokenValidator(site_origin="https://login.example.no", trusted_ca_certificates=[pem])
        try:
            validator.validate("{}", nonce)
        except TokenValidationError as exc:
            print(exc.code)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        card_layers = ("cardbridge.pkcs11", "cardbridge.pcsc", "cardbridge.service")
        card = sorted(m for m in sys.modules if m.startswith(card_layers))
        print(loaded, card)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["TOKEN_MALFORMED", "[] []"]
