from pathlib import Path

import pytest

from cardbridge.errors import ModuleMissingError
from cardbridge.pkcs11.discovery import ENV_MODULES, p11kit_modules, resolve_modules


def _module_file(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.module").write_text(body, encoding="utf-8")


def test_p11kit_registrations(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("card.so", "trust.so", "other.so", "mine.so"):
        (lib / name).write_bytes(b"")
    share, etc = tmp_path / "share", tmp_path / "etc"
    _module_file(share, "card", f"# comment\nmodule: {lib}/card.so\n")
    _module_file(share, "trust", f"module: {lib}/trust.so\ntrust-policy: yes\n")
    _module_file(share, "other", f"module: {lib}/other.so\ndisable-in: cardbridge firefox\n")
    _module_file(share, "only-ff", f"module: {lib}/other.so\nenable-in: firefox\n")
    _module_file(share, "missing", "module: not-installed-anywhere.so\n")
    _module_file(etc, "card", f"module: {lib}/mine.so\n")  # a later folder overrides
    assert p11kit_modules([share, etc]) == [f"{lib}/mine.so"]


def test_a_later_folders_file_adds_to_the_packages_registration(tmp_path: Path) -> None:
    """p11-kit's merging: /etc/pkcs11/modules/NAME.module with only ``disable-in`` keeps
    the package's module out (the README's advice for OpenSC 0.23 and the Finnish cards)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "opensc-pkcs11.so").write_bytes(b"")
    share, etc = tmp_path / "share", tmp_path / "etc"
    _module_file(share, "opensc-pkcs11", f"module: {lib}/opensc-pkcs11.so\n")
    assert p11kit_modules([share, etc]) == [f"{lib}/opensc-pkcs11.so"]
    _module_file(etc, "opensc-pkcs11", "disable-in: firefox cardbridge\n")
    assert p11kit_modules([share, etc]) == []
    _module_file(etc, "opensc-pkcs11", "enable-in: cardbridge\n")
    assert p11kit_modules([share, etc]) == [f"{lib}/opensc-pkcs11.so"]


def test_flags_win_over_environment_and_config(tmp_path: Path) -> None:
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    a.write_bytes(b"")
    b.write_bytes(b"")
    env = {ENV_MODULES: f"{b}"}
    assert resolve_modules([str(a)], environ=env, config_modules=[str(b)]) == [str(a)]
    assert resolve_modules(None, environ=env, config_modules=[str(a)]) == [str(b)]
    assert resolve_modules(None, environ={}, config_modules=[str(a)]) == [str(a)]
    assert resolve_modules([str(a), str(a)], environ={}) == [str(a)]


@pytest.mark.parametrize("path", ["relative.so", "/nonexistent/x.so"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(ModuleMissingError):
        resolve_modules([path], environ={})
