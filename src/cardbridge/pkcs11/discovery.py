"""Which PKCS#11 modules to load.

Order (the first that gives any wins): ``--module`` flags, ``CARDBRIDGE_PKCS11_MODULE``
(paths separated by ``os.pathsep``), the config file, the modules registered with p11-kit.
Paths must be absolute. A module path never comes from a web request: only the CLI, the
environment and the config file reach this function. Every path, from any source, is
checked before it is loaded: a module file that other users could change (it, or a folder
above it, is writable by them) is refused with CONFIG_ERROR, since loading it would run
their code with the citizen's card.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cardbridge.errors import ModuleMissingError
from cardbridge.fileperm import check_not_writable_by_others

ENV_MODULES = "CARDBRIDGE_PKCS11_MODULE"
P11KIT_DIRS = (Path("/usr/share/p11-kit/modules"), Path("/etc/pkcs11/modules"))
APP_NAME = "cardbridge"


def _p11kit_module_dir() -> list[Path]:
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [Path("/usr/lib") / multiarch / "pkcs11"] if multiarch else []
    return [*dirs, Path("/usr/lib64/pkcs11"), Path("/usr/lib/pkcs11")]


def _parse_module_file(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        entries[key.strip().lower()] = value.strip()
    return entries


def p11kit_modules(dirs: Iterable[Path] = P11KIT_DIRS) -> list[str]:
    """The modules registered with p11-kit, without trust-policy modules (they hold only
    CA certificates) and without those disabled for us.

    As in p11-kit, a module's file in a later folder (``/etc/pkcs11/modules``) adds to and
    overrides the settings of the same-named file in an earlier one (the package's
    ``/usr/share/p11-kit/modules``): a file with only ``disable-in: cardbridge`` keeps the
    package's module out of cardbridge."""
    merged: dict[str, dict[str, str]] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob("*.module")):
            merged.setdefault(file.stem, {}).update(_parse_module_file(file))
    found: list[str] = []
    for entries in merged.values():
        module = entries.get("module")
        if not module or entries.get("trust-policy", "no").lower() == "yes":
            continue
        disabled = {n.strip() for n in entries.get("disable-in", "").split()}
        enabled = {n.strip() for n in entries.get("enable-in", "").split()}
        if APP_NAME in disabled or (enabled and APP_NAME not in enabled):
            continue
        if not os.path.isabs(module):
            for base in _p11kit_module_dir():
                if (base / module).exists():
                    module = str(base / module)
                    break
            else:
                continue
        found.append(module)
    return list(dict.fromkeys(found))


def check_module_path(path: str) -> str:
    """``path`` must be absolute and exist (else ModuleMissingError), and no other user may
    be able to change it (else ConfigError, whose message names the fix)."""
    if not os.path.isabs(path):
        raise ModuleMissingError(f"The PKCS#11 module path must be absolute: {path}")
    if not os.path.isfile(path):
        raise ModuleMissingError(f"The PKCS#11 module does not exist: {path}")
    check_not_writable_by_others(path)
    return path


def resolve_modules(
    flags: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_modules: Sequence[str] | None = None,
) -> list[str]:
    """The module paths to load, checked."""
    env = os.environ if environ is None else environ
    if flags:
        chosen: Sequence[str] = flags
    elif env.get(ENV_MODULES):
        chosen = [p for p in env[ENV_MODULES].split(os.pathsep) if p]
    elif config_modules:
        chosen = config_modules
    else:
        chosen = p11kit_modules()
    return [check_module_path(p) for p in dict.fromkeys(chosen)]
