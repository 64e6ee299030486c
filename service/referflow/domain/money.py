"""Money: ISO 4217 minor-unit exponents and exact conversion between major and minor units.

The one home of currency exponents. Every amount referflow stores or compares is an integer
count of the currency's ISO 4217 minor unit (cents for EUR, yen for JPY, fils for KWD). A
conversion never rounds: an amount that is not a whole number of minor units is refused
(``InexactAmount``), as are negative, non-finite and absurdly large amounts. ``MAX_MINOR`` keeps
every amount a JavaScript safe integer (the n8n pack, JSON clients) and a PostgreSQL BIGINT.

The n8n workflow pack carries a copy of ``EXPONENTS`` (its Settings node's
``currency_exponents``); ``referflow workflows check`` fails when that copy differs.
"""

from __future__ import annotations

import re
from decimal import Decimal
from types import MappingProxyType

# ISO 4217 minor units for the currencies whose exponent is not 2 (every other code: 2).
EXPONENTS = MappingProxyType({
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                     "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
})
DEFAULT_EXPONENT = 2
MAX_MINOR = 2**53 - 1
MAX_DIGITS = 40  # a longer decimal string is no provider's amount
_CODE = re.compile(r"[A-Za-z]{3}")
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")


class InvalidAmount(ValueError):
    """An amount that cannot be money: malformed, negative, non-finite or too large."""


class InexactAmount(InvalidAmount):
    """An amount that is not a whole number of the currency's minor units (12.345 USD)."""


class InvalidCurrency(ValueError):
    """A currency that is not a three-letter code."""


def exponent(currency: str) -> int:
    """Return the ISO 4217 minor-unit exponent of a currency code (any case)."""
    if not isinstance(currency, str) or not _CODE.fullmatch(currency):
        raise InvalidCurrency(f"{currency!r} is not a three-letter currency code")
    return EXPONENTS.get(currency.upper(), DEFAULT_EXPONENT)


def to_minor(amount: str | int | Decimal, currency: str) -> int:
    """Convert a major-unit amount ("12.50", 12, Decimal) to integer minor units, exactly."""
    value = _decimal(amount)
    return rescale(value, 0, exponent(currency), f"{amount} {currency}")


def to_major(minor: int, currency: str) -> Decimal:
    """Convert integer minor units to a major-unit Decimal (1250 EUR -> 12.50, 12345 KWD -> 12.345)."""
    _check_minor(minor)
    return Decimal(minor).scaleb(-exponent(currency))


def rescale(value: int | Decimal, from_exponent: int, to_exponent: int, what: str = "") -> int:
    """Return ``value`` (in units of 10**-from_exponent) in units of 10**-to_exponent, exactly."""
    value = _decimal(value)
    if value.is_zero():
        return 0
    if value.adjusted() - from_exponent > 20:  # before any arithmetic: 1e999999 is a short string
        raise InvalidAmount(f"{what or value} is too large")
    sign, digits, exp = value.as_tuple()
    assert isinstance(exp, int)  # finite, checked in _decimal
    shift = exp + to_exponent - from_exponent
    if shift < 0:
        kept, dropped = digits[:shift], digits[shift:]
        if any(dropped):
            raise InexactAmount(f"{what or value} is not a whole number of minor units")
        digits, shift = kept, 0
    minor: int = int("".join(map(str, digits)) or "0") * 10**shift
    _check_minor(minor)
    return minor


def _decimal(amount: object) -> Decimal:
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise InvalidAmount(f"{amount!r} is not an amount (a decimal string, an int or a Decimal)")
    if isinstance(amount, str):
        if len(amount) > MAX_DIGITS or not _PLAIN_DECIMAL.fullmatch(amount):
            raise InvalidAmount(f"{amount[:MAX_DIGITS]!r} is not a plain decimal amount like '12.50'")
        return Decimal(amount)
    value = Decimal(amount)
    if not value.is_finite():
        raise InvalidAmount(f"{amount} is not a finite amount")
    if value.is_signed() and not value.is_zero():
        raise InvalidAmount(f"{amount} is negative")
    return value


def _check_minor(minor: object) -> None:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise InvalidAmount(f"{minor!r} is not an integer number of minor units")
    if minor < 0:
        raise InvalidAmount(f"{minor} is negative")
    if minor > MAX_MINOR:
        raise InvalidAmount(f"{minor} minor units is more than {MAX_MINOR} (2**53 - 1)")
