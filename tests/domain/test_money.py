"""Money: ISO 4217 exponents, exact conversion both ways, refusals instead of rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest

from referflow.domain import money
from referflow.domain.money import InexactAmount, InvalidAmount, InvalidCurrency, exponent, to_major, to_minor
from referflow.providers.issuers import from_stripe_amount, stripe_exponent, to_stripe_amount


@pytest.mark.parametrize(("currency", "expected"), [
    ("JPY", 0), ("KRW", 0), ("ISK", 0), ("UGX", 0), ("XOF", 0), ("CLP", 0), ("UYI", 0),
    ("USD", 2), ("EUR", 2), ("HUF", 2), ("TWD", 2), ("MGA", 2), ("SEK", 2), ("ZZZ", 2),
    ("KWD", 3), ("BHD", 3), ("IQD", 3), ("JOD", 3), ("LYD", 3), ("OMR", 3), ("TND", 3),
    ("CLF", 4), ("UYW", 4), ("kwd", 3), ("jpy", 0),
])
def test_iso_4217_exponents(currency, expected):
    assert exponent(currency) == expected


@pytest.mark.parametrize("currency", ["", "EU", "EURO", "E1R", None, 978, "€UR"])
def test_a_currency_is_a_three_letter_code(currency):
    with pytest.raises(InvalidCurrency):
        exponent(currency)


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("12.50", "USD", 1250), ("12.5", "USD", 1250), ("12", "USD", 1200), ("0", "USD", 0),
    ("0.01", "EUR", 1), ("12.500000", "EUR", 1250), ("199.00", "EUR", 19900),
    ("1234", "JPY", 1234), ("1234.000", "JPY", 1234), ("12.345", "KWD", 12345),
    ("12.3", "KWD", 12300), ("1.2345", "CLF", 12345), (12, "USD", 1200), (12, "JPY", 12),
    (Decimal("12.50"), "USD", 1250), (Decimal("1E+3"), "USD", 100000), (Decimal("-0"), "USD", 0),
    ("90071992547409.91", "USD", 2**53 - 1), ("9007199254740991", "JPY", 2**53 - 1),
])
def test_exact_amounts_convert(amount, currency, minor):
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(("amount", "currency"), [
    ("12.345", "USD"), ("12.505", "USD"), ("1.005", "USD"), ("12.5", "JPY"), ("0.1", "ISK"),
    ("12.3456", "KWD"), ("0.00001", "CLF"), (Decimal("0.001"), "EUR"),
    ("12.50000000000000000000000000001", "USD"),  # past Decimal's 28-digit context: still exact
])
def test_inexact_amounts_are_refused_not_rounded(amount, currency):
    with pytest.raises(InexactAmount):
        to_minor(amount, currency)


@pytest.mark.parametrize("amount", [
    "-1", "-0.01", -1, Decimal("-5"), "1e3", "1E3", " 12", "12 ", "12.", ".5", "+12", "1_000",
    "12,50", "0x10", "", "abc", "١٢", "NaN", "Infinity", Decimal("NaN"), Decimal("Infinity"),
    12.5, 12.0, float("inf"), None, True, [12], "9" * 41,
    "90071992547409.92", 2**53, 2**70, Decimal("1E+400"), Decimal("1E+999999999"),
])
def test_negative_malformed_non_finite_and_huge_amounts_are_refused(amount):
    with pytest.raises(InvalidAmount):
        to_minor(amount, "USD")


def test_every_amount_fits_a_js_safe_integer_and_a_bigint():
    assert money.MAX_MINOR == 2**53 - 1 < 2**63 - 1
    assert to_minor("9007199254740991", "JPY") == money.MAX_MINOR
    with pytest.raises(InvalidAmount):
        to_minor("900719925474099.2", "KWD")


@pytest.mark.parametrize(("minor", "currency", "major"), [
    (1250, "EUR", "12.50"), (5, "USD", "0.05"), (0, "USD", "0.00"), (1234, "JPY", "1234"),
    (12345, "KWD", "12.345"), (12345, "CLF", "1.2345"), (2**53 - 1, "JPY", "9007199254740991"),
])
def test_to_major(minor, currency, major):
    assert str(to_major(minor, currency)) == major
    assert to_minor(str(to_major(minor, currency)), currency) == minor


@pytest.mark.parametrize("minor", [-1, 2**53, 12.5, "1250", True, None])
def test_to_major_refuses_what_is_no_amount(minor):
    with pytest.raises(InvalidAmount):
        to_major(minor, "EUR")


@pytest.mark.parametrize(("stripe", "currency", "minor"), [
    (4900, "eur", 4900), (1234, "jpy", 1234), (12340, "kwd", 12340), (500, "isk", 5),
    (500, "ugx", 5), (5000, "mga", 500000), (1045, "huf", 1045), (80045, "twd", 80045),
])
def test_stripe_amounts_follow_stripes_own_units(stripe, currency, minor):
    """Stripe keeps two decimals for ISK and UGX and none for MGA (its "special cases")."""
    assert from_stripe_amount(stripe, currency) == minor
    assert to_stripe_amount(minor, currency) == stripe


def test_stripe_exponents_differ_from_iso_only_where_stripe_says():
    differ = {c for c in ("ISK", "UGX", "MGA", "HUF", "TWD", "JPY", "KWD", "USD")
              if stripe_exponent(c) != exponent(c)}
    assert differ == {"ISK", "UGX", "MGA"}


@pytest.mark.parametrize(("stripe", "currency"), [(550, "isk"), (12.5, "eur"), (-5, "eur"), (2**70, "eur")])
def test_stripe_amounts_that_are_no_whole_unit_are_refused(stripe, currency):
    with pytest.raises(InvalidAmount):
        from_stripe_amount(stripe, currency)
