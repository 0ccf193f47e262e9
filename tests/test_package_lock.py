"""The Debian package's lock files (``packaging/*.lock``, made by ``make lock``): the runtime
lock pins exactly the dependencies that pyproject.toml declares for the package (the base
ones and the ``portal`` extra) and what they pull in, each inside its declared range, with
hashes, for Debian 12's Python 3.11; the build lock pins the build backends. No network."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = Path(__file__).resolve().parents[1]
LOCK = PROJECT / "packaging" / "requirements.lock"
BUILD_LOCK = PROJECT / "packaging" / "build-requirements.lock"
# The extras the package's environment has (make lock: pip-compile --extra portal).
PACKAGE_EXTRAS = ("portal",)
# Debian 12's python3, which the package's environment is made with (debian/control).
PYTHON = "3.11"
MARKER_ENV = {"python_version": PYTHON, "python_full_version": f"{PYTHON}.2", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
SELF = "cardbridge (pyproject.toml)"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@dataclass
class Pin:
    name: str
    version: str
    line: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(text: str) -> tuple[dict[str, Pin], list[str]]:
    """The pins of a pip-compile lock (``name==version \\``, ``--hash=`` lines, ``# via``
    comments), and what in it is not such a pin."""
    pins: dict[str, Pin] = {}
    problems: list[str] = []
    current: Pin | None = None
    in_via = False
    for raw in text.splitlines():
        line = raw.rstrip().removesuffix("\\").strip()
        if not line:
            continue
        if not raw[0].isspace() and not raw.startswith("#"):
            requirement = Requirement(line)
            specs = list(requirement.specifier)
            if len(specs) != 1 or specs[0].operator != "==" or requirement.extras:
                problems.append(f"{line!r}: not pinned with == (pip --require-hashes refuses it)")
            if requirement.marker is not None and not requirement.marker.evaluate(MARKER_ENV):
                problems.append(f"{line!r}: its marker leaves it out on Python {PYTHON}")
            current = Pin(canonicalize_name(requirement.name), specs[0].version if specs else "", line)
            pins[current.name] = current
            in_via = False
        elif current is None:
            continue  # the header
        elif HASH.fullmatch(line):
            current.hashes.append(line)
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                current.via.append(rest)
        elif in_via and line.startswith("#   "):
            current.via.append(line.removeprefix("#").strip())
        elif line.startswith("#"):
            in_via = False  # e.g. "The following packages are considered to be unsafe"
        else:
            problems.append(f"{current.name}: unexpected line {line!r}")
    return pins, problems


def runtime_requirements(pyproject: dict[str, Any]) -> list[Requirement]:
    project = pyproject["project"]
    declared = list(project["dependencies"])
    for extra in PACKAGE_EXTRAS:
        declared += project["optional-dependencies"][extra]
    requirements = [Requirement(r) for r in declared]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(MARKER_ENV)]


def lock_problems(pyproject: dict[str, Any], lock_text: str) -> list[str]:
    """Everything wrong between the package's declared runtime dependencies and the lock."""
    pins, problems = read_lock(lock_text)
    declared = {canonicalize_name(r.name): r for r in runtime_requirements(pyproject)}
    for name, requirement in declared.items():
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{requirement}: declared in pyproject.toml, missing from the lock")
        elif not requirement.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(f"{pin.line}: outside the declared range {requirement}")
    for pin in pins.values():
        if not pin.hashes:
            problems.append(f"{pin.line}: no sha256 hash")
        if SELF in pin.via and pin.name not in declared:
            problems.append(f"{pin.line}: locked as cardbridge's own dependency, which pyproject.toml no longer is")
        unknown = [v for v in pin.via if v != SELF and canonicalize_name(v) not in pins]
        if unknown:
            problems.append(f"{pin.line}: pulled in by {unknown}, which the lock does not have")
    # Every pin is needed: declared, or pulled in by a needed one.
    pulled_by = {pin.name: {canonicalize_name(v) for v in pin.via} for pin in pins.values()}
    needed = set(declared)
    while more := {name for name, by in pulled_by.items() if name not in needed and by & needed}:
        needed |= more
    problems += [f"{pins[name].line}: nothing declared needs it" for name in sorted(set(pins) - needed)]
    return problems


def _pyproject() -> dict[str, Any]:
    with open(PROJECT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


REGENERATE = "regenerate it: make lock (see the Makefile)"


def test_the_lock_pins_exactly_the_declared_runtime_dependencies() -> None:
    problems = lock_problems(_pyproject(), LOCK.read_text(encoding="utf-8"))
    assert not problems, f"packaging/requirements.lock does not fit pyproject.toml; {REGENERATE}:\n  " + "\n  ".join(
        problems
    )


def test_the_lock_is_for_the_python_of_debian_12() -> None:
    header = LOCK.read_text(encoding="utf-8").splitlines()[:3]
    assert f"# This file is autogenerated by pip-compile with Python {PYTHON}" in header, (
        f"packaging/requirements.lock was not made with Python {PYTHON} (Debian 12's python3); {REGENERATE}"
    )
    control = (PROJECT / "debian" / "control").read_text(encoding="utf-8")
    assert f"python3 (>= {PYTHON}~)" in control
    assert f"python3 (<< 3.{int(PYTHON.split('.')[1]) + 1}~)" in control
    # make lock locks the extras the package has.
    makefile = (PROJECT / "Makefile").read_text(encoding="utf-8")
    for extra in PACKAGE_EXTRAS:
        assert f"--extra {extra} --output-file packaging/requirements.lock" in makefile


def test_the_build_lock_pins_the_build_backends() -> None:
    pins, problems = read_lock(BUILD_LOCK.read_text(encoding="utf-8"))
    assert not problems
    assert all(p.hashes for p in pins.values())
    for requires in _pyproject()["build-system"]["requires"]:  # cardbridge's own backend
        requirement = Requirement(requires)
        pin = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version), f"{pin.line} is outside {requirement}; {REGENERATE}"
    assert "swig" in pins  # pyscard's sdist builds with it


# The check itself, on locks that are wrong in one way each.

PYPROJECT = {
    "project": {
        "dependencies": ["aiohttp>=3.14,<3.15", "pyscard>=2.0", "tomli>=2; python_version < '3.11'"],
        "optional-dependencies": {"portal": ["oscrypto>=1"], "test": ["pytest>=8"]},
    }
}
GOOD = """\
#
# This file is autogenerated by pip-compile with Python 3.11
#
aiohttp==3.14.5 \\
    --hash=sha256:{h} \\
    --hash=sha256:{h}
    # via
    #   cardbridge (pyproject.toml)
    #   oscrypto
multidict==7.2.1 \\
    --hash=sha256:{h}
    # via aiohttp
oscrypto==1.3.0 \\
    --hash=sha256:{h}
    # via cardbridge (pyproject.toml)
pyscard==2.3.1 \\
    --hash=sha256:{h}
    # via cardbridge (pyproject.toml)
""".replace("{h}", "0" * 64)


def test_a_good_lock_passes() -> None:
    assert lock_problems(PYPROJECT, GOOD) == []


def test_each_kind_of_mismatch_is_named() -> None:
    def problems(lock: str) -> str:
        found = lock_problems(PYPROJECT, lock)
        assert len(found) == 1, found
        return found[0]

    assert "missing from the lock" in problems(GOOD.split("pyscard==")[0])
    assert "outside the declared range" in problems(GOOD.replace("aiohttp==3.14.5", "aiohttp==3.15.0"))
    unhashed = GOOD.replace("\n    --hash=sha256:" + "0" * 64 + "\n    # via aiohttp", "\n    # via aiohttp")
    assert "no sha256 hash" in problems(unhashed)
    stale = GOOD + "pytest==8.4.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via cardbridge (pyproject.toml)\n"
    assert "no longer is" in " ".join(lock_problems(PYPROJECT, stale))
    orphan = GOOD + "attrs==26.1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via yarl\n"
    assert "which the lock does not have" in " ".join(lock_problems(PYPROJECT, orphan))
    assert "not pinned with ==" in problems(GOOD.replace("multidict==7.2.1", "multidict>=7"))
