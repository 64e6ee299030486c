"""Reviews: the queue of referrals waiting for a person, decided one by one or in bulk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from referflow.actions import reviews, users
from referflow.actions.common import get_referral_row, history_of
from referflow.api.operations import db_session
from referflow.dashboard.auth import LOGIN_ACTOR, actor, require
from referflow.dashboard.blueprint import bp
from referflow.errors import ApiError
from referflow.storage.models import ReferralHistory

PAGE = 50
MAX_NOTE, MAX_MESSAGE, MAX_BULK = 2000, 1000, 200
DECIDE = {"approve": reviews.approve_referral, "decline": reviews.decline_referral}


@dataclass(frozen=True)
class Entry:
    """A history entry with the person or thing that made it, as shown in the dashboard."""

    row: ReferralHistory
    who: str


def who(actor_type: str, actor_id: str | None, emails: dict[str, str]) -> str:
    """Name an actor for people: a dashboard user by email, the others by kind and id."""
    if actor_type == LOGIN_ACTOR:
        return emails.get(actor_id or "", f"removed user {actor_id}")
    return f"{actor_type.replace('_', ' ')} {actor_id}" if actor_id else actor_type


def history_with_people(referral_id: str) -> list[Entry]:
    """Return a referral's history, each entry with who made it (emails of dashboard users)."""
    rows = history_of(db_session(), referral_id)
    emails = users.emails_of(db_session(), [r.actor_id for r in rows
                                            if r.actor_type == LOGIN_ACTOR and r.actor_id])
    return [Entry(r, who(r.actor_type, r.actor_id, emails)) for r in rows]


@bp.route("/p/<program_id>/reviews", endpoint="reviews")
@require("viewer")
def reviews_page(program_id: str) -> Any:
    """List referrals waiting for review, oldest first, PAGE at a time."""
    after = request.args.get("after") or None
    items = reviews.list_reviews(db_session(), g.program_ctx, PAGE, after)
    next_cursor = items[-1].id if len(items) == PAGE else None
    return render_template("dashboard/reviews.html", items=items, after=after,
                           next_cursor=next_cursor, polite=reviews.POLITE_DECLINE)


@bp.route("/p/<program_id>/reviews/<referral_id>")
@require("viewer")
def reviews_detail(program_id: str, referral_id: str) -> Any:
    """Show one referral in review with its reasons and history, and the decision form."""
    referral = get_referral_row(db_session(), g.program_ctx, referral_id)
    return render_template("dashboard/review.html", referral=referral,
                           history=history_with_people(referral.id), polite=reviews.POLITE_DECLINE)


def _decision_body() -> dict[str, Any]:
    note = request.form.get("note", "").strip()[:MAX_NOTE] or None
    message = request.form.get("message", "").strip()[:MAX_MESSAGE] or None
    return {"note": note, "message": message}


@bp.route("/p/<program_id>/reviews/decide", methods=["POST"])
@require("reviewer")
def reviews_decide(program_id: str) -> Response:
    """Approve or decline the chosen referrals, each in its own transaction."""
    decide = DECIDE.get(request.form.get("decision", ""))
    if decide is None:
        abort(400)
    ids = list(dict.fromkeys(request.form.getlist("referral_id")))[:MAX_BULK]
    if not ids:
        flash("Choose at least one referral.", "error")
        return redirect(_back(program_id))
    body, done, refused = _decision_body(), 0, []
    for referral_id in ids:
        try:
            decide(db_session(), g.program_ctx, referral_id, body, actor())
            done += 1
        except ApiError as exc:
            db_session().rollback()
            refused.append(f"{referral_id}: {exc.message}")
    verb = "approved" if decide is reviews.approve_referral else "declined"
    if done:
        flash(f"{done} referral{'s' if done != 1 else ''} {verb}.", "success")
    if refused:
        flash("Not changed: " + "; ".join(refused), "error")
    return redirect(_back(program_id))


def _back(program_id: str) -> str:
    """Return to the page the form was on: the queue, or the referral it decided."""
    one = request.form.get("return_to_referral")
    if one:
        return url_for("dashboard.reviews_detail", program_id=program_id, referral_id=one)
    return url_for("dashboard.reviews", program_id=program_id)
