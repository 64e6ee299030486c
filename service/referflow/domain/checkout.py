"""Which of a checkout's codes is the referral (pure).

A checkout may carry several codes: one named as the referral (a Shopify note attribute, Stripe
metadata) and every discount code it used (the friend's offer beside a store's own promotion).
They are tried in that order, each once (case and spaces do not count); the first that is a
referral code of the program wins. When none is, the named code is kept, so the claim can say
why it is no referral; discount codes alone that are none are no referral code at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from referflow.domain.codes import normalise_code


def candidates(named: str | None, discount_codes: Iterable[str | None]) -> list[str]:
    """Return the codes to try, in order: the named one, then the discount codes; each once."""
    seen: set[str] = set()
    ordered = []
    for raw in (named, *discount_codes):
        if not isinstance(raw, str) or not raw.strip():
            continue
        key = normalise_code(raw)
        if key and key not in seen:
            seen.add(key)
            ordered.append(raw.strip())
    return ordered


def choose(named: str | None, discount_codes: Iterable[str | None],
           is_referral_code: Callable[[str], bool]) -> str | None:
    """Return the checkout's referral code: the first candidate that is one, else the named code."""
    for code in candidates(named, discount_codes):
        if is_referral_code(code):
            return code
    return named.strip() if isinstance(named, str) and named.strip() else None
