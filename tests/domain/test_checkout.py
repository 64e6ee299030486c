"""Which of a checkout's codes is the referral (domain/checkout.py)."""

from __future__ import annotations

import pytest

from referflow.domain import checkout

REFERRAL_CODES = {"ANNA7Q", "BEN42X"}


def known(code: str) -> bool:
    return code.upper().replace("-", "").replace(" ", "") in REFERRAL_CODES


@pytest.mark.parametrize(("named", "codes", "chosen"), [
    (None, ["WELCOME5", "anna7q"], "anna7q"),  # the shop's own code first: the referral one wins
    (None, ["anna7q", "WELCOME5"], "anna7q"),
    (None, ["WELCOME5", "SUMMER"], None),  # discount codes alone, none a referral code: no code
    (None, [], None),
    ("ben42x", ["anna7q"], "ben42x"),  # a code named as the referral comes first
    ("NOTACODE", ["anna-7q"], "anna-7q"),  # ... unless it is none: then a discount code
    ("NOTACODE", ["WELCOME5"], "NOTACODE"),  # kept, so the claim can say why it is no referral
    (None, [None, "", "  ", "Anna 7Q"], "Anna 7Q"),
])
def test_the_first_referral_code_among_a_checkouts_codes_is_chosen(named, codes, chosen):
    assert checkout.choose(named, codes, known) == chosen


def test_each_code_is_tried_once_whatever_its_case():
    tried: list[str] = []
    checkout.choose("welcome5", ["WELCOME5", "Welcome-5", "x"], lambda c: tried.append(c) or False)
    assert tried == ["welcome5", "x"]
