"""Load benchmark: referflow claim+qualify vs a bare Flask JSON echo, both under gunicorn.

    python bench/load.py                       # SQLite and PostgreSQL, 10k then 1M referrals
    python bench/load.py --db sqlite --large 0 # quick: SQLite, 10k only

Prints requests/s, p50 and p99 for both servers and their ratio, then the claim latency with
1M referrals seeded against the 10k case. Targets (issue 2): ratio >= 0.5, p99 <= 25 ms at 32
clients; claim p50/p99 at 1M within 1.25x of 10k.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, insert, select, text

sys.path.insert(0, str(Path(__file__).parent))
from httpclient import Connection, Result, Timer, drive  # noqa: E402
from referflow.domain.codes import new_id  # noqa: E402
from referflow.storage.migrate import upgrade  # noqa: E402
from referflow.storage.models import Advocate, Referral  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-" + secrets.token_hex(8)
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKERS, THREADS = int(os.environ.get("BENCH_WORKERS", 2)), int(os.environ.get("BENCH_THREADS", 4))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(cmd: list[str], port: int, env: dict[str, str], cwd: Path):
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finally, after the process)
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextmanager
def database(kind: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"referflow_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_BASE.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_advocates(url: str, program_id: str, target: int) -> None:
    """Bulk-insert advocates (no codes: they only carry seeded referrals) up to ``target``."""
    engine = create_engine(url)
    with engine.begin() as conn:
        existing = conn.execute(select(func.count()).select_from(Advocate)).scalar_one()
    now, chunk = datetime.now(UTC), 20_000
    for start in range(existing, target, chunk):
        rows = [{"id": new_id("adv"), "program_id": program_id, "external_id": f"seed-adv-{i}",
                 "email": f"seed-adv-{i}@mail.test", "email_key": secrets.token_hex(32),
                 "flagged": False, "created_at": now - timedelta(days=i % 365)}
                for i in range(start, min(start + chunk, target))]
        with engine.begin() as conn:
            conn.execute(insert(Advocate), rows)
    engine.dispose()


def seed_referrals(url: str, program_id: str, target: int) -> None:
    """Bulk-insert referrals (spread over the program's advocates) up to ``target`` rows."""
    engine = create_engine(url)
    with engine.begin() as conn:
        advocates = [row[0] for row in conn.execute(select(Advocate.id))]
        existing = conn.execute(select(func.count()).select_from(Referral)).scalar_one()
    now = datetime.now(UTC)
    year = 365 * 24 * 3600
    statuses = ["pending", "held", "approved", "rewarded", "rejected"]
    chunk = 20_000
    for start in range(existing, target, chunk):
        rows = [{
            "id": new_id("ref"), "program_id": program_id, "advocate_id": advocates[i % len(advocates)],
            "code": "SEEDED", "friend_external_id": f"seed-{i}", "friend_email": f"seed-{i}@mail.test",
            "friend_email_key": secrets.token_hex(32), "status": statuses[i % 5], "reasons": [],
            # A year of history, as a real program has (not all "now").
            "created_at": now - timedelta(seconds=(i * 7919) % year), "updated_at": now, "version": 1,
        } for i in range(start, min(start + chunk, target))]
        with engine.begin() as conn:
            conn.execute(insert(Referral), rows)
    # Settled, as a database that grew to this size over months is: fresh planner statistics
    # and, on PostgreSQL, the new rows vacuumed (else autovacuum works through a million rows
    # and their indexes during the measurement, on the same two cores).
    settle = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(settle))
    engine.dispose()


def run_referflow_load(port: int, key: str, codes: list[str], clients: int, seconds: float,
                       tag: str) -> tuple[Result, dict[str, Result]]:
    async def step(conn: Connection, n: int, timer: Timer) -> None:
        friend = f"{tag}-{n}"
        referral = await timer.post(conn, "/v1/referrals/claim", {
            "code": codes[n % len(codes)], "friend": {"external_id": friend,
                                                     "email": f"{friend}@mail.test"},
            "context": {"ip": f"198.51.100.{n % 250}", "user_agent": "bench"}}, label="claim")
        await timer.post(conn, "/v1/referrals/qualify", {"referral_id": referral["id"], "event": {
            "id": f"in_{friend}", "type": "first_order", "amount": 4200, "currency": "USD",
            "occurred_at": datetime.now(UTC).isoformat()}}, label="qualify")

    return asyncio.run(drive("127.0.0.1", port, key, clients, seconds, step))


def run_echo_load(port: int, clients: int, seconds: float) -> Result:
    async def step(conn: Connection, n: int, timer: Timer) -> None:
        await timer.post(conn, "/echo", {"code": "ABCD2345", "friend": {
            "external_id": f"f-{n}", "email": f"f-{n}@mail.test"}})

    return asyncio.run(drive("127.0.0.1", port, None, clients, seconds, step))[0]


def bench_backend(kind: str, args: argparse.Namespace) -> None:
    print(f"\n=== {kind}: {args.clients} clients, {args.seconds:.0f} s per run, "
          f"gunicorn {WORKERS} workers x {THREADS} threads, {os.cpu_count()} CPUs")
    env = {**os.environ, "REFERFLOW_ADMIN_TOKEN": ADMIN, "REFERFLOW_SECRET_KEY": "bench-secret",
           "REFERFLOW_START_JOBS": "false"}
    env.pop("REDIS_URL", None)
    gunicorn = [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-k", "gthread",
                "--threads", str(THREADS)]
    echo_port = free_port()
    with served(gunicorn + ["-b", f"127.0.0.1:{echo_port}", "--chdir", str(ROOT / "bench"),
                            "echo_app:app"], echo_port, env, ROOT):
        run_echo_load(echo_port, args.clients, 1)  # warm-up
        echo = run_echo_load(echo_port, args.clients, args.seconds)
    print(echo.line("echo (bare Flask)"))

    with database(kind) as url:
        upgrade(url)
        port = free_port()
        cmd = [sys.executable, "-m", "referflow.cli", "serve", "--no-demo", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(WORKERS), "--threads", str(THREADS)]
        with served(cmd, port, {**env, "DATABASE_URL": url}, ROOT):
            base = f"http://127.0.0.1:{port}"
            created = requests.post(f"{base}/v1/admin/programs", headers={
                "Authorization": f"Bearer {ADMIN}"}, json={"name": "bench", "config": {
                    "landing_url": "https://shop.example.test", "currency": "USD"}}).json()
            key, program_id = created["api_key"]["key"], created["program"]["id"]
            codes = [requests.post(f"{base}/v1/links", headers={"Authorization": f"Bearer {key}"},
                                   json={"advocate": {"external_id": f"adv-{i}",
                                                      "email": f"adv-{i}@mail.test"}}).json()["code"]
                     for i in range(200)]
            sizes = [args.small] + ([args.large] if args.large else [])
            claims: dict[int, Result] = {}
            for size in sizes:
                t0 = time.perf_counter()
                seed_referrals(url, program_id, size)
                print(f"-- seeded to {size:,} referrals in {time.perf_counter() - t0:.0f} s")
                run_referflow_load(port, key, codes, args.clients, 1, f"warm{size}")
                total, parts = run_referflow_load(port, key, codes, args.clients, args.seconds,
                                                  f"run{size}")
                claims[size] = parts["claim"]
                print(total.line(f"claim+qualify @{size:,}"))
                for label, part in parts.items():
                    print(part.line(f"  {label}"))
                if size == args.small:
                    print(f"ratio referflow/echo throughput: {total.rps / echo.rps:.2f}  "
                          f"(target >= 0.5);  p99 {total.pct(99):.1f} ms (target <= 25)")
            if args.large:
                small, large = claims[args.small], claims[args.large]
                print(f"claim latency {args.large:,} vs {args.small:,}: "
                      f"p50 x{large.pct(50) / small.pct(50):.2f}, "
                      f"p99 x{large.pct(99) / small.pct(99):.2f}  (target <= 1.25)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    for kind in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        bench_backend(kind, args)


if __name__ == "__main__":
    main()
