"""Which technology a card read through a PC/SC reader is, from the ATR the reader built (PC/SC part 3).

The PC/SC backend itself runs against a real pcscd in tests/integration/test_reader_pcsc.py; these are
the ATR shapes that virtual reader does not produce (other vendors' readers, odd cards).
"""

from __future__ import annotations

import pytest
from vpcd_card import FELICA_ATR, contactless_atr, iso14443_4_atr

from firmware.reader.pcsc import historical_bytes, tech_of

RC_S300_FELICA = bytes.fromhex("3B8F8001804F0CA00000030611003B0000000042")  # as an RC-S300 (and ACS) give it
MIFARE_1K = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
ISO15693 = contactless_atr(0x0B, 0x0014)  # standard 0x0B: ISO 15693 part 3
# SCM readers build FeliCa ATRs of their own: 3B 8C 80 01, card mode, type 43, IFS, IDm, timeout, TCK.
SCM_FELICA = iso14443_4_atr(bytes.fromhex("0443FD012E4128728C7E8B00"))
TYPE_B = iso14443_4_atr(bytes.fromhex("0000000000817100"))  # ATQB app data, protocol info, MBLI
DESFIRE = iso14443_4_atr(b"\x80")  # ISO-DEP Type A with one historical byte


def test_the_virtual_cards_felica_atr_is_the_one_an_rc_s300_gives() -> None:
    assert FELICA_ATR == RC_S300_FELICA


def test_historical_bytes_follow_the_interface_bytes() -> None:
    assert historical_bytes(MIFARE_1K) == bytes.fromhex("804F0CA00000030603000100000000")
    assert historical_bytes(DESFIRE) == b"\x80"
    assert historical_bytes(bytes.fromhex("3B8F80")) is None  # cut short


@pytest.mark.parametrize(
    ("atr", "uid", "tech"),
    [
        (RC_S300_FELICA, "012E4128728C7E8B", "felica"),
        (MIFARE_1K, "04A1B2C3", "iso14443a"),
        (MIFARE_1K, "04A1B2C3D4E5F6", "iso14443a"),
        (SCM_FELICA, "012E4128728C7E8B", "felica"),  # an 8-byte ID can only be an IDm
        (TYPE_B, "1A2B3C4D", "iso14443b"),
        (DESFIRE, "04A1B2C3D4E5F6", "iso14443a"),
        (bytes.fromhex("3B00"), "04A1B2C3D4E5F6", "iso14443a"),  # no ATR to go by: 7 bytes is Type A
    ],
)
def test_the_technology_comes_from_the_atr_and_the_uid_size(atr: bytes, uid: str, tech: str) -> None:
    assert tech_of(atr, bytes.fromhex(uid)) == tech


@pytest.mark.parametrize(
    ("atr", "uid"),
    [
        (ISO15693, "E004010012345678"),  # a vicinity card (ISO 15693): not a card the gate knows
        (RC_S300_FELICA, "04A1B2C3"),  # the ATR says FeliCa, the ID is not an IDm
        (MIFARE_1K, "012E4128728C7E8B"),  # the ATR says Type A, the ID is not a Type A UID
        (bytes.fromhex("3B00"), "1A2B3C4D"),  # 4 bytes and no ATR to go by: A or B cannot be told
    ],
)
def test_a_card_whose_technology_cannot_be_told_is_not_read(atr: bytes, uid: str) -> None:
    assert tech_of(atr, bytes.fromhex(uid)) is None
