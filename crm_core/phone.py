"""Phone number normalisation to E.164 (pure, no I/O).

Rule, applied to the digits after stripping spaces, dashes, dots, slashes and parentheses:

1. a leading ``+`` or ``00`` marks an international number: keep its digits as they are
   (``"+44 20 7946 0958"`` -> ``"+442079460958"``, ``"0044..."`` -> ``"+44..."``);
2. otherwise a number of exactly 10 digits is a national number of the default country
   (``"(555) 123-4567"`` -> ``"+15551234567"``);
3. otherwise a number that already starts with the default country code and is 11+ digits
   long is taken as international without its ``+`` (``"15551234567"`` -> ``"+15551234567"``);
4. otherwise (short internal or subscriber numbers such as ``"5551234"``) the default country
   code is put in front: ``"+1" + digits``.

The result is ``None`` when there is no digit at all, when a character other than the
separators above appears (letters, ``*``, ``#``), or when the result would have more than
15 digits (the E.164 maximum).
"""

from __future__ import annotations

__all__ = ["E164_MAX_DIGITS", "normalize_phone"]

E164_MAX_DIGITS = 15
_SEPARATORS = frozenset(" \t-./()\u00a0")


def normalize_phone(raw: str, default_country: str = "1") -> str | None:
    """Return ``raw`` as an E.164 string (``"+15551234"``) or ``None`` if it is no number."""
    if not default_country.isdigit():
        raise ValueError(f"default_country must be digits, got {default_country!r}")
    text = raw.strip()
    international = False
    if text.startswith("+"):
        international = True
        text = text[1:]
    digits_list: list[str] = []
    for ch in text:
        if ch.isdigit() and ch.isascii():
            digits_list.append(ch)
        elif ch not in _SEPARATORS:
            return None
    digits = "".join(digits_list)
    if not international and digits.startswith("00"):
        international = True
        digits = digits[2:]
    digits = digits if international else _national(digits, default_country)
    if not digits or len(digits) > E164_MAX_DIGITS:
        return None
    return "+" + digits


def _national(digits: str, country: str) -> str:
    if not digits:
        return ""
    if len(digits) == 10:
        return country + digits
    if digits.startswith(country) and len(digits) >= 11:
        return digits
    return country + digits
