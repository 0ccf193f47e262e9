"""A hostile local client against a real ``cardbridge serve`` on loopback.

10,000 requests of 61 kinds — Host, Origin and CORS games, sizes, encodings, hostile JSON,
malformed HTTP, request smuggling, chunked bodies that break or stop, connections that
send nothing, half a request line or a head one byte at a time, idle keep-alive, event
streams dropped, valid logins cancelled, and bursts of connections beyond the bridge's
connection cap — sent by up to 64 concurrent connections, while a probe asks
``GET /v1/status`` every 50 ms.

The bridge has one SoftHSM2 token (``cardbridge dev token create``), a PIN dialog that
cancels at once (so nothing is ever signed), ``--request-timeout 2`` (the slow kinds end
sooner) and the usual soft limit of 1,024 descriptors (so its connection cap is 512).

Printed: the status histogram ("closed" = the bridge closed the connection without an
answer: expected for the slow kinds and over the cap), the 5xx count, the unanswered
count (neither an answer nor a close within 10 s), 4xx answers that are not
problem+json, the tracebacks and lines in the bridge's log and standard error, RSS and
open descriptors before and after, and the status probe's p50/p99 during the attack.
Goal: 0 x 5xx, 0 unanswered, 0 tracebacks, descriptors back to the start.

Run: python bench/hostile.py [--requests N]   (about 1-2 minutes; stops by itself, removes
its temporary folder and stops the bridge)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import gzip
import json
import os
import random
import resource
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ORIGIN = "https://login.example.no"
JSON = "application/json"
REPO = Path(__file__).resolve().parent.parent
PINENTRY = REPO / "tests" / "tools" / "scripted_pinentry.py"
REQUEST_TIMEOUT = 2  # the bridge's --request-timeout
BRIDGE_NOFILE = 1024  # the usual soft limit: the bridge's connection cap is then 512
UNANSWERED_AFTER = 10.0  # seconds without an answer or a close: unanswered
CONCURRENCY = 64
OVER_CAP = 700  # connections held at once by one "beyond the cap" burst


def nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


# -- one exchange ----------------------------------------------------------------------------


@dataclass
class Outcome:
    statuses: list[str]  # one per answer ("200", "400", …), or ["closed"] / ["unanswered"]
    not_problem: int = 0  # 4xx/5xx answers whose Content-Type is not application/problem+json


async def read_answer(reader: asyncio.StreamReader, head_request: bool = False) -> tuple[str, bool] | None:
    """One HTTP answer (interim 1xx answers skipped): (status, is problem+json); None when
    the bridge closed first."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ValueError(f"a partial answer: {exc.partial[:80]!r}") from None
            return None
        except (ConnectionResetError, BrokenPipeError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split()[1]
        if not status.startswith("1"):
            break
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    length = int(headers.get("content-length", "0") or 0)
    if length and not head_request:
        await reader.readexactly(length)
    return status, headers.get("content-type", "").startswith("application/problem+json")


Step = bytes | float  # bytes to send, or seconds to wait


async def exchange(port: int, steps: list[Step], answers: int = 1, close_after: bool = False) -> Outcome:
    """Send ``steps`` on a new connection; read up to ``answers`` answers (or the close)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), UNANSWERED_AFTER)
    except (ConnectionError, TimeoutError, OSError):
        return Outcome(["connect-failed"])
    statuses: list[str] = []
    not_problem = 0
    try:
        async with asyncio.timeout(UNANSWERED_AFTER + sum(s for s in steps if isinstance(s, float))):
            try:
                for step in steps:
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                        await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                pass  # closed while we were still sending: read what it said
            first = next((s for s in steps if isinstance(s, bytes)), b"")
            for _ in range(answers):
                answer = await read_answer(reader, first.startswith(b"HEAD "))
                if answer is None:
                    statuses.append("closed")
                    break
                status, problem = answer
                statuses.append(status)
                if status >= "400" and not problem:
                    not_problem += 1
                if close_after:
                    break
    except TimeoutError:
        statuses.append("unanswered")
    except (ConnectionError, ValueError, asyncio.IncompleteReadError):
        statuses.append("closed")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, OSError):
            await asyncio.wait_for(writer.wait_closed(), 1)
    return Outcome(statuses or ["closed"], not_problem)


# -- the kinds -----------------------------------------------------------------------------


def request(
    port: int,
    method: str = "GET",
    path: str = "/v1/status",
    *,
    host: str | None = None,
    origin: str | None = ORIGIN,
    headers: str = "",
    body: bytes | None = None,
    content_type: str | None = "application/json",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host if host is not None else f'127.0.0.1:{port}'}"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if body is not None:
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if "Transfer-Encoding" not in headers and "Content-Length" not in headers:
            lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n" + headers + "\r\n"
    return head.encode("latin-1") + (body or b"")


def post(
    port: int, path: str, body: bytes | str, *, headers: str = "", content_type: str = "application/json"
) -> bytes:
    data = body if isinstance(body, bytes) else body.encode()
    return request(port, "POST", path, body=data, headers=headers, content_type=content_type)


def auth_body(**extra: object) -> bytes:
    return json.dumps({"challengeNonce": nonce(), **extra}).encode()


HASH32 = base64.b64encode(bytes(32)).decode()
Kind = Callable[[int], Awaitable[Outcome]]


def simple(build: Callable[[int], bytes | list[Step]], answers: int = 1) -> Kind:
    async def run(port: int) -> Outcome:
        built = build(port)
        return await exchange(port, built if isinstance(built, list) else [built], answers)

    return run


def chunked(parts: list[bytes]) -> Callable[[int], list[Step]]:
    def build(port: int) -> list[Step]:
        head = post(port, "/v1/authenticate", b"", headers="Transfer-Encoding: chunked\r\n")
        return [head, *parts]

    return build


FIRST = b'{"challengeNonce": "'
KINDS: dict[str, Kind] = {
    # Host, Origin, CORS
    "host-foreign": simple(lambda p: request(p, host=f"evil.example:{p}")),
    "host-missing": simple(lambda p: request(p).replace(b"Host: 127.0.0.1:%d\r\n" % p, b"")),
    "host-twice": simple(lambda p: request(p, headers=f"Host: evil.example:{p}\r\n")),
    "host-wrong-port": simple(lambda p: request(p, host="127.0.0.1:1")),
    "origin-missing": simple(lambda p: request(p, origin=None)),
    "origin-null": simple(lambda p: request(p, origin="null")),
    "origin-look-alike": simple(lambda p: request(p, origin=ORIGIN + ".evil.example")),
    "origin-http": simple(lambda p: request(p, origin=ORIGIN.replace("https", "http"))),
    "origin-twice": simple(lambda p: request(p, headers="Origin: https://evil.example\r\n")),
    "preflight-allowed": simple(
        lambda p: request(
            p,
            "OPTIONS",
            "/v1/authenticate",
            headers="Access-Control-Request-Method: POST\r\nAccess-Control-Request-Private-Network: true\r\n",
        )
    ),
    "preflight-foreign": simple(
        lambda p: request(
            p, "OPTIONS", "/v1/sign", origin="https://evil.example", headers="Access-Control-Request-Method: POST\r\n"
        )
    ),
    "preflight-unknown-path": simple(
        lambda p: request(p, "OPTIONS", "/v1/nothing", headers="Access-Control-Request-Method: POST\r\n")
    ),
    # methods and paths
    "method-put": simple(lambda p: request(p, "PUT", body=b"{}")),
    "method-head": simple(lambda p: request(p, "HEAD")),
    "path-unknown": simple(lambda p: request(p, path="/v1/../../etc/passwd")),
    "path-encoded": simple(lambda p: request(p, path="/v1/%2e%2e/status%00")),
    "absolute-uri": simple(lambda p: request(p, path="http://evil.example/v1/status")),
    # media type, size, encoding
    "post-text-plain": simple(lambda p: post(p, "/v1/authenticate", auth_body(), content_type="text/plain")),
    "post-latin1": simple(
        lambda p: post(p, "/v1/authenticate", auth_body(), content_type="application/json; charset=latin-1")
    ),
    "announced-10mb": simple(
        lambda p: request(
            p, "POST", "/v1/authenticate", headers="Content-Type: application/json\r\nContent-Length: 10000000\r\n"
        )
    ),
    "body-17kb": simple(lambda p: post(p, "/v1/authenticate", auth_body(lang="x" * 17000))),
    "chunked-17kb": simple(chunked([b"%x\r\n%s\r\n" % (17000, b" " * 17000), b"0\r\n\r\n"])),
    "gzip-not-gzip": simple(
        lambda p: post(p, "/v1/authenticate", b"this is not gzip", headers="Content-Encoding: gzip\r\n")
    ),
    "gzip-bomb": simple(
        lambda p: post(p, "/v1/authenticate", gzip.compress(b" " * 5_000_000), headers="Content-Encoding: gzip\r\n")
    ),
    "expect-unknown": simple(lambda p: request(p, headers="Expect: something-else\r\n")),
    "expect-100-foreign-origin": simple(
        lambda p: post(p, "/v1/authenticate", auth_body(), headers="Expect: 100-continue\r\n").replace(
            ORIGIN.encode(), b"https://evil.example"
        )
    ),
    "expect-100-large": simple(
        lambda p: request(
            p,
            "POST",
            "/v1/authenticate",
            headers="Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n",
        )
    ),
    # hostile JSON
    "json-5000-digits": simple(lambda p: post(p, "/v1/authenticate", '{"challengeNonce": ' + "9" * 5000 + "}")),
    "json-1e999": simple(lambda p: post(p, "/v1/authenticate", '{"challengeNonce": 1e999}')),
    "json-nan": simple(lambda p: post(p, "/v1/authenticate", '{"challengeNonce": NaN}')),
    "json-deep": simple(lambda p: post(p, "/v1/authenticate", "[" * 8000 + "]" * 8000)),
    "json-duplicate": simple(
        lambda p: post(p, "/v1/authenticate", f'{{"challengeNonce": "{nonce()}", "challengeNonce": "{nonce()}"}}')
    ),
    "json-array": simple(lambda p: post(p, "/v1/authenticate", "[1, 2, 3]")),
    "json-bad-utf8": simple(lambda p: post(p, "/v1/authenticate", b'{"challengeNonce": "\xff\xfe"}')),
    "json-unknown-field": simple(lambda p: post(p, "/v1/authenticate", auth_body(pin="1234"))),
    "json-lang-nul": simple(lambda p: post(p, "/v1/authenticate", auth_body(lang="nb\u0000" + "x" * 5000))),
    "json-origin-other": simple(lambda p: post(p, "/v1/authenticate", auth_body(origin="https://evil.example"))),
    "nonce-short": simple(lambda p: post(p, "/v1/authenticate", json.dumps({"challengeNonce": "short"}))),
    "sign-bad-base64": simple(
        lambda p: post(p, "/v1/sign", json.dumps({"certificate": "!!", "hash": HASH32, "hashFunction": "SHA-256"}))
    ),
    "sign-hash-length": simple(
        lambda p: post(p, "/v1/sign", json.dumps({"certificate": "AAAA", "hash": HASH32, "hashFunction": "SHA-512"}))
    ),
    # malformed HTTP
    "garbage": simple(lambda p: secrets.token_bytes(200) + b"\r\n\r\n"),
    "header-control-char": simple(lambda p: request(p, headers="X\x01Bad: 1\r\n")),
    "content-length-abc": simple(lambda p: request(p, headers="Content-Length: abc\r\n")),
    "content-length-twice": simple(lambda p: request(p, headers="Content-Length: 1\r\nContent-Length: 2\r\n")),
    "smuggle-cl-te": simple(
        lambda p: post(
            p,
            "/v1/authenticate",
            b"0\r\n\r\nGET /v1/status HTTP/1.1\r\n\r\n",
            headers="Content-Length: 30\r\nTransfer-Encoding: chunked\r\n",
        )
    ),
    "header-20kb": simple(lambda p: request(p, headers="X-Long: " + "a" * 20000 + "\r\n")),
    "headers-200": simple(lambda p: request(p, headers="".join(f"X-{i}: {i}\r\n" for i in range(200)))),
    "http-9.9": simple(lambda p: request(p).replace(b"HTTP/1.1", b"HTTP/9.9", 1)),
    "upgrade-websocket": simple(
        lambda p: request(p, headers="Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n")
    ),
    "pipelined-3": simple(lambda p: request(p) * 3, answers=3),
    # chunked bodies that break or stop
    "chunk-bad-size": simple(chunked([b"%x\r\n%s\r\nzz\r\n" % (len(FIRST), FIRST)])),
    "chunk-too-long": simple(chunked([b"%x\r\n%sXXXXXXXX\r\n" % (len(FIRST), FIRST)])),
    "chunk-stops": simple(chunked([b"%x\r\n%s\r\n" % (len(FIRST), FIRST), float(REQUEST_TIMEOUT + 3)])),
    "body-short-then-stall": simple(
        lambda p: [
            request(p, "POST", "/v1/authenticate", headers="Content-Type: application/json\r\nContent-Length: 100\r\n")
            + FIRST,
            float(REQUEST_TIMEOUT + 3),
        ]
    ),
    # slow connections
    "silent": simple(lambda p: [float(REQUEST_TIMEOUT + 3)]),
    "partial-request-line": simple(lambda p: [b"GET /v1/sta", float(REQUEST_TIMEOUT + 3)]),
    "slowloris-head": simple(lambda p: [s for c in request(p)[:12] for s in (bytes([c]), 0.3)]),
    "idle-keep-alive": simple(lambda p: [request(p), float(REQUEST_TIMEOUT + 3)], answers=2),
}


async def events_dropped(port: int) -> Outcome:
    """An event stream opened, its first event read, then dropped."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return Outcome(["connect-failed"])
    try:
        writer.write(request(port, path="/v1/events"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), UNANSWERED_AFTER)
        await asyncio.wait_for(reader.readuntil(b"\n\n"), UNANSWERED_AFTER)
        return Outcome([head.split()[1].decode()])
    except TimeoutError:
        return Outcome(["unanswered"])
    except (ConnectionError, asyncio.IncompleteReadError):
        return Outcome(["closed"])  # refused over the cap
    finally:
        writer.close()


async def login_cancelled(port: int) -> Outcome:
    """A valid login; the dialog cancels at once (403 USER_CANCELLED, or 409 BUSY)."""
    return await exchange(port, [post(port, "/v1/authenticate", auth_body())])


KINDS["events-dropped"] = events_dropped
KINDS["login-cancelled"] = login_cancelled
SLOW = {"chunk-stops", "body-short-then-stall", "silent", "partial-request-line", "slowloris-head", "idle-keep-alive"}
RARE = {"login-cancelled": 40, "gzip-bomb": 40, "events-dropped": 100}


async def over_the_cap(port: int) -> list[Outcome]:
    """OVER_CAP connections at once, held until the bridge closes them or 1 s passes."""
    socks: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    outcomes: list[Outcome] = []
    for _ in range(OVER_CAP):
        try:
            socks.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            outcomes.append(Outcome(["connect-failed"]))
    await asyncio.sleep(1.0)
    for reader, writer in socks:
        try:
            data = await asyncio.wait_for(reader.read(1), 0.001)
            outcomes.append(Outcome(["closed" if not data else "garbage"]))
        except TimeoutError:
            outcomes.append(Outcome(["held"]))  # within the cap: open until we close it
        except ConnectionError:
            outcomes.append(Outcome(["closed"]))
        writer.close()
    return outcomes


# -- the bridge ------------------------------------------------------------------------------


def make_token(folder: Path) -> tuple[str, str]:
    """A SoftHSM2 token with the development PKI, made by ``cardbridge dev token create``."""
    env = {**os.environ, "CARDBRIDGE_DATA_DIR": str(folder / "data")}
    env.pop("SOFTHSM2_CONF", None)
    made = subprocess.run(
        [sys.executable, "-m", "cardbridge", "dev", "token", "create", "--key", "ec-p256", "--pin", "1234",
         "--label", "hostile", "--json"],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    info = json.loads(made.stdout)
    return str(info["softhsm2_conf"]), str(info["module"])


def start_bridge(folder: Path) -> tuple[subprocess.Popen[str], int, Path, Path]:
    conf, module = make_token(folder)
    script = folder / "pinentry.json"
    script.write_text(json.dumps({"responses": []}), encoding="utf-8")  # every dialog cancels
    logs, stderr = folder / "log", folder / "serve.err"
    env = {
        **os.environ,
        "SOFTHSM2_CONF": conf,
        "CARDBRIDGE_CONFIG": str(folder / "no-config.toml"),
        "CARDBRIDGE_LOG_DIR": str(logs),
        "CARDBRIDGE_PINENTRY": f"{sys.executable} {PINENTRY}",
        "CARDBRIDGE_TEST_PINENTRY_SCRIPT": str(script),
    }

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (BRIDGE_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    args = ["--module", module, "--token", "hostile", "--allow-origin", ORIGIN, "--no-pcsc", "--port", "0",
            "--request-timeout", str(REQUEST_TIMEOUT)]  # fmt: skip
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cardbridge", "serve", *args],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env, preexec_fn=limit,
        )  # fmt: skip
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        proc.wait()
        raise SystemExit(f"the bridge did not start: {line!r} {stderr.read_text()[-2000:]}")
    return proc, int(line.split("http://127.0.0.1:")[1].split(",")[0].split()[0]), logs, stderr


def stop_bridge(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# -- the attack ------------------------------------------------------------------------------


async def probe(port: int, stop: asyncio.Event, latencies: list[float], failures: collections.Counter[str]) -> None:
    """GET /v1/status every 50 ms on a fresh connection, timed."""
    while not stop.is_set():
        started = time.perf_counter()
        outcome = await exchange(port, [request(port)])
        if outcome.statuses == ["200"]:
            latencies.append(time.perf_counter() - started)
        else:
            failures[outcome.statuses[0]] += 1
        await asyncio.sleep(0.05)


async def attack(
    port: int, total: int, seed: int
) -> tuple[collections.Counter[str], dict[str, collections.Counter[str]], int, list[float], collections.Counter[str]]:
    rng = random.Random(seed)
    fast = [k for k in KINDS if k not in SLOW and k not in RARE]
    plan: list[str] = []
    for kind in SLOW:
        plan += [kind] * 25
    for kind, count in RARE.items():
        plan += [kind] * count
    bursts = 2
    remaining = total - len(plan) - bursts * OVER_CAP
    plan += [fast[i % len(fast)] for i in range(remaining)]
    rng.shuffle(plan)
    histogram: collections.Counter[str] = collections.Counter()
    per_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    not_problem = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for kind in plan:
        queue.put_nowait(kind)

    async def worker() -> None:
        nonlocal not_problem
        while True:
            try:
                kind = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            outcome = await KINDS[kind](port)
            for status in outcome.statuses:
                histogram[status] += 1
                per_kind[kind][status] += 1
            not_problem += outcome.not_problem

    async def bursts_over_the_cap() -> None:
        for _ in range(bursts):
            await asyncio.sleep(rng.uniform(3, 10))
            for outcome in await over_the_cap(port):
                histogram[outcome.statuses[0]] += 1
                per_kind["over-the-cap"][outcome.statuses[0]] += 1

    stop = asyncio.Event()
    latencies: list[float] = []
    probe_failures: collections.Counter[str] = collections.Counter()
    probing = asyncio.create_task(probe(port, stop, latencies, probe_failures))
    await asyncio.gather(bursts_over_the_cap(), *(worker() for _ in range(CONCURRENCY)))
    stop.set()
    await probing
    return histogram, per_kind, not_problem, latencies, probe_failures


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("-v", "--verbose", action="store_true", help="print the outcomes of each kind")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # the attacker holds OVER_CAP connections at once
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    with tempfile.TemporaryDirectory(prefix="cardbridge-hostile-") as tmp:
        proc, port, logs, stderr = start_bridge(Path(tmp))
        try:
            time.sleep(0.5)
            before = rss_kib(proc.pid), fds(proc.pid)
            started = time.monotonic()
            histogram, per_kind, not_problem, latencies, probe_failures = asyncio.run(
                attack(port, args.requests, args.seed)
            )
            took = time.monotonic() - started
            deadline = time.monotonic() + REQUEST_TIMEOUT + 5
            while fds(proc.pid) > before[1] and time.monotonic() < deadline:
                time.sleep(0.1)
            after = rss_kib(proc.pid), fds(proc.pid)
            alive = proc.poll() is None
        finally:
            stop_bridge(proc)
        logged = stderr.read_text(errors="replace") + "".join(
            p.read_text(errors="replace") for p in sorted(logs.glob("cardbridge.log*"))
        )
    sent = sum(histogram.values())
    fivexx = sum(n for s, n in histogram.items() if s.startswith("5"))
    print(f"cardbridge serve under attack: {sent} requests of {len(KINDS) + 1} kinds in {took:.1f} s "
          f"({CONCURRENCY} at once, two bursts of {OVER_CAP} connections beyond the cap)")  # fmt: skip
    print("  status histogram: " + ", ".join(f"{s}: {n}" for s, n in sorted(histogram.items())))
    print(f"  5xx: {fivexx}   unanswered: {histogram['unanswered']}   4xx not problem+json: {not_problem}")
    print(f"  tracebacks logged: {logged.count('Traceback')}   log lines: {len(logged.splitlines())}"
          f" ({len(logged.encode())} bytes)")  # fmt: skip
    print(f"  bridge RSS: {before[0] / 1024:.1f} MiB before, {after[0] / 1024:.1f} MiB after;"
          f" open descriptors: {before[1]} before, {after[1]} after; still running: {alive}")  # fmt: skip
    print(f"  GET /v1/status during the attack: p50 {percentile(latencies, 50):.1f} ms,"
          f" p99 {percentile(latencies, 99):.1f} ms ({len(latencies)} probes; not 200: "
          + (", ".join(f"{s}: {n}" for s, n in probe_failures.items()) or "none") + ")")  # fmt: skip
    if args.verbose or fivexx or histogram["unanswered"]:
        for kind, counts in sorted(per_kind.items()):
            print(f"    {kind:24} " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    if fivexx or histogram["unanswered"] or logged.count("Traceback") or after[1] > before[1]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
