"""The command line as a whole (``cardbridge.cli``: the parser, dispatch, exit) and the
entry point ``cardbridge.__main__``."""

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardbridge import __version__, cli
from tests.cli import run

QUIT_FRAME = (36).to_bytes(4, sys.byteorder) + b'{"command": "quit", "arguments": {}}'
HEAVY = ("asyncio", "ssl", "aiohttp", "cardbridge.server")
CARD_LAYERS = ("cardbridge.service", "cardbridge.pkcs11.backend", "cardbridge.pcsc", "pkcs11", "smartcard")


def imported(*arguments: str, stdin: bytes = b"") -> tuple[set[str], bytes]:
    """The modules ``python -m cardbridge ARGUMENTS`` imports, and what it printed."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cardbridge", *arguments],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=True,
    )
    modules = {line.split("|")[-1].strip() for line in result.stderr.decode().splitlines() if "|" in line}
    return modules, result.stdout


def loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


Commands = Iterator[tuple[str, argparse.ArgumentParser]]


def commands(parser: argparse.ArgumentParser, prefix: str = "cardbridge") -> Commands:
    """Every command that runs something (no sub-commands of its own), by its full name."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and prefix != "cardbridge":
        yield prefix, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from commands(sub, f"{prefix} {name}")


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"cardbridge {__version__}"


def test_every_command_says_what_runs_it() -> None:
    found = dict(commands(cli.build_parser()))
    assert {"cardbridge list", "cardbridge serve", "cardbridge dev token create", "cardbridge config path"} <= set(
        found
    )
    for name, parser in found.items():
        run_it = parser.get_default("func")
        assert callable(run_it), name
        assert run_it.__module__.startswith("cardbridge.cli."), name  # in the module of its group


def test_without_a_command_the_help_and_status_2() -> None:
    result = run()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: cardbridge")


def test_a_usage_error_is_invalid_argument_and_status_2() -> None:
    result = run("list", "--no-such-flag")
    assert result.returncode == 2
    assert "error: INVALID_ARGUMENT: unrecognized arguments: --no-such-flag" in result.stderr


def test_every_command_ends_through_the_pkcs11_shutdown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """cli.main leaves only through cardbridge.pkcs11.shutdown (the module call in progress
    waited for, sessions closed, modules finalized), and with os._exit when a module call
    still runs after it (a hung module would keep the interpreter from exiting)."""
    from cardbridge import pkcs11

    monkeypatch.setenv("CARDBRIDGE_CONFIG", str(tmp_path / "config.toml"))
    answers = [True]
    calls: list[bool] = []

    def shutdown() -> bool:
        calls.append(answers[0])
        return answers[0]

    class Left(Exception):
        pass

    def leave(status: int) -> None:
        raise Left(status)

    monkeypatch.setattr(pkcs11, "shutdown", shutdown)
    monkeypatch.setattr(cli.os, "_exit", leave)
    assert cli.main(["config", "path"]) == 0
    assert calls == [True]
    answers[0] = False
    with pytest.raises(Left) as left:
        cli.main(["config", "path"])
    assert left.value.args == (0,)
    with pytest.raises(Left) as left:  # a usage error too
        cli.main(["no-such-command"])
    assert left.value.args == (1,)


@pytest.mark.parametrize(
    ("arguments", "stdin"), [(["--version"], b""), (["native-host"], QUIT_FRAME)], ids=["version", "native-host"]
)
def test_fast_commands_load_no_command_line(arguments: list[str], stdin: bytes) -> None:
    # `cardbridge --version` and `cardbridge native-host` start without the CLI's parser,
    # messages, asyncio, ssl or the server (bench/cli_start.py measures the time).
    modules, stdout = imported(*arguments, stdin=stdin)
    for heavy in (*HEAVY, "argparse", "cardbridge.cli", "cardbridge.i18n"):
        assert not loaded(modules, heavy), heavy
    if arguments == ["--version"]:
        assert stdout.decode() == f"cardbridge {__version__}\n"
    else:
        assert stdout.endswith(b"{}")


@pytest.mark.parametrize("arguments", [["--help"], ["config", "path"], ["serve", "--help"]])
def test_a_command_loads_what_it_needs_when_it_runs(arguments: list[str], tmp_path: Path) -> None:
    # The parser of every command is built, but no event loop, server or card layer is
    # loaded before a command that needs one runs.
    modules, _ = imported(*arguments)
    assert loaded(modules, "cardbridge.cli.serve")
    for heavy in (*HEAVY, *CARD_LAYERS):
        assert not loaded(modules, heavy), heavy
