"""Every referral status change goes through move(), which refuses what the state table forbids."""

from __future__ import annotations

import pytest

from referflow.actions.common import SYSTEM, load_program, move
from referflow.domain import referral as states
from referflow.errors import Conflict
from referflow.storage.models import Referral
from tests.conftest import SECRET_KEY
from tests.helpers import claim, link

FORBIDDEN = [(current, target) for current in states.STATUSES for target in states.STATUSES
             if target not in states.TRANSITIONS[current]]


def test_the_table_keeps_final_states_final():
    assert not states.TRANSITIONS[states.REJECTED] and not states.TRANSITIONS[states.REVERSED]
    assert states.REWARDED not in states.TRANSITIONS[states.PENDING]  # only via approval


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_move_refuses_every_move_the_table_forbids(app, api, current, target):
    referral_id = claim(api, link(api)["code"])["id"]
    with app.extensions["referflow"].db.session() as session:
        referral = session.get(Referral, referral_id)
        referral.status = current
        ctx = load_program(session, referral.program_id, SECRET_KEY)
        with pytest.raises(Conflict) as refused:
            move(session, ctx, referral, target, "test", SYSTEM)
        assert refused.value.code == "invalid_transition"
