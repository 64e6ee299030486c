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
