"""Program statistics (getProgramStats): read from the rollups, never from a scan of referrals.

``program_stats`` reads the rows of the asked range (and the cumulative figures before it) and
hands them to domain/stats_figures.py; ``stats_csv`` renders the answer as CSV; ``rebuild`` recomputes
a program's rollups from the source tables (``referflow stats rebuild``, the migration).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, delete, func, or_, select
from sqlalchemy.orm import Session

from referflow.actions.common import ProgramContext
from referflow.actions.rollups import Rollup, claim_sharers, history_move, write
from referflow.domain import stats
from referflow.domain.program import ProgramConfig
from referflow.domain.referral import IN_REVIEW
from referflow.domain.stats import Delta, Metric, Tiers, local_day
from referflow.domain.stats_figures import BaseRow, Row, summarise
from referflow.domain.stats_periods import (
    InvalidStatsQuery,
    LocalDays,
    StatsQuery,
    period_origin,
)
from referflow.domain.timeutil import to_rfc3339, utcnow
from referflow.errors import BadRequest
from referflow.storage.models import (
    Advocate,
    AdvocateEvent,
    Click,
    GiftCard,
    GiftCardEntry,
    KnownCustomer,
    Program,
    Referral,
    ReferralHistory,
    StatRollup,
    StatSharer,
)

R = StatRollup.__table__.c  # Core columns: 100k rows are read without the ORM's loading


def parse_query(ctx: ProgramContext, args: Mapping[str, str]) -> StatsQuery:
    """Read getProgramStats' parameters (dates are the program's calendar), or raise 400."""
    try:
        return StatsQuery.parse(args, local_day(utcnow(), ctx.config.timezone))
    except InvalidStatsQuery as exc:
        raise BadRequest(f"{exc.field}: {exc}", code="invalid_query",
                         errors=[{"path": exc.field, "message": str(exc)}]) from exc


def program_stats(session: Session, ctx: ProgramContext, query: StatsQuery) -> dict[str, Any]:
    """Return the program's figures for the query's range, per period and in total."""
    total = _rows(session, ctx.id, stats.Split.TOTAL, query)
    grouped = None if query.split == stats.Split.TOTAL else _rows(session, ctx.id, query.split,
                                                                   query)
    # A CSV has a row for every group and period; JSON lists a group's periods with facts only.
    answer = summarise(query, total, grouped, ctx.config.currency,
                       sparse=query.format == "json")
    return {"program_id": ctx.id, "timezone": ctx.config.timezone, "currency": ctx.config.currency,
            "from": query.first.isoformat(), "to": query.last.isoformat(),
            "interval": query.interval, "group_by": query.group_by, **answer,
            "review_queue": review_queue(session, ctx)}


def _rows(session: Session, pid: str, split: str,
          query: StatsQuery) -> tuple[Iterable[Row], list[BaseRow]]:
    """Read one split's rows of the range, per period (added up in SQL), and the cumulative
    figures before it."""
    number = _period_number(session, query)
    in_range = (R.program_id == pid, R.split == split, R.day >= query.first, R.day <= query.last)
    # Rows are read as they are summed up, never all held (nor a few thousand at a time): the
    # garbage collector would pass over 100k of them again and again (a year by day and by
    # channel). Rows that add nothing (an erasure's zero) are left out.
    if query.interval == "day":  # one row per day already
        rows = _tuples(session, select(R.segment, number, R.metric, R.currency, R.count,
                                       R.amount).where(*in_range, _nonzero(R.count, R.amount)))
    else:
        count, amount = _sum(R.count), _sum(R.amount)
        rows = _tuples(session,
                       select(R.segment, number, R.metric, R.currency, count, amount)
                       .where(*in_range).group_by(R.segment, number, R.metric, R.currency)
                       .having(_nonzero(count, amount)))
    before = session.execute(
        select(R.segment, R.metric, R.currency, _sum(R.count), _sum(R.amount))
        .where(R.program_id == pid, R.split == split, R.day < query.first,
               R.metric.in_([str(m) for m in stats.CUMULATIVE]))
        .group_by(R.segment, R.metric, R.currency)).all()
    return rows, before  # type: ignore[return-value]  # Rows unpack as these tuples


def _tuples(session: Session, statement: Any) -> Iterator[Row]:
    """The statement's rows as the driver's own tuples: strings and integers, which need no
    conversion, so SQLAlchemy's rows are not built (a third of the reading time of 45k rows)."""
    result = session.execute(statement)
    try:
        yield from result.cursor  # type: ignore[attr-defined]  # CursorResult: the DBAPI cursor
    finally:
        result.close()


def _nonzero(count: Any, amount: Any) -> Any:
    return or_(count != 0, amount != 0)


def _sum(column: Any) -> Any:
    return func.sum(column).cast(BigInteger)


def _period_number(session: Session, query: StatsQuery) -> Any:
    """The SQL of domain/stats_periods.py's period_number, for the rollups' day column."""
    origin = period_origin(query.first, query.interval)
    if session.get_bind().dialect.name == "postgresql":
        days = R.day - origin
        year, month = (func.extract(part, R.day).cast(Integer) for part in ("year", "month"))
    else:
        days = (func.julianday(R.day) - func.julianday(origin.isoformat())).cast(Integer)
        year, month = (func.strftime(part, R.day).cast(Integer) for part in ("%Y", "%m"))
    if query.interval == "month":
        return ((year - origin.year) * 12 + month - origin.month).label("period")
    return (days // 7 if query.interval == "week" else days).label("period")


def review_queue(session: Session, ctx: ProgramContext) -> dict[str, Any]:
    """Return the review queue now: its size, the wait of its oldest referral, the next deadline."""
    size, oldest, deadline = session.execute(
        select(func.count(), func.min(Referral.created_at), func.min(Referral.review_deadline))
        .where(Referral.program_id == ctx.id, Referral.status == IN_REVIEW)).one()
    return {"size": size,
            "oldest_age_seconds": max(0, int((utcnow() - oldest).total_seconds()))
            if oldest else None,
            "next_deadline": to_rfc3339(deadline)}


# -- CSV -----------------------------------------------------------------------------------------

COUNTS = ("clicks", "claims", "qualified", "approved", "rewarded", "reversed", "rejected",
          "in_review")
MONEY = ("committed", "issued", "redeemed", "voided", "expired", "outstanding",
         "loss_after_reversal", "cac")
ALL, NONE = "(all)", "(none)"


def stats_csv(result: dict[str, Any]) -> str:
    """Render a getProgramStats answer as CSV: a row per period and group, totals first."""
    lines = list(_lines(result))
    currencies = _keys(lines, "revenue", first=result["currency"])
    signals, reasons = _keys(lines, "signals"), _keys(lines, "reasons")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["group", "period", "start", "end", *COUNTS,
                     *(name for name in lines[0][3]["conversion"]),
                     *(name for name in lines[0][3]["participation"]),
                     "claim_to_reward_count", "claim_to_reward_p50_seconds",
                     "claim_to_reward_p90_seconds",
                     *(f"{what}_{cur}" for cur in currencies for what in ("revenue", *MONEY)),
                     *(f"signal_{code}" for code in signals),
                     *(f"reason_{code}" for code in reasons)])
    for group, period, (start, end), figures in lines:
        delay = figures["claim_to_reward"]
        writer.writerow([
            group, period, start, end, *(figures["funnel"][name] for name in COUNTS),
            *(_cell(v) for v in figures["conversion"].values()),
            *figures["participation"].values(),
            delay["count"], _cell(delay["p50_seconds"]), _cell(delay["p90_seconds"]),
            *(_cell(_money(figures, cur, what)) for cur in currencies
              for what in ("revenue", *MONEY)),
            *(figures["signals"].get(code, 0) for code in signals),
            *(figures["reasons"].get(code, 0) for code in reasons)])
    return buffer.getvalue()


def _lines(result: dict[str, Any]) -> Iterator[tuple[str, str, tuple[str, str], dict[str, Any]]]:
    series = [(ALL, result)] + [(NONE if g["key"] is None else g["key"], g)
                                for g in result.get("groups", [])]
    for group, part in series:
        yield group, "total", (result["from"], result["to"]), part["totals"]
        for bucket in part["buckets"]:
            yield group, bucket["key"], (bucket["start"], bucket["end"]), bucket


def _keys(lines: list[Any], name: str, first: str | None = None) -> list[str]:
    found = {key for *_, figures in lines for key in figures[name]}
    if name == "revenue":
        found |= {key for *_, figures in lines for key in figures["rewards"]}
    rest = sorted(found - {first}) if first else sorted(found)
    return [first, *rest] if first else rest


def _money(figures: dict[str, Any], currency: str, what: str) -> int | None:
    if what == "revenue":
        return int(figures["revenue"].get(currency, 0))
    block = figures["rewards"].get(currency)
    return 0 if block is None else block[what]


def _cell(value: Any) -> Any:
    return "" if value is None else value


# -- rebuild ---------------------------------------------------------------------------------------


def rebuild(session: Session, program_id: str | None = None) -> dict[str, int]:
    """Recompute the rollups of one program (or all) from the source tables; not committed.

    Reads explicit columns only, so the migration that creates the rollups can run it too.
    Returns the number of rollup rows written per program.
    """
    conn = session.connection()
    query = select(Program.id, Program.config)
    if program_id is not None:
        query = query.where(Program.id == program_id)
    written = {}
    for pid, config in conn.execute(query.order_by(Program.id)).all():
        conn.execute(delete(StatRollup).where(StatRollup.program_id == pid))
        conn.execute(delete(StatSharer).where(StatSharer.program_id == pid))
        rollup = _recount(conn, pid, LocalDays(ProgramConfig.from_dict(config).timezone))
        written[pid] = write(conn, rollup)
    return written


def _recount(conn: Connection, pid: str, days: LocalDays) -> Rollup:
    tiers = _tiers(conn, pid)
    rollup = Rollup()

    def add(at: datetime, channel: str | None, tier: str | None, deltas: list[Delta]) -> None:
        day = days.day(at)
        for delta in deltas:
            rollup.add(pid, day, channel, tier, delta)

    for advocate_id, at in conn.execute(select(Advocate.id, Advocate.created_at).where(
            Advocate.program_id == pid)):
        add(at, None, tiers.at(advocate_id, at), [Delta(Metric.ADVOCATES)])
    for (at,) in conn.execute(select(KnownCustomer.created_at).where(
            KnownCustomer.program_id == pid)):
        add(at, None, None, [Delta(Metric.KNOWN_CUSTOMERS)])
    _recount_clicks(conn, pid, days, tiers, add)
    _recount_referrals(conn, pid, tiers, add)
    _recount_cards(conn, pid, tiers, add)
    return rollup


def _tiers(conn: Connection, pid: str) -> Tiers:
    current = dict(conn.execute(select(Advocate.id, Advocate.tier).where(
        Advocate.program_id == pid)).all())
    changes: dict[str, list[tuple[datetime, str | None, str | None]]] = {}
    for advocate_id, at, data in conn.execute(
            select(AdvocateEvent.advocate_id, AdvocateEvent.at, AdvocateEvent.data).where(
                AdvocateEvent.program_id == pid, AdvocateEvent.action == "tier_changed")):
        changes.setdefault(advocate_id, []).append((at, data.get("from"), data.get("to")))
    return Tiers(current, changes)


Add = Callable[[datetime, str | None, str | None, list[Delta]], None]  # _recount's add()


def _recount_clicks(conn: Connection, pid: str, days: LocalDays, tiers: Tiers, add: Add) -> None:
    first: dict[str, tuple[datetime, str | None]] = {}
    for advocate_id, channel, at in _stream(conn, select(
            Click.advocate_id, Click.channel, Click.created_at).where(Click.program_id == pid)):
        add(at, channel, tiers.at(advocate_id, at), [Delta(Metric.CLICKS)])
        if advocate_id not in first or at < first[advocate_id][0]:
            first[advocate_id] = (at, channel)
    for advocate_id, (at, channel) in first.items():
        add(at, channel, tiers.at(advocate_id, at), [Delta(Metric.SHARING)])
    items = [(pid, advocate_id, days.day(at)) for advocate_id, (at, _) in first.items()]
    for start in range(0, len(items), 1000):
        claim_sharers(conn, items[start:start + 1000])


def _recount_referrals(conn: Connection, pid: str, tiers: Tiers, add: Add) -> None:
    r, h = Referral, ReferralHistory
    for advocate_id, channel, at in _stream(conn, select(
            r.advocate_id, r.channel, r.created_at).where(r.program_id == pid)):
        add(at, channel, tiers.at(advocate_id, at), stats.claim_deltas())
    query = (select(h.at, h.from_status, h.to_status, h.reasons, h.data[("event", "event_id")]
                    .as_string(), h.data["tier"].as_string(), h.data["loss_amount"].as_integer(),
                    h.data["currency"].as_string(), r.advocate_id, r.channel, r.created_at,
                    r.advocate_reward, r.friend_reward, r.qualifying_event_id, r.qualified_amount,
                    r.qualified_currency)
             .join(r, r.id == h.referral_id).where(h.program_id == pid))
    for (at, was, now, reasons, event_id, tier, loss, currency, advocate_id, channel, claimed_at,
         advocate_reward, friend_reward, qualifying, amount, qualified_currency) in _stream(conn, query):
        data = {"tier": tier, "loss_amount": loss, "currency": currency,
                "event": {"event_id": event_id}}
        recorded, recorded_tier = stats.recorded_tier(now, was, data)
        tier_then = recorded_tier if recorded else tiers.at(advocate_id, at)
        move = history_move(was, now, reasons, data, at, claimed_at, advocate_reward,
                            friend_reward, qualified_currency)
        deltas = stats.move_deltas(move)
        if stats.is_qualifying(data, qualifying):
            deltas += stats.qualified_deltas(amount, qualified_currency)
        add(at, channel, tier_then, deltas)


def recount_card_expiry(session: Session) -> None:
    """Recompute the rollups' expiring gift-card balances of every program; not committed.

    What migration 0017 runs on rollups built before they were kept: the card ledger alone is
    read again, not the whole of a program.
    """
    conn = session.connection()
    for pid, config in conn.execute(select(Program.id, Program.config).order_by(Program.id)):
        conn.execute(delete(StatRollup).where(StatRollup.program_id == pid,
                                              StatRollup.metric == str(Metric.EXPIRING)))
        days, rollup = LocalDays(ProgramConfig.from_dict(config).timezone), Rollup()

        def add(at: datetime, channel: str | None, tier: str | None, deltas: list[Delta],
                pid: str = pid, days: LocalDays = days, rollup: Rollup = rollup) -> None:
            for delta in deltas:
                rollup.add(pid, days.day(at), channel, tier, delta)

        _recount_cards(conn, pid, _tiers(conn, pid), add, ledger=False)
        write(conn, rollup)


def _recount_cards(conn: Connection, pid: str, tiers: Tiers, add: Add,
                   ledger: bool = True) -> None:
    e, c, r = GiftCardEntry, GiftCard, Referral
    query = (select(e.at, e.kind, e.amount, c.currency, c.expires_at, c.advocate_id,
                    r.advocate_id, r.channel)
             .join(c, c.id == e.gift_card_id).outerjoin(r, r.id == c.referral_id)
             .where(e.program_id == pid))
    for at, kind, amount, currency, expires_at, card_owner, referrer, channel in _stream(
            conn, query):
        tier = tiers.at(referrer or card_owner, at)
        if ledger:
            add(at, channel, tier, stats.card_deltas(kind, amount, currency))
        add(expires_at, channel, tier, stats.expiry_deltas(kind, amount, currency))


def _stream(conn: Connection, query: Any) -> Iterator[Any]:
    """Yield rows in batches, through a server-side cursor where there is one."""
    yield from conn.execute(query, execution_options={"stream_results": True, "yield_per": 5000})

