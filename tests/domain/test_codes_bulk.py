"""Ids and referral codes drawn in bulk (the imports) look like the ones drawn one at a time."""

from __future__ import annotations

import re
from collections import Counter

from referflow.domain.codes import (
    CODE_ALPHABET,
    REFERRAL_CODE_LENGTH,
    new_id,
    new_ids,
    new_referral_codes,
)


def test_bulk_ids_have_the_shape_of_single_ones():
    shape = re.compile(r"^ref_[0-9a-z]{20}$")
    assert shape.match(new_id("ref"))
    ids = new_ids("ref", 5000)
    assert len(ids) == len(set(ids)) == 5000 and all(shape.match(i) for i in ids)
    assert new_ids("adv", 0) == []


def test_bulk_codes_use_the_unambiguous_alphabet_evenly():
    codes = new_referral_codes(6000)
    assert len(set(codes)) == 6000
    assert all(len(c) == REFERRAL_CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    seen = Counter("".join(codes))
    assert set(seen) == set(CODE_ALPHABET)
    expected = 6000 * REFERRAL_CODE_LENGTH / len(CODE_ALPHABET)  # 1600 each
    assert all(abs(n - expected) < 0.2 * expected for n in seen.values())
