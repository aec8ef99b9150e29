"""Prices written as decimal strings, and the regular expression that says which ones are valid.

The OpenAPI document gives the rule for a price string as a pattern, so that clients and the
generated tests know exactly which strings are accepted: a pattern that also let through "0" or
a price over the maximum would promise an order that is then refused."""

import re
from decimal import Decimal

# How a price string is written: digits without a leading zero (as JSON writes numbers), then
# optionally a point and more digits. No sign, exponent, spaces, "NaN" or "Infinity".
DECIMAL_STRING = re.compile(r"(0|[1-9][0-9]*)(\.([0-9]+))?")
# How the API writes a price: exactly two decimal places.
TWO_PLACES_PATTERN = r"^(0|[1-9][0-9]*)\.[0-9]{2}$"
PLACES = 2


def price_pattern(maximum: Decimal) -> str:
    """The decimal strings for prices in (0, `maximum`] with at most two decimal places, as
    one regular expression (ECMA 262, as JSON Schema has it). `maximum` is at least 1 and in
    whole cents."""
    if maximum < 1 or maximum != maximum.quantize(Decimal("0.01")):
        raise ValueError(f"the maximum price must be at least 1, in whole cents: {maximum}")
    whole, cents = divmod(int(maximum * 100), 100)
    any_fraction = r"(\.[0-9]{1,2})?"
    below = _integers_up_to(whole - 1)
    alternatives = [f"({'|'.join(below)}){any_fraction}"] if below else []
    alternatives.append(f"{whole}{_fraction_up_to(cents)}")
    alternatives.append(r"0\.(0[1-9]|[1-9][0-9]?)")  # below 1
    return f"^({'|'.join(alternatives)})$"


def _integers_up_to(largest: int) -> list[str]:
    """Expressions that together match the integers 1..`largest`, without leading zeros."""
    if largest < 1:
        return []
    digits = str(largest)
    if set(digits) == {"9"}:
        return [f"[1-9]{_any_digits(0, len(digits) - 1)}"]
    # Shorter numbers, then those as long as `largest`: its first i digits, a smaller one, any.
    alternatives = [f"[1-9]{_any_digits(0, len(digits) - 2)}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        lowest, rest = (1 if i == 0 else 0), len(digits) - i - 1
        # All nines after this digit: the range up to and including it covers `largest` too.
        highest = int(digit) if digits[i + 1 :] == "9" * rest else int(digit) - 1
        if highest >= lowest:
            alternatives.append(f"{digits[:i]}{_digit_range(lowest, highest)}{_any_digits(rest)}")
        if highest == int(digit):
            break
    return alternatives


def _fraction_up_to(cents: int) -> str:
    """An optional fraction (one or two digits) worth at most `cents` hundredths."""
    tens, units = divmod(cents, 10)
    one_digit = _digit_range(0, tens)  # "5" is 50 hundredths
    two_digits = [f"{tens}{_digit_range(0, units)}"]
    if tens > 0:
        two_digits.insert(0, f"{_digit_range(0, tens - 1)}[0-9]")
    return rf"(\.({'|'.join([one_digit, *two_digits])}))?"


def _digit_range(low: int, high: int) -> str:
    return str(low) if low == high else f"[{low}-{high}]"


def _any_digits(low: int, high: int | None = None) -> str:
    """`low` digits, or `low` to `high` digits."""
    if high is None or high == low:
        return {0: "", 1: "[0-9]"}.get(low, f"[0-9]{{{low}}}")
    return "[0-9]?" if (low, high) == (0, 1) else f"[0-9]{{{low},{high}}}"
