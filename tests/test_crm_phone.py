from __future__ import annotations

import pytest

from crm_core.phone import normalize_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+15551234567", "+15551234567"),
        ("+1 (555) 123-4567", "+15551234567"),
        ("(555) 123-4567", "+15551234567"),
        ("555.123.4567", "+15551234567"),
        ("555-123-4567", "+15551234567"),
        ("5551234567", "+15551234567"),
        ("15551234567", "+15551234567"),
        ("1 555 123 4567", "+15551234567"),
        ("001 555 123 4567", "+15551234567"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 20 7946 0958", "+442079460958"),
        ("  +49-30-1234567  ", "+49301234567"),
        ("5551234", "+15551234"),
        ("555 1234", "+15551234"),
        ("1001", "+11001"),
        ("+15555551001", "+15555551001"),
    ],
)
def test_normalises_to_e164(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "   ", "-()", "abc", "555-CALL-NOW", "*86", "#", "+", "00", "+1234567890123456",
            "1234567890123456"]
)
def test_rejects_non_numbers(raw: str) -> None:
    assert normalize_phone(raw) is None


def test_fifteen_digits_is_the_limit() -> None:
    assert normalize_phone("+123456789012345") == "+123456789012345"


def test_default_country() -> None:
    assert normalize_phone("030 1234567", default_country="49") == "+490301234567"
    assert normalize_phone("2079460958", default_country="44") == "+442079460958"
    with pytest.raises(ValueError):
        normalize_phone("5551234", default_country="+1")
