"""The statistics of bulk-imported rows, added in each batch's own transaction.

Imports write with set-based SQL, past the session hooks that keep the rollups
(actions/rollups.py), so each batch adds what its rows count for itself: the same deltas
``referflow stats rebuild`` would count for them (actions/stats.py), found by a ``GROUP BY``
over the batch's inserted rows rather than one row at a time. A batch and its statistics are
committed together, so an interrupted import leaves them in step with the tables.

What an imported referral counts for: a claim on its local day under its advocate's tier then;
its one history entry (``imported``, at the batch's time) for the status it reached, with its
reason code and, when rewarded, the claim-to-reward bucket; no channel (imports have no clicks).
A new advocate counts on the day of its first referral. A day is the program's calendar day of
the UTC quarter hour a time falls in (domain/stats_periods.py: no midnight falls inside one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, case, cast, exists, func, literal, select
from sqlalchemy.engine import Connection

from referflow.actions.backfill_writes import Batch
from referflow.actions.rollups import Rollup, write
from referflow.domain import stats
from referflow.domain.imports import reward_bucket_edges
from referflow.domain.referral import REWARDED
from referflow.domain.stats import Delta, Metric, Move, Tiers
from referflow.domain.stats_periods import SLOT, LocalDays
from referflow.storage.models import Advocate, AdvocateEvent, Referral
from referflow.storage.types import UTCDateTime

TIER_CHANGED = "tier_changed"  # the advocate event whose tiers the rebuild follows through time


def add_known_customers(conn: Connection, program_id: str, zone: str, at: datetime,
                        count: int) -> None:
    """Count ``count`` known customers added at ``at`` (one rollup row per split)."""
    if count:
        rollup = Rollup()
        rollup.add(program_id, LocalDays(zone).day(at), None, None,
                   Delta(Metric.KNOWN_CUSTOMERS, count=count))
        write(conn, rollup)


class ReferralStats:
    """The statistics of one referral import, added batch by batch."""

    def __init__(self, program_id: str, zone: str, oldest: datetime | None):
        self.program_id, self.days = program_id, LocalDays(zone)
        self.oldest = oldest  # the file's oldest claim: how many reward buckets there can be

    def add_batch(self, conn: Connection, batch: Batch,
                  new_advocates: Iterable[tuple[datetime, str | None]]) -> None:
        """Add the batch's inserted referrals and its new advocates (first referral, tier)."""
        rollup = Rollup()
        for first, tier in new_advocates:
            rollup.add(self.program_id, self.days.day(first), None, tier, Delta(Metric.ADVOCATES))
        promoted = conn.scalar(_any_tier_changed(batch))
        claims, entries = self._grouped(batch, conn.dialect.name == "postgresql", promoted)
        for slot, tier, count in conn.execute(claims):
            day = self.days.day(datetime.fromtimestamp(slot * SLOT, UTC))
            self._add(rollup, day, tier, stats.claim_deltas(), count)
        now_day = self.days.day(batch.now)
        for tier, status, reason, committed, currency, bucket, count in conn.execute(entries):
            seconds = stats.bucket_value(bucket) if bucket is not None else 0
            move = Move(None, status, (reason,) if reason else (), seconds, committed,
                        currency or "")
            self._add(rollup, now_day, tier, stats.move_deltas(move), count)
        if promoted:
            self._add_tier_changed(conn, batch, rollup, now_day)
        write(conn, rollup)

    def _add(self, rollup: Rollup, day: Any, tier: str | None, deltas: list[Delta],
             count: int) -> None:
        for delta in deltas:
            rollup.add(self.program_id, day, None, tier,
                       replace(delta, count=delta.count * count, amount=delta.amount * count))

    def _grouped(self, batch: Batch, postgresql: bool, promoted: bool) -> tuple[Any, Any]:
        """The batch's inserted referrals (of advocates without tier changes) counted as claims,
        by quarter hour and tier, and as history entries, by tier, status, reason, committed
        rewards, currency and reward bucket (``promoted``: some advocate's tier changed)."""
        s = batch.s
        inserted = (batch.stage.join(Referral, Referral.id == s.referral_id)
                    .join(Advocate, Advocate.id == Referral.advocate_id))
        where = (batch.where, ~_tier_changed(Referral.advocate_id)) if promoted else (batch.where,)
        bucket = case((s.status == str(REWARDED), self._bucket(batch, s.created_at)), else_=None)

        def counted(*columns: Any) -> Any:
            return select(*columns, func.count()).select_from(inserted).where(*where).group_by(
                *columns)

        return (counted(_slot(s.created_at, postgresql), Advocate.tier),
                counted(Advocate.tier, s.status, s.reason, _committed(s), s.qualified_currency,
                        bucket))

    def _bucket(self, batch: Batch, claimed: Any) -> Any:
        edges = reward_bucket_edges(batch.now, self.oldest) if self.oldest else []
        if not edges:
            return literal(0)
        return case(*((claimed <= literal(edge, UTCDateTime()), bucket)
                      for bucket, edge in reversed(edges)), else_=0)

    def _add_tier_changed(self, conn: Connection, batch: Batch, rollup: Rollup,
                          now_day: Any) -> None:
        """Add the referrals of advocates whose tier changed: their tier when claimed, one at
        a time (rare: an advocate enrolled before the import and promoted since)."""
        s = batch.s
        rows = conn.execute(
            select(Referral.advocate_id, s.created_at, s.status, s.reason, _committed(s),
                   s.qualified_currency)
            .select_from(batch.stage.join(Referral, Referral.id == s.referral_id))
            .where(batch.where, _tier_changed(Referral.advocate_id))).all()
        if not rows:
            return
        tiers = _tiers(conn, self.program_id, {row[0] for row in rows})
        for advocate_id, created_at, status, reason, committed, currency in rows:
            move = Move(None, status, (reason,) if reason else (),
                        (batch.now - created_at).total_seconds(), committed, currency or "")
            self._add(rollup, self.days.day(created_at), tiers.at(advocate_id, created_at),
                      stats.claim_deltas(), 1)
            self._add(rollup, now_day, tiers.at(advocate_id, batch.now), stats.move_deltas(move), 1)


def _slot(column: Any, postgresql: bool) -> Any:
    """The UTC quarter hour a time falls in (seconds since 1970 // 900)."""
    if postgresql:
        return cast(func.floor(func.date_part("epoch", column) / SLOT), BigInteger)
    return cast(func.strftime("%s", column), Integer) // SLOT  # strftime: whole seconds


def _committed(s: Any) -> Any:
    return func.coalesce(s.advocate_reward, 0) + func.coalesce(s.friend_reward, 0)


def _tier_changed(advocate_id: Any) -> Any:
    return exists().where(AdvocateEvent.advocate_id == advocate_id,
                          AdvocateEvent.action == TIER_CHANGED)


def _any_tier_changed(batch: Batch) -> Any:
    """Whether any of the batch's advocates has had a tier change: once per advocate, so
    the batch's rows are not each looked up (an import's own new advocates have none)."""
    advocates = select(batch.s.advocate_external_id).where(batch.where)
    return select(exists().where(
        Advocate.program_id == batch.program_id, Advocate.external_id.in_(advocates),
        _tier_changed(Advocate.id)))


def _tiers(conn: Connection, program_id: str, advocate_ids: Sequence[str] | set[str]) -> Tiers:
    ids = list(advocate_ids)
    current = dict(conn.execute(select(Advocate.id, Advocate.tier)
                                .where(Advocate.id.in_(ids))).all())
    changes: dict[str, list[tuple[datetime, str | None, str | None]]] = {}
    for advocate_id, at, data in conn.execute(
            select(AdvocateEvent.advocate_id, AdvocateEvent.at, AdvocateEvent.data).where(
                AdvocateEvent.program_id == program_id, AdvocateEvent.advocate_id.in_(ids),
                AdvocateEvent.action == TIER_CHANGED)):
        changes.setdefault(advocate_id, []).append((at, data.get("from"), data.get("to")))
    return Tiers(current, changes)
