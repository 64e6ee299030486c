"""The statistics rollups, kept in the transaction of every fact (domain/stats.py defines them).

Facts are seen where every use case writes them: the session's flush. ``before_flush`` turns
the new rows (clicks, referrals, history entries, gift-card entries, advocates, known
customers) into deltas, kept in ``session.info``. ``before_commit`` flushes, looks up what the
deltas still need (a channel or tier not loaded: one query at most per kind) and writes them
all with one upsert, executed for each row, that adds to the counters (``count = count +
excluded.count``): concurrent transactions never lose an increment. A click adds one more
statement: its advocate's first click is claimed in ``stat_sharers``. A rollback drops the
deltas with the transaction (a savepoint's with the savepoint). ``install()`` hooks every
session (actions/__init__.py calls it, so every process that runs a use case keeps them).

Rows written outside the ORM (bulk imports) add their own facts with ``add_facts``, or are
counted by ``referflow stats rebuild``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.util import identity_key

from referflow.domain import stats
from referflow.domain.program import ProgramConfig
from referflow.domain.stats import Delta, Move, Split
from referflow.domain.stats_periods import LocalDays
from referflow.domain.timeutil import utcnow
from referflow.storage.models import (
    Advocate,
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

KEY = "referflow.stat_facts"
SAVEPOINTS = "referflow.stat_savepoints"  # savepoint -> how many facts there were before it
ROLLUPS: Table = StatRollup.__table__  # type: ignore[assignment]
SHARERS: Table = StatSharer.__table__  # type: ignore[assignment]
ROWS_PER_STATEMENT = 5000  # rows per executemany
ZONE_SECONDS = 300.0  # a program's changed timezone counts for new facts within 5 minutes


@dataclass
class Fact:
    """Deltas of one fact, with what places them: when, and the channel and tier it counts under.

    ``referral_id``/``advocate_id`` say where to look up a channel or tier not known yet.
    """

    program_id: str
    at: datetime
    deltas: list[Delta]
    channel: str | None = None
    tier: str | None = None
    channel_known: bool = True
    tier_known: bool = True
    referral_id: str | None = None
    advocate_id: str | None = None
    first_click: bool = False


Key = tuple[str, str, date, str, str, str]  # program, split, day, segment, metric, currency
Cell = tuple[str, date, str, str, str, str]  # program, day, channel, tier, metric, currency


@dataclass
class Rollup:
    """Deltas added up per day, channel, tier, metric and currency, ready to write."""

    cells: dict[Cell, list[int]] = field(default_factory=dict)

    def add(self, program_id: str, day: date, channel: str | None, tier: str | None,
            delta: Delta) -> None:
        """Add one delta."""
        key = (program_id, day, (channel or "")[:40], (tier or "")[:40], delta.metric,
               delta.currency)
        slot = self.cells.get(key)
        if slot is None:
            self.cells[key] = [delta.count, delta.amount]
        else:
            slot[0] += delta.count
            slot[1] += delta.amount

    def rows(self) -> dict[Key, list[int]]:
        """Return the rollup rows: every cell once per split."""
        out: dict[Key, list[int]] = {}
        for (program_id, day, channel, tier, metric, currency), (count, amount) in \
                self.cells.items():
            for split, segment in ((Split.TOTAL, ""), (Split.CHANNEL, channel),
                                   (Split.TIER, tier)):
                key = (program_id, str(split), day, segment, metric, currency)
                slot = out.get(key)
                if slot is None:
                    out[key] = [count, amount]
                else:
                    slot[0] += count
                    slot[1] += amount
        return out


def write(connection: Connection, rollup: Rollup) -> int:
    """Add the rows to the rollups, in key order (so concurrent writers cannot deadlock).

    One statement, executed for each row: ``count = count + excluded.count`` adds atomically.
    Returns the number of rows.
    """
    rows = sorted(rollup.rows().items())
    if not rows:
        return 0
    statement = _upsert(connection.dialect.name)
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        connection.execute(statement, [
            {"program_id": k[0], "split": k[1], "day": k[2], "segment": k[3], "metric": k[4],
             "currency": k[5], "count": v[0], "amount": v[1]}
            for k, v in rows[start:start + ROWS_PER_STATEMENT]])
    return len(rows)


def _insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(ROLLUPS)


_UPSERTS: dict[str, Any] = {}


def _upsert(dialect_name: str) -> Any:
    """The adding upsert, built once per dialect (every commit of a fact runs it)."""
    statement = _UPSERTS.get(dialect_name)
    if statement is None:
        insert = (postgresql if dialect_name == "postgresql" else sqlite).insert(ROLLUPS)
        statement = _UPSERTS[dialect_name] = insert.on_conflict_do_update(
            index_elements=list(ROLLUPS.primary_key.columns),
            set_={"count": ROLLUPS.c.count + insert.excluded.count,
                  "amount": ROLLUPS.c.amount + insert.excluded.amount})
    return statement


def claim_sharers(connection: Connection, firsts: Sequence[tuple[str, str, date]]) -> set[str]:
    """Record advocates' first clicks; return the advocates not recorded before (atomic)."""
    if not firsts:
        return set()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(SHARERS).values(
        [{"program_id": p, "advocate_id": a, "day": d} for p, a, d in sorted(firsts)])
    return set(connection.execute(
        statement.on_conflict_do_nothing().returning(SHARERS.c.advocate_id)).scalars())


# -- facts, from the rows a flush writes -------------------------------------------------------


class Held:
    """The objects a flush can see without SQL: the session's identity map and its new rows."""

    def __init__(self, session: Session):
        self.session = session
        self.new = {(type(o), getattr(o, "id", None)): o for o in session.new}

    def get(self, cls: type[Any], ident: str | None) -> Any:
        """Return the object of that class and id if the session holds it, else None."""
        if ident is None:
            return None
        found = self.session.identity_map.get(identity_key(cls, ident))
        return found if found is not None else self.new.get((cls, ident))

    def load(self, cls: type[Any], ident: str) -> Any:
        """Return the object, read from the database when the session does not hold it."""
        found = self.get(cls, ident)
        if found is None:
            with self.session.no_autoflush:
                found = self.session.get(cls, ident)
        assert found is not None
        return found


def _at(obj: Any, name: str) -> datetime:
    """Return a row's time, setting it now when the column default would (rollup = row)."""
    value: datetime | None = getattr(obj, name)
    if value is None:
        value = utcnow()
        setattr(obj, name, value)
    return value


def _advocate(held: Held, fact: Fact, advocate_id: str | None) -> Fact:
    """Place a fact under its advocate's tier now, or look it up at commit when not loaded."""
    advocate = held.get(Advocate, advocate_id)
    return replace(fact, advocate_id=advocate_id, tier=advocate.tier if advocate else None,
                   tier_known=advocate is not None)


def _of_referral(held: Held, fact: Fact, referral_id: str) -> Fact:
    """Place a fact under its referral's channel and its advocate's tier (looked up if unloaded)."""
    referral = held.get(Referral, referral_id)
    if referral is None:
        return replace(fact, channel_known=False, tier_known=False, referral_id=referral_id)
    return _advocate(held, replace(fact, channel=referral.channel), referral.advocate_id)


def _click(held: Held, click: Click) -> list[Fact]:
    fact = Fact(click.program_id, _at(click, "created_at"), [Delta(stats.Metric.CLICKS)],
                channel=click.channel, first_click=True)
    return [_advocate(held, fact, click.advocate_id)]


def _referral(held: Held, referral: Referral) -> list[Fact]:
    fact = Fact(referral.program_id, referral.created_at, stats.claim_deltas())
    return [_of_referral(held, fact, referral.id)]


def _history(held: Held, entry: ReferralHistory) -> list[Fact]:
    referral = held.load(Referral, entry.referral_id)
    at, data = _at(entry, "at"), entry.data or {}
    move = history_move(entry.from_status, entry.to_status, entry.reasons, data, at,
                        referral.created_at, referral.advocate_reward, referral.friend_reward,
                        referral.qualified_currency)
    deltas = stats.move_deltas(move)
    if stats.is_qualifying(data, referral.qualifying_event_id):
        deltas += stats.qualified_deltas(referral.qualified_amount, referral.qualified_currency)
    if not deltas:
        return []
    fact = _of_referral(held, Fact(entry.program_id, at, deltas), referral.id)
    recorded, tier = stats.recorded_tier(entry.to_status, entry.from_status, data)
    return [replace(fact, tier=tier, tier_known=True) if recorded else fact]


def history_move(from_status: str | None, to_status: str | None, reasons: Any, data: Any,
                 at: datetime, claimed_at: datetime, advocate_reward: int | None,
                 friend_reward: int | None, currency: str | None) -> Move:
    """Return a history entry as the statistics see it (the live hooks and the rebuild)."""
    data = data if isinstance(data, dict) else {}
    codes = tuple(str(r["code"]) for r in reasons or () if isinstance(r, dict) and r.get("code"))
    loss = data.get("loss_amount")
    return Move(from_status, to_status, codes, (at - claimed_at).total_seconds(),
                committed=(advocate_reward or 0) + (friend_reward or 0), currency=currency or "",
                loss=loss if isinstance(loss, int) else 0,
                loss_currency=str(data.get("currency") or ""))


def _card_entry(held: Held, entry: GiftCardEntry) -> list[Fact]:
    """A ledger entry's facts on its day, and what it moves on the card's expiry day
    (domain/stats.py, expiry_deltas: the balance that will expire), placed as the entry is."""
    card = held.load(GiftCard, entry.gift_card_id)
    placed = [(_at(entry, "at"), stats.card_deltas(entry.kind, entry.amount, card.currency)),
              (card.expires_at, stats.expiry_deltas(entry.kind, entry.amount, card.currency))]
    facts = []
    for at, deltas in placed:
        if not deltas:
            continue
        fact = Fact(entry.program_id, at, deltas)
        facts.append(_of_referral(held, fact, card.referral_id) if card.referral_id is not None
                     else _advocate(held, fact, card.advocate_id))  # a goodwill card: no channel
    return facts


def _new_advocate(held: Held, advocate: Advocate) -> list[Fact]:
    return [Fact(advocate.program_id, _at(advocate, "created_at"),
                 [Delta(stats.Metric.ADVOCATES)], tier=advocate.tier)]


def _known_customer(held: Held, customer: KnownCustomer) -> list[Fact]:
    return [Fact(customer.program_id, _at(customer, "created_at"),
                 [Delta(stats.Metric.KNOWN_CUSTOMERS)])]


NEW_ROWS: dict[type[Any], Callable[[Held, Any], list[Fact]]] = {
    Click: _click, Referral: _referral, ReferralHistory: _history,
    GiftCardEntry: _card_entry, Advocate: _new_advocate, KnownCustomer: _known_customer,
}


def _before_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    facts: list[Fact] = session.info.setdefault(KEY, [])
    held = Held(session)
    for obj in list(session.new):
        handler = NEW_ROWS.get(type(obj))
        if handler is not None:
            facts.extend(handler(held, obj))


# -- writing them, once per transaction --------------------------------------------------------


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: written with the transaction, last
        return
    session.flush()
    facts: list[Fact] = session.info.pop(KEY, None) or []
    if facts:
        add_facts(session.connection(), _resolved(session, facts), _zones(session, facts))


def _mark(session: Session, transaction: Any) -> None:
    if transaction.nested:  # a savepoint: its facts go if it is rolled back
        session.info.setdefault(SAVEPOINTS, {})[id(transaction)] = len(session.info.get(KEY, []))


def _undo(session: Session, transaction: Any) -> None:
    mark = session.info.get(SAVEPOINTS, {}).pop(id(transaction), None)
    if transaction.nested and mark is not None and KEY in session.info:
        del session.info[KEY][mark:]


def _forget(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the transaction is over: committed (written) or rolled back
        session.info.pop(KEY, None)
        session.info.pop(SAVEPOINTS, None)


def _resolved(session: Session, facts: list[Fact]) -> list[Fact]:
    """Fill in the channels and tiers not loaded in the session: one query per kind at most."""
    referral_ids = {f.referral_id for f in facts if f.referral_id and not
                    (f.channel_known and f.tier_known)}
    by_referral: dict[str, tuple[str | None, str | None]] = {}
    if referral_ids:
        by_referral = {r: (c, t) for r, c, t in session.execute(
            select(Referral.id, Referral.channel, Advocate.tier)
            .join(Advocate, Advocate.id == Referral.advocate_id)
            .where(Referral.id.in_(referral_ids)))}
    advocate_ids = {f.advocate_id for f in facts if f.advocate_id and not f.tier_known
                    and f.referral_id is None}
    tiers: dict[str, str | None] = {}
    if advocate_ids:
        tiers = {a: t for a, t in session.execute(
            select(Advocate.id, Advocate.tier).where(Advocate.id.in_(advocate_ids)))}
    out = []
    for fact in facts:
        if fact.referral_id in by_referral:
            channel, tier = by_referral[fact.referral_id]
            fact = replace(fact, channel=fact.channel if fact.channel_known else channel,
                           tier=fact.tier if fact.tier_known else tier)
        elif not fact.tier_known:
            fact = replace(fact, tier=tiers.get(fact.advocate_id or ""))
        out.append(fact)
    return out


_ZONES: dict[str, tuple[float, str]] = {}


def _zones(session: Session, facts: list[Fact]) -> dict[str, str]:
    """Return each program's timezone (from the session, else remembered for 5 minutes)."""
    out, now = {}, time.monotonic()
    for program_id in {f.program_id for f in facts}:
        program = Held(session).get(Program, program_id)
        remembered = _ZONES.get(program_id)
        if program is None and remembered is not None and now - remembered[0] < ZONE_SECONDS:
            out[program_id] = remembered[1]
            continue
        if program is None:
            program = session.get(Program, program_id)
        zone = ProgramConfig.from_dict(program.config).timezone if program else "UTC"
        _ZONES[program_id] = (now, zone)
        out[program_id] = zone
    return out


def add_facts(connection: Connection, facts: Iterable[Fact], zones: dict[str, str]) -> None:
    """Add facts to the rollups (first clicks claimed first) in the connection's transaction."""
    days = {program_id: LocalDays(zone) for program_id, zone in zones.items()}
    facts = list(facts)
    firsts: dict[tuple[str, str], Fact] = {}
    for fact in facts:
        if fact.first_click and fact.advocate_id:
            known = firsts.get((fact.program_id, fact.advocate_id))
            if known is None or fact.at < known.at:
                firsts[(fact.program_id, fact.advocate_id)] = fact
    new = claim_sharers(connection, [(p, a, days[p].day(f.at)) for (p, a), f in firsts.items()])
    rollup = Rollup()
    for fact in facts:
        for delta in fact.deltas:
            rollup.add(fact.program_id, days[fact.program_id].day(fact.at), fact.channel,
                       fact.tier, delta)
    for (program_id, advocate_id), fact in firsts.items():
        if advocate_id in new:
            rollup.add(program_id, days[program_id].day(fact.at), fact.channel, fact.tier,
                       Delta(stats.Metric.SHARING))
    write(connection, rollup)


def install() -> None:
    """Keep the rollups in every session's transactions (idempotent)."""
    for name, hook in (("before_flush", _before_flush), ("before_commit", _before_commit),
                       ("after_transaction_create", _mark), ("after_soft_rollback", _undo),
                       ("after_transaction_end", _forget)):
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)


# -- erasures ----------------------------------------------------------------------------------


def remove_known_customers(session: Session, program_id: str,
                           created: Sequence[datetime]) -> None:
    """Take deleted known customers (their creation times) out of the rollups, in the session's
    transaction: a bulk delete passes by the flush hooks (an erasure, actions/privacy.py)."""
    facts = [Fact(program_id, at, [Delta(stats.Metric.KNOWN_CUSTOMERS, count=-1)])
             for at in created]
    if facts:
        add_facts(session.connection(), facts, _zones(session, facts))
