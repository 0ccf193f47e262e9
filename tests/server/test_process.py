"""``cardbridge serve`` as a real process on loopback, with raw HTTP where it matters."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ScriptedPinentry
from tests.server.conftest import ORIGIN, Gate, Served, conforms, nonce, process_gone
from tests.softhsm import SoftHsm, own_token, until_login_entered
from tests.verify import verify_token

pytestmark = pytest.mark.softhsm

Serve = Callable[..., Served]


def request(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=timeout)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        all_headers = {"Origin": ORIGIN, **({"Content-Type": "application/json"} if data is not None else {})}
        all_headers.update(headers or {})
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        content_type = response.headers.get("Content-Type", "")
        parsed = json.loads(raw) if "json" in content_type else raw
        if "json" in content_type:
            conforms(path, method, response.status, content_type, parsed)
        return response.status, dict(response.headers), parsed
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = b""
        while b"\r\n\r\n" not in chunks:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks += chunk
        return chunks


def env_for(softhsm: SoftHsm, pinentry_env: dict[str, str]) -> dict[str, str]:
    return {**softhsm.env(), **pinentry_env, "CARDBRIDGE_CONFIG": "/nonexistent/cardbridge.toml"}


def serve_args(softhsm: SoftHsm, *extra: str) -> list[str]:
    return ["--module", softhsm.module, "--token", "p384", "--allow-origin", ORIGIN, "--no-pcsc", *extra]


def test_full_authenticate_over_loopback(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, pinentry.env()))
    assert "http://[::1]:" in served.banner or not socket.has_ipv6
    pinentry.respond("1234")
    challenge = nonce()
    status, headers, token = request(served, "POST", "/v1/authenticate", {"challengeNonce": challenge, "lang": "en"})
    assert status == 200, token
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert token["algorithm"] == "ES384"
    verify_token(token, ORIGIN, challenge)
    (desc,) = pinentry.texts("SETDESC")
    assert ORIGIN in desc
    assert served.stop() == 0


def test_listens_on_loopback_only(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, pinentry.env()))
    listening = set()
    for table, family in (("/proc/net/tcp", "v4"), ("/proc/net/tcp6", "v6")):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if int(port, 16) == served.port and fields[3] == "0A":  # LISTEN
                listening.add((family, address))
    assert ("v4", "0100007F") in listening
    assert listening <= {("v4", "0100007F"), ("v6", "00000000000000000000000001000000")}


def allow_list_env(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> dict[str, str]:
    """As env_for, with a config that sets origin_policy = "allow-list" (nobody is asked)."""
    config = pinentry.script.with_name("allow-list.toml")
    config.write_text('origin_policy = "allow-list"\n', encoding="utf-8")
    config.chmod(0o600)
    return {**env_for(softhsm, pinentry.env()), "CARDBRIDGE_CONFIG": str(config)}


def test_guards_over_a_real_socket(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm), env=allow_list_env(softhsm, pinentry))
    pinentry.respond("1234")
    status, headers, body = request(served, "GET", "/v1/status", headers={"Host": f"rebind.example:{served.port}"})
    assert (status, body["code"]) == (403, "HOST_NOT_ALLOWED")
    for origin in ("null", "https://login.example.no.evil.example", "http://login.example.no"):
        status, headers, body = request(
            served, "POST", "/v1/authenticate", {"challengeNonce": nonce()}, headers={"Origin": origin}
        )
        assert (status, body["code"]) == (403, "ORIGIN_NOT_ALLOWED")
        assert "Access-Control-Allow-Origin" not in headers
    status, headers, _ = request(
        served,
        "OPTIONS",
        "/v1/authenticate",
        headers={"Access-Control-Request-Method": "POST", "Access-Control-Request-Private-Network": "true"},
    )
    assert status == 204 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Private-Network"] == "true"
    status, _, body = request(
        served, "POST", "/v1/authenticate", b'{"challengeNonce": "x"}', headers={"Content-Type": "text/plain"}
    )
    assert (status, body["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    status, _, body = request(served, "POST", "/v1/authenticate", {"challengeNonce": "short"})
    assert (status, body["code"]) == (400, "INVALID_NONCE")
    # A body announced too large is refused before it is read: the bridge answers at once
    # though not one byte of the 10 MB was sent.
    started = time.monotonic()
    reply = raw_exchange(
        served.port,
        b"POST /v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n" % (served.port, ORIGIN.encode()),
    )
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert time.monotonic() - started < 10
    assert pinentry.dialogs() == []


def test_busy_during_an_open_dialog_and_the_first_still_succeeds(
    serve: Serve, softhsm: SoftHsm, gate: Gate, tmp_path: Path
) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, gate.env()))
    challenge = nonce()
    first: dict[str, Any] = {}

    def login() -> None:
        first["result"] = request(served, "POST", "/v1/authenticate", {"challengeNonce": challenge})

    thread = threading.Thread(target=login)
    thread.start()
    gate.wait_open()
    status, _, body = request(served, "POST", "/v1/authenticate", {"challengeNonce": nonce()})
    assert (status, body["code"]) == (409, "BUSY")
    status, _, body = request(served, "GET", "/v1/status", timeout=5)
    assert status == 200 and body["busy"] is True
    assert len(gate.dialogs()) == 1
    gate.answer("1234")
    thread.join(30)
    status, _, token = first["result"]
    assert status == 200, token
    verify_token(token, ORIGIN, challenge)


def test_client_that_disconnects_cancels_the_dialog(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, pinentry.env()))
    pinentry.respond("HANG", "1234")
    body = json.dumps({"challengeNonce": nonce()}).encode()
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    sock.sendall(
        b"POST /v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (served.port, ORIGIN.encode(), len(body), body)
    )
    deadline = time.monotonic() + 20
    while not pinentry.dialogs():
        assert time.monotonic() < deadline, "no dialog"
        time.sleep(0.02)
    (dialog,) = pinentry.dialogs()
    assert dialog["response"] == "HANG"
    sock.close()
    assert process_gone(dialog["pid"]), "the dialog stayed open after the client left"
    # The bridge is free again and logs in normally (the scripted pinentry answers 1234).
    challenge = nonce()
    status, _, token = request(served, "POST", "/v1/authenticate", {"challengeNonce": challenge})
    assert status == 200, token
    verify_token(token, ORIGIN, challenge)


def test_user_timeout_from_the_command_line(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm, "--user-timeout", "1.5"), env=env_for(softhsm, pinentry.env()))
    pinentry.respond("HANG")
    status, _, body = request(served, "POST", "/v1/authenticate", {"challengeNonce": nonce()})
    assert (status, body["code"]) == (408, "USER_TIMEOUT")
    (dialog,) = pinentry.dialogs()
    assert process_gone(dialog["pid"])
    status, _, body = request(served, "GET", "/v1/status")
    assert status == 200 and body["busy"] is False


def test_port_in_use_fails_clearly(softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cardbridge", "serve", "--port", str(port), *serve_args(softhsm)],
            env=env_for(softhsm, pinentry.env()),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 8, result.stderr
    assert "PORT_IN_USE" in result.stderr and str(port) in result.stderr
    assert "listening" not in result.stdout


def test_without_origins_it_starts_and_says_how_to_add_one(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    served = serve("--module", softhsm.module, "--no-pcsc", env=allow_list_env(softhsm, pinentry))
    status, _, body = request(served, "GET", "/v1/status")
    assert (status, body["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    assert served.stop() == 0
    assert served.proc.stderr is not None
    err = served.proc.stderr.read()
    assert "--allow-origin https://" in err and "allowed_origins" in err


def test_bad_allow_origin_flag_is_refused(softhsm: SoftHsm) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cardbridge",
            "serve",
            "--port",
            "0",
            "--module",
            softhsm.module,
            "--allow-origin",
            "https://login.example.no/",
        ],
        env=env_for(softhsm, {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3 and "INVALID_ORIGIN" in result.stderr


def test_events_stream_from_the_process(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    # With the PC/SC monitor on: without pcscd the stream still opens with a status event.
    args = [a for a in serve_args(softhsm) if a != "--no-pcsc"]
    served = serve(*args, env=env_for(softhsm, pinentry.env()))
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", "/v1/events", headers={"Origin": ORIGIN})
    response = conn.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline() == b"event: status\n"
    data = response.readline()
    assert data.startswith(b"data: ")
    status = json.loads(data[6:])
    conforms("/v1/status", "GET", 200, "application/json", status)
    assert status["pcsc"]["watched"] is True
    conn.close()
    assert served.stop() == 0


def test_http_localhost_origin_only_in_development_mode(
    serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry
) -> None:
    dev_origin = "http://localhost:8080"
    args = ["--module", softhsm.module, "--token", "p256", "--no-pcsc", "--allow-origin", dev_origin]
    refused = subprocess.run(
        [sys.executable, "-m", "cardbridge", "serve", "--port", "0", *args],
        env=env_for(softhsm, pinentry.env()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3 and "INVALID_ORIGIN" in refused.stderr
    served = serve(*args, "--allow-http-localhost", env=env_for(softhsm, pinentry.env()))
    pinentry.respond("1234")
    challenge = nonce()
    status, headers, token = request(
        served, "POST", "/v1/authenticate", {"challengeNonce": challenge}, headers={"Origin": dev_origin}
    )
    assert status == 200, token
    assert headers["Access-Control-Allow-Origin"] == dev_origin
    verify_token(token, dev_origin, challenge)


_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=20) as sock:
    head = "GET /v1/status HTTP/1.1\\r\\nHost: 127.0.0.1:%d\\r\\nOrigin: %s\\r\\n" % (port, sys.argv[3])
    sock.sendall((head + "Connection: close\\r\\n\\r\\n").encode())
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:  # closed with the request unread: a reset, no answer either
        pass
sys.stdout.write(answer[:12].decode("latin-1"))
"""
SYSTEM_PYTHON = "/usr/bin/python3"  # a Python another user may run (the test's venv is root's)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="Linux, as root (the client becomes nobody), with the system's Python",
)
def test_a_program_of_another_user_gets_no_answer(serve: Serve, softhsm: SoftHsm, pinentry: ScriptedPinentry) -> None:
    served = serve(*serve_args(softhsm), env=env_for(softhsm, pinentry.env()))
    hosts = ["127.0.0.1", *(["::1"] if socket.has_ipv6 else [])]
    for host in hosts:
        mine = subprocess.run(
            [SYSTEM_PYTHON, "-c", _CLIENT, host, str(served.port), ORIGIN], capture_output=True, text=True, timeout=60
        )
        assert mine.stdout.startswith("HTTP/1.1 200"), mine.stdout + mine.stderr
        other = subprocess.run(
            [SYSTEM_PYTHON, "-c", _CLIENT, host, str(served.port), ORIGIN],
            capture_output=True,
            text=True,
            timeout=60,
            user=65534,
            cwd="/",
        )
        assert other.returncode == 0, other.stderr
        assert other.stdout == "", f"another user's program was answered over {host}"
    served.stop()
    assert served.proc.stderr is not None
    assert "refused a connection from another user's program" in served.proc.stderr.read()


SLOW_LOGIN = Path(__file__).parents[1] / "tools" / "slow_login.py"


@pytest.mark.softhsm
def test_a_second_sigterm_while_serve_stops_waits_for_the_pin_check(tmp_path: Path, pinentry: ScriptedPinentry) -> None:
    """``cardbridge serve`` is stopped (SIGTERM) during a slow C_Login, and terminated again
    while it stops: it still lets the PIN check finish before it leaves (a second SIGTERM used
    to find the default action again once the loop's handlers were gone: killed inside the
    call, SoftHSM2's token-loss case). Its own token: the old code could break it."""
    card = own_token(tmp_path / "data")
    mark = tmp_path / "login.mark"
    env = {
        **os.environ,
        **pinentry.env(),
        "SOFTHSM2_CONF": card["softhsm2_conf"],
        "CARDBRIDGE_CONFIG": "/nonexistent/cardbridge.toml",
        "CARDBRIDGE_TEST_LOGIN_MARK": str(mark),
        "CARDBRIDGE_TEST_LOGIN_RELEASE": str(tmp_path / "login.release"),
    }
    args = ["--port", "0", "--module", card["module"], "--allow-origin", ORIGIN, "--no-pcsc"]
    proc = subprocess.Popen(
        [sys.executable, str(SLOW_LOGIN), "cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "listening on" in banner, banner
        port = int(banner.split("http://127.0.0.1:")[1].split(",")[0].split()[0])
        served = Served(proc, port, banner)
        pinentry.respond(card["pin"])
        posting = threading.Thread(
            target=lambda: request(served, "POST", "/v1/authenticate", {"challengeNonce": nonce()}), daemon=True
        )
        posting.start()
        until_login_entered(mark, proc)
        proc.terminate()
        time.sleep(1.2)  # serve is stopping: the loop has ended its requests, the service closes
        proc.terminate()
        (tmp_path / "login.release").touch()  # the card has checked the PIN
        status = proc.wait(60)
        posting.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status >= 0, f"serve was killed by signal {-status} while it stopped"
    assert mark.read_text(encoding="ascii").split() == ["entered", "returned"]
