"""Emulated ID cards on SoftHSM2, with the development PKI.

A SoftHSM2 config and token folder of cardbridge's own (never the system's): the config
file's ``directories.tokendir`` points at a folder beside it. ``SOFTHSM2_CONF`` must name
that config before the module is first loaded in a process.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from cardbridge.emulator.devpki import KEY_CHOICES, Citizen, DevCA
from cardbridge.errors import ConfigError, InvalidInputError
from cardbridge.model import Purpose

SOFTHSM_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
DEFAULT_LABEL = "cardbridge-dev"
DEFAULT_PIN = "1234"
AUTH_KEY_ID = b"\x01"
SIGN_KEY_ID = b"\x02"


def softhsm_module() -> str:
    """The SoftHSM2 PKCS#11 module on this machine."""
    for path in SOFTHSM_MODULES:
        if os.path.exists(path):
            return path
    raise ConfigError("SoftHSM2 is not installed (Debian: apt-get install softhsm2).")


def write_config(folder: Path) -> Path:
    """Write a SoftHSM2 config whose token folder is ``folder/tokens``; returns its path."""
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        encoding="utf-8",
    )
    return conf


@dataclass(frozen=True)
class DevToken:
    """What a developer needs to use an emulated card."""

    module: str
    softhsm2_conf: str
    label: str
    pin: str
    so_pin: str
    ca_certificate: str
    key: str
    holder: str
    id_code: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def init_token(conf: Path, label: str, pin: str, so_pin: str) -> None:
    """``softhsm2-util --init-token --free`` in the config ``conf``."""
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise ConfigError("softhsm2-util is missing (Debian: apt-get install softhsm2).")
    if len(pin) < 4 or len(pin) > 255:
        raise InvalidInputError("A SoftHSM2 PIN has 4 to 255 characters.")
    result = subprocess.run(
        [tool, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise ConfigError(f"softhsm2-util could not make the token: {result.stderr.strip() or result.stdout.strip()}")


def provision(
    module: str,
    label: str,
    pin: str,
    ca: DevCA,
    *,
    key: str = "ec-p384",
    citizen: Citizen | None = None,
    auth_certificates: int = 1,
    signing: bool = True,
) -> None:
    """Generate keys on the token and store certificates from ``ca`` beside them.

    ``auth_certificates`` authentication keys get IDs 0x01, 0x11, 0x21, …; the signing key
    gets 0x02. ``SOFTHSM2_CONF`` must already name the token's config in this process.
    """
    from cardbridge.pkcs11.provision import TokenWriter

    if key not in KEY_CHOICES:
        raise InvalidInputError(f"Unknown key type {key!r}; choose one of {', '.join(KEY_CHOICES)}.")
    person = citizen or Citizen()
    items = [
        (bytes([0x01 + 0x10 * i]), Purpose.AUTHENTICATION, f"Authentication {i + 1}") for i in range(auth_certificates)
    ]
    if signing:
        items.append((SIGN_KEY_ID, Purpose.SIGNING, "Signing"))
    with TokenWriter(module, label, pin) as writer:
        for key_id, purpose, key_label in items:
            public = writer.generate_key(key, key_id, key_label)
            cert = ca.issue(public, person, purpose)
            writer.store_certificate(
                cert.public_bytes(serialization.Encoding.DER), cert.subject.public_bytes(), key_id, key_label
            )


def create_dev_token(
    folder: Path,
    *,
    key: str = "ec-p384",
    pin: str = DEFAULT_PIN,
    label: str = DEFAULT_LABEL,
    citizen: Citizen | None = None,
) -> DevToken:
    """Make (or find) the emulated card in ``folder``: the dev CA in ``folder/ca``, SoftHSM2
    in ``folder/softhsm``. Sets ``SOFTHSM2_CONF`` in this process."""
    ca = DevCA.load_or_create(folder / "ca")
    conf = write_config(folder / "softhsm")
    record = folder / "softhsm" / f"{label}.json"
    os.environ["SOFTHSM2_CONF"] = str(conf)
    if record.exists():
        data = json.loads(record.read_text(encoding="utf-8"))
        return DevToken(**data)
    person = citizen or Citizen()
    so_pin = secrets.token_hex(8)
    init_token(conf, label, pin, so_pin)
    module = softhsm_module()
    provision(module, label, pin, ca, key=key, citizen=person)
    token = DevToken(
        module=module,
        softhsm2_conf=str(conf),
        label=label,
        pin=pin,
        so_pin=so_pin,
        ca_certificate=str(ca.cert_path),
        key=key,
        holder=person.common_name,
        id_code=person.id_code,
    )
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(token.to_dict(), fh, indent=2)
    return token
