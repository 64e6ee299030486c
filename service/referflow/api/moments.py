"""Moments and the ask decision, consent, checkMessage and a person's profile."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from referflow.actions import consent, messaging, moments
from referflow.api import payloads
from referflow.api.operations import Caller, db_session, operation
from referflow.domain.timeutil import to_rfc3339

bp = Blueprint("moments", __name__)


def _decision(recorded: moments.Recorded) -> dict[str, Any]:
    return moments.decision_dict(recorded.decision, recorded.person, payloads.base_url())


@operation(bp, "recordMoment", "POST", "/v1/moments", tag="moments",
           request_schema="record-moment.request", response="moment-decision", status=201,
           also=(200,), summary="Record a moment and decide whether it asks the person to refer "
                                "(idempotent on id)")
def record_moment(caller: Caller, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    recorded = moments.record_moment(db_session(), caller.ctx, body, payloads.base_url())
    return _decision(recorded), 201 if recorded.created else 200


@operation(bp, "recordAskResponse", "POST", "/v1/asks/<ask_id>/response", tag="moments",
           request_schema="record-ask-response.request", response="moment-decision",
           summary="Record what the person did with an ask (a decline pauses asking)")
def record_ask_response(caller: Caller, body: dict[str, Any], ask_id: str) -> dict[str, Any]:
    return _decision(moments.respond_to_ask(db_session(), caller.ctx, ask_id, body))


@operation(bp, "getPerson", "GET", "/v1/people/<external_id>/profile", tag="moments",
           response="person-profile",
           summary="A person's consents, suppressions, asks and when they may next be asked")
def get_person(caller: Caller, body: None, external_id: str) -> dict[str, Any]:
    return moments.profile(db_session(), caller.ctx, external_id, payloads.base_url())


@operation(bp, "setConsent", "POST", "/v1/consents", tag="consent",
           request_schema="set-consent.request", response="consent", status=201,
           summary="Record a person's consent for a channel, or its withdrawal (kept as evidence)")
def set_consent(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return consent.set_consent(db_session(), caller.ctx, body)


@operation(bp, "getConsent", "GET", "/v1/consents/<external_id>", tag="consent",
           response="consent", summary="A person's consent per channel, with its history")
def get_consent(caller: Caller, body: None, external_id: str) -> dict[str, Any]:
    return consent.get_consent(db_session(), caller.ctx, external_id)


@operation(bp, "checkMessage", "POST", "/v1/messages/check", tag="consent",
           request_schema="check-message.request", response="message-check",
           summary="May this message go to this person now? The rules every send path obeys")
def check_message(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    result = messaging.check_message(db_session(), caller.ctx, body)
    return {"send": result.send, "reason": result.reason, "send_at": to_rfc3339(result.send_at),
            "outcomes": [o.to_dict() for o in result.outcomes]}
