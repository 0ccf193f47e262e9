"""Is a file safe to trust? Refuse one that other users could change.

The config file names the PKCS#11 modules that are loaded into the bridge, and a module
is code that runs with the citizen's card: if another user could write either, or any
folder above it (and so swap it), that user could take over the login. A folder with the
sticky bit (``/tmp``) is safe: others cannot rename or delete what they do not own. The
file and its folder must belong to the user or to root. POSIX only; on Windows the
installer's folder permissions are trusted.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cardbridge.errors import ConfigError

__all__ = ["check_not_writable_by_others", "unsafe_reason"]


def _writable_by_others(mode: int) -> bool:
    if stat.S_ISDIR(mode) and mode & stat.S_ISVTX:
        return False
    return bool(mode & (stat.S_IWGRP | stat.S_IWOTH))


def _reason(target: Path, *, check_owner: bool) -> str | None:
    try:
        info = target.stat()
    except OSError:
        return None  # a missing file is someone else's error
    if _writable_by_others(info.st_mode):
        return f"{target} can be written by other users; run: chmod go-w {target}"
    if check_owner and info.st_uid not in (0, os.geteuid()):
        return f"{target} belongs to another user (uid {info.st_uid}); it must belong to you or to root"
    return None


def unsafe_reason(path: Path | str) -> str | None:
    """Why ``path`` is not safe to trust, with the fix; ``None`` when it is safe."""
    if os.name != "posix":
        return None
    given = Path(path)
    chains = [given]
    real = Path(os.path.realpath(given))
    if real != given:
        chains.append(real)  # a symbolic link: its target must be safe too
    for file in chains:
        for depth, target in enumerate([file, *file.parents]):
            reason = _reason(target, check_owner=depth < 2)
            if reason:
                return reason
    return None


def check_not_writable_by_others(path: Path | str) -> None:
    """Raise ConfigError (with the fix) when other users could change ``path``."""
    reason = unsafe_reason(path)
    if reason:
        raise ConfigError(reason)
