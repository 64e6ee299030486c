"""Statistics benchmark: getProgramStats over a year of a program with 1M referrals.

    python bench/stats.py                           # SQLite and PostgreSQL, 1M referrals
    python bench/stats.py --db sqlite --referrals 100000
    python bench/stats.py --keep                    # seed once, reuse the database next time

Seeds one program (100k advocates for 1M referrals: clicks with channels, tiers and their changes,
the referrals' histories, gift cards and their ledger, known customers) with bulk inserts (COPY
on PostgreSQL), builds the rollups with `rebuild` (what `referflow stats rebuild` runs), then
times getProgramStats over the last 365 days through the Flask test client, for every interval
and grouping, and prints p50 and p99 per case. Target (issue 12): p99 under 300 ms on both.
With ``--keep`` the seeded database (a SQLite file under ~/.cache/referflow-bench, a PostgreSQL
database named after the size) is kept and reused, with its program, while it is younger than a
week (the seed is dated from the day it was made; the year asked for is the last 365 days).
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import Engine, create_engine, func, select, text

from referflow.actions.stats import rebuild
from referflow.app import create_app
from referflow.config import Settings
from referflow.storage.migrate import upgrade
from referflow.storage.models import StatRollup

PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN = "bench-admin-token"
ZONE = "America/New_York"
CHANNELS = ["email", "whatsapp", "facebook", "sms", "link", None]
TIERS = [None] * 12 + ["silver"] * 5 + ["gold"] * 2 + ["platinum"]
SIGNALS = ["velocity", "same_household", "disposable_email", "self_referral"]
DAY = 86400
CONFIG = {"landing_url": "https://shop.example.test/welcome", "currency": "EUR",
          "timezone": ZONE, "hold_days": 14,
          "rewards": {"advocate": {"type": "gift_card", "amount": 2500},
                      "friend": {"type": "gift_card", "amount": 1000}},
          "tiers": [{"name": "silver", "min_approved": 3}, {"name": "gold", "min_approved": 10},
                    {"name": "platinum", "min_approved": 25}]}

COLUMNS = {
    "advocates": ("id", "program_id", "external_id", "email", "email_key", "name", "tier",
                  "flagged", "created_at"),
    "advocate_events": ("advocate_id", "program_id", "at", "action", "actor_type", "actor_id",
                        "data"),
    "clicks": ("id", "program_id", "advocate_id", "code", "channel", "created_at"),
    "referrals": ("id", "program_id", "advocate_id", "code", "click_id", "channel",
                  "friend_external_id", "friend_email", "status", "reasons",
                  "qualifying_event_id", "qualified_amount", "qualified_currency", "qualified_at",
                  "approved_at", "advocate_reward", "friend_reward", "created_at", "updated_at",
                  "version"),
    "referral_history": ("referral_id", "program_id", "at", "action", "actor_type", "from_status",
                         "to_status", "reasons", "data", "config_version"),
    "gift_cards": ("id", "program_id", "code_hash", "code_encrypted", "code_last4",
                   "referral_id", "advocate_id", "side", "amount",
                   "currency", "balance", "status", "expires_at", "created_at"),
    "gift_card_entries": ("gift_card_id", "program_id", "kind", "amount", "balance_after", "at"),
    "known_customers": ("program_id", "external_id", "source", "created_at"),
}


CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "referflow-bench"
KEEP_DAYS = 7


@contextmanager
def kept_database(kind: str, referrals: int) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Yield the URL of a kept database and what its seed recorded (None: not seeded yet)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name = f"referflow_stats_bench_{referrals}"
    marker = CACHE / f"{name}-{kind}.json"
    seeded = json.loads(marker.read_text()) if marker.exists() else None
    if seeded and time.time() - seeded["at"] > KEEP_DAYS * DAY:
        seeded = None
    if kind == "sqlite":
        path = CACHE / f"{name}.db"
        if seeded is None:
            path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = PG_BASE.rsplit("/", 1)[0] + "/" + name
        admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if seeded is None:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    if seeded is None:
        marker.unlink(missing_ok=True)
        upgrade(url)
    yield url, seeded
    if seeded is None and _SEEDED:
        marker.write_text(json.dumps({**_SEEDED.pop(), "at": time.time()}))


_SEEDED: list[dict[str, Any]] = []  # what bench_backend seeded, for kept_database's marker


@contextmanager
def database(kind: str) -> Iterator[str]:
    """Yield the URL of a fresh, migrated database (dropped afterwards)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            yield url
        return
    name = f"referflow_stats_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_BASE.rsplit("/", 1)[0] + "/" + name
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Seed:
    """Rows of one program, generated from a fixed random seed, written in bulk."""

    def __init__(self, program_id: str, referrals: int, now: datetime):
        self.pid, self.n, self.now = program_id, referrals, now
        self.rng = random.Random(12)
        self.advocates = max(1, referrals // 10)
        self.span = 400 * DAY  # a little more than the year the stats are asked for

    def ago(self, seconds: float) -> datetime:
        return self.now - timedelta(seconds=seconds)

    def tables(self) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        """Yield (table, rows) in an order the foreign keys accept."""
        yield "advocates", self._advocates()
        yield "advocate_events", self._tier_changes()
        yield "clicks", self._clicks()
        yield "referrals", self._referrals()
        yield "referral_history", self._history()
        yield "gift_cards", self._cards()
        yield "gift_card_entries", self._entries()
        yield "known_customers", ((self.pid, f"kc{i}", "import", self.ago(i * 571 % self.span))
                                  for i in range(self.n // 20))

    def _tier(self, i: int) -> str | None:
        return TIERS[i % len(TIERS)]

    def _advocates(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.advocates):
            yield (f"adv{i:08d}", self.pid, f"cus{i}", f"a{i}@mail.test", None, None,
                   self._tier(i), False, self.ago(self.span + (i * 7919) % (60 * DAY)))

    def _tier_changes(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.advocates):
            tier = self._tier(i)
            if tier is not None:
                yield (f"adv{i:08d}", self.pid, self.ago((i * 104729) % self.span),
                       "tier_changed", "system", "tiers",
                       json.dumps({"from": None, "to": tier, "approved": 3}))

    def _clicks(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.n + self.n // 5):
            yield (f"clk{i:09d}", self.pid, f"adv{i % self.advocates:08d}", "SEEDED",
                   CHANNELS[i % len(CHANNELS)], self._claimed(i) - timedelta(minutes=5))

    def _claimed(self, i: int) -> datetime:
        return self.ago((i * 2654435761) % self.span)

    def _fate(self, i: int) -> str:
        """What happened to referral i: most qualify, half are rewarded, a few are reversed.

        A review ends at its deadline (72 hours): only recent claims can still be in review.
        """
        roll = (i * 40503) % 100
        if roll < 6 and self.now - self._claimed(i) > timedelta(days=3):
            return "rejected"
        return ("rejected" if roll < 4 else "in_review" if roll < 6 else "pending" if roll < 35
                else "held" if roll < 42 else "approved" if roll < 48 else "reversed" if roll < 51
                else "rewarded")

    def _referrals(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.n):
            fate, claimed = self._fate(i), self._claimed(i)
            qualified = fate in ("held", "approved", "rewarded", "reversed")
            approved = fate in ("approved", "rewarded", "reversed")
            yield (f"ref{i:09d}", self.pid, f"adv{i % self.advocates:08d}", "SEEDED",
                   f"clk{i:09d}" if i % 5 else None, CHANNELS[i % len(CHANNELS)] if i % 5 else None,
                   f"friend{i}", f"f{i}@mail.test", fate,
                   json.dumps([{"code": SIGNALS[i % 4], "message": "seeded"}]) if fate in (
                       "rejected", "in_review") else "[]",
                   f"evt{i}" if qualified else None, 4000 + i % 9000 if qualified else None,
                   "EUR" if qualified else None, claimed + timedelta(days=2) if qualified else None,
                   claimed + timedelta(days=16) if approved else None,
                   2500 if approved else None, 1000 if approved else None, claimed, claimed, 1)

    def _history(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.n):
            fate, claimed = self._fate(i), self._claimed(i)
            ref = f"ref{i:09d}"
            first = "rejected" if fate == "rejected" else "in_review" if fate == "in_review" \
                else "pending"
            reasons = json.dumps([{"code": SIGNALS[i % 4], "message": "seeded"}]) \
                if first != "pending" else "[]"
            yield (ref, self.pid, claimed, "claimed", "api_key", None, first, reasons,
                   json.dumps({"code": "SEEDED", "rules": []}), 1)
            if fate not in ("held", "approved", "rewarded", "reversed"):
                continue
            event = {"event_id": f"evt{i}", "amount": 4000 + i % 9000, "currency": "EUR"}
            steps = [(2, "pending", "held", "qualified", {"event": event})]
            if fate != "held":
                steps.append((16, "held", "approved", "hold_released",
                              {"tier": self._tier(i % self.advocates),
                               "rewards": {"advocate": 2500, "friend": 1000}}))
            if fate in ("rewarded", "reversed"):
                steps.append((16 + (i % 20), "approved", "rewarded", "rewarded", {}))
            if fate == "reversed":
                steps.append((40, "rewarded", "reversed", "reversed",
                              {"loss_amount": 1500, "voided_amount": 2000, "currency": "EUR"}))
            for days, was, now, action, data in steps:
                at = claimed + timedelta(days=days, seconds=i % 3600)
                if at < self.now:
                    yield (ref, self.pid, at, action, "system", was, now,
                           json.dumps([{"code": "chargeback", "message": "seeded"}])
                           if now == "reversed" else "[]", json.dumps(data), 1)

    def _rewarded_at(self, i: int) -> datetime | None:
        at = self._claimed(i) + timedelta(days=16 + (i % 20), seconds=i % 3600)
        return at if self._fate(i) in ("rewarded", "reversed") and at < self.now else None

    def _cards(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.n):
            at = self._rewarded_at(i)
            if at is not None:
                # The code's columns as the API writes them, but for the encrypted copy: a
                # placeholder, since statistics never read it (nor anything this bench asks).
                yield (f"gc{i:09d}", self.pid, f"{i:064x}", "not-encrypted-bench-seed",
                       f"{i % 10_000:04d}", f"ref{i:09d}",
                       f"adv{i % self.advocates:08d}", "advocate", 2500, "EUR", 2500 - 1000 * (
                           i % 3 == 0), "active", at + timedelta(days=365), at)

    def _entries(self) -> Iterator[tuple[Any, ...]]:
        for i in range(self.n):
            at = self._rewarded_at(i)
            if at is None:
                continue
            yield (f"gc{i:09d}", self.pid, "issue", 2500, 2500, at)
            if i % 3 == 0:
                yield (f"gc{i:09d}", self.pid, "redeem", -1000, 1500, at + timedelta(days=3))


def write(engine: Engine, table: str, rows: Iterator[tuple[Any, ...]]) -> int:
    """Write rows in bulk: COPY on PostgreSQL, executemany of plain values on SQLite."""
    columns = COLUMNS[table]
    count = 0
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
            return count
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(tuple(_sqlite(v) for v in row))
            if len(batch) == 50_000:
                conn.exec_driver_sql(sql, batch)
                count, batch = count + len(batch), []
        if batch:
            conn.exec_driver_sql(sql, batch)
            count += len(batch)
    return count


def _sqlite(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite (UTCDateTime: naive UTC text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def cpu_timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run fn; return its result, wall seconds and this process's CPU seconds (the CPU time
    is what the request costs the web process, whatever else the machine is doing)."""
    cpu = time.process_time()
    result, wall = timed(fn)
    return result, wall, time.process_time() - cpu


def bench_backend(kind: str, referrals: int, runs: int, keep: bool) -> None:
    if not keep:
        with database(kind) as url:
            _bench(kind, url, None, referrals, runs)
        return
    with kept_database(kind, referrals) as (url, seeded):
        _bench(kind, url, seeded, referrals, runs)


def _bench(kind: str, url: str, seeded: dict[str, Any] | None, referrals: int,
           runs: int) -> None:
    settings = Settings(database_url=url, redis_url=None, admin_token=ADMIN,
                        secret_key="bench-secret", public_url="https://refer.example.test",
                        validate_responses=False, start_jobs=False)
    app = create_app(settings)
    client = app.test_client()
    if seeded is None:
        program_id, key = _seed(app, client, kind, url, referrals)
        _SEEDED.append({"program_id": program_id, "key": key})
    else:
        program_id, key = seeded["program_id"], seeded["key"]
        print(f"[{kind}] reusing the database seeded "
              f"{(time.time() - seeded['at']) / 3600:.1f} h ago ({url})")
    gc.collect()
    gc.freeze()  # what a web worker does once it has built the app (server.py)
    _time_cases(kind, client, key, runs)
    app.extensions["referflow"].db.dispose()


def _seed(app: Any, client: Any, kind: str, url: str, referrals: int) -> tuple[str, str]:
    """Create the program, write its rows and build its rollups; return its id and API key."""
    created = client.post("/v1/admin/programs", json={"name": "Bench", "config": CONFIG},
                          headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    program_id, key = created["program"]["id"], created["api_key"]["key"]
    engine = create_engine(url)
    seed = Seed(program_id, referrals, datetime.now(UTC))
    started, counts = time.perf_counter(), {}
    for table, rows in seed.tables():
        counts[table] = write(engine, table, rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"[{kind}] seeded in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
    with app.extensions["referflow"].db.session() as session:
        written, seconds = timed(lambda: rebuild(session, program_id))
        session.commit()
        rows = session.scalar(select(func.count()).select_from(StatRollup))
    print(f"[{kind}] rebuild: {seconds:.0f} s, {rows:,} rollup rows "
          f"({written[program_id]:,} for the program)")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return program_id, key


def _time_cases(kind: str, client: Any, key: str, runs: int) -> None:
    today = datetime.now(ZoneInfo(ZONE)).date()
    span = f"from={today - timedelta(days=364)}&to={today}"
    print(f"[{kind}] getProgramStats over a year ({span}), {runs} runs per case "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    for interval in ("day", "week", "month"):
        for group_by in ("none", "channel", "tier"):
            path = f"/v1/stats?{span}&interval={interval}&group_by={group_by}"
            times, cpus, size = [], [], 0
            for n in range(runs + 2):
                response, seconds, cpu = cpu_timed(lambda p=path: client.get(
                    p, headers={"Authorization": f"Bearer {key}"}))
                assert response.status_code == 200, response.get_data(as_text=True)[:500]
                size = len(response.data)
                if n >= 2:  # two warm-up requests
                    times.append(seconds * 1000)
                    cpus.append(cpu * 1000)
            print(f"  interval={interval:<5} group_by={group_by:<7} "
                  f"p50 {statistics.median(times):6.1f} ms  p99 {_p99(times):6.1f} ms  "
                  f"(CPU p50 {statistics.median(cpus):6.1f} ms; {size / 1024:,.0f} KiB)")


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


@click.command()
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True)
@click.option("--referrals", type=click.IntRange(1_000), default=1_000_000, show_default=True)
@click.option("--runs", type=click.IntRange(1), default=30, show_default=True,
              help="Timed requests per case (after two warm-up requests)")
@click.option("--keep", is_flag=True,
              help=f"Keep the seeded database and reuse it (for {KEEP_DAYS} days)")
def main(db: str, referrals: int, runs: int, keep: bool) -> None:
    """Time getProgramStats over a year of a program with REFERRALS referrals."""
    for kind in (["sqlite", "postgres"] if db == "both" else [db]):
        bench_backend(kind, referrals, runs, keep)


if __name__ == "__main__":
    sys.exit(main())
