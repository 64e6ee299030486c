"""A real referflow under gunicorn on loopback, for tests that need processes and sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import requests.adapters
from urllib3.util.retry import Retry

from tests.conftest import ADMIN_TOKEN, PROGRAM_CONFIG, SECRET_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REFERFLOW_", "REDIS_URL"))}
    env.update({"DATABASE_URL": database_url, "REFERFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
                "REFERFLOW_SECRET_KEY": SECRET_KEY, **extra})
    return env


@contextmanager
def live_server(database_url: str, tmp: Path, workers: int = 2, threads: int = 8,
                **env: str) -> Iterator[str]:
    """Run ``referflow serve`` and yield its base URL; stop it afterwards."""
    port = free_port()
    log = (tmp / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "referflow.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers), "--threads", str(threads), "--no-demo"],
        env=service_env(database_url, REFERFLOW_INSTANCE_DIR=str(tmp), **env), cwd=tmp,
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def live_program(base: str, config: dict | None = None, name: str = "live") -> tuple[str, requests.Session]:
    """Create a program on a live server; return its API key and a session that sends it."""
    created = requests.post(f"{base}/v1/admin/programs", timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                            json={"name": name, "config": config or PROGRAM_CONFIG})
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]["key"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    # gunicorn closes idle keep-alive connections after 2 s; a GET that races that close is
    # retried (idempotent methods only, as urllib3's Retry does by default).
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=Retry(total=2, backoff_factor=0.1)))
    return key, session


def _wait_healthy(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or busy starting up
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")
