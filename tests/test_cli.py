"""The referflow command: programs, keys, migrate, and a bare embedded first start."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests

from tests.live import free_port, service_env


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "referflow.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_programs_create_prints_json_with_a_working_key(tmp_path, database_url, app):
    env = service_env(database_url)
    out = _cli(["programs", "create", "--name", "CLI shop", "--landing-url",
                "https://cli.test/", "--json"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["program_id"].startswith("prg_")
    assert created["config"]["landing_url"] == "https://cli.test/"
    client = app.test_client()
    got = client.get("/v1/program", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert got.get_json()["name"] == "CLI shop"
    key = _cli(["keys", "create", "--program", created["program_id"], "--json"], env, tmp_path)
    second = json.loads(key.stdout)["api_key"]
    assert client.get("/v1/program", headers={"Authorization": f"Bearer {second}"}
                      ).status_code == 200


def test_invalid_config_file_is_a_clean_cli_error(tmp_path, database_url):
    bad = tmp_path / "program.json"
    bad.write_text(json.dumps({"landing_url": "ftp://nope"}))
    out = _cli(["programs", "create", "--name", "x", "--config", str(bad)],
               service_env(database_url), tmp_path)
    assert out.returncode != 0
    assert "validation_failed" in out.stderr and "Traceback" not in out.stderr


def test_production_start_without_secrets_fails_with_a_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERFLOW_")}
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    out = _cli(["migrate"], env, tmp_path)
    assert out.returncode != 0 and "REFERFLOW_SECRET_KEY" in out.stderr


@pytest.mark.slow
def test_bare_embedded_start_creates_db_admin_token_and_demo_program(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REFERFLOW_") and k not in ("DATABASE_URL", "REDIS_URL")}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "referflow.cli", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("api_key" in ln for ln in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        key = re.search(r"api_key: (\S+)", text).group(1)
        assert re.search(r"admin token .*: rfadm_", text)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(base + "/healthz", timeout=5)
                break
            except requests.RequestException:  # not listening yet, or too busy to answer in time
                time.sleep(0.1)
        created = requests.post(base + "/v1/links", headers={"Authorization": f"Bearer {key}"},
                                json={"advocate": {"external_id": "a", "email": "a@x.test"}},
                                timeout=5)
        assert created.status_code == 201
        assert (tmp_path / "instance" / "referflow.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_sweep_runs_the_periodic_work_once(tmp_path, database_url, api, app):
    from tests.helpers import claim, expire_hold, link, qualify

    referral = claim(api, link(api)["code"])
    qualify(api, referral["id"])
    expire_hold(app, referral["id"])
    out = _cli(["sweep"], service_env(database_url), tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("moved 1 referral(s); dispatched ")
    assert "pruned past 400 days: 0 clicks, 0 inbound_events, 0 outbox_events" in out.stdout
    with app.extensions["referflow"].db.session() as session:
        from referflow.storage.models import OutboxEvent, Referral

        assert session.get(Referral, referral["id"]).status == "approved"
        assert all(e.done_at for e in session.query(OutboxEvent))  # dispatched and fanned out


# The first hour: --version, programs create/list, progress ---------------------------------


@pytest.fixture()
def cli_env(database_url, settings, monkeypatch):
    """Point the in-process CLI at the (emptied) test database, as the shell would."""
    for name in [n for n in os.environ if n.startswith("REFERFLOW_") or n == "REDIS_URL"]:
        monkeypatch.delenv(name)
    for name, value in service_env(database_url).items():
        monkeypatch.setenv(name, value)


def _run(*args):
    from click.testing import CliRunner

    from referflow.cli import main

    return CliRunner().invoke(main, list(args))


def test_version_names_the_installed_package():
    from importlib.metadata import version

    out = _run("--version")
    assert out.exit_code == 0 and out.stdout.strip() == f"referflow {version('referflow')}"


def test_programs_create_refuses_to_guess_a_landing_url(cli_env):
    out = _run("programs", "create", "--name", "no url")
    assert out.exit_code == 2 and "--landing-url" in out.stderr
    assert "rfk_" not in out.output


def test_landing_url_replaces_the_one_in_a_config_file(cli_env, tmp_path):
    config = tmp_path / "program.json"
    config.write_text(json.dumps({"landing_url": "https://old.test/", "hold_days": 3}))
    out = _run("programs", "create", "--name", "x", "--config", str(config), "--landing-url",
               "https://new.test/", "--json")
    created = json.loads(out.stdout)["config"]
    assert created["landing_url"] == "https://new.test/" and created["hold_days"] == 3
    config.write_text("[1, 2")
    broken = _run("programs", "create", "--name", "x", "--config", str(config))
    assert broken.exit_code == 1 and "not valid JSON" in broken.stderr


def test_programs_list_shows_key_prefixes_never_keys(cli_env):
    first = json.loads(_run("programs", "create", "--name", "Shop A", "--landing-url",
                            "https://a.test/", "--json").stdout)
    json.loads(_run("programs", "create", "--name", "Shop B", "--landing-url",
                    "https://b.test/", "--json").stdout)
    extra = json.loads(_run("keys", "create", "--program", first["program_id"], "--label", "zapier",
                            "--json").stdout)
    text = _run("programs", "list")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert [line.split("  ")[1] for line in lines] == ["Shop A", "Shop B"]
    assert first["api_key"][:10] + "…" in lines[0] and "zapier" in lines[0]
    listed = json.loads(_run("programs", "list", "--json").stdout)
    assert [len(p["keys"]) for p in listed] == [2, 1]
    for secret in (first["api_key"], extra["api_key"]):
        assert secret not in text.output and secret[10:] not in json.dumps(listed)


def test_programs_list_on_an_empty_install_says_how_to_start(cli_env):
    assert "referflow programs create" in _run("programs", "list").stdout


def _customers_csv(path, count):
    path.write_text("external_id,email\n" + "".join(f"c{i},c{i}@x.test\n" for i in range(count)))
    return str(path)


def test_customers_import_is_quiet_off_a_terminal_and_reports_with_progress(cli_env, api, tmp_path):
    program = api.program_id
    csv_file = _customers_csv(tmp_path / "c.csv", 1200)
    quiet = _run("customers", "import", "--program", program, csv_file)
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout == "read 1200 customer(s), 1200 new\n" and quiet.stderr == ""
    loud = _run("customers", "import", "--program", program, csv_file, "--progress")
    assert loud.stdout == "read 1200 customer(s), 0 new\n"
    assert re.search(r"^import customers: 1200/1200 \(100%\), [\d.]+ s, done$", loud.stderr, re.M)


def test_sweep_reports_its_phases_with_progress(cli_env):
    out = _run("sweep", "--progress")
    assert out.exit_code == 0, out.output
    assert "sweep: 3/3 (100%)" in out.stderr and out.stdout.startswith("moved 0 referral(s)")


def test_on_a_terminal_progress_is_a_bar_on_stderr(database_url, api, tmp_path):
    import pty

    csv_file = _customers_csv(tmp_path / "c.csv", 600)
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "referflow.cli", "customers", "import",
                             "--program", api.program_id, csv_file], env=service_env(database_url),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=secondary, text=True)
    os.close(secondary)
    out, _ = proc.communicate(timeout=60)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        screen += chunk
    os.close(main)
    assert proc.returncode == 0 and out == "read 600 customer(s), 600 new\n"
    assert b"import customers" in screen and b"600/600" in screen
