"""Advocate tiers set by hand: setAdvocateTier."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from referflow.actions import lifecycle
from referflow.api.links import advocate_view
from referflow.api.operations import Caller, db_session, operation

bp = Blueprint("tiers", __name__)


@operation(bp, "setAdvocateTier", "POST", "/v1/advocates/<advocate_id>/tier", tag="advocates",
           request_schema="set-advocate-tier.request", response="advocate",
           summary="Set an advocate's tier by hand (it sticks: the automatic update leaves it), "
                   "or hand it back to the rules")
def set_advocate_tier(caller: Caller, body: dict[str, Any], advocate_id: str) -> dict[str, Any]:
    session = db_session()
    advocate = lifecycle.set_tier(session, caller.ctx, advocate_id, body, caller.actor)
    return advocate_view(caller, advocate)
