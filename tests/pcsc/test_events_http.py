"""Card events reach the HTTP event stream of a real ``cardbridge serve`` (pcscd, vpcd and
the virtual PIV card)."""

from __future__ import annotations

import http.client
import json
import os
import time

import pytest

from cardbridge.emulator.virtual_card import VirtualPivCard
from tests.server.conftest import start_serve

pytestmark = pytest.mark.pcsc
ORIGIN = "https://login.example.no"


def next_event(response: http.client.HTTPResponse) -> tuple[str, dict[str, object]]:
    """The next SSE event (comments and keep-alives skipped)."""
    kind, data = "", ""
    while True:
        line = response.readline().decode()
        if not line:
            raise AssertionError("the event stream ended")
        line = line.rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            return kind, json.loads(data)


def wait_for(response: http.client.HTTPResponse, kind: str, reader: str) -> float:
    """Read events until ``kind`` for ``reader``; returns when it came (monotonic)."""
    while True:
        got, event = next_event(response)
        if got == kind and event.get("reader") == reader:
            return time.monotonic()


def test_insertion_and_removal_reach_the_event_stream(virtual_card: VirtualPivCard) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CARDBRIDGE_PKCS11_MODULE"}
    served = start_serve("--allow-origin", ORIGIN, "--module", "/usr/lib/softhsm/libsofthsm2.so", env=env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
        conn.request("GET", "/v1/events", headers={"Origin": ORIGIN})
        response = conn.getresponse()
        assert response.status == 200
        kind, status = next_event(response)
        assert kind == "status"
        readers = {r["name"]: r for r in status["readers"]}  # type: ignore[union-attr]
        assert readers[virtual_card.reader_name]["cardPresent"] is True
        latencies = {}
        started = time.monotonic()
        virtual_card.remove()
        latencies["removed"] = wait_for(response, "card-removed", virtual_card.reader_name) - started
        started = time.monotonic()
        virtual_card.insert()
        latencies["inserted"] = wait_for(response, "card-inserted", virtual_card.reader_name) - started
        print(f"event latency over HTTP: {latencies}")  # reported, not asserted (tests never assert on time)
        conn.close()
    finally:
        served.stop()
