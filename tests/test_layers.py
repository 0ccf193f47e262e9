"""The import rules of the layers (DESIGN.md, "Layers"), checked on the source: every module
under ``src/cardbridge`` is parsed with ``ast`` and every import in it counts, at any depth
(inside functions too, where the lazy imports are).

- only ``pkcs11/`` imports python-pkcs11 (``pkcs11``), only ``pcsc/`` imports pyscard
  (``smartcard``);
- aiohttp only in ``server/``, ``portal/`` and the demo;
- ``nativemsg`` and ``server`` import neither the card layers (``cardbridge.pkcs11``,
  ``cardbridge.pcsc``) nor each other;
- nothing imports the CLI (the ``cardbridge.cli`` package) but the entry point
  (``cardbridge.__main__``);
- only the CLI prints or exits (``print``, ``sys.exit``, ``os._exit``, ``raise SystemExit``),
  besides the entry point and the native host's own process entry (``nativemsg.host.launch``);
- ``portal`` (the validator library a portal server imports) imports no card code:
  ``cardbridge.pkcs11``, ``cardbridge.pcsc``, ``cardbridge.emulator``, ``cardbridge.service``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "cardbridge"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every module ``path`` (the module ``name``) imports, anywhere in it, by its absolute
    name (``from a import b`` counts as ``a`` and as ``a.b``: ``b`` may be a module)."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def prints_or_exits(path: Path, name: str | None = None) -> list[str]:
    """``module:line what`` for each ``print(…)``, ``sys.exit(…)``, ``os._exit(…)``,
    ``exit(…)``/``quit(…)`` and ``raise SystemExit`` in ``path``."""
    name = name or module_name(path)
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        what = None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("print", "exit", "quit"):
                what = func.id
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in (("sys", "exit"), ("os", "_exit"))
            ):
                what = f"{func.value.id}.{func.attr}"
        elif isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "SystemExit":
                what = "SystemExit"
        if what:
            found.append(f"{name}:{getattr(node, 'lineno', 0)} {what}")
    return found


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def offenders(importers: tuple[str, ...], imported: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """``module imports name`` for each module in ``importers`` (and not in ``allowed``) that
    imports one of ``imported``."""
    return sorted(
        f"{module} imports {name}"
        for module, names in MODULES.items()
        if within(module, *importers) and not within(module, *allowed)
        for name in names
        if within(name, *imported)
    )


def test_the_source_was_found() -> None:
    assert len(MODULES) > 50
    assert "cardbridge.pkcs11.backend" in MODULES and "pkcs11" in MODULES["cardbridge.pkcs11.backend"]


def test_only_pkcs11_imports_python_pkcs11() -> None:
    assert offenders(("cardbridge",), ("pkcs11",), allowed=("cardbridge.pkcs11",)) == []


def test_only_pcsc_imports_pyscard() -> None:
    assert offenders(("cardbridge",), ("smartcard",), allowed=("cardbridge.pcsc",)) == []


def test_aiohttp_only_in_the_server_the_portal_and_the_demo() -> None:
    allowed = ("cardbridge.server", "cardbridge.portal", "cardbridge.demo")
    assert offenders(("cardbridge",), ("aiohttp",), allowed=allowed) == []


@pytest.mark.parametrize(
    ("package", "other"), [("cardbridge.nativemsg", "cardbridge.server"), ("cardbridge.server", "cardbridge.nativemsg")]
)
def test_the_ways_in_import_no_card_layer_and_not_each_other(package: str, other: str) -> None:
    assert offenders((package,), ("cardbridge.pkcs11", "cardbridge.pcsc", "pkcs11", "smartcard", other)) == []


def test_nothing_imports_the_cli() -> None:
    assert offenders(("cardbridge",), ("cardbridge.cli",), allowed=("cardbridge.cli", "cardbridge.__main__")) == []


def test_only_the_cli_prints_or_exits() -> None:
    allowed = ("cardbridge.cli", "cardbridge.__main__", "cardbridge.nativemsg.host")
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in prints_or_exits(path)]
    assert any(hit.startswith("cardbridge.cli.") for hit in found)  # the check sees the CLI's
    assert [hit for hit in found if not within(hit.partition(":")[0], *allowed)] == []
    launch = [hit for hit in found if hit.startswith("cardbridge.nativemsg.host:")]
    assert all(hit.endswith(" os._exit") for hit in launch), launch


def test_the_portal_imports_no_card_code() -> None:
    card_code = (
        "cardbridge.pkcs11",
        "cardbridge.pcsc",
        "cardbridge.emulator",
        "cardbridge.service",
        "pkcs11",
        "smartcard",
    )
    assert offenders(("cardbridge.portal",), card_code) == []


def test_a_broken_rule_is_seen(tmp_path: Path) -> None:
    # Imports inside functions count, relative ones are resolved.
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    from ..pcsc import readers\n    import smartcard.System\n")
    found = imports(probe, "cardbridge.nativemsg.probe")
    assert prints_or_exits(probe, "cardbridge.probe") == []
    body = ("print(1)", "sys.exit(2)", "os._exit(3)", "raise SystemExit")
    probe.write_text("import os, sys\n\ndef f():\n" + "".join(f"    {line}\n" for line in body))
    assert sorted(prints_or_exits(probe, "cardbridge.probe")) == [
        "cardbridge.probe:4 print",
        "cardbridge.probe:5 sys.exit",
        "cardbridge.probe:6 os._exit",
        "cardbridge.probe:7 SystemExit",
    ]
    assert {"cardbridge.pcsc", "cardbridge.pcsc.readers", "smartcard.System", "os"} <= found
    assert within("smartcard.System", "smartcard") and not within("smartcardx", "smartcard")
