"""Lists for marketers and the dashboard: referrals, advocates (the leaderboard), gift cards.

Every list pages by keyset, never by offset: the cursor carries the last item's sort key and id,
and the next page starts strictly after them. A row inserted between two pages therefore neither
repeats an item nor pushes one onto the next page, and a deep page costs what the first does.
Each filter runs on an index (storage/models.py): referrals by (program, created_at, id) alone or
after status or channel, by the advocate's own index, by reason through ``referral_signals``;
advocates by their counters, which the flush hooks keep, so the leaderboard reads no referral.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from referflow.actions import offers, people, portal
from referflow.actions.common import ProgramContext
from referflow.actions.links import CHANNEL_RE, outcome_counts
from referflow.domain.program import REWARD_SIDES
from referflow.domain.referral import STATUSES
from referflow.domain.timeutil import parse_rfc3339, to_rfc3339, utcnow
from referflow.errors import BadRequest
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    Click,
    GiftCard,
    GiftCardStatus,
    Referral,
    ReferralCode,
    ReferralSignal,
)

T = TypeVar("T")
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_Q = 320  # the longest email address
REASON_RE = re.compile(r"^[a-z0-9_.-]{1,64}$")
ADVOCATE_SORTS = ("recent", "approved", "clicks")
# A card's shown status: its stored one, or "expired" for an active card past its expiry
# (serialize.gift_card); a goodwill card is the third side of issueGiftCard.
GIFT_CARD_STATUSES = (*GiftCardStatus, "expired")
GIFT_CARD_SIDES = (*REWARD_SIDES, "goodwill")


def invalid(name: str, message: str) -> BadRequest:
    """Return the 400 of a list parameter that is not valid."""
    return BadRequest(f"{name}: {message}", code="invalid_query",
                      errors=[{"path": name, "message": message}])


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next page (None on the last one)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class ReferralFilters:
    """What listReferrals and count_referrals select; checked when made (400 invalid_query).

    ``created_from`` is inclusive and ``created_to`` exclusive, so adjacent ranges add up. ``q`` is
    a friend's external id, or their email address compared after normalisation.
    """

    status: str | None = None
    advocate_id: str | None = None
    channel: str | None = None
    reason: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise invalid("status", f"one of {', '.join(STATUSES)}")
        if self.advocate_id is not None and not 0 < len(self.advocate_id) <= 64:
            raise invalid("advocate_id", "1-64 characters")
        if self.channel is not None and not CHANNEL_RE.match(self.channel):
            raise invalid("channel", "1-40 of a-z 0-9 _ . - (as recorded from ?ch=)")
        if self.reason is not None and not REASON_RE.match(self.reason):
            raise invalid("reason", "a reason code: 1-64 of a-z 0-9 _ . -")
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise invalid("created_from", "later than created_to")
        _check_q(self.q)


@dataclass(frozen=True)
class AdvocateRow:
    """An advocate with the counts the leaderboard sorts on."""

    advocate: Advocate
    referrals: int
    approved: int
    clicks: int


@dataclass(frozen=True)
class AdvocateDetails:
    """What the advocate payload shows besides the row: codes, counts by outcome, events, and
    each code's friend offer (actions/offers.py's view; None: no offer)."""

    advocate: Advocate
    codes: list[ReferralCode]
    stats: dict[str, int]
    events: list[AdvocateEvent]
    offers: dict[str, dict[str, Any] | None]


def list_referrals(session: Session, ctx: ProgramContext, filters: ReferralFilters,
                   limit: int = DEFAULT_LIMIT, after: str | None = None) -> Page[Referral]:
    """Return the program's referrals that match, newest first."""
    _check_limit(limit)
    query = select(Referral).where(*_referral_conditions(ctx, filters))
    page = _page(session, query, "referrals", Referral.created_at, Referral.id, limit, after)
    return Page([row[0] for row in page.items], page.next_cursor)


def count_referrals(session: Session, ctx: ProgramContext, filters: ReferralFilters) -> int:
    """Count the program's referrals that match, as list_referrals would list them."""
    return session.scalar(select(func.count()).select_from(Referral)
                          .where(*_referral_conditions(ctx, filters))) or 0


def list_advocates(session: Session, ctx: ProgramContext, q: str | None = None,
                   tier: str | None = None, sort: str = "recent", limit: int = DEFAULT_LIMIT,
                   after: str | None = None) -> Page[AdvocateRow]:
    """Return the program's advocates: newest first, or most approved referrals or clicks first.

    The counts move while someone pages a leaderboard: an advocate whose count changed between
    two pages may show twice or not at all; each page is exact when read.
    """
    if sort not in ADVOCATE_SORTS:
        raise invalid("sort", f"one of {', '.join(ADVOCATE_SORTS)}")
    _check_q(q)
    if tier is not None and not 0 < len(tier) <= 40:
        raise invalid("tier", "1-40 characters")
    _check_limit(limit)
    query = select(Advocate).where(Advocate.program_id == ctx.id)
    if q is not None:
        query = query.where(or_(Advocate.external_id == q,
                                Advocate.email_key == _email_key(ctx, q)))
    if tier is not None:
        query = query.where(Advocate.tier == tier)
    key = {"recent": Advocate.created_at, "approved": Advocate.approved_count,
           "clicks": Advocate.click_count}[sort]
    # The counts are read as columns: an Advocate already in the session keeps its old values.
    query = query.add_columns(Advocate.referral_count, Advocate.approved_count,
                              Advocate.click_count)
    page = _page(session, query, f"advocates.{sort}", key, Advocate.id, limit, after)
    return Page([AdvocateRow(row.Advocate, row.referral_count, row.approved_count,
                             row.click_count) for row in page.items],
                page.next_cursor)


def advocate_details(session: Session, ctx: ProgramContext,
                     rows: list[AdvocateRow]) -> list[AdvocateDetails]:
    """Return what the advocate payload shows for each row: codes, counts by outcome, events,
    the codes' friend offers. A constant number of queries, however long the page."""
    advocates = [row.advocate for row in rows]
    if any([portal.ensure_token_hash(ctx, a) for a in advocates]):
        session.commit()  # once for the page, not once per advocate as portal_url would
    ids = [a.id for a in advocates]
    codes: dict[str, list[ReferralCode]] = defaultdict(list)
    for code in session.scalars(select(ReferralCode).where(ReferralCode.advocate_id.in_(ids))
                                .order_by(ReferralCode.created_at)):
        codes[code.advocate_id].append(code)
    events: dict[str, list[AdvocateEvent]] = defaultdict(list)
    for event in session.scalars(select(AdvocateEvent).where(AdvocateEvent.advocate_id.in_(ids))
                                 .order_by(AdvocateEvent.id)):
        events[event.advocate_id].append(event)
    by_status: dict[str, dict[str, int]] = defaultdict(dict)
    for advocate_id, status, count in session.execute(
            select(Referral.advocate_id, Referral.status, func.count())
            .where(Referral.advocate_id.in_(ids)).group_by(Referral.advocate_id, Referral.status)):
        by_status[advocate_id][status] = count
    clicks: dict[str, int] = {a: n for a, n in session.execute(
        select(Click.advocate_id, func.count()).where(Click.advocate_id.in_(ids))
        .group_by(Click.advocate_id))}
    views = offers.views_of(session, [c.code for cs in codes.values() for c in cs])
    return [AdvocateDetails(a, codes[a.id], outcome_counts(by_status[a.id], clicks.get(a.id, 0)),
                            events[a.id], {c.code: views[c.code] for c in codes[a.id]})
            for a in advocates]


def list_gift_cards(session: Session, ctx: ProgramContext, status: str | None = None,
                    side: str | None = None, expiring_before: datetime | None = None,
                    limit: int = DEFAULT_LIMIT, after: str | None = None) -> Page[GiftCard]:
    """Return the program's gift cards, newest first; ``status`` as the card shows it."""
    if status is not None and status not in GIFT_CARD_STATUSES:
        raise invalid("status", f"one of {', '.join(GIFT_CARD_STATUSES)}")
    if side is not None and side not in GIFT_CARD_SIDES:
        raise invalid("side", f"one of {', '.join(GIFT_CARD_SIDES)}")
    _check_limit(limit)
    query = select(GiftCard).where(GiftCard.program_id == ctx.id)
    if status is not None:
        query = query.where(*_shown_status(status))
    if side is not None:
        query = query.where(GiftCard.side == side)
    if expiring_before is not None:
        query = query.where(GiftCard.expires_at < expiring_before)
    page = _page(session, query, "gift_cards", GiftCard.created_at, GiftCard.id, limit, after)
    return Page([row[0] for row in page.items], page.next_cursor)


def _shown_status(status: str) -> list[ColumnElement[bool]]:
    now = utcnow()
    if status == "expired":
        return [GiftCard.status == GiftCardStatus.ACTIVE, GiftCard.expires_at <= now]
    if status == GiftCardStatus.ACTIVE:
        return [GiftCard.status == GiftCardStatus.ACTIVE, GiftCard.expires_at > now]
    return [GiftCard.status == status]


def _referral_conditions(ctx: ProgramContext,
                         filters: ReferralFilters) -> list[ColumnElement[bool]]:
    where = [Referral.program_id == ctx.id]
    if filters.status is not None:
        where.append(Referral.status == filters.status)
    if filters.advocate_id is not None:
        where.append(Referral.advocate_id == filters.advocate_id)
    if filters.channel is not None:
        where.append(Referral.channel == filters.channel)
    if filters.reason is not None:
        where.append(exists().where(ReferralSignal.referral_id == Referral.id,
                                    ReferralSignal.program_id == ctx.id,
                                    ReferralSignal.code == filters.reason))
    if filters.created_from is not None:
        where.append(Referral.created_at >= filters.created_from)
    if filters.created_to is not None:
        where.append(Referral.created_at < filters.created_to)
    if filters.q is not None:
        where.append(or_(Referral.friend_external_id == filters.q,
                         Referral.friend_email_key == _email_key(ctx, filters.q)))
    return where


def _email_key(ctx: ProgramContext, q: str) -> str | None:
    """The keyed hash an address is stored under (claims and links use the same), or None."""
    return people.email_key(ctx, q) if "@" in q else None


def _check_q(q: str | None) -> None:
    if q is not None and not (q.strip() and len(q) <= MAX_Q):
        raise invalid("q", f"an external id or an email address, 1-{MAX_Q} characters")


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"an integer from 1 to {MAX_LIMIT}")


def _page(session: Session, query: Select[Any], kind: str, key: InstrumentedAttribute[Any],
          id_: InstrumentedAttribute[str], limit: int, after: str | None) -> Page[Row[Any]]:
    """Run ``query`` from after the cursor, by (key, id) descending; one row more than asked tells
    whether another page follows. The cursor is made from the row as read, never from an object
    the session may hold older values of."""
    if after is not None:
        last_key, last_id = _decode(after, kind, key)
        query = query.where(tuple_(key, id_) < tuple_(literal(last_key, key.type),
                                                      literal(last_id, id_.type)))
    query = (query.add_columns(key.label("page_key"), id_.label("page_id"))
             .order_by(key.desc(), id_.desc()).limit(limit + 1))
    rows = list(session.execute(query).all())
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    return Page(rows, _encode(kind, rows[-1].page_key, rows[-1].page_id))


CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


def _encode(kind: str, last_key: datetime | int, last_id: str) -> str:
    value = to_rfc3339(last_key) if isinstance(last_key, datetime) else last_key
    raw = json.dumps([kind, value, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str, key: InstrumentedAttribute[Any]) -> tuple[Any, str]:
    """Read a cursor of this list (and sort); anything else is a 400 ``invalid_cursor``."""
    try:
        if not CURSOR_RE.match(cursor):
            raise ValueError("not a cursor")
        found, value, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if found != kind or not isinstance(last_id, str) or not 0 < len(last_id) <= 64:
            raise ValueError("a cursor of another list")
        if isinstance(key.type, Integer):  # a count, else a time
            if type(value) is int and 0 <= value < 2**31:
                return value, last_id
        elif isinstance(value, str):
            return parse_rfc3339(value), last_id
        raise ValueError("not a position in this list")
    except (ValueError, TypeError, binascii.Error) as exc:  # JSONDecodeError is a ValueError
        raise BadRequest("after: not a cursor of this list (pass next_cursor as it was given)",
                         code="invalid_cursor",
                         errors=[{"path": "after", "message": "not a cursor of this list"}]) from exc
