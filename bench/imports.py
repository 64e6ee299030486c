"""Bulk import benchmark: `referflow customers import` and `referflow import referrals` at 1M rows.

    python bench/imports.py                                   # both imports, both databases, 1M
    python bench/imports.py --db sqlite --kind customers --rows 100000

Writes a customers CSV (external_id, email) and a referrals CSV (one advocate per five rows,
every imported status, half the advocates with a code of their own) from a fixed random seed,
then runs each import into a fresh program of a fresh database the way the CLI does (check the
whole file, then write it in batches, the statistics added with each batch), and again with the
same file (idempotent: nothing new). Prints wall and CPU seconds per phase: this process's, and
on PostgreSQL the server backend's (read from /proc), since the machine may be busy. Then checks
that the statistics the import added equal a full `stats rebuild` and prints how long that takes.
Target (issue 15): 1M rows in under 60 s.
"""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import event, select

from referflow.actions.backfill import ReferralImport
from referflow.actions.bulk import BulkImport, csv_records
from referflow.actions.common import load_program
from referflow.actions.customers import CustomerImport
from referflow.actions.stats import rebuild
from referflow.app import create_app
from referflow.config import Settings
from referflow.storage.models import StatRollup
from stats import database  # bench/stats.py: a fresh, migrated database

ADMIN = "bench-admin-token"
SECRET = "bench-secret"
CONFIG = {"landing_url": "https://shop.example.test/welcome", "currency": "EUR",
          "timezone": "Europe/Berlin", "hold_days": 14,
          "rewards": {"advocate": {"type": "gift_card", "amount": 2500},
                      "friend": {"type": "gift_card", "amount": 1000}}}
FATES = ["claimed"] * 6 + ["qualified"] * 4 + ["approved"] * 3 + ["rewarded"] * 5 + [
    "rejected", "reversed"]
HEADER = ["advocate_external_id", "advocate_email", "advocate_name", "code", "friend_external_id",
          "friend_email", "status", "created_at", "qualified_amount", "currency",
          "qualifying_event_id", "advocate_reward", "friend_reward", "reason"]


def customers_file(path: Path, rows: int) -> None:
    """Write ROWS customers: one in five without an id, another in five without an email."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "email", "first_name"])
        for i in range(rows):
            writer.writerow([f"cus_{i:08d}" if i % 5 != 1 else "",
                             f"Customer.{i}@Example.test" if i % 5 != 2 else "", "Kim"])


def referrals_file(path: Path, rows: int, advocates: int) -> None:
    """Write ROWS referrals of ADVOCATES advocates over the last year."""
    rng, now = random.Random(15), datetime.now(UTC) - timedelta(hours=1)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            a = i % advocates
            fate = rng.choice(FATES)
            at = now - timedelta(seconds=rng.randrange(365 * 86400))
            qualified = fate not in ("claimed", "rejected")
            approved = fate in ("approved", "rewarded", "reversed")
            writer.writerow([
                f"adv_{a:07d}", f"advocate.{a}@example.test", f"Advocate {a}",
                f"OLD{a:07d}" if a % 2 else "", f"friend_{i:08d}",
                f"friend.{i}@example.test" if i % 4 else "", fate,
                at.isoformat(timespec="seconds"), 4000 + i % 5000 if qualified else "",
                "EUR" if qualified else "", f"order_{i}" if qualified else "",
                2500 if approved else "", 1000 if approved else "",
                {"rejected": "self_referral", "reversed": "chargeback"}.get(fate, "")])


class Clock:
    """Wall and CPU seconds of phases: this process's, and a PostgreSQL backend's."""

    def __init__(self, job: BulkImport):
        self.backend: int | None = None
        if job.conn.dialect.name == "postgresql":
            self.backend = job.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            job.conn.commit()
        self.figures: list[str] = []

    def _server(self) -> float:
        if self.backend is None:
            return 0.0
        try:  # utime and stime, in clock ticks (proc(5)); the server runs on this machine
            fields = Path(f"/proc/{self.backend}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def phase(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one phase; remember its figures."""
        wall, cpu, server = time.perf_counter(), time.process_time(), self._server()
        result = fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = self._server() - server
        self.figures.append(f"{name} {wall:.1f} s (CPU {cpu:.1f}"
                            + (f" + server {server:.1f}" if self.backend else "") + ")")
        return result


class Statements:
    """Wall seconds the database spent on each kind of statement (its first words), and on the
    commits: where a write phase goes, and how much of it the bare row inserts are."""

    def __init__(self, job: BulkImport):
        self.seconds: Counter[str] = Counter()
        self._started = 0.0
        event.listen(job.conn, "before_cursor_execute", self._before)
        event.listen(job.conn, "after_cursor_execute", self._after)
        commit = job.conn.commit

        def timed_commit() -> None:  # the import's own commits, one a batch
            started = time.perf_counter()
            commit()
            self.seconds["COMMIT"] += time.perf_counter() - started

        job.conn.commit = timed_commit  # type: ignore[method-assign]

    def _before(self, *_args: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = " ".join(statement.split()[:3]).split("(")[0]
        self.seconds[words] += time.perf_counter() - self._started

    def top(self, count: int = 6) -> str:
        """The statements that took longest."""
        return "; ".join(f"{name} {seconds:.1f} s" for name, seconds
                         in self.seconds.most_common(count))


def run(job: CustomerImport | ReferralImport, path: Path, label: str) -> None:
    """Run one import as the CLI does, printing its phases."""
    clock = Clock(job)
    started = time.perf_counter()
    with path.open(encoding="utf-8-sig", newline="") as stream:
        _, records = csv_records(stream)
        report = clock.phase("check", lambda: job.check(records, _ignore))
    assert not report.problems, report.problems.listed[:5]
    statements = Statements(job)
    clock.phase("write+stats", lambda: job.write(_ignore))
    total = time.perf_counter() - started
    print(f"  {label}: {total:.1f} s wall; " + ", ".join(clock.figures)
          + f"; read {report.read:,}, added {report.added:,}"
          + (f", repeated {report.repeated:,}" if report.repeated else "")
          + "".join(f", {name} {count:,}" for name, count in report.extra.items())
          + f" (load average {os.getloadavg()[0]:.1f})")
    print(f"    write phase, statements (wall): {statements.top()}")


def _ignore(_units: int) -> None:
    pass


def check_stats(app: Any, program_id: str) -> None:
    """Compare the rollups the imports added with a full rebuild; print the rebuild's time."""
    db = app.extensions["referflow"].db
    with db.session() as session:
        before = _rollups(session)
        started = time.perf_counter()
        rebuild(session, program_id)
        session.commit()
        after = _rollups(session)
    verdict = "equal" if before == after else f"DIFFERENT ({len(before ^ after)} rows)"
    print(f"  statistics added by the imports vs a full rebuild: {verdict}; the rebuild took "
          f"{time.perf_counter() - started:.1f} s")
    if before != after:
        raise SystemExit(1)


def _rollups(session: Any) -> set[tuple[Any, ...]]:
    c = StatRollup.__table__.c
    return {tuple(row) for row in session.execute(
        select(c.split, c.day, c.segment, c.metric, c.currency, c.count, c.amount)
        .where(c.count != 0))}


def bench_backend(kind: str, files: dict[str, Path], again: bool) -> None:
    with database(kind) as url:
        settings = Settings(database_url=url, redis_url=None, admin_token=ADMIN,
                            secret_key=SECRET, public_url="https://refer.example.test",
                            validate_responses=False, start_jobs=False)
        app = create_app(settings)
        created = app.test_client().post(
            "/v1/admin/programs", json={"name": "Bench", "config": CONFIG},
            headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
        db = app.extensions["referflow"].db
        with db.session() as session:
            ctx = load_program(session, created["program"]["id"], SECRET)
        print(f"[{kind}] on {os.cpu_count()} CPUs:")
        for name, path in files.items():
            for attempt in range(2 if again else 1):
                label = name + (" again (the same file)" if attempt else "")
                job: CustomerImport | ReferralImport = (
                    CustomerImport(db.engine, ctx, source="bench") if name == "customers"
                    else ReferralImport(db.engine, ctx, path.name, actor_id="bench"))
                with job:
                    run(job, path, label)
        check_stats(app, ctx.id)
        db.dispose()


@click.command()
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True)
@click.option("--kind", type=click.Choice(["customers", "referrals", "both"]), default="both",
              show_default=True)
@click.option("--rows", type=click.IntRange(1_000), default=1_000_000, show_default=True)
@click.option("--again/--no-again", default=True, show_default=True,
              help="Import each file a second time (idempotent: adds nothing)")
def main(db: str, kind: str, rows: int, again: bool) -> None:
    """Time the customers import and the referrals backfill of ROWS-row files."""
    with tempfile.TemporaryDirectory() as tmp:
        files: dict[str, Path] = {}
        for name in (["customers", "referrals"] if kind == "both" else [kind]):
            path = files[name] = Path(tmp) / f"{name}.csv"
            started = time.perf_counter()
            if name == "customers":
                customers_file(path, rows)
            else:
                referrals_file(path, rows, max(rows // 5, 1))
            print(f"{name}: {rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB, written in "
                  f"{time.perf_counter() - started:.0f} s")
        for backend in (["sqlite", "postgres"] if db == "both" else [db]):
            bench_backend(backend, files, again)


if __name__ == "__main__":
    sys.exit(main())
