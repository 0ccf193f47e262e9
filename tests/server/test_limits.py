"""A real ``cardbridge serve`` against clients that hold on, break off, flood or get
stopped: time limits, the connection cap, malformed requests in the log, and SIGTERM
during a dialog."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ScriptedPinentry
from tests.server.conftest import ORIGIN, Gate, Served, nonce, process_gone
from tests.server.test_process import Serve, env_for, request, serve_args
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.softhsm


def closed_by_peer(sock: socket.socket, timeout: float) -> bytes | None:
    """What the bridge sent before it closed ``sock``; None if still open after ``timeout``."""
    sock.settimeout(timeout)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except ConnectionResetError:
        return received
    except TimeoutError:
        return None
    return None


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def head(port: int, method: str = "GET", path: str = "/v1/status", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n{extra}\r\n".encode()


def log_env(softhsm: SoftHsm, pinentry: ScriptedPinentry, logs: Path) -> dict[str, str]:
    """With the rate-limited log lines' interval so long that each kind logs once in a test."""
    return {**env_for(softhsm, pinentry.env()), "CARDBRIDGE_LOG_DIR": str(logs), "CARDBRIDGE_LOG_INTERVAL": "3600"}


def test_silent_partial_and_idle_connections_are_closed(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    served = serve(*serve_args(softhsm, "--request-timeout", "1"), env=env_for(softhsm, pinentry.env()))
    silent = socket.create_connection(("127.0.0.1", served.port))
    partial = socket.create_connection(("127.0.0.1", served.port))
    partial.sendall(b"GET /v1/sta")
    slow_head = socket.create_connection(("127.0.0.1", served.port))
    slow_head.sendall(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % served.port)
    idle = socket.create_connection(("127.0.0.1", served.port))
    idle.sendall(head(served.port))
    time.sleep(0.3)
    with silent, partial, slow_head, idle:
        for name, sock in (("silent", silent), ("partial", partial), ("slow head", slow_head), ("idle", idle)):
            got = closed_by_peer(sock, 15)
            assert got is not None, f"the {name} connection is still open"
            if name == "idle":
                assert got.startswith(b"HTTP/1.1 200 "), got[:100]
    # The bridge still answers.
    status, _, body = request(served, "GET", "/v1/status")
    assert status == 200 and body["busy"] is False


def test_connections_over_the_cap_are_closed_at_once_without_a_traceback(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    nofile = 512  # the cap is then 128: 512 less a reserve of 128 and two accept bursts of 128
    stderr = tmp_path / "serve.err"
    served = serve(
        *serve_args(softhsm, "--request-timeout", "60"),
        env=log_env(softhsm, pinentry, tmp_path / "logs"),
        nofile=nofile,
        stderr=stderr,
    )
    status, _, _ = request(served, "GET", "/v1/status")
    assert status == 200
    before = open_fds(served.proc.pid)
    held: list[socket.socket] = []
    try:
        for _ in range(600):  # beyond the descriptor limit
            held.append(socket.create_connection(("127.0.0.1", served.port), timeout=30))
            if len(held) % 50 == 0:
                assert open_fds(served.proc.pid) < nofile - 16
        open_ = set(held)
        deadline = time.monotonic() + 20
        while len(open_) > 128 and time.monotonic() < deadline:
            open_ = {sock for sock in open_ if closed_by_peer(sock, 0.01) is None}
        assert len(open_) <= 128, f"{len(open_)} of 600 connections were kept open"
        assert len(open_) >= 100, f"only {len(open_)} connections were kept"
        assert served.proc.poll() is None
        assert open_fds(served.proc.pid) < nofile - 16
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 20
    while open_fds(served.proc.pid) > before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(served.proc.pid) <= before + 2
    status, _, _ = request(served, "GET", "/v1/status")
    assert status == 200
    assert served.stop() == 0
    err = stderr.read_text()
    assert "Traceback" not in err and "out of system resource" not in err, err[:2000]
    assert err.count("refused a connection") == 1, err[:2000]  # one line, however many


def test_running_out_of_descriptors_is_one_log_line_not_a_traceback_per_accept(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    # So few descriptors that one accept burst runs out (the cap is its minimum, 8): the
    # kernel's EMFILE reaches asyncio, which retries a second later.
    stderr = tmp_path / "serve.err"
    served = serve(
        *serve_args(softhsm, "--request-timeout", "60"),
        env=log_env(softhsm, pinentry, tmp_path / "logs"),
        nofile=48,
        stderr=stderr,
    )
    held = [socket.create_connection(("127.0.0.1", served.port), timeout=30) for _ in range(150)]
    time.sleep(3)  # asyncio retries the accept every second
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 20
    status = 0
    while status != 200 and time.monotonic() < deadline:
        try:
            status, _, _ = request(served, "GET", "/v1/status", timeout=5)
        except OSError:
            time.sleep(0.2)
    assert status == 200
    assert served.stop() == 0
    err = stderr.read_text()
    assert "Traceback" not in err, err[:2000]
    assert err.count("cannot accept connections") <= 1, err[:2000]
    assert len(err) < 2000, err[:2000]


def test_a_chunked_body_that_stops_or_breaks_gets_a_problem_and_a_close(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    stderr = tmp_path / "serve.err"
    served = serve(
        *serve_args(softhsm, "--request-timeout", "1"),
        env=log_env(softhsm, pinentry, tmp_path / "logs"),
        stderr=stderr,
    )
    chunked = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    first = b'{"challengeNonce": "'
    cases = {
        "stops": b"%x\r\n%s\r\n" % (len(first), first),
        "bad chunk size": b"%x\r\n%s\r\nzz\r\n" % (len(first), first),
        "chunk longer than said": b"%x\r\n%sXXXXXXXX\r\n" % (len(first), first),
    }
    for name, body in cases.items():
        with socket.create_connection(("127.0.0.1", served.port)) as sock:
            sock.sendall(head(served.port, "POST", "/v1/authenticate", chunked) + body)
            got = closed_by_peer(sock, 15)
        assert got is not None, f"{name}: no answer and no close"
        status_line, _, rest = got.partition(b"\r\n")
        assert status_line.split()[1] in (b"400", b"408"), f"{name}: {got[:300]!r}"
        assert b"application/problem+json" in rest, f"{name}: {got[:300]!r}"
        problem = json.loads(rest.partition(b"\r\n\r\n")[2])
        assert problem["code"] in ("REQUEST_TIMEOUT", "INVALID_ARGUMENT"), problem
    assert pinentry.dialogs() == []
    status, _, _ = request(served, "GET", "/v1/status")
    assert status == 200
    assert served.stop() == 0
    assert "Traceback" not in stderr.read_text()


MALFORMED = [
    b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: abc\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX\x01Bad: 1\r\n\r\n",
    b"GET /v1/status HTTP/9.9\r\nHost: 127.0.0.1:%d\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST /v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n",
]


def test_malformed_requests_get_a_problem_and_one_log_line(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry, tmp_path: Path
) -> None:
    stderr, logs = tmp_path / "serve.err", tmp_path / "logs"
    served = serve(*serve_args(softhsm), env=log_env(softhsm, pinentry, logs), stderr=stderr)
    for round_ in range(10):
        for raw in MALFORMED:
            with socket.create_connection(("127.0.0.1", served.port)) as sock:
                sock.sendall(raw.replace(b"%d", str(served.port).encode()))
                got = closed_by_peer(sock, 10)
            assert got is not None, raw[:60]
            if round_ == 0:
                assert got.startswith(b"HTTP/1.") and got.split()[1] in (b"400", b"413", b"431"), got[:200]
                assert b"application/problem+json" in got, got[:300]
    status, _, _ = request(served, "GET", "/v1/status")
    assert status == 200
    assert served.stop() == 0
    logged = stderr.read_text() + "".join(p.read_text() for p in logs.glob("cardbridge.log*"))
    assert "Traceback" not in logged, logged[:3000]
    in_log = "".join(p.read_text() for p in logs.glob("cardbridge.log*"))  # INFO: the log file only
    lines = [line for line in in_log.splitlines() if "malformed" in line.lower()]
    assert len(lines) == 1, lines  # 60 malformed requests, one line
    assert len(logged) < 20_000


# -- SIGTERM during a dialog ---------------------------------------------------------------


def login_in_thread(served: Served) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def login() -> None:
        try:
            result["answer"] = request(served, "POST", "/v1/authenticate", {"challengeNonce": nonce()})
        except Exception as exc:  # the connection closed with no answer
            result["error"] = exc

    thread = threading.Thread(target=login)
    thread.start()
    return thread, result


def test_sigterm_during_a_dialog_cancels_it_answers_and_exits_at_once(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, pinentry.env()))
    pinentry.respond("HANG")
    thread, result = login_in_thread(served)
    deadline = time.monotonic() + 20
    while not pinentry.dialogs():
        assert time.monotonic() < deadline, "no dialog"
        time.sleep(0.02)
    (dialog,) = pinentry.dialogs()
    served.proc.send_signal(signal.SIGTERM)
    returncode = served.proc.wait(15)  # the dialog is ended, not waited for (user_timeout is 120 s)
    thread.join(15)
    assert returncode == 0
    assert "answer" in result, result
    status, _, body = result["answer"]
    assert (status, body["code"]) == (503, "BRIDGE_STOPPING")
    assert process_gone(dialog["pid"]), "the dialog outlived the bridge"


def test_a_pin_typed_after_sigterm_gives_no_token(serve: Serve, softhsm: SoftHsm, gate: Gate) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, gate.env()))
    thread, result = login_in_thread(served)
    (pid,) = gate.wait_open()
    served.proc.send_signal(signal.SIGTERM)
    gate.answer("1234")  # the person types the PIN just after the bridge was told to stop
    assert served.proc.wait(15) == 0
    thread.join(15)
    assert "answer" in result, result
    status, _, body = result["answer"]
    assert status != 200, "a token left the bridge after SIGTERM"
    assert (status, body["code"]) == (503, "BRIDGE_STOPPING")
    assert process_gone(pid)


def test_the_server_imports_and_caps_connections_without_the_resource_module() -> None:
    """Windows has no ``resource`` module: the server still imports, with a fixed cap."""
    script = (
        "import sys; sys.modules['resource'] = None\n"
        "from cardbridge.server.limits import FALLBACK_DESCRIPTORS, connection_cap\n"
        "import cardbridge.server.run\n"
        "assert connection_cap() == connection_cap(FALLBACK_DESCRIPTORS) == 128, connection_cap()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
