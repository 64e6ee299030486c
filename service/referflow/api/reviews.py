"""Review queue, known customers, codes, audit export and data-subject requests."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request, stream_with_context

from referflow.actions import audit, customers, privacy, reviews
from referflow.actions.common import Actor
from referflow.api import payloads
from referflow.api.operations import Caller, db_session, int_arg, operation
from referflow.domain.timeutil import parse_rfc3339
from referflow.errors import BadRequest

bp = Blueprint("reviews", __name__)


def _reviewer(caller: Caller, body: dict[str, Any]) -> Actor:
    return Actor("reviewer", f"{body['reviewer']} (key {caller.actor.id})")


@operation(bp, "listReviews", "GET", "/v1/reviews", tag="reviews", response="review-list",
           query=("limit", "after"), summary="List referrals waiting for review, oldest first")
def list_reviews(caller: Caller, body: None) -> dict[str, Any]:
    limit = int_arg("limit", 50, 1, 200)
    items = reviews.list_reviews(db_session(), caller.ctx, limit, request.args.get("after"))
    return {"items": [payloads.referral(r) for r in items],
            "next_cursor": items[-1].id if len(items) == limit else None}


@operation(bp, "approveReferral", "POST", "/v1/referrals/<referral_id>/approve", tag="reviews",
           request_schema="review-decision.request", response="referral",
           summary="Approve a referral in review (it resumes where its qualification puts it)")
def approve_referral(caller: Caller, body: dict[str, Any], referral_id: str) -> dict[str, Any]:
    return payloads.referral(reviews.approve_referral(db_session(), caller.ctx, referral_id, body,
                                                      _reviewer(caller, body)))


@operation(bp, "declineReferral", "POST", "/v1/referrals/<referral_id>/decline", tag="reviews",
           request_schema="review-decision.request", response="referral",
           summary="Decline a referral in review with a polite reason")
def decline_referral(caller: Caller, body: dict[str, Any], referral_id: str) -> dict[str, Any]:
    return payloads.referral(reviews.decline_referral(db_session(), caller.ctx, referral_id, body,
                                                      _reviewer(caller, body)))


@operation(bp, "importCustomers", "POST", "/v1/customers", tag="eligibility",
           request_schema="import-customers.request", response="customers-imported",
           summary="Import existing customers: they can never be referred friends")
def import_customers(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    added = customers.import_customers(db_session(), caller.ctx, body["customers"])
    return {"received": len(body["customers"]), "imported": added}


@operation(bp, "deactivateCode", "POST", "/v1/codes/<code>/deactivate", tag="advocates",
           response="referral-code", summary="Deactivate a referral code")
def deactivate_code(caller: Caller, body: None, code: str) -> dict[str, Any]:
    return payloads.referral_code(customers.deactivate_code(db_session(), caller.ctx, code))


@operation(bp, "exportAudit", "GET", "/v1/audit/export", tag="audit", response=None,
           query=("format", "since", "until"),
           summary="Export the audit trail as JSON lines (format=jsonl) or CSV (format=csv)")
def export_audit(caller: Caller, body: None) -> Response:
    fmt = request.args.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise BadRequest("format must be jsonl or csv", code="invalid_query")
    try:
        since, until = (parse_rfc3339(request.args[k]) if k in request.args else None
                        for k in ("since", "until"))
    except ValueError as exc:
        raise BadRequest(f"since/until must be RFC 3339 with an offset: {exc}",
                         code="invalid_query") from exc
    rows = audit.audit_rows(db_session(), caller.ctx, since, until)
    render, mimetype = (audit.as_csv, "text/csv") if fmt == "csv" else \
        (audit.as_jsonl, "application/x-ndjson")
    response = Response(stream_with_context(render(rows)), mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=audit-{caller.ctx.id}.{fmt}"
    return response


@operation(bp, "exportPerson", "GET", "/v1/people/<external_id>", tag="privacy",
           response="person", summary="Export what is held about one person (GDPR access)")
def export_person(caller: Caller, body: None, external_id: str) -> dict[str, Any]:
    return privacy.export_person(db_session(), caller.ctx, external_id)


@operation(bp, "erasePerson", "DELETE", "/v1/people/<external_id>", tag="privacy",
           response="person-erased",
           summary="Erase a person's identifiers, keeping the money facts (GDPR erasure)")
def erase_person(caller: Caller, body: None, external_id: str) -> dict[str, Any]:
    return privacy.erase_person(db_session(), caller.ctx, external_id, caller.actor)
