"""The depth rule of strict JSON: MAX_DEPTH levels pass, one more is refused (scalars count)."""

from __future__ import annotations

import pytest

from referflow.errors import BadRequest
from referflow.jsonbody import MAX_DEPTH, loads_strict


def _nested(levels: int, leaf: str) -> bytes:
    """``levels`` containers, alternating objects and arrays, around ``leaf``."""
    text = leaf
    for n in range(levels):
        text = f'{{"k":{text}}}' if n % 2 else f"[{text}]"
    return text.encode()


@pytest.mark.parametrize(("levels", "leaf", "refused"), [
    (MAX_DEPTH - 1, "1", False),   # the scalar is level MAX_DEPTH
    (MAX_DEPTH, "1", True),        # the scalar is one level too deep
    (MAX_DEPTH, "[]", True),       # so is an empty container there
    (MAX_DEPTH - 1, "[]", False),  # an empty container at MAX_DEPTH has nothing below it
    (MAX_DEPTH - 1, "{}", False),
])
def test_depth_is_counted_to_the_deepest_value(levels, leaf, refused):
    body = b'{"wide":[1,2,{"a":[3]}],"deep":' + _nested(levels - 1, leaf) + b"}"
    if refused:
        with pytest.raises(BadRequest) as raised:
            loads_strict(body)
        assert raised.value.code == "too_deep"
    else:
        assert loads_strict(body)["wide"][2] == {"a": [3]}
