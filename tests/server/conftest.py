"""Helpers for the HTTP API tests: an app on a known port, a real ``cardbridge serve``
process on a free loopback port, a gated pinentry, and checks against the OpenAPI document."""

from __future__ import annotations

import base64
import os
import resource
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from cardbridge.demo.runner import free_port as free_port  # the one helper, imported here for the tests
from cardbridge.server import openapi_document

ORIGIN = "https://login.example.no"
GATED_PINENTRY = str(Path(__file__).with_name("gated_pinentry.py"))
DOC = openapi_document()


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def conforms(path: str, method: str, status: int, content_type: str, body: Any) -> None:
    """``body`` is what the OpenAPI document says ``method path`` answers with ``status``."""
    responses = DOC["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} → {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    media = content_type.split(";")[0].strip()
    assert media in response["content"], f"{media} not documented for {status}"
    schema = {**response["content"][media]["schema"], "components": DOC["components"]}
    jsonschema_rs.validate(schema, body)


class Gate:
    """Drives tests/server/gated_pinentry.py."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return {"CARDBRIDGE_PINENTRY": GATED_PINENTRY, "GATE_DIR": str(self.folder)}

    def dialogs(self) -> list[int]:
        """The pids of the dialogs that have asked for a PIN."""
        return [int(p.read_text()) for p in sorted(self.folder.glob("open-*"))]

    def wait_open(self, count: int = 1, timeout: float = 20.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.dialogs()) < count:
            assert time.monotonic() < deadline, "the PIN dialog did not open"
            time.sleep(0.02)
        return self.dialogs()

    def answer(self, value: str) -> None:
        tmp = self.folder / "answer.tmp"
        tmp.write_text(value, encoding="utf-8")
        tmp.rename(self.folder / "answer")


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gate:
    g = Gate(tmp_path / "gate")
    for key, value in g.env().items():
        monkeypatch.setenv(key, value)
    return g


def process_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie is gone for our purposes: it no longer shows a dialog.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.02)
    return False


@dataclass
class Served:
    """A running ``cardbridge serve``."""

    proc: subprocess.Popen[str]
    port: int
    banner: str
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_serve(
    *args: str, env: dict[str, str], timeout: float = 30.0, nofile: int | None = None, stderr: Path | None = None
) -> Served:
    """``python -m cardbridge serve --port 0 ARGS``; waits for its "listening on" line.
    ``nofile``: the process's soft descriptor limit (RLIMIT_NOFILE); ``stderr``: a file for
    its standard error (else a pipe)."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    err_file = None if stderr is None else stderr.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardbridge", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if err_file is None else err_file,
        text=True,
        env=env,
        preexec_fn=limit if nofile is not None else None,
    )
    if err_file is not None:
        err_file.close()  # the child has its own copy
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    line = ""
    while "listening on" not in line:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if proc.poll() is not None or not ready:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise AssertionError(f"serve did not start: {err or (stderr.read_text() if stderr else '')}")
        line = proc.stdout.readline()
    port = int(line.split("http://127.0.0.1:")[1].split(",")[0].split()[0])
    return Served(proc, port, line)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def _start(*args: str, env: dict[str, str], nofile: int | None = None, stderr: Path | None = None) -> Served:
        served = start_serve(*args, env=env, nofile=nofile, stderr=stderr)
        started.append(served)
        return served

    yield _start
    for served in started:
        served.stop()
