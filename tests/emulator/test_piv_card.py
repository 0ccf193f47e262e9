"""The emulated PIV card application, APDU by APDU (no pcscd needed)."""

from __future__ import annotations

import pytest

from cardbridge.emulator.devpki import generate_key
from cardbridge.emulator.piv_card import ATR, PivApplet, PivCardData, parse_tlv


@pytest.fixture(scope="module")
def data() -> PivCardData:
    return PivCardData(generate_key("ec-p256"), b"\x30\x00", generate_key("ec-p256"), b"\x30\x01", bytes(16))


def run(applet: PivApplet, hex_apdu: str) -> tuple[bytes, int]:
    response = applet.process(bytes.fromhex(hex_apdu))
    return response[:-2], int.from_bytes(response[-2:], "big")


def selected(data: PivCardData) -> PivApplet:
    applet = PivApplet(data, "123456")
    assert run(applet, "00A4040009A0000003080000100000")[1] == 0x9000
    return applet


def test_atr_has_a_valid_tck() -> None:
    tck = 0
    for byte in ATR[1:]:
        tck ^= byte
    assert tck == 0


def test_select_answers_the_application_property_template(data: PivCardData) -> None:
    applet = PivApplet(data, "123456")
    apt, sw = run(applet, "00A4040009A0000003080000100000")
    assert sw == 0x9000 and apt[0] == 0x61
    assert run(applet, "00A4040005A00000039700")[1] == 0x6A82  # another application


def test_pin_counter(data: PivCardData) -> None:
    applet = selected(data)
    assert run(applet, "00200080")[1] == 0x63C3
    wrong = "0020008008" + b"000000\xff\xff".hex()
    assert [run(applet, wrong)[1] for _ in range(3)] == [0x63C2, 0x63C1, 0x63C0]
    assert run(applet, "00200080")[1] == 0x6983
    right = "0020008008" + b"123456\xff\xff".hex()
    assert run(applet, right)[1] == 0x6983
    applet.power_off()  # the counter survives power cycles
    assert applet.pin_tries_left == 0


def test_right_pin_resets_the_counter_and_signing_needs_it(data: PivCardData) -> None:
    applet = selected(data)
    ga = "0087119A26" + "7C248200" + "8120" + "11" * 32 + "00"
    assert run(applet, ga)[1] == 0x6982
    run(applet, "0020008008" + b"000000\xff\xff".hex())
    assert run(applet, "0020008008" + b"123456\xff\xff".hex())[1] == 0x9000
    assert applet.pin_tries_left == 3
    out, sw = run(applet, ga)
    assert sw == 0x9000 and parse_tlv(out)[0][0] == 0x7C
    applet.reset()
    assert run(applet, "00A4040009A0000003080000100000")[1] == 0x9000
    assert run(applet, ga)[1] == 0x6982  # a reset logs out


def test_long_answers_come_in_parts_with_61xx(data: PivCardData) -> None:
    big = PivCardData(data.auth_key, b"\x30" * 600, data.sign_key, data.sign_cert, bytes(16))
    applet = selected(big)
    first, sw = run(applet, "00CB3FFF055C035FC10500")
    assert len(first) == 256 and sw >> 8 == 0x61
    rest = b""
    while sw >> 8 == 0x61:
        part, sw = run(applet, f"00C00000{sw & 0xFF:02X}")
        rest += part
    assert sw == 0x9000 and b"\x30" * 600 in first + rest
    whole, sw = run(applet, "00CB3FFF0000055C035FC1050000")  # extended Le: all at once
    assert sw == 0x9000 and whole == first + rest


def test_command_chaining(data: PivCardData) -> None:
    applet = selected(data)
    run(applet, "0020008008" + b"123456\xff\xff".hex())
    template = bytes.fromhex("7C248200" + "8120" + "22" * 32)
    assert run(applet, "1087119A10" + template[:16].hex())[1] == 0x9000
    out, sw = run(applet, f"0087119A{len(template) - 16:02X}" + template[16:].hex() + "00")
    assert sw == 0x9000 and out[0] == 0x7C


def test_unknown_instruction_and_class(data: PivCardData) -> None:
    applet = selected(data)
    assert run(applet, "00FD000000")[1] == 0x6D00
    assert run(applet, "80CA000000")[1] == 0x6E00
