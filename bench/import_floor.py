"""The floor of a referrals backfill: the rows alone, written as fast as the driver writes them.

    python bench/import_floor.py --db both --rows 1000000

On a fresh, migrated database (referflow's own tables and indexes), one program and a fifth as
many advocates as referrals, then ROWS referrals with one history entry each, in transactions of
`referflow import referrals`' batch size: SQLite by executemany, PostgreSQL by COPY. Rows are
made in Python beforehand (not timed): no file, no checks, no codes, counters, signals or
statistics. What it prints is the least any import of these rows pays on this schema and this
machine (docs/development.md, "Bulk imports"): inserts, history, commits.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import create_engine

from referflow.actions.bulk import BATCH_SIZE
from stats import database  # bench/stats.py: a fresh, migrated database

PROGRAM = "prg_importfloor"
ADVOCATE = ("id", "program_id", "external_id", "email", "email_key", "created_at", "flagged",
            "referral_count", "approved_count", "click_count", "portal_generation", "tier_manual")
REFERRAL = ("id", "program_id", "advocate_id", "code", "friend_external_id", "friend_email",
            "friend_email_key", "status", "reasons", "qualified_amount", "qualified_currency",
            "qualified_at", "approved_at", "created_at", "updated_at", "version")
HISTORY = ("referral_id", "program_id", "at", "action", "actor_type", "actor_id", "to_status",
           "reasons", "data", "config_version")


def _batches(rows: int, advocates: list[str], now: datetime) -> Iterator[tuple[list[Any], list[Any]]]:
    rng = random.Random(15)
    for start in range(0, rows, BATCH_SIZE):
        referrals, history = [], []
        for i in range(start, min(start + BATCH_SIZE, rows)):
            at = now - timedelta(seconds=rng.randrange(365 * 86400))
            referral_id, approved = "ref_" + secrets.token_hex(10), i % 2 == 0
            status = "approved" if approved else "pending"
            referrals.append((referral_id, PROGRAM, advocates[i % len(advocates)],
                              f"OLD{i % len(advocates):07d}", f"friend_{i:08d}",
                              f"friend.{i}@example.test", secrets.token_hex(32), status, "[]",
                              4000 if approved else None, "EUR" if approved else None,
                              at if approved else None, at if approved else None, at, at, 1))
            history.append((referral_id, PROGRAM, at, "imported", "import", "bench", status, "[]",
                            json.dumps({"file": "floor.csv", "line": i + 2}), 1))
        yield referrals, history


class Writer:
    """executemany (SQLite: timestamps as referflow stores them, naive UTC) or COPY."""

    def __init__(self, conn: Any, sqlite: bool):
        self.conn, self.sqlite = conn, sqlite

    def write(self, table: str, columns: tuple[str, ...], rows: list[Any]) -> None:
        cur = self.conn.cursor()
        if self.sqlite:
            rows = [tuple(v.replace(tzinfo=None).isoformat(sep=" ")
                          if isinstance(v, datetime) else v for v in row) for row in rows]
            cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                            f"VALUES ({', '.join('?' * len(columns))})", rows)
        else:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cur.close()


def floor(kind: str, rows: int) -> None:
    """Write ROWS referrals and their history into a fresh database; print the seconds."""
    with database(kind) as url:
        engine = create_engine(url)
        conn = engine.raw_connection()
        sqlite = engine.dialect.name == "sqlite"
        writer = Writer(conn, sqlite)
        cur = conn.cursor()
        if sqlite:  # the import connection's own settings (actions/bulk.py)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "cache_size=-524288"):
                cur.execute(f"PRAGMA {pragma}")
        now = datetime.now(UTC) - timedelta(hours=1)
        writer.write("programs", ("id", "name", "config", "config_version", "created_at"),
                     [(PROGRAM, "floor", "{}", 1, now)])
        advocates = [("adv_" + secrets.token_hex(10), PROGRAM, f"adv_{a:07d}",
                      f"advocate.{a}@example.test", secrets.token_hex(32), now, False, 5, 0, 0,
                      0, False) for a in range(max(rows // 5, 1))]
        writer.write("advocates", ADVOCATE, advocates)
        conn.commit()
        spent = {"referrals": 0.0, "history": 0.0, "commits": 0.0}
        for referrals, history in _batches(rows, [a[0] for a in advocates], now):
            started = time.perf_counter()
            writer.write("referrals", REFERRAL, referrals)
            inserted = time.perf_counter()
            writer.write("referral_history", HISTORY, history)
            written = time.perf_counter()
            conn.commit()
            spent["referrals"] += inserted - started
            spent["history"] += written - inserted
            spent["commits"] += time.perf_counter() - written
        conn.close()
        engine.dispose()
        click.echo(f"[{kind}] {rows:,} referrals (+ history) in batches of {BATCH_SIZE:,}: "
                   + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in spent.items())
                   + f"; total {sum(spent.values()):.1f} s")


@click.command(help=__doc__)
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True)
@click.option("--rows", type=click.IntRange(1_000), default=1_000_000, show_default=True)
def main(db: str, rows: int) -> None:
    for kind in (["sqlite", "postgres"] if db == "both" else [db]):
        floor(kind, rows)


if __name__ == "__main__":
    sys.exit(main())
