import re

import pycountry
from django.core.exceptions import ValidationError

# 13 to 19 digits, optionally grouped by spaces or dashes as people type card numbers.
_CARD_CANDIDATE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def contains_card_number(value: str) -> bool:
    for match in _CARD_CANDIDATE.finditer(value or ""):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def reject_card_numbers(value: str) -> None:
    """Card numbers never reach us: the reseller takes payment."""
    if contains_card_number(value):
        raise ValidationError(
            "This looks like a payment card number. Card numbers must never be stored here: "
            "remove it (payments are handled by the reseller).",
            code="card_number",
        )


# The largest id a database row can have (a signed 64-bit integer, as Django's BigAutoField).
MAX_ROW_ID = 2**63 - 1


def is_row_id(value) -> bool:
    """
    A whole number in ASCII digits that a row id can be ("²".isdigit() is true, but int("²")
    fails; a larger number overflows the database's integer).
    """
    text = str(value)
    return text.isascii() and text.isdigit() and int(text) <= MAX_ROW_ID


def reject_line_breaks(value: str) -> None:
    if value and ("\n" in value or "\r" in value):
        raise ValidationError(
            "This field holds one line: remove the line break (use address line 2 for a second line).",
            code="line_break",
        )


def validate_currency(value: str) -> None:
    if not value:
        return
    if value != value.upper() or pycountry.currencies.get(alpha_3=value) is None:
        raise ValidationError(
            "%(value)s is not an ISO 4217 currency code (for example EUR, USD, GBP).",
            code="invalid_currency",
            params={"value": value},
        )


def currency_choices() -> list[tuple[str, str]]:
    return sorted(((c.alpha_3, f"{c.alpha_3} – {c.name}") for c in pycountry.currencies), key=lambda c: c[0])
