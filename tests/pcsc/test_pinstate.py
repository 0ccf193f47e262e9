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


def test_a_right_pin_gives_the_maximum_only_once_the_card_told_it() -> None:
    clock = Clock()
    counters = PinCounters(clock=clock)
    counters.put(0x11, 2)
    counters.verified(0x11)  # 9000 before the card told its maximum: nothing assumed
    assert counters.get(0x11) is None and counters.maximum(0x11) is None
    counters.learn_maximum(0x11, 10)
    counters.put(0x11, 9)
    counters.verified(0x11)
    assert counters.get(0x11) == 10
    counters.forget()  # the counts go (a reset, another program); the card's limit stays
    clock.now += 2 * PIN_STATE_TTL
    assert counters.get(0x11) is None and counters.maximum(0x11) == 10
    counters.verified(0x11)
    assert counters.get(0x11) == 10 and counters.get(0x82) is None
