"""In-process cost of the hot path: CPU ms and SQL statements per claim, qualify and ingress.

    python bench/inproc.py                          # SQLite, 300 of each
    python bench/inproc.py --db postgres --count 500
    python bench/inproc.py --profile bench/profiles/inproc.prof   # + cProfile of the loop
    python bench/inproc.py --flame bench/profiles/sqlite-inproc-after.svg   # + py-spy flame graph
    python bench/inproc.py --only ingress --profile /tmp/ingress.prof       # one case alone

Runs the real app through Flask's test client in this process (no HTTP server, no other load
counted): CPU time (process_time, the median of six slices) is the figure to steer by on a
shared machine, and a bare Flask echo measured in the same run turns it into echo requests;
wall time is printed too. Statements are counted by a ``before_cursor_execute`` listener,
commits and flushes by session events. PostgreSQL uses a database made next to BENCH_PG_URL's and dropped after.
"""

from __future__ import annotations

import cProfile
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import event
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).parent))
from echo_app import app as echo_app  # noqa: E402
from load import database, seed_referrals  # noqa: E402
from referflow.app import create_app  # noqa: E402
from referflow.config import Settings  # noqa: E402
from referflow.storage.migrate import upgrade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INVOICE = ROOT / "tests" / "fixtures" / "stripe_invoice_paid.json"
ADMIN = "bench-admin"
SECRET = "whsec_inproc"


class Counts:
    """SQL statements, flushes and commits seen since the last reset."""

    def __init__(self, engine: Any) -> None:
        self.statements = 0
        self.flushes = 0
        self.commits = 0
        self.kinds: Counter[str] = Counter()
        self.log: list[str] = []
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(Session, "after_flush", self._flush)
        event.listen(Session, "after_commit", self._commit)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += 1
        self.kinds[" ".join(statement.split()[:3])[:60]] += 1
        self.log.append(" ".join(statement.split())[:300])

    def _flush(self, *_args: Any) -> None:
        self.flushes += 1

    def _commit(self, *_args: Any) -> None:
        self.commits += 1

    def take(self) -> tuple[int, int, int]:
        out = (self.statements, self.flushes, self.commits)
        self.statements = self.flushes = self.commits = 0
        return out


def _setup(client: Any, url: str, seed: int) -> tuple[dict[str, str], str, list[str]]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = client.post("/v1/admin/programs", headers=admin, json={
        "name": "bench", "config": {"landing_url": "https://shop.example.test",
                                    "currency": "USD"}}).get_json()
    auth = {"Authorization": f"Bearer {created['api_key']['key']}"}
    codes = [client.post("/v1/links", headers=auth, json={"advocate": {
        "external_id": f"adv-{i}", "email": f"adv-{i}@mail.test"}}).get_json()["code"]
        for i in range(200)]
    client.put("/v1/providers/stripe", headers=auth, json={"webhook_secrets": [SECRET]})
    if seed:
        seed_referrals(url, created["program"]["id"], seed)
    return auth, created["program"]["id"], codes


def _stripe(n: int) -> tuple[bytes, dict[str, str]]:
    invoice = json.loads(INVOICE.read_text())
    invoice["id"] = f"evt_inproc_{n}"
    body = json.dumps(invoice, separators=(",", ":"))
    now = str(int(time.time()))
    mac = hmac.new(SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), {"Stripe-Signature": f"t={now},v1={mac}",
                           "Content-Type": "application/json"}


def _measure(name: str, count: int, counts: Counts, step: Callable[[int], Any]) -> dict[str, Any]:
    """Run ``step`` count times; CPU per request is the median of six slices (a shared machine's
    bursts of other work land in one slice, not in the figure)."""
    counts.take()
    slices: list[float] = []
    wall = time.perf_counter()
    bounds = [count * k // 6 for k in range(7)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        cpu = time.process_time()
        for n in range(start, stop):
            step(n)
        if stop > start:
            slices.append((time.process_time() - cpu) / (stop - start))
    wall = time.perf_counter() - wall
    statements, flushes, commits = counts.take()
    row = {"case": name, "cpu_ms": 1000 * statistics.median(slices), "wall_ms": 1000 * wall / count,
           "statements": statements / count, "flushes": flushes / count, "commits": commits / count}
    click.echo(f"{name:<10} cpu {row['cpu_ms']:6.2f} ms  wall {row['wall_ms']:6.2f} ms  "
               f"statements {row['statements']:5.1f}  flushes {row['flushes']:4.1f}  "
               f"commits {row['commits']:4.1f}")
    return row


@click.command(help=__doc__)
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite")
@click.option("--count", type=click.IntRange(1), default=300, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=10_000, show_default=True)
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False),
              help="Write a cProfile of the measured loops")
@click.option("--flame", type=click.Path(dir_okay=False),
              help="Record the measured loops with py-spy into this SVG")
@click.option("--statements", is_flag=True, help="Print the statements of one claim and qualify")
@click.option("--only", "only", type=click.Choice(["claim", "qualify", "ingress"]),
              help="Measure (and profile) one case alone; qualify still claims first, unmeasured")
def main(db: str, count: int, seed: int, profile_path: str | None, flame: str | None,
         statements: bool, only: str | None) -> None:
    with database(db) as url:
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade(url)
        app = create_app(Settings(database_url=url, redis_url=None, admin_token=ADMIN,
                                  secret_key="bench-secret", start_jobs=False,
                                  rate_limit_ingress="10000000/minute"))
        client = app.test_client()
        auth, program_id, codes = _setup(client, url, seed)
        counts = Counts(app.extensions["referflow"].db.engine)
        json_auth = {**auth, "Content-Type": "application/json"}
        claimed: list[str] = []

        def claim(n: int) -> None:
            friend = f"f-{n}-{time.monotonic_ns()}"
            answer = client.post("/v1/referrals/claim", headers=json_auth, data=json.dumps({
                "code": codes[n % len(codes)], "friend": {"external_id": friend,
                                                         "email": f"{friend}@mail.test"},
                "context": {"ip": f"198.51.100.{n % 250}", "user_agent": "bench"}}))
            assert answer.status_code == 201, answer.get_json()
            claimed.append(answer.get_json()["id"])

        def qualify(n: int) -> None:
            ref = claimed[n]
            answer = client.post("/v1/referrals/qualify", headers=json_auth, data=json.dumps({
                "referral_id": ref, "event": {"id": f"in_{ref}", "type": "first_order",
                                              "amount": 4200, "currency": "USD",
                                              "occurred_at": time.strftime(
                                                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}))
            assert answer.status_code == 200, answer.get_json()

        deliveries = iter([_stripe(n) for n in range(count + 21)])
        echo_client = echo_app.test_client()

        def echo(n: int) -> None:  # the bare framework's own cost, measured in the same run
            answer = echo_client.post("/echo", headers={"Content-Type": "application/json"},
                                      data=json.dumps({"code": codes[n % len(codes)]}))
            assert answer.status_code == 200

        def ingress(_n: int) -> None:
            body, headers = next(deliveries)
            answer = client.post(f"/v1/ingress/{program_id}/stripe", data=body, headers=headers)
            assert answer.status_code < 300, answer.get_json()

        for n in range(20):  # warm-up
            claim(n)
            qualify(n)
            ingress(n)
            echo(n)
        claimed.clear()
        if statements:
            for name, step in (("claim", claim), ("qualify", qualify), ("ingress", ingress)):
                counts.log.clear()
                step(0)
                click.echo(f"{name}: {len(counts.log)} statements")
                for line in counts.log:
                    click.echo(f"  {line}")
            claimed.clear()
        spy = None
        if flame:
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                    "--pid", str(os.getpid()), "--rate", "200", "--nolineno",
                                    "--format", "flamegraph", "--output", flame],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        if only == "qualify":
            for n in range(count):
                claim(n)
        profiler = cProfile.Profile(time.process_time) if profile_path else None  # CPU time
        if profiler:
            profiler.enable()
        click.echo(f"== {db}, {seed:,} referrals seeded, {count} requests a case")
        cases = (("claim", claim), ("qualify", qualify), ("ingress", ingress))
        rows = [_measure(name, count, counts, step) for name, step in cases
                if only in (None, name)]
        base = _measure("echo", count, counts, echo)["cpu_ms"]
        click.echo("in echo requests: " + ", ".join(
            f"{row['case']} x{row['cpu_ms'] / base:.1f}" for row in rows))
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile_path)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
        app.extensions["referflow"].db.dispose()
        del rows


if __name__ == "__main__":
    main()
