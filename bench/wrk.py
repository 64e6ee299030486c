"""HTTP benchmark with wrk: a bare Flask echo, claim+qualify and the Stripe ingress, one run.

    python bench/wrk.py                                   # SQLite and PostgreSQL, 20 s a case
    python bench/wrk.py --db sqlite --seconds 10 --connections 32
    python bench/wrk.py --db postgres --profile           # + flame graphs in bench/profiles/

Needs wrk (Debian: `apt-get install wrk`) and, for --profile, py-spy (`pip install -e '.[bench]'`;
it attaches to a worker with ptrace: run as root or allow ptrace). PostgreSQL runs in a
database made for the run next to BENCH_PG_URL's (default postgresql://postgres@127.0.0.1:5432/test)
and dropped after it.

Every server runs under the same gunicorn settings (gthread, --workers x --server-threads); the
echo is bench/echo_app.py, referflow is `referflow serve` (no job runner, rate limits out of the
way). The cases, each driven by a Lua script in bench/lua/:

- echo: POST a claim-sized JSON body, answered as it came;
- claim+qualify: claim a fresh friend (201), then qualify a friend claimed earlier (200), with
  --seed referrals in the database first;
- ingress: Stripe `invoice.paid` deliveries, each a distinct event signed beforehand (Lua has
  no HMAC): verify the signature, record, answer;
- floor claim+qualify, floor ingress: the same scripts against bench/floor_app.py on
  referflow's database, the statements a claim, a qualify and a delivery cannot skip sent
  through the driver from a bare Flask app (what the database and the data model cost, without
  referflow's features and layers);
- with --scale: claims alone (claim.lua) on the --seed database, then again once it holds
  1M referrals of 100k advocates (bulk-seeded while the server runs), and the ratio of the two
  p50s and p99s (issue 15's target: within 1.25x).

Printed per case: requests/s, p50 and p99, non-2xx answers, the ratio to the echo; then the RSS
of each web worker after the cases ran (from /proc).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

sys.path.insert(0, str(Path(__file__).parent))
from load import ADMIN, database, free_port, seed_advocates, seed_referrals, served  # noqa: E402
from referflow.storage.migrate import upgrade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LUA = Path(__file__).parent / "lua"
PROFILES = Path(__file__).parent / "profiles"
INVOICE = ROOT / "tests" / "fixtures" / "stripe_invoice_paid.json"
STRIPE_SECRET = "whsec_bench_" + secrets.token_hex(8)


@dataclass
class Case:
    """What wrk measured for one case."""

    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    counts: dict[str, int]

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self, echo: Case | None) -> str:
        """One row of the printed table."""
        ratio = f"{self.rps / echo.rps:6.3f}" if echo and echo.rps else "     -"
        counts = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        return (f"{self.name:<20} {self.rps:9.0f} {self.p50_ms:9.1f} {self.p99_ms:9.1f} "
                f"{self.non_2xx + self.socket_errors:8d} {ratio}   {counts}")


HEADER = f"{'case':<20} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>8}  ratio   answers"


def wrk(url: str, script: str, args: list[str], opts: dict[str, Any], name: str) -> Case:
    """Run wrk with a bench/lua script; return its measurements (read from the script's JSON line)."""
    cmd = ["wrk", "-t", str(opts["threads"]), "-c", str(opts["connections"]),
           "-d", f"{opts['seconds']}s", "--timeout", "10s", "--latency", "-s", str(LUA / script),
           url, "--", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = re.search(r"^WRK_JSON (.*)$", done.stdout, re.M)
    if done.returncode or not found:
        sys.exit(f"wrk failed ({name}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(found.group(1))
    return Case(name, data["requests"], data["seconds"], data["p50_ms"], data["p99_ms"],
                data["non_2xx"], data["socket_errors"], data["counts"])


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the children of the master process."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return sorted(children)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def profile(pid: int, seconds: float, name: str) -> subprocess.Popen[bytes]:
    """Start py-spy recording one worker for the run; it writes bench/profiles/<name>.svg."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    PROFILES.mkdir(exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "50", "--nonblocking", "--nolineno", "--format", "flamegraph",
                             "--output", str(PROFILES / f"{name}.svg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def gunicorn_env() -> dict[str, str]:
    """The environment every server of the run gets."""
    env = {**os.environ, "REFERFLOW_ADMIN_TOKEN": ADMIN, "REFERFLOW_SECRET_KEY": "bench-secret",
           "REFERFLOW_START_JOBS": "false", "REFERFLOW_RATE_LIMIT_INGRESS": "10000000/minute",
           "REFERFLOW_RATE_LIMIT_PUBLIC": "10000000/minute"}
    env.pop("REDIS_URL", None)
    return env


def bench_app(app: str, port: int, opts: dict[str, Any]) -> list[str]:
    """The command serving one of bench/'s Flask apps under the run's gunicorn settings."""
    return [sys.executable, "-m", "gunicorn", "-w", str(opts["workers"]), "-k", "gthread",
            "--threads", str(opts["server_threads"]), "-b", f"127.0.0.1:{port}",
            "--chdir", str(ROOT / "bench"), app]


def run_echo(opts: dict[str, Any]) -> tuple[Case, list[float]]:
    """The baseline: bench/echo_app.py under the same gunicorn settings."""
    port = free_port()
    with served(bench_app("echo_app:app", port, opts), port, gunicorn_env(), ROOT) as proc:
        url = f"http://127.0.0.1:{port}"
        wrk(url, "echo.lua", [], {**opts, "seconds": 2}, "warm-up")
        echo = wrk(url, "echo.lua", [], opts, "echo")
        rss = [rss_mb(pid) for pid in worker_pids(proc.pid)]
    return echo, rss


def signed_deliveries(path: Path, count: int, tag: str) -> None:
    """Write ``count`` distinct signed Stripe invoice.paid deliveries, one a line."""
    invoice = json.loads(INVOICE.read_text())
    now = str(int(time.time()))
    with path.open("w") as out:
        for n in range(count):
            invoice["id"] = f"evt_{tag}_{n}"
            body = json.dumps(invoice, separators=(",", ":"))
            mac = hmac.new(STRIPE_SECRET.encode(), f"{now}.{body}".encode(), hashlib.sha256)
            out.write(f"t={now},v1={mac.hexdigest()}\t{body}\n")


def setup_program(base: str, url: str, seed: int) -> tuple[str, str, list[str]]:
    """Create the program, 200 advocates' codes, Stripe's webhook secret; seed referrals."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    created = requests.post(f"{base}/v1/admin/programs", headers=admin, json={
        "name": "bench", "config": {"landing_url": "https://shop.example.test",
                                    "currency": "USD"}}, timeout=30).json()
    key, program_id = created["api_key"]["key"], created["program"]["id"]
    auth = {"Authorization": f"Bearer {key}"}
    codes = [requests.post(f"{base}/v1/links", headers=auth, timeout=30, json={"advocate": {
        "external_id": f"adv-{i}", "email": f"adv-{i}@mail.test"}}).json()["code"]
        for i in range(200)]
    configured = requests.put(f"{base}/v1/providers/stripe", headers=auth, timeout=30,
                              json={"webhook_secrets": [STRIPE_SECRET]})
    configured.raise_for_status()
    if seed:
        seed_referrals(url, program_id, seed)
    return key, program_id, codes


@contextmanager
def referflow_served(kind: str, opts: dict[str, Any]) -> Iterator[Served]:
    """`referflow serve` on a fresh database of ``kind``, with the bench program set up."""
    with database(kind) as url, tempfile.TemporaryDirectory() as tmp:
        upgrade(url)
        port = free_port()
        cmd = [sys.executable, "-m", "referflow.cli", "serve", "--no-demo", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(opts["workers"]),
               "--threads", str(opts["server_threads"])]
        with served(cmd, port, {**gunicorn_env(), "DATABASE_URL": url}, ROOT) as proc:
            base = f"http://127.0.0.1:{port}"
            key, program_id, codes = setup_program(base, url, opts["seed"])
            codes_file = Path(tmp) / "codes.txt"
            codes_file.write_text("\n".join(codes) + "\n")
            yield Served(url, Path(tmp), proc.pid, base, key, program_id, str(codes_file))


@dataclass
class Served:
    """A running referflow of the bench: its database, files, master pid, URL and program."""

    url: str
    tmp: Path
    pid: int
    base: str
    key: str
    program_id: str
    codes_file: str


def run_referflow(kind: str, opts: dict[str, Any], echo: Case) -> tuple[list[Case], list[float]]:
    """claim+qualify and ingress against `referflow serve` on one database."""
    with referflow_served(kind, opts) as server:
        base, key, program_id, codes_file = (server.base, server.key, server.program_id,
                                             server.codes_file)
        tag = secrets.token_hex(3)
        wrk(base, "claim_qualify.lua", [key, f"warm{tag}", codes_file],
            {**opts, "seconds": 2}, "warm-up")
        cases = [measured(server.pid, opts, f"{kind}-claim-qualify", lambda: wrk(
            base, "claim_qualify.lua", [key, f"run{tag}", codes_file], opts,
            "claim+qualify"))]
        events = server.tmp / "stripe.txt"
        signed_deliveries(events, opts["events"], tag)
        cases.append(measured(server.pid, opts, f"{kind}-ingress", lambda: wrk(
            f"{base}/v1/ingress/{program_id}/stripe", "ingress.lua",
            [str(events), str(opts["threads"])], opts, "ingress (stripe)")))
        rss = [rss_mb(pid) for pid in worker_pids(server.pid)]
        cases.extend(run_floor(server, opts, tag))
    return cases, rss


def run_floor(server: Served, opts: dict[str, Any], tag: str) -> list[Case]:
    """claim+qualify and the Stripe ingress against bench/floor_app.py on referflow's database
    (referflow idle)."""
    port = free_port()
    env = {**gunicorn_env(), "DATABASE_URL": server.url, "FLOOR_PROGRAM_ID": server.program_id,
           "FLOOR_STRIPE_SECRET": STRIPE_SECRET}
    events = server.tmp / "stripe-floor.txt"
    signed_deliveries(events, opts["events"], f"floor{tag}")  # not yet recorded by referflow
    with served(bench_app("floor_app:app", port, opts), port, env, ROOT):
        url = f"http://127.0.0.1:{port}"
        wrk(url, "claim_qualify.lua", ["-", f"fwarm{tag}", server.codes_file],
            {**opts, "seconds": 2}, "warm-up")
        return [wrk(url, "claim_qualify.lua", ["-", f"floor{tag}", server.codes_file], opts,
                    "floor claim+qualify"),
                wrk(f"{url}/v1/ingress/{server.program_id}/stripe", "ingress.lua",
                    [str(events), str(opts["threads"])], opts, "floor ingress")]


def run_scale(kind: str, opts: dict[str, Any]) -> tuple[Case, Case]:
    """Claims alone at --seed referrals, then at 1M referrals of 100k advocates."""
    with referflow_served(kind, opts) as server:
        url, base, key, program_id = server.url, server.base, server.key, server.program_id
        codes_file = server.codes_file
        cases = []
        for size, advocates in ((opts["seed"], 0), (opts["scale"], opts["scale"] // 10)):
            if advocates:
                started = time.perf_counter()
                seed_advocates(url, program_id, advocates)
                seed_referrals(url, program_id, size)
                click.echo(f"  (seeded {size:,} referrals of {advocates:,} advocates in "
                           f"{time.perf_counter() - started:.0f} s)")
            tag = secrets.token_hex(3)
            wrk(base, "claim.lua", [key, f"warm{tag}", codes_file],
                {**opts, "seconds": 2}, "warm-up")
            cases.append(wrk(base, "claim.lua", [key, f"run{tag}", codes_file], opts,
                             f"claim at {size:,}"))
    return cases[0], cases[1]


def measured(master: int, opts: dict[str, Any], name: str, run: Any) -> Case:
    """Run one case, under py-spy when --profile is on."""
    spy = profile(worker_pids(master)[0], opts["seconds"], name) if opts["profile"] else None
    case: Case = run()
    if spy is not None:
        _, err = spy.communicate(timeout=120)
        where = PROFILES / f"{name}.svg"
        note = f"flame graph: {where.relative_to(ROOT)}" if where.exists() else (
            "py-spy wrote nothing: " + err.decode(errors="replace").strip()[-300:])
        click.echo(f"  ({note})")
    return case


@click.command(help=__doc__)
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True)
@click.option("--seconds", type=click.IntRange(1), default=20, show_default=True,
              help="Length of each measured case")
@click.option("--connections", type=click.IntRange(1), default=32, show_default=True,
              help="Open connections (wrk -c)")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True,
              help="wrk threads (wrk -t)")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="gunicorn workers of every server")
@click.option("--server-threads", type=click.IntRange(1), default=4, show_default=True,
              help="gunicorn threads per worker (gthread)")
@click.option("--seed", type=click.IntRange(0), default=10_000, show_default=True,
              help="Referrals in the database before claim+qualify runs")
@click.option("--events", type=click.IntRange(1), default=30_000, show_default=True,
              help="Distinct signed Stripe deliveries prepared for the ingress case")
@click.option("--profile", is_flag=True,
              help="Record a worker with py-spy during each referflow case: "
                   "bench/profiles/<db>-<case>.svg")
@click.option("--scale", "scale", flag_value=1_000_000, type=int, default=0,
              help="Also compare claims at --seed and at 1M referrals of 100k advocates")
@click.option("--scale-to", "scale", type=click.IntRange(1_000),
              help="--scale with another size: REFERRALS (advocates: a tenth)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the figures as JSON")
def main(db: str, json_path: str | None, **opts: Any) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
    click.echo(f"gunicorn {opts['workers']} workers x {opts['server_threads']} threads (gthread); "
               f"wrk {opts['threads']} threads, {opts['connections']} connections, "
               f"{opts['seconds']} s a case; {os.cpu_count()} CPUs shared by client and servers")
    results: dict[str, Any] = {"options": opts}
    for kind in (["sqlite", "postgres"] if db == "both" else [db]):
        # The echo runs before and after this database's cases, and the ratios are to the two
        # together: a shared machine's speed can swing by half from one minute to the next.
        before, echo_rss = run_echo(opts)
        cases, rss = run_referflow(kind, opts, before)
        after, _ = run_echo(opts)
        echo = Case("echo, both runs", before.requests + after.requests,
                    before.seconds + after.seconds, max(before.p50_ms, after.p50_ms),
                    max(before.p99_ms, after.p99_ms), before.non_2xx + after.non_2xx,
                    before.socket_errors + after.socket_errors, {})
        before.name, after.name = "echo, before", "echo, after"
        click.echo(f"\n== {kind} ({opts['seed']:,} referrals seeded)")
        click.echo(HEADER)
        for case in (before, after, echo, *cases):
            click.echo(case.line(echo))
        click.echo("worker RSS after the run: echo " + ", ".join(f"{m:.0f} MB" for m in echo_rss)
                   + "; referflow " + ", ".join(f"{m:.0f} MB" for m in rss))
        results[kind] = {"echo": [vars(before), vars(after)], "echo_rss_mb": echo_rss,
                         "cases": [vars(c) for c in cases], "rss_mb": rss}
        if opts["scale"]:
            small, large = run_scale(kind, opts)
            for case in (small, large):
                click.echo(case.line(echo))
            click.echo(f"claims at {opts['scale']:,} / at {opts['seed']:,}: p50 x{large.p50_ms / small.p50_ms:.2f}, "
                       f"p99 x{large.p99_ms / small.p99_ms:.2f} (target: within x1.25)")
            results[kind]["scale"] = [vars(small), vars(large)]
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
