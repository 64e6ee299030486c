"""Fuzz run: tests/test_schemathesis.py with a large count, once per database; prints figures.

    python bench/fuzz.py                              # SQLite, 250 cases per operation (~13k cases)
    python bench/fuzz.py --db both --examples 500     # SQLite, then the local PostgreSQL
    python bench/fuzz.py --json fuzz.json             # also keep the full report

Runs the same harness as the test (live gunicorn on 127.0.0.1, no job runner, no DNS, fixed seed)
with REFERFLOW_FUZZ_KEEP_GOING=1, so failures are counted instead of stopping the run. Prints the
cases run, failing cases by kind (5xx / schema), per operation, the elapsed time, then each
distinct failure once with its shortest reproduction and the server traceback's last lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run(db: str, count: int) -> dict[str, Any]:
    """Run the fuzz test file on one database; return its report with the elapsed seconds."""
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    if db == "postgres":
        env["TEST_DATABASE_URL"] = PG_BASE
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env.update(REFERFLOW_FUZZ_EXAMPLES=str(count), REFERFLOW_FUZZ_KEEP_GOING="1",
                   REFERFLOW_FUZZ_REPORT=str(report))
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "tests/test_schemathesis.py", "-q",
                               "-p", "no:cacheprovider", "--basetemp", str(Path(tmp) / "pytest")],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        if not report.exists():
            sys.exit(f"{db}: the fuzz run wrote no report\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        return {"db": db, "examples": count, "elapsed_s": round(elapsed, 1),
                "pytest": done.stdout.strip().splitlines()[-1:], **json.loads(report.read_text())}


def show(result: dict[str, Any]) -> None:
    """Print one database's figures."""
    failing = result["failing_cases"]
    print(f"\n== {result['db']}: {result['cases']} cases in {result['elapsed_s']} s "
          f"({result['cases'] / result['elapsed_s']:.0f}/s), {result['examples']} per operation; "
          f"failing cases: 5xx {failing['5xx']}, schema {failing['schema']}; "
          f"distinct failures: {len(result['distinct_failures'])}")
    print("phases: " + ", ".join(f"{k} {v}" for k, v in result["per_phase"].items())
          + f"; DNS lookups refused in the server: {result['refused_dns_lookups']}")
    print(f"{'operation':<52} {'cases':>6} {'5xx':>5} {'schema':>6}  statuses")
    for op, row in result["per_operation"].items():
        statuses = " ".join(f"{code}:{n}" for code, n in row["statuses"].items())
        print(f"{op:<52} {row['cases']:>6} {row['5xx']:>5} {row['schema']:>6}  {statuses}")
    for n, failure in enumerate(result["distinct_failures"], 1):
        print(f"\n[{n}] {failure['kind']} {failure['operation']}: {failure['title']} "
              f"(status {failure['status']}, {failure['count']} cases, first in {failure['phase']})")
        print("    " + failure["curl"])
        for line in failure["server"]:
            print("    | " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--examples", type=int, default=250, help="cases per operation (fuzzing phase)")
    parser.add_argument("--json", type=Path, help="write the full reports here")
    args = parser.parse_args()
    results = [run(db, args.examples) for db in (("sqlite", "postgres") if args.db == "both" else (args.db,))]
    for result in results:
        show(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
