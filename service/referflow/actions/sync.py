"""Referral facts out to Klaviyo and HubSpot, as retry-safe background tasks.

Klaviyo gets events marketers build flows on (``Referral Link Created``, ``Referral Approved``,
``Reward Issued``, ``Referral Declined``) with the profile properties ``referral_code``,
``referral_link``, ``referral_tier``, ``referrals_approved``; HubSpot gets the same facts as
contact properties (created on first use). Every push obeys the send rules every other send path
obeys (``domain/messaging.py``, facts from ``actions/messaging.py``): a referral message (a
Klaviyo event) has the purpose ``domain.messaging.event_purpose`` gives it, the same the n8n
workflows ask ``checkMessage`` with: ``Referral Link Created`` is an ``ask`` (also the ask frequency
caps and cool-down), the others ``reward``: consent, the suppression list, erasure, the weekly
message cap (``messaging.max_messages_per_week``) and quiet hours, which defer it (not drop it); profile
updates and HubSpot properties are ``transactional``: only erasure stops them. Skipped tasks
record why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext, load_program
from referflow.actions.events import delivered_payload
from referflow.actions.lifecycle import approved_count
from referflow.actions.messaging import Overrides, person_by_email, recipient
from referflow.actions.providers import credentials
from referflow.domain import messaging
from referflow.domain.emails import normalise_email
from referflow.domain.hashing import keyed_hash
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import PermanentProviderError, RetryableProviderError
from referflow.providers.hubspot import HubSpotClient
from referflow.providers.klaviyo import KlaviyoClient
from referflow.services import Services
from referflow.storage import leases
from referflow.storage.models import (
    Advocate,
    OutboxEvent,
    ProviderConfig,
    Referral,
    SyncStatus,
    SyncTask,
)

WORKING, SENT, SKIPPED, FAILED = SyncStatus.SENDING, SyncStatus.SENT, SyncStatus.SKIPPED, SyncStatus.FAILED
MESSAGES = {"advocate.link_created": "Referral Link Created",
            "referral.approved": "Referral Approved", "reward.issued": "Reward Issued",
            "referral.rejected": "Referral Declined"}
PROFILE_ONLY = {"advocate.tier_changed"}
BACKOFF = (30, 300, 1800, 7200, 21600)


def plan(session: Session, event: OutboxEvent) -> None:
    """Queue a sync task per configured provider that cares about this event (in fan-out)."""
    if event.type not in MESSAGES and event.type not in PROFILE_ONLY:
        return
    for provider in ("klaviyo", "hubspot"):
        config = session.get(ProviderConfig, (event.program_id, provider))
        wanted = "api_key" if provider == "klaviyo" else "access_token"
        if config is None or not config.credentials.get(wanted):
            continue
        if provider == "hubspot" and event.type in ("reward.issued", "referral.rejected"):
            continue  # HubSpot keeps facts, not messages
        session.add(SyncTask(program_id=event.program_id, provider=provider, outbox_id=event.id,
                             status=leases.PENDING, next_attempt_at=event.created_at))


def due_tasks(session: Session, now: datetime) -> list[tuple[int, str]]:
    """Return (task id, job generation) of sync tasks due now."""
    return leases.due(session, SyncTask, now, WORKING)


def run(session: Session, services: Services, task_id: int) -> str | None:
    """Push one fact to one provider; skip suppressed or over-asked people; retry outages."""
    now = utcnow()
    task = leases.take(session, SyncTask, task_id, now, services.settings.job_lease_seconds,
                       WORKING)
    if task is None:
        return None
    event = session.get(OutboxEvent, task.outbox_id)
    assert event is not None
    ctx = load_program(session, task.program_id, services.settings.secret_key)
    email, props = _recipient_and_properties(session, event)
    if not email:
        return _finish(session, task, SKIPPED, {"skipped": "no_recipient_email"})
    task.recipient_key = keyed_hash(ctx.secret, "email", normalise_email(email))
    verdict = _check(session, ctx, task, event, email, now)
    if verdict.send_at is not None:  # quiet hours: the same task, later (a new job generation)
        leases.settle(task, leases.PENDING)
        task.next_attempt_at = verdict.send_at
        task.outcome = {"deferred": verdict.reason, "until": to_rfc3339(verdict.send_at)}
        session.commit()
        return leases.PENDING
    if not verdict.send:
        return _finish(session, task, SKIPPED, {"skipped": messaging.skip_text(verdict)})
    try:
        _send(session, services, task, event, email, props)
    except RetryableProviderError as exc:
        task.outcome = {"error": str(exc)}
        leases.retry_later(task, now, BACKOFF, exc.retry_after)
        session.commit()
        return leases.PENDING
    except PermanentProviderError as exc:
        return _finish(session, task, FAILED, {"error": str(exc)})
    task.sent_at = now
    return _finish(session, task, SENT, {"sent": event.type})


def _check(session: Session, ctx: ProgramContext, task: SyncTask, event: OutboxEvent, email: str,
           now: datetime) -> messaging.MessageCheck:
    """Ask the one home of the send rules whether this push may go to this person now."""
    purpose = messaging.event_purpose(event.type) if task.provider == "klaviyo" else "transactional"
    key = task.recipient_key
    assert key is not None
    facts = recipient(session, ctx, person_by_email(session, ctx, key), key, now,
                      Overrides(email=email))
    return messaging.check(purpose, "email", facts, ctx.config)


def _finish(session: Session, task: SyncTask, status: str, outcome: dict[str, Any]) -> str:
    task.outcome = outcome
    leases.settle(task, status)
    session.commit()
    return status


def _recipient_and_properties(session: Session,
                              event: OutboxEvent) -> tuple[str | None, dict[str, Any]]:
    """Return who the fact is about and the profile/contact properties it sets."""
    data = event.payload["data"]
    if event.type == "advocate.link_created":
        return data["advocate"]["email"], {"referral_code": data["code"],
                                           "referral_link": data["url"]}
    if event.type == "advocate.tier_changed":
        advocate = session.get(Advocate, data["advocate"]["id"])
        return (advocate.email if advocate else None), {"referral_tier": data["to"] or ""}
    referral_data = data.get("referral") or {}
    referral_id = referral_data.get("id") or (data.get("gift_card") or data.get("reward") or {}
                                              ).get("referral_id")
    referral = session.get(Referral, referral_id) if referral_id else None
    if referral is None:
        return None, {}
    side = (data.get("gift_card") or data.get("reward") or {}).get("side", "advocate")
    if event.type == "reward.issued" and side == "friend":
        return referral.friend_email, {}
    advocate = session.get(Advocate, referral.advocate_id)
    return (advocate.email if advocate else None), {
        "referrals_approved": approved_count(session, referral.advocate_id)}


def _event_properties(session: Session, event: OutboxEvent) -> dict[str, Any]:
    data = delivered_payload(session, event)["data"]
    if event.type == "reward.issued":
        reward = data.get("gift_card") or data.get("reward") or {}
        return {"amount": reward.get("amount"), "currency": reward.get("currency"),
                "code": reward.get("code"), "issuer": data.get("issuer")}
    if event.type == "referral.rejected":
        reasons = data.get("reasons") or data.get("referral", {}).get("reasons") or []
        return {"reason_code": reasons[-1]["code"] if reasons else None,
                "message": reasons[-1]["message"] if reasons else None}
    if event.type == "advocate.link_created":
        return {"referral_code": data["code"], "referral_link": data["url"]}
    return {"referral_id": data.get("referral", {}).get("id")}


def _send(session: Session, services: Services, task: SyncTask, event: OutboxEvent, email: str,
          props: dict[str, Any]) -> None:
    settings = services.settings
    if task.provider == "hubspot":
        (token,) = credentials(session, task.program_id, "hubspot", "access_token")
        client = HubSpotClient(token, settings.hubspot_api_base)
        client.ensure_properties()
        client.upsert_contact(email, props)
        return
    (key,) = credentials(session, task.program_id, "klaviyo", "api_key")
    klaviyo = KlaviyoClient(key, settings.klaviyo_api_base)
    if event.type in PROFILE_ONLY:
        klaviyo.profile(email, props)
    else:
        klaviyo.event(MESSAGES[event.type], email, _event_properties(session, event), props,
                      unique_id=event.event_id, time=event.payload["created_at"])
