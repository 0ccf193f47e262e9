"""The atheris harnesses in fuzz/ stay runnable: each one's TestOneInput, run without atheris on
its seeds and on a bounded number of generated inputs, checks its properties and passes.

``make fuzz`` runs them for minutes with coverage guidance; this only keeps them from rotting
(an import that moved, a property that no longer holds on the seeds)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).parent.parent / "fuzz"
HARNESSES = sorted(FUZZ.glob("fuzz_*.py"))


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cardbridge_fuzz_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == "atheris":
            pytest.skip(f"{path.name} needs atheris to import (make fuzz installs it)")
        raise
    return module


@pytest.fixture(scope="module", params=HARNESSES, ids=[p.stem for p in HARNESSES])
def harness(request: pytest.FixtureRequest) -> tuple[Path, Callable[[bytes], None]]:
    path: Path = request.param
    test_one_input = getattr(_load(path), "TestOneInput", None)
    assert callable(test_one_input), f"{path.name} has no TestOneInput(data: bytes)"
    return path, test_one_input


def test_the_make_target_finds_the_harnesses() -> None:
    assert {p.name for p in HARNESSES} >= {"fuzz_framing.py", "fuzz_token.py"}


def test_harness_passes_on_its_seeds(harness: tuple[Path, Callable[[bytes], None]]) -> None:
    path, test_one_input = harness
    seeds = sorted((FUZZ / "seeds" / path.stem.removeprefix("fuzz_")).glob("*"))
    for seed in seeds:
        test_one_input(seed.read_bytes())
    test_one_input(b"")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000))
def test_harness_passes_on_generated_input(harness: tuple[Path, Callable[[bytes], None]], data: bytes) -> None:
    harness[1](data)
