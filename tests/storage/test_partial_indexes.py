"""The partial indexes on referrals (models.only_set, migration 0020) still serve their queries.

Each query is the real one, captured from the function that runs it, and EXPLAINed on the
database under test (SQLite, or PostgreSQL with TEST_DATABASE_URL) after ANALYZE of a few
thousand referrals of the usual mix: a partial index serves a query only where the query's WHERE
implies ``<column> IS NOT NULL``. On PostgreSQL, where so small a table is read whole, sequential
scans are off, and the generic plan (psycopg prepares a statement run five times: no parameter
values) is checked too. The migration makes them partial and the way down full again.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session

from referflow.actions import lifecycle, lists, reviews, rewards
from referflow.actions.common import load_program
from referflow.storage.migrate import alembic_config, downgrade, upgrade
from referflow.storage.models import Advocate, Program, Referral
from tests.conftest import PROGRAM_CONFIG, SECRET_KEY, _postgres_database
from tests.test_gift_card_codes import empty_url  # noqa: F401 (a fixture: an empty database)

REVISION = "0020"
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CONFIG = {**PROGRAM_CONFIG, "caps": {"advocate_rewards_per_month": 5,
                                     "program_spend_per_month": 1_000_000}}
PAST = NOW - timedelta(days=3650)  # the jobs find nothing due: they read, and change nothing
Run = Callable[[Session, Any], object]

# (what runs the queries, the index each of its reads of referrals must use, in order)
CASES: dict[str, tuple[Run, list[str]]] = {
    "due holds": (lambda s, ctx: lifecycle.release_due_holds(s, SECRET_KEY, PAST),
                  ["ix_referrals_status_hold_until"]),
    "expired reviews": (lambda s, ctx: reviews.resolve_expired_reviews(s, SECRET_KEY, PAST),
                        ["ix_referrals_status_review_deadline"]),
    "monthly caps": (lambda s, ctx: lifecycle._cap_hit(
        s, ctx, SimpleNamespace(advocate_id="adv_0007"), 100, NOW),
        ["ix_referrals_advocate_id_approved_at", "ix_referrals_program_id_approved_at"]),
    "listReferrals by channel": (lambda s, ctx: lists.list_referrals(
        s, ctx, lists.ReferralFilters(channel="email")),
        ["ix_referrals_program_id_channel_created_at_id"]),
    "count by channel": (lambda s, ctx: lists.count_referrals(
        s, ctx, lists.ReferralFilters(channel="email")),
        ["ix_referrals_program_id_channel_created_at_id"]),
    # Filtered by status alone once: it finds a program's approved referrals by program now.
    "stranded perks": (lambda s, ctx: rewards.fulfil_stranded_perks(s, SECRET_KEY, NOW),
                       ["ix_referrals_program_id_status_created_at_id"]),
}
PARTIAL = {"ix_referrals_status_hold_until": "hold_until",
           "ix_referrals_status_review_deadline": "review_deadline",
           "ix_referrals_advocate_id_approved_at": "approved_at",
           "ix_referrals_program_id_approved_at": "approved_at",
           "ix_referrals_program_id_channel_created_at_id": "channel"}


def _reads(engine: sa.Engine, run: Run, ctx: Any) -> list[tuple[str, Any]]:
    """The statements (and parameters) with which ``run`` reads referrals."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM referrals" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        with Session(engine) as session:
            run(session, ctx)
            session.rollback()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    return seen


def _plans(conn: sa.Connection, statement: str, parameters: Any) -> list[str]:
    """EXPLAIN the statement: SQLite's plan; PostgreSQL's custom and generic plans."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return ["\n".join(str(row[-1]) for row in rows)]
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    custom = conn.exec_driver_sql("EXPLAIN " + statement, parameters).scalars().all()
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    conn.exec_driver_sql("PREPARE partial_q AS " + re.sub(r"%\((\w+)\)s", numbered, statement))
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    values = ", ".join(_literal(parameters[name]) for name in names)
    generic = conn.exec_driver_sql(f"EXPLAIN EXECUTE partial_q({values})").scalars().all()
    conn.exec_driver_sql("DEALLOCATE partial_q")
    return ["\n".join(custom), "\n".join(generic)]


def _literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    """A migrated database of two programs, 400 advocates, 5,000 referrals (a fixed mix of
    statuses; a fifth with a channel), ANALYZEd."""
    base = os.environ.get("TEST_DATABASE_URL", "")
    if base.startswith("postgres"):
        url, drop = _postgres_database(base.replace("postgresql://", "postgresql+psycopg://", 1))
    else:
        url, drop = f"sqlite:///{tmp_path_factory.mktemp('partial') / 'seeded.db'}", lambda: None
    upgrade(url)
    engine = sa.create_engine(url)
    rng = random.Random(20)
    statuses = rng.choices(["pending", "held", "in_review", "approved", "rewarded", "rejected",
                            "reversed"], [30, 15, 2, 5, 38, 6, 4], k=5000)
    with engine.begin() as conn:
        conn.execute(sa.insert(Program), [{"id": f"prg_{p}", "name": p, "config": CONFIG,
                                           "config_version": 1, "created_at": NOW} for p in "ab"])
        conn.execute(sa.insert(Advocate), [{"id": f"adv_{a:04d}", "program_id": f"prg_{'ab'[a % 2]}",
                                            "external_id": f"a{a}", "created_at": NOW}
                                           for a in range(400)])
        conn.execute(sa.insert(Referral), [_referral(i, status, rng)
                                           for i, status in enumerate(statuses)])
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    yield engine
    engine.dispose()
    drop()


def _referral(i: int, status: str, rng: random.Random) -> dict[str, Any]:
    at = NOW - timedelta(seconds=rng.randrange(365 * 86400))
    approved = status in ("approved", "rewarded", "reversed")
    return {"id": f"ref_{i:05d}", "program_id": f"prg_{'ab'[i % 400 % 2]}",
            "advocate_id": f"adv_{i % 400:04d}", "code": "CODE", "friend_external_id": f"f{i}",
            "status": status, "reasons": [], "created_at": at, "updated_at": at,
            "channel": rng.choice(["email", "sms"]) if rng.random() < 0.2 else None,
            "hold_until": at + timedelta(days=14) if status == "held" or approved else None,
            "approved_at": at + timedelta(days=14) if approved else None,
            "review_deadline": at + timedelta(hours=72) if status == "in_review" else None}


@pytest.mark.parametrize("case", list(CASES))
def test_each_query_uses_its_partial_index(seeded, case):
    run, indexes = CASES[case]
    engine = seeded
    with Session(engine) as session:
        ctx = load_program(session, "prg_b", SECRET_KEY)
        session.expunge_all()
    reads = _reads(engine, run, ctx)
    assert len(reads) == len(indexes), [statement for statement, _ in reads]
    for (statement, parameters), index in zip(reads, indexes, strict=True):
        with engine.connect() as conn:
            plans = _plans(conn, statement, parameters)
            conn.rollback()
        for plan in plans:
            assert re.search(rf"\b{index}\b", plan), f"{case}: {index} not in\n{plan}"


def _partial(conn: sa.Connection) -> dict[str, str | None]:
    """Each referrals index of PARTIAL: the column of its WHERE, or None (a full index)."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                    "AND tbl_name = 'referrals'")).all()
    else:
        rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes "
                                    "WHERE tablename = 'referrals'")).all()
    found = {name: re.search(r"WHERE \(?(\w+) IS NOT NULL\)?$", sql or "") for name, sql in rows}
    return {name: (match.group(1) if match else None)
            for name, match in found.items() if name in PARTIAL}


def test_the_models_and_the_migrations_agree():
    """The models' partial indexes are the migration's (alembic's comparison ignores WHERE)."""
    where = {index.name: str(index.dialect_options["sqlite"]["where"])
             for index in Referral.__table__.indexes if index.dialect_options["sqlite"]["where"] is not None}
    assert where == {name: f"{column} IS NOT NULL" for name, column in PARTIAL.items()}
    assert all(str(index.dialect_options["postgresql"]["where"]) == str(
        index.dialect_options["sqlite"]["where"]) for index in Referral.__table__.indexes)


def test_migration_makes_them_partial_and_the_way_down_full(empty_url):  # noqa: F811
    down = ScriptDirectory.from_config(alembic_config("")).get_revision(REVISION).down_revision
    assert isinstance(down, str)
    upgrade(empty_url, down)
    engine = sa.create_engine(empty_url)
    tables = sa.MetaData()
    tables.reflect(engine, only=["programs", "advocates", "referrals"])
    with engine.begin() as conn:  # rows with and without the columns, for the indexes to hold
        conn.execute(tables.tables["programs"].insert(), [{
            "id": "prg_old", "name": "Old", "config": {"landing_url": "https://a.test"},
            "config_version": 1, "created_at": NOW}])
        conn.execute(tables.tables["advocates"].insert(), [{
            "id": "adv_old", "program_id": "prg_old", "external_id": "a1", "created_at": NOW,
            "flagged": False}])
        conn.execute(tables.tables["referrals"].insert(), [{
            "id": f"ref_old{i}", "program_id": "prg_old", "advocate_id": "adv_old", "code": "OLD",
            "friend_external_id": f"f{i}", "status": status, "reasons": [], "channel": channel,
            "hold_until": held, "approved_at": approved, "created_at": NOW, "updated_at": NOW,
            "version": 1}
            for i, (status, channel, held, approved) in enumerate([
                ("pending", None, None, None), ("held", "email", NOW + timedelta(days=14), None),
                ("approved", None, NOW, NOW)])])
        assert set(_partial(conn).values()) == {None}
    engine.dispose()

    upgrade(empty_url, REVISION)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert _partial(conn) == PARTIAL
        assert conn.scalar(sa.text("SELECT count(*) FROM referrals WHERE status = 'held' "
                                   "AND hold_until <= :t"), {"t": NOW + timedelta(days=15)}) == 1
    engine.dispose()

    downgrade(empty_url, down)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert _partial(conn) == dict.fromkeys(PARTIAL)
        assert conn.scalar(sa.text("SELECT count(*) FROM referrals")) == 3
    engine.dispose()
    upgrade(empty_url)
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        assert _partial(conn) == PARTIAL
    engine.dispose()
