"""Why the portal refused a token or a nonce: one class per stable code.

Every refusal is a :class:`TokenValidationError` (a :class:`cardbridge.errors.CardbridgeError`),
so a portal catches one class and reads ``.code``. The codes are listed in
:mod:`cardbridge.portal`; the messages are for the log, not for the citizen.
"""

from __future__ import annotations

from cardbridge.errors import CardbridgeError, Code


class TokenValidationError(CardbridgeError):
    """The token (or its nonce) was refused; ``code`` says why."""

    code = Code.TOKEN_INVALID


# The token itself.


class TokenMalformedError(TokenValidationError):
    """Too short or long, not a JSON object, a field missing, of the wrong type or not base64."""

    code = Code.TOKEN_MALFORMED


class TokenFormatError(TokenValidationError):
    """``format`` does not start with ``web-eid:1``."""

    code = Code.TOKEN_FORMAT_UNSUPPORTED


class AlgorithmUnsupportedError(TokenValidationError):
    """``algorithm`` is not one of ES/PS/RS 256/384/512."""

    code = Code.TOKEN_ALGORITHM_UNSUPPORTED


class AlgorithmKeyMismatchError(TokenValidationError):
    """``algorithm`` does not fit the certificate's key (e.g. ES256 for a P-384 key)."""

    code = Code.TOKEN_ALGORITHM_KEY_MISMATCH


class SignatureInvalidError(TokenValidationError):
    """The signature does not verify over ``H(origin) || H(nonce)``."""

    code = Code.TOKEN_SIGNATURE_INVALID


# The certificate.


class CertificateRejectedError(TokenValidationError):
    """Base of the refusals of ``unverifiedCertificate``."""

    code = Code.CERTIFICATE_MALFORMED


class CertificateMalformedError(CertificateRejectedError):
    """The certificate cannot be parsed, even leniently, or its key cannot be loaded."""

    code = Code.CERTIFICATE_MALFORMED


class CertificatePurposeError(CertificateRejectedError):
    """keyUsage lacks digitalSignature, or extendedKeyUsage is present without clientAuth."""

    code = Code.CERTIFICATE_WRONG_PURPOSE


class CertificatePolicyError(CertificateRejectedError):
    """The certificate carries a policy the validator is configured to refuse."""

    code = Code.CERTIFICATE_POLICY_DISALLOWED


class CertificateNoIdentityError(CertificateRejectedError):
    """The subject has no serialNumber (the personal identification code)."""

    code = Code.CERTIFICATE_NO_IDENTITY


class CertificateNotYetValidError(CertificateRejectedError):
    """The certificate (or a CA in its chain) is not valid yet at the validation time."""

    code = Code.CERTIFICATE_NOT_YET_VALID


class CertificateExpiredError(CertificateRejectedError):
    """The certificate (or a CA in its chain) has expired at the validation time."""

    code = Code.CERTIFICATE_EXPIRED


class CertificateUntrustedError(CertificateRejectedError):
    """No valid chain from the certificate to one of the trusted CA certificates."""

    code = Code.CERTIFICATE_UNTRUSTED


# OCSP.


class OcspError(TokenValidationError):
    """Base of the OCSP refusals."""

    code = Code.OCSP_UNAVAILABLE


class OcspUnavailableError(OcspError):
    """No responder, a network error, a timeout or an HTTP error: no status was learnt."""

    code = Code.OCSP_UNAVAILABLE


class OcspInvalidResponseError(OcspError):
    """The response is malformed, unsuccessful, or not about the certificate asked for."""

    code = Code.OCSP_INVALID_RESPONSE


class OcspNonceMismatchError(OcspError):
    """The response lacks the request's nonce or carries another (a replay)."""

    code = Code.OCSP_NONCE_MISMATCH


class OcspSignerUntrustedError(OcspError):
    """The response is not signed by the CA, a responder it delegated to, or the pinned responder."""

    code = Code.OCSP_SIGNER_UNTRUSTED


class OcspStaleError(OcspError):
    """``thisUpdate`` is more than the allowed skew (15 minutes) away from the validation time."""

    code = Code.OCSP_STALE


class OcspRevokedError(OcspError):
    """The responder says the certificate is revoked."""

    code = Code.OCSP_REVOKED


class OcspUnknownError(OcspError):
    """The responder does not know the certificate."""

    code = Code.OCSP_UNKNOWN


# Challenge nonces.


class NonceError(TokenValidationError):
    """The nonce breaks the length or character rules (base of the nonce refusals)."""

    code = Code.INVALID_NONCE


class NonceUnknownError(NonceError):
    """The store never issued this nonce (or no longer remembers it: expired, used or purged)."""

    code = Code.NONCE_UNKNOWN


class NonceExpiredError(NonceError):
    """The nonce was issued, but longer ago than the store's time to live."""

    code = Code.NONCE_EXPIRED


class NonceUsedError(NonceError):
    """The nonce was already consumed once."""

    code = Code.NONCE_USED


class NonceStoreUnavailableError(NonceError):
    """The nonce store (Redis) cannot be reached; nothing was issued or consumed."""

    code = Code.NONCE_STORE_UNAVAILABLE


__all__ = [name for name in dir() if name.endswith("Error") and name != "CardbridgeError"]
