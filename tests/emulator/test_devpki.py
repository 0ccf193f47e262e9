import datetime as dt

import pytest

from cardbridge.emulator.devpki import Citizen, is_valid_fodselsnummer, synthetic_fodselsnummer


@pytest.mark.parametrize("birth", [dt.date(1985, 3, 14), dt.date(2001, 12, 31), dt.date(1950, 1, 1)])
def test_synthetic_number_has_month_plus_80_and_valid_check_digits(birth: dt.date) -> None:
    number = synthetic_fodselsnummer(birth)
    assert len(number) == 11 and number.isdigit()
    assert number[:2] == f"{birth.day:02d}"
    assert int(number[2:4]) == birth.month + 80
    assert is_valid_fodselsnummer(number)


def test_a_changed_digit_breaks_the_check() -> None:
    number = synthetic_fodselsnummer(dt.date(1985, 3, 14))
    broken = number[:5] + str((int(number[5]) + 1) % 10) + number[6:]
    assert not is_valid_fodselsnummer(broken)


def test_known_valid_number() -> None:
    # The example, worked by hand: k1 = 11 - (169 mod 11) = 7, k2 = 11 - (138 mod 11) = 5.
    assert is_valid_fodselsnummer("01816512375")
    assert not is_valid_fodselsnummer("01816512376")
    assert Citizen().id_code == "PNONO-" + Citizen().fodselsnummer
