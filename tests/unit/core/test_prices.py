"""The price pattern of the OpenAPI document matches exactly the prices the rule allows."""

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.prices import price_pattern

# The rule, said plainly: written like a JSON number without exponent, at most two places,
# more than 0, at most the maximum.
WRITTEN = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]{1,2})?")
MAXIMA = ["1", "1.5", "2", "20", "99.99", "100", "109", "1000.05", "12345.67", "1000000000"]


def allowed(text: str, maximum: Decimal) -> bool:
    return WRITTEN.fullmatch(text) is not None and 0 < Decimal(text) <= maximum


def spellings(cents: int) -> Iterator[str]:
    """The ways to write an amount of cents, valid or not."""
    whole, fraction = divmod(cents, 100)
    yield f"{whole}.{fraction:02d}"
    yield f"{whole}.{fraction:02d}0"  # three places
    yield f"0{whole}.{fraction:02d}"  # a leading zero
    if fraction % 10 == 0:
        yield f"{whole}.{fraction // 10}"
    if fraction == 0:
        yield str(whole)
        yield f"{whole}."


def candidates(maximum: Decimal) -> Iterator[int]:
    """Amounts in cents: every one up to just over a small maximum; for larger ones every whole
    number up to just over it (the digits the pattern spells out) and every cent near the ends."""
    top = int(maximum * 100)
    if top <= 200 * 100:
        yield from range(top + 200)
        return
    if top <= 100_000 * 100:
        yield from range(0, top + 10_000, 100)
    for start in (0, 100, top - 100, top):
        yield from range(start, start + 101)
    yield from (10 * top, top * 100 + 1)


@pytest.mark.parametrize("maximum", [Decimal(m) for m in MAXIMA], ids=MAXIMA)
def test_pattern_matches_the_allowed_amounts_and_no_other(maximum: Decimal) -> None:
    pattern = re.compile(price_pattern(maximum))
    for cents in candidates(maximum):
        for text in spellings(cents):
            assert (pattern.fullmatch(text) is not None) == allowed(text, maximum), text


@pytest.mark.parametrize("maximum", [Decimal(m) for m in MAXIMA], ids=MAXIMA)
@given(
    text=st.from_regex(r"[0-9]{1,11}(\.[0-9]{0,3})?", fullmatch=True)
    | st.text(alphabet="0123456789.+-eE \n", max_size=8)
)
@hypothesis_settings(max_examples=200, database=None)
def test_pattern_agrees_with_the_rule_on_any_string(maximum: Decimal, text: str) -> None:
    matched = re.fullmatch(price_pattern(maximum), text) is not None
    assert matched == allowed(text, maximum)


@pytest.mark.parametrize("maximum", ["0.5", "0", "10.001"])
def test_maximum_below_one_or_finer_than_cents_is_refused(maximum: str) -> None:
    with pytest.raises(ValueError, match="at least 1, in whole cents"):
        price_pattern(Decimal(maximum))
