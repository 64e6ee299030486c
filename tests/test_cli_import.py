"""`referflow import referrals` and `referflow customers import` as an operator runs them."""

from __future__ import annotations

import json
import os
import re

import pytest
from sqlalchemy import create_engine, func, select

from referflow.storage.models import KnownCustomer, Referral, ReferralHistory
from tests.live import service_env

HEADER = "advocate_external_id,advocate_email,code,friend_external_id,friend_email,status,created_at"


@pytest.fixture()
def cli_env(database_url, settings, monkeypatch):
    """Point the in-process CLI at the (emptied) test database, as the shell would."""
    for name in [n for n in os.environ if n.startswith("REFERFLOW_") or n == "REDIS_URL"]:
        monkeypatch.delenv(name)
    for name, value in service_env(database_url).items():
        monkeypatch.setenv(name, value)


def _run(*args: str, stdin: str | None = None):
    from click.testing import CliRunner

    from referflow.cli import main

    return CliRunner().invoke(main, list(args), input=stdin)


def _count(database_url: str, model) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def _referrals_csv(path, rows: int, first: int = 0):
    path.write_text(HEADER + "\n" + "".join(
        f"adv-{i % 7},adv{i % 7}@shop.test,,f-{i},f{i}@mail.test,claimed,2026-01-02T03:04:05Z\n"
        for i in range(first, first + rows)))
    return str(path)


def test_import_referrals_reports_what_it_did_and_is_idempotent(cli_env, api, database_url, tmp_path):
    csv_file = _referrals_csv(tmp_path / "old.csv", 40)
    out = _run("import", "referrals", "--program", api.program_id, csv_file, "--batch-size", "15",
               "--progress")
    assert out.exit_code == 0, out.output
    assert out.stdout == ("read 40 referral(s): 40 imported, 0 already there; "
                          "7 new advocate(s), 7 new code(s)\n")
    for phase in ("check referrals: 40/40", "import referrals: 40/40"):
        assert re.search(rf"^{phase} \(100%\), [\d.]+ s, ", out.stderr, re.M), out.stderr
    again = _run("import", "referrals", "--program", api.program_id, csv_file)
    assert again.stdout.startswith("read 40 referral(s): 0 imported, 40 already there")
    assert again.stderr == ""
    assert _count(database_url, Referral) == _count(database_url, ReferralHistory) == 40


def test_a_bad_referrals_file_exits_non_zero_lists_lines_and_writes_nothing(
        cli_env, api, database_url, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\nadv-1,,,f-1,,claimed,2026-01-02T03:04:05Z\n"
                   "adv-1,,,f-2,,sent,2026-01-02T03:04:05Z\nadv-1,,,f-3,nobody,claimed,\n")
    out = _run("import", "referrals", "--program", api.program_id, str(bad))
    assert out.exit_code == 1 and out.stdout == ""
    assert f"{bad}:3: status: 'sent' is not one of claimed" in out.stderr
    assert f"{bad}:4: " in out.stderr
    assert "2 bad row(s) in 3 read; nothing was imported" in out.stderr
    assert _count(database_url, Referral) == 0


def test_a_header_with_a_typo_is_refused_before_reading(cli_env, api, tmp_path):
    typo = tmp_path / "typo.csv"
    typo.write_text("advocate_external_id,friend_external_id,status,created_at,frend_email\n")
    out = _run("import", "referrals", "--program", api.program_id, str(typo))
    assert out.exit_code == 1 and "unknown column frend_email" in out.stderr
    missing = tmp_path / "missing.csv"
    missing.write_text("advocate_external_id,status\n")
    out = _run("import", "referrals", "--program", api.program_id, str(missing))
    assert "missing column friend_external_id; missing column created_at" in out.stderr


def test_json_lines_come_from_a_file_or_standard_input(cli_env, api, database_url, tmp_path):
    line = {"advocate_external_id": "a", "friend_external_id": "f-1", "status": "claimed",
            "created_at": "2026-01-02T03:04:05+01:00"}
    jsonl = tmp_path / "old.jsonl"
    jsonl.write_text(json.dumps(line) + "\n")
    assert _run("import", "referrals", "--program", api.program_id, str(jsonl)).exit_code == 0
    piped = _run("import", "referrals", "--program", api.program_id, "--format", "jsonl", "-",
                 stdin=json.dumps({**line, "friend_external_id": "f-2"}) + "\n")
    assert piped.exit_code == 0, piped.output
    assert piped.stdout.startswith("read 1 referral(s): 1 imported")
    assert _count(database_url, Referral) == 2


def test_an_unknown_program_is_a_clean_error(cli_env, tmp_path):
    csv_file = _referrals_csv(tmp_path / "old.csv", 1)
    out = _run("import", "referrals", "--program", "prg_nope", csv_file)
    assert out.exit_code == 1 and "program_not_found" in out.stderr
    assert "Traceback" not in out.output


def test_a_bad_customers_file_writes_nothing(cli_env, api, database_url, tmp_path):
    bad = tmp_path / "customers.csv"
    bad.write_text("external_id,email\nc1,one@x.test\nc2,not-an-email\n")
    out = _run("customers", "import", "--program", api.program_id, str(bad))
    assert out.exit_code == 1 and f"{bad}:3: email: not an email address" in out.stderr
    assert _count(database_url, KnownCustomer) == 0
    nothing = tmp_path / "names.csv"
    nothing.write_text("name,phone\nAnn,123\n")
    refused = _run("customers", "import", "--program", api.program_id, str(nothing))
    assert "the header needs an external_id or an email column" in refused.stderr


def test_customers_repeated_in_a_file_are_counted_once(cli_env, api, database_url, tmp_path):
    repeated = tmp_path / "customers.csv"
    repeated.write_text("external_id,email\nc1,one@x.test\nc1,\n,ONE@x.test\nc2,\n")
    out = _run("customers", "import", "--program", api.program_id, str(repeated))
    assert out.stdout == ("read 4 customer(s), 2 new\n"
                          "2 row(s) repeated an earlier row's external_id or email\n")
    assert _count(database_url, KnownCustomer) == 2
