"""JSON Schema patterns are read as ECMA-262 regexes: "$" ends the input, not a final newline."""

from __future__ import annotations

import pytest

from referflow.contract import _ecma_pattern


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("^[A-Z]{3}$", "EUR", True),
    ("^[A-Z]{3}$", "EUR\n", False),
    (r"^a\$b$", "a$b", True),
    (r"^a\$b$", "a$b\n", False),
    ("^[$]+$", "$$", True),
    ("^[$]+$", "$$\n", False),
    (r"^\\$", "\\", True),
    ("^evt_", "evt_1\n", True),
])
def test_dollar_anchors_at_the_very_end_and_nowhere_else(pattern, text, matches):
    assert bool(_ecma_pattern(pattern).search(text)) is matches
