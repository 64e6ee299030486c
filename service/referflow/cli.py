"""The ``referflow`` command: serve, migrate, programs, keys, demo, sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from referflow.config import Settings
from referflow.errors import ApiError, ConfigurationError

DEMO_CONFIG = {
    "landing_url": "https://shop.example.com/welcome",
    "currency": "USD",
    "rewards": {"advocate": {"type": "gift_card", "amount": 2000},
                "friend": {"type": "gift_card", "amount": 1000}},
    "hold_days": 14,
}


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@click.group()
def main() -> None:
    """referflow: a self-hosted referral-program engine."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (Alembic) up to the latest."""
    from referflow.storage.migrate import upgrade

    upgrade(_settings().database_url)
    click.echo("database is up to date")


@main.group()
def programs() -> None:
    """Manage programs."""


def _create_program(settings: Settings, name: str, config: dict[str, Any]) -> dict[str, Any]:
    from referflow.actions.programs import create_program
    from referflow.contract import SchemaStore
    from referflow.storage.db import Database

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            program, key = create_program(session, SchemaStore(), name, config)
            return {"program_id": program.id, "name": program.name, "api_key": key.secret,
                    "config": program.config}
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        db.dispose()


@programs.command("create")
@click.option("--name", required=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="JSON file with the program config (program.schema.json)")
@click.option("--landing-url", help="Shortcut when no --config is given")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def programs_create(name: str, config_path: str | None, landing_url: str | None,
                    as_json: bool) -> None:
    """Create a program and print it with its first API key."""
    if config_path:
        config = json.loads(Path(config_path).read_text())
    else:
        config = {**DEMO_CONFIG, "landing_url": landing_url or DEMO_CONFIG["landing_url"]}
    _emit(_create_program(_settings(), name, config), as_json)


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--program", "program_id", required=True)
@click.option("--label")
@click.option("--json", "as_json", is_flag=True)
def keys_create(program_id: str, label: str | None, as_json: bool) -> None:
    """Create an API key for a program and print it (shown once)."""
    from referflow.actions.programs import create_api_key
    from referflow.storage.db import Database

    db = Database(_settings().database_url)
    try:
        with db.session() as session:
            key = create_api_key(session, program_id, label)
            _emit({"program_id": program_id, "key_id": key.row.id, "api_key": key.secret},
                  as_json)
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        db.dispose()


@main.group()
def customers() -> None:
    """Manage known (existing) customers."""


@customers.command("import")
@click.option("--program", "program_id", required=True)
@click.argument("csv_file", type=click.File("r"))
def customers_import(program_id: str, csv_file: Any) -> None:
    """Import existing customers from a CSV with columns external_id and/or email."""
    import csv

    from referflow.actions.common import load_program
    from referflow.actions.customers import import_customers
    from referflow.storage.db import Database

    rows = [{k: v.strip() for k, v in row.items() if k in ("external_id", "email") and v
             and v.strip()} for row in csv.DictReader(csv_file)]
    rows = [row for row in rows if row]
    settings = _settings()
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            ctx = load_program(session, program_id, settings.secret_key)
            added = import_customers(session, ctx, rows, source="cli")
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        db.dispose()
    click.echo(f"read {len(rows)} customer(s), {added} new")


@main.group()
def workflows() -> None:
    """Render and check the n8n workflow pack."""


@workflows.command("render")
@click.option("--client", "client_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Client file (YAML or JSON), see schemas/client.schema.json")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def workflows_render(client_file: str, out_dir: str) -> None:
    """Render the pack for one client: base URL, credentials, providers, prefix, tags."""
    import yaml

    from referflow import workflows as pack

    try:
        client = yaml.safe_load(Path(client_file).read_text())
        written = pack.render(client, Path(out_dir))
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{client_file} is not valid YAML: {exc}") from exc
    except ApiError as exc:
        details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors) or exc.message
        raise click.ClickException(f"{client_file}: {details}") from exc
    for path in written:
        click.echo(f"wrote {path}")


@workflows.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def workflows_check(directory: str) -> None:
    """Check workflow files: schema, node ids, connections, referflow operations, no secrets."""
    from referflow import api
    from referflow import workflows as pack
    from referflow.api.meta import openapi_document

    api.modules()  # fills the operation table the OpenAPI document is built from
    problems = pack.check(Path(directory), openapi_document())
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s)")
    click.echo(f"{directory}: ok")


@main.group()
def nodes() -> None:
    """The node pack: n8n community node and Zapier app, generated from node_specs/."""


def _checked_specs() -> list[dict[str, Any]]:
    from referflow import api
    from referflow import nodes as specs
    from referflow.api.meta import openapi_document
    from referflow.contract import SchemaStore

    api.modules()  # fills the operation table the OpenAPI document is built from
    try:
        loaded = specs.load_specs()
    except ApiError as exc:
        details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors) or exc.message
        raise click.ClickException(f"node spec: {details}") from exc
    problems = specs.drift(loaded, openapi_document(), SchemaStore())
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} spec(s) drifted from the OpenAPI document")
    return loaded


def _integrations_dir(out_dir: str | None) -> Path:
    if out_dir:
        return Path(out_dir)
    source = Path(__file__).resolve().parents[2] / "integrations"
    return source if source.parent.joinpath("node_specs").is_dir() else Path("integrations")


@nodes.command("generate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Where to write (default: the source tree's integrations/)")
def nodes_generate(out_dir: str | None) -> None:
    """Regenerate integrations/n8n-nodes-referflow and integrations/zapier from node_specs/."""
    from importlib.metadata import version

    from referflow import nodegen

    root = _integrations_dir(out_dir)
    files = nodegen.render(_checked_specs(), version("referflow"))
    changed = nodegen.differences(files, root)
    nodegen.write(files, root)
    click.echo(f"{root}: {len(files)} file(s), {len(changed)} changed")


@nodes.command("check")
@click.option("--out", "out_dir", type=click.Path(file_okay=False))
def nodes_check(out_dir: str | None) -> None:
    """Fail when a spec drifted from the API or the generated files are not up to date."""
    from importlib.metadata import version

    from referflow import nodegen

    root = _integrations_dir(out_dir)
    stale = nodegen.differences(nodegen.render(_checked_specs(), version("referflow")), root)
    for name in stale:
        click.echo(f"out of date: {name}", err=True)
    if stale:
        raise click.ClickException("run `referflow nodes generate`")
    click.echo(f"{root}: up to date")


@main.command()
@click.option("--json", "as_json", is_flag=True)
def demo(as_json: bool) -> None:
    """Create a demo program and print its API key."""
    _emit(_create_program(_settings(), "Demo program", DEMO_CONFIG), as_json)


@main.command()
def sweep() -> None:
    """Run the periodic work once (holds, reviews, outbox, retries, retention); safe from cron."""
    from referflow.app import create_app
    from referflow.jobs.queue import InlineQueue, RqQueue
    from referflow.jobs.runner import dispatch, prune_expired
    from referflow.jobs.runner import sweep as run_sweep

    settings = _settings()
    services = create_app(settings).extensions["referflow"]
    queue = RqQueue(settings.redis_url) if settings.redis_url else InlineQueue()
    services.queue = services.queue or queue
    moved = run_sweep(services)
    click.echo(f"moved {moved} referral(s); dispatched {dispatch(services, queue)} job(s)")
    pruned = prune_expired(services)
    click.echo(f"pruned past {settings.retention_days} days: " + ", ".join(f"{n} {k}" for k, n in pruned.items()))


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty (for scripts and tests)")
@click.option("--tick-seconds", type=float, default=1.0, show_default=True,
              help="How often to release holds, resolve reviews and dispatch the outbox")
def worker(burst: bool, tick_seconds: float) -> None:
    """Run an rq worker (with scheduler) and the periodic ticker; needs REDIS_URL."""
    import time

    from redis.exceptions import ConnectionError as RedisConnectionError
    from rq import SimpleWorker

    from referflow.jobs import context
    from referflow.jobs.queue import RqQueue
    from referflow.jobs.runner import Ticker, tick

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("set REDIS_URL: without Redis, `referflow serve` runs jobs itself")
    services = context.services()
    queue = RqQueue(settings.redis_url)
    services.queue = queue
    if burst:
        tick(services, queue)
    else:
        Ticker(services, queue, tick_seconds).start()
    # SimpleWorker runs jobs in this process (no fork), so pooled DB connections stay private.
    while True:
        try:
            SimpleWorker([queue.queue], connection=queue.redis).work(with_scheduler=not burst,
                                                                    burst=burst)
            return
        except RedisConnectionError:
            click.echo("redis unavailable; retrying in 2 s", err=True)
            time.sleep(2)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, help="Default: $PORT or 8000")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--threads", type=int, default=4, show_default=True)
@click.option("--demo/--no-demo", "with_demo", default=True,
              help="On the embedded default, create a demo program when there is none")
def serve(host: str, port: int | None, workers: int, threads: int, with_demo: bool) -> None:
    """Run the HTTP service under gunicorn (embedded default: migrate, demo, in-process jobs)."""
    settings = _settings()
    if settings.embedded:
        from referflow.storage.migrate import upgrade

        upgrade(settings.database_url)
        if settings.generated_admin_token:  # never one that came from the environment
            click.echo(f"admin token (kept in {settings.instance_dir}/secrets.json): "
                       f"{settings.admin_token}")
        if with_demo and not _has_programs(settings):
            click.echo("demo program created:")
            _emit(_create_program(settings, "Demo program", DEMO_CONFIG), as_json=False)
    from referflow.server import run

    run(settings, host, port or settings.port, workers, threads)


def _has_programs(settings: Settings) -> bool:
    from sqlalchemy import select

    from referflow.storage.db import Database
    from referflow.storage.models import Program

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            return session.scalar(select(Program.id).limit(1)) is not None
    finally:
        db.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
