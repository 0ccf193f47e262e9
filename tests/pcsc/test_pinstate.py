"""PinCounters (pure): what the card said about a PIN's tries left, for its time to live."""

from __future__ import annotations

from cardbridge.pcsc.pinstate import PIN_STATE_TTL, PinCounters


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_count_is_kept_for_its_time_to_live_only() -> None:
    clock = Clock()
    counters = PinCounters(clock=clock)
    assert counters.get(0x01) is None
    counters.put(0x01, 2)
    clock.now += PIN_STATE_TTL
    assert counters.get(0x01) == 2
    clock.now += 0.001
    assert counters.get(0x01) is None


def test_no_number_forgets_and_forget_clears_one_or_all() -> None:
    counters = PinCounters()
    counters.put(0x01, 3)
    counters.put(0x85, 1)
    counters.put(0x01, None)  # the card gave no number (e.g. the PIN is verified)
    assert counters.get(0x01) is None and counters.get(0x85) == 1
    counters.put(0x01, 0)
    counters.forget(0x85)
    assert counters.get(0x85) is None and counters.get(0x01) == 0
    counters.forget()
    assert counters.get(0x01) is None
