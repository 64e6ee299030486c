"""The statements a referral import writes with, one batch at a time (actions/backfill.py runs
them in this order, in one transaction per batch).

A batch is a range of the staged rows' advocates, so an advocate, their codes and their
referrals are written together: a new advocate is inserted with its counters already counted
(the leaderboard's ``referral_count`` and ``approved_count``, which storage's hooks keep for the
API's writes) instead of being updated once per referral, and an interrupted import leaves no
advocate half-counted. Every statement is set-based ``INSERT ... SELECT`` (or ``UPDATE ... FROM``)
over the staged rows and skips what is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from referflow.storage.models import (
    APPROVED_COUNTED,
    Advocate,
    Referral,
    ReferralCode,
    ReferralHistory,
    ReferralSignal,
)
from referflow.storage.types import UTCDateTime

ACTION, ACTOR_TYPE = "imported", "import"
REFERRAL_COLUMNS = [
    "id", "program_id", "advocate_id", "code", "click_id", "friend_external_id", "friend_email",
    "friend_email_key", "status", "reasons", "qualifying_event_id", "qualified_amount",
    "qualified_currency", "qualified_at", "hold_until", "approved_at", "review_deadline",
    "advocate_reward", "friend_reward", "created_at", "updated_at", "version"]
HISTORY_COLUMNS = ["referral_id", "program_id", "at", "action", "actor_type", "actor_id",
                   "from_status", "to_status", "reasons", "data", "config_version"]


@dataclass(frozen=True)
class Batch:
    """One batch: the program written into, the staged rows (``where`` on ``stage``), the time."""

    program_id: str
    config_version: int
    actor_id: str
    stage: Table
    where: ColumnElement[bool]
    now: datetime
    postgresql: bool

    @property
    def s(self) -> Any:
        """The staged rows' columns."""
        return self.stage.c

    def json(self, column: Any) -> Any:
        """A staged JSON text as a JSON value: PostgreSQL's json columns take text only through
        a cast; SQLite stores the text as is (its CAST AS JSON would mean NUMERIC)."""
        return cast(column, JSON) if self.postgresql else type_coerce(column, JSON)

    def reasons(self) -> Any:
        """The staged reasons (NULL: none)."""
        return self.json(func.coalesce(self.s.reasons, "[]"))


def advocate_of(batch: Batch) -> ColumnElement[bool]:
    """The program's advocate a staged row names."""
    return and_(Advocate.program_id == batch.program_id,
                Advocate.external_id == batch.s.advocate_external_id)


def known_friends(batch: Batch) -> Any:
    """Mark the batch's rows whose friend has a referral in the program already: once, before
    the batch writes (an anti-join against the referrals a statement is inserting would scan
    them again for every row where PostgreSQL's statistics still think the table empty).

    Rows are staged with ``known`` false, so only the (usually few) known friends' rows are
    rewritten: setting every row would rewrite the whole batch of the stage, and PostgreSQL
    answered ``SET known = EXISTS (...)`` by scanning all of referrals once a batch."""
    s = batch.s
    return update(batch.stage).where(batch.where, exists().where(
        Referral.program_id == batch.program_id,
        Referral.friend_external_id == s.friend_external_id)).values(known=True)


def friend_is_new(batch: Batch) -> ColumnElement[bool]:
    """The staged row's friend had no referral in the program when the batch began."""
    return batch.stage.c.known.is_(False)


def enrolled_advocates(batch: Batch) -> Any:
    """The external ids of the batch's advocates the program already has."""
    return (select(batch.s.advocate_external_id).distinct()
            .join(Advocate, advocate_of(batch)).where(batch.where))


def new_advocates(batch: Batch) -> Any:
    """The batch's advocates to enrol: external id, email, key, name, first referral, and the
    referrals and approved ones the batch will add for them (their counters)."""
    s, new = batch.s, friend_is_new(batch)
    counted = and_(new, s.status.in_([str(status) for status in APPROVED_COUNTED]))
    return (select(s.advocate_external_id, func.max(s.advocate_email),
                   func.max(s.advocate_email_key), func.max(s.advocate_name),
                   func.min(s.created_at), func.sum(case((new, 1), else_=0)),
                   func.sum(case((counted, 1), else_=0)))
            .where(batch.where, ~exists().where(advocate_of(batch)))
            .group_by(s.advocate_external_id))


def file_codes(batch: Batch) -> Any:
    """Insert the codes the file names (the other tool's, so shared links keep working)."""
    s = batch.s
    named = (select(s.code, literal(batch.program_id), func.min(Advocate.id), true(), true(),
                    literal(batch.now, UTCDateTime()))
             .join(Advocate, advocate_of(batch))
             .where(batch.where, s.code.is_not(None), ~exists().where(ReferralCode.code == s.code))
             .group_by(s.code))
    return insert(ReferralCode).from_select(
        ["code", "program_id", "advocate_id", "vanity", "active", "created_at"], named)


def codeless_advocates(batch: Batch) -> Any:
    """The ids of the batch's advocates that have no code at all."""
    return (select(Advocate.id).distinct().join(batch.stage, advocate_of(batch))
            .where(batch.where, ~exists().where(ReferralCode.advocate_id == Advocate.id)))


def referrals(batch: Batch) -> Any:
    """Insert the batch's referrals whose friend has none in the program yet."""
    s = batch.s
    any_code = (select(ReferralCode.code).where(ReferralCode.advocate_id == Advocate.id)
                .order_by(ReferralCode.active.desc(), ReferralCode.vanity.desc(),
                          ReferralCode.created_at).limit(1).scalar_subquery())
    rows = (select(
        s.referral_id, literal(batch.program_id), Advocate.id, func.coalesce(s.code, any_code),
        null(), s.friend_external_id, s.friend_email, s.friend_email_key, s.status,
        batch.reasons(), s.qualifying_event_id, s.qualified_amount, s.qualified_currency,
        s.qualified_at, s.hold_until, s.approved_at, null(), s.advocate_reward, s.friend_reward,
        s.created_at, literal(batch.now, UTCDateTime()), literal(1))
        .join(Advocate, advocate_of(batch)).where(batch.where, friend_is_new(batch)))
    dialect = postgresql if batch.postgresql else sqlite
    # A claim made through the API while the batch runs wins; the import skips that friend.
    return dialect.insert(Referral).from_select(REFERRAL_COLUMNS, rows).on_conflict_do_nothing()


def _inserted(batch: Batch) -> Any:
    """The staged rows whose referral this batch inserted (their ids were drawn for this run)."""
    return batch.stage.join(Referral, Referral.id == batch.s.referral_id)


def history(batch: Batch) -> Any:
    """Insert one history entry for each referral the batch inserted: imported, by the import."""
    s = batch.s
    rows = (select(s.referral_id, literal(batch.program_id), literal(batch.now, UTCDateTime()),
                   literal(ACTION), literal(ACTOR_TYPE), literal(batch.actor_id), null(), s.status,
                   batch.reasons(), batch.json(s.history), literal(batch.config_version))
            .select_from(_inserted(batch)).where(batch.where))
    return insert(ReferralHistory).from_select(HISTORY_COLUMNS, rows)


def signals(batch: Batch) -> Any:
    """Insert the reason code of each inserted referral that has one (listReferrals' filter)."""
    s = batch.s
    rows = (select(s.referral_id, s.reason, literal(batch.program_id))
            .select_from(_inserted(batch)).where(batch.where, s.reason.is_not(None)))
    return insert(ReferralSignal).from_select(["referral_id", "code", "program_id"], rows)


def counters(batch: Batch, external_ids: list[str]) -> Any:
    """Add the batch's inserted referrals to the counters of advocates enrolled before it (an
    increment, as the hooks do, so a concurrent claim's count is not lost)."""
    s = batch.s
    counted = s.status.in_([str(status) for status in APPROVED_COUNTED])
    added = (select(s.advocate_external_id, func.count().label("referrals"),
                    func.sum(case((counted, 1), else_=0)).label("approved"))
             .select_from(_inserted(batch))
             .where(batch.where, s.advocate_external_id.in_(external_ids))
             .group_by(s.advocate_external_id).subquery())
    return update(Advocate).where(
        Advocate.program_id == batch.program_id,
        Advocate.external_id == added.c.advocate_external_id,
    ).values(referral_count=Advocate.referral_count + added.c.referrals,
             approved_count=Advocate.approved_count + added.c.approved)
