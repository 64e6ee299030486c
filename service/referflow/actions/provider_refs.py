"""Provider references and waiting events: which customer a charge or order belongs to, and
the events that wait for a claim or a reference they need.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from referflow.domain.timeutil import utcnow
from referflow.storage.models import InboundEvent, InboundStatus, ProviderRef

# The provider name under which a qualifying payment's references (charge, payment intent, order)
# are kept, whoever sent them (the API, a workflow, the ingress).
PAYMENT = "payment"


class Waiting(Exception):
    """The event needs something not seen yet (a claim, a charge): try again later."""

    def __init__(self, subject: str, reason: str):
        super().__init__(reason)
        self.subject, self.reason = subject, reason


def wake(session: Session, program_id: str, *subjects: str) -> None:
    """Make events waiting for these subjects due now (a claim or a reference arrived)."""
    session.execute(update(InboundEvent).where(
        InboundEvent.program_id == program_id, InboundEvent.status == InboundStatus.WAITING,
        InboundEvent.subject.in_(subjects)).values(next_attempt_at=utcnow())
        .execution_options(synchronize_session=False))


def remember(session: Session, program_id: str, provider: str, customer: str,
             *refs: str | None) -> None:
    """Record which customer charges/orders/payment intents belong to; wake who waited for them."""
    known = [r for r in refs if r]
    for ref in known:
        if session.get(ProviderRef, (program_id, provider, ref)) is None:
            session.add(ProviderRef(program_id=program_id, provider=provider, ref=ref,
                                    customer=customer))
    if known:
        wake(session, program_id, *[f"ref:{r}" for r in known])


def customer_of(session: Session, program_id: str, provider: str, ref: str) -> str:
    """Return the customer of a reference, or wait for it."""
    row = session.get(ProviderRef, (program_id, provider, ref))
    if row is None:
        raise Waiting(f"ref:{ref}", f"{provider} object {ref} not seen yet")
    return row.customer
