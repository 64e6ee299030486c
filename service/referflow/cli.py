"""The ``referflow`` command: serve, migrate, programs, keys, users, demo, sweep."""

from __future__ import annotations

import io
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from referflow import demo as first_hour
from referflow.config import Settings
from referflow.errors import ApiError, ConfigurationError
from referflow.progress import Progress, progress_option


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
            click.echo(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}")


def _say(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@click.group()
@click.version_option(package_name="referflow", prog_name="referflow", message="%(prog)s %(version)s")
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
@click.option("--landing-url", help="Where share links send friends (absolute http(s) URL); every "
              "other rule takes its default (docs/referrals.md, \"Program config\")")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="JSON file with the program config (program.schema.json); --landing-url, if "
              "given too, replaces its landing_url")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def programs_create(name: str, config_path: str | None, landing_url: str | None,
                    as_json: bool) -> None:
    """Create a program and print it with its first API key (shown once)."""
    if not (landing_url or config_path):
        raise click.UsageError("give --landing-url URL (where share links send friends) "
                               "or --config FILE")
    config = _config_file(config_path) if config_path else {}
    if landing_url:
        config["landing_url"] = landing_url
    _emit(_create_program(_settings(), name, config), as_json)


def _config_file(path: str) -> dict[str, Any]:
    try:
        config = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise click.ClickException(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise click.ClickException(f"{path}: a program config is a JSON object")
    return config


@programs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def programs_list(as_json: bool) -> None:
    """List programs with their API keys' prefixes (keys themselves are never stored)."""
    from referflow.actions.programs import list_programs
    from referflow.storage.db import Database

    db = Database(_settings().database_url)
    try:
        with db.session() as session:
            listed = [_listing(program, keys) for program, keys in list_programs(session)]
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    for item in listed:
        keys = ", ".join(f"{k['prefix']}… ({', '.join([k['label'] or 'no label', *k['scopes']])}"
                         f"{', revoked' if k['revoked'] else ''})" for k in item["keys"]) or "none"
        click.echo(f"{item['program_id']}  {item['name']}  created {item['created_at']}  keys: {keys}")
    if not listed:
        click.echo("no programs yet: referflow programs create --name NAME --landing-url URL")


def _listing(program: Any, keys: list[Any]) -> dict[str, Any]:
    from referflow.domain.timeutil import to_rfc3339

    return {"program_id": program.id, "name": program.name,
            "created_at": to_rfc3339(program.created_at),
            "keys": [{"key_id": k.id, "prefix": k.prefix, "label": k.label,
                      "scopes": list(getattr(k, "scopes", None) or []),
                      "revoked": k.revoked_at is not None} for k in keys]}


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
def users() -> None:
    """Manage dashboard users and their roles per program (viewer, reviewer, owner)."""


@contextmanager
def _user_session() -> Iterator[Any]:
    from referflow.storage.db import Database

    db = Database(_settings().database_url)
    try:
        with db.session() as session:
            yield session
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        db.dispose()


def _new_password(from_stdin: bool, label: str = "Password") -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(label, hide_input=True, confirmation_prompt=True))


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(["owner", "reviewer", "viewer"]))
@click.option("--program", "program_ids", required=True, multiple=True,
              help="A program the user may open (repeat for an agency's programs)")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input")
def users_create(email: str, role: str, program_ids: tuple[str, ...], password_stdin: bool) -> None:
    """Create a dashboard user (asks for the password twice, or reads it from stdin)."""
    from referflow.actions.users import create_user

    password = _new_password(password_stdin)
    with _user_session() as session:
        user = create_user(session, email, password, role, program_ids)
        click.echo(f"user {user.id} created: {role} of {', '.join(program_ids)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def users_list(as_json: bool) -> None:
    """List dashboard users with their roles."""
    from referflow.actions.users import list_users

    with _user_session() as session:
        rows: list[dict[str, Any]] = [{"id": u.id, "email": u.email, "disabled": u.disabled,
                 "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                 "programs": {m.program_id: m.role for m in members}} for u, members in list_users(session)]
    if as_json:
        click.echo(json.dumps({"users": rows}, indent=2))
        return
    for row in rows:
        roles = ", ".join(f"{role} of {pid}" for pid, role in row["programs"].items()) or "no programs"
        click.echo(f"{row['id']}  {row['email']}  {roles}{'  (disabled)' if row['disabled'] else ''}")


@users.command("set-role")
@click.option("--email", required=True)
@click.option("--program", "program_id", required=True)
@click.option("--role", required=True, type=click.Choice(["owner", "reviewer", "viewer"]))
def users_set_role(email: str, program_id: str, role: str) -> None:
    """Give a user a role on a program (adds the program when they had none there)."""
    from referflow.actions.users import find_user, set_role

    with _user_session() as session:
        set_role(session, find_user(session, email).id, program_id, role)
        click.echo(f"{email} is {role} of {program_id}")


@users.command("remove")
@click.option("--email", required=True)
def users_remove(email: str) -> None:
    """Delete a user and their roles (refused while they are a program's last owner)."""
    from referflow.actions.users import find_user, remove_user

    with _user_session() as session:
        remove_user(session, find_user(session, email).id)
        click.echo(f"user {email} removed")


@users.command("disable")
@click.option("--email", required=True)
def users_disable(email: str) -> None:
    """Stop a user logging in and end every session of theirs (their roles stay)."""
    from referflow.actions.accounts import disable_user
    from referflow.actions.users import find_user

    with _user_session() as session:
        disable_user(session, find_user(session, email).id)
        click.echo(f"user {email} disabled; every session of theirs ended")


@users.command("enable")
@click.option("--email", required=True)
def users_enable(email: str) -> None:
    """Let a disabled user log in again."""
    from referflow.actions.accounts import enable_user
    from referflow.actions.users import find_user

    with _user_session() as session:
        enable_user(session, find_user(session, email).id)
        click.echo(f"user {email} enabled")


@users.command("reset-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input")
def users_reset_password(email: str, password_stdin: bool) -> None:
    """Set a user's new password (asks twice, or reads stdin) and end every session of theirs."""
    from referflow.actions.accounts import reset_password
    from referflow.actions.users import find_user

    password = _new_password(password_stdin, "New password")
    with _user_session() as session:
        reset_password(session, find_user(session, email).id, password)
        click.echo(f"user {email}: new password set; every session of theirs ended")


@main.group()
def customers() -> None:
    """Manage known (existing) customers."""


@customers.command("import")
@click.option("--program", "program_id", required=True)
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=50_000, show_default=True,
              help="Rows written per transaction (the whole file is checked before any is written)")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@progress_option
def customers_import(program_id: str, csv_file: str, batch_size: int, progress: bool | None) -> None:
    """Import existing customers from a CSV with columns external_id and/or email.

    Idempotent: a customer already known (by external id or email) is not added again. A file
    with a bad row writes nothing: its bad rows are listed by line number.
    """
    from referflow.actions.bulk import csv_records
    from referflow.actions.customers import CustomerImport

    settings = _settings()
    with _import_file(csv_file) as stream:
        header, records = csv_records(stream)
        if not {"external_id", "email"} & set(header):
            raise click.ClickException(f"{csv_file}: the header needs an external_id or an email column")
        with _importing(settings, program_id) as (db, ctx), \
                CustomerImport(db.engine, ctx, source="cli") as job:
            with Progress("check customers", _data_lines(csv_file, header=True), progress) as bar:
                report = job.check(records, bar.advance)
            _refuse_problems(csv_file, report)
            with Progress("import customers", report.read, progress) as bar:
                job.write(bar.advance, batch_size)  # the statistics are added with each batch
    click.echo(f"read {report.read} customer(s), {report.added} new")
    if report.repeated:
        click.echo(f"{report.repeated} row(s) repeated an earlier row's external_id or email")


@main.group("import")
def import_group() -> None:
    """Bring data over from another tool (checked whole first; safe to run again)."""


@import_group.command("referrals")
@click.option("--program", "program_id", required=True)
@click.option("--format", "file_format", type=click.Choice(["csv", "jsonl"]),
              help="Default: jsonl for a .jsonl or .ndjson file, csv otherwise")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=50_000, show_default=True,
              help="Referrals written per transaction (the whole file is checked before any is written)")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@progress_option
def import_referrals(program_id: str, file_format: str | None, batch_size: int, file: str,
                     progress: bool | None) -> None:
    """Import referrals (with their advocates and codes) from a CSV or JSON Lines file.

    Columns: docs/referrals.md, "Importing referrals". Keyed on friend_external_id: a friend who
    already has a referral in the program is skipped, so running the same file again adds
    nothing. A file with a bad row writes nothing: its bad rows are listed by line number.
    Imported referrals emit no webhooks and plan no rewards.
    """
    from referflow.actions.backfill import ReferralImport
    from referflow.actions.bulk import csv_records, jsonl_records
    from referflow.domain.imports import missing_columns, unknown_columns

    jsonl = (file_format or ("jsonl" if file.endswith((".jsonl", ".ndjson")) else "csv")) == "jsonl"
    settings = _settings()
    with _import_file(file) as stream:
        if jsonl:
            records = jsonl_records(stream)
        else:
            header, records = csv_records(stream)
            wrong = [f"missing column {n}" for n in missing_columns(header)] + [
                f"unknown column {n}" for n in unknown_columns(header)]
            if wrong:
                raise click.ClickException(f"{file}:1: " + "; ".join(wrong))
        with _importing(settings, program_id) as (db, ctx), \
                ReferralImport(db.engine, ctx, Path(file).name) as job:
            with Progress("check referrals", _data_lines(file, header=not jsonl), progress) as bar:
                report = job.check(records, bar.advance)
            _refuse_problems(file, report)
            with Progress("import referrals", report.read, progress) as bar:
                job.write(bar.advance, batch_size)  # the statistics are added with each batch
    click.echo(f"read {report.read} referral(s): {report.added} imported, {report.existing} "
               f"already there; {report.extra['advocates_added']} new advocate(s), "
               f"{report.extra['codes_added']} new code(s)")


@contextmanager
def _import_file(path: str) -> Iterator[Any]:
    """Open an import file as text (``-``: standard input)."""
    # newline="": the csv module reads line ends itself (quoted fields may hold them)
    stream = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="") if path == "-"
              else open(path, encoding="utf-8-sig", newline=""))  # noqa: SIM115 (closed below)
    try:
        yield stream
    finally:
        stream.close()


@contextmanager
def _importing(settings: Settings, program_id: str) -> Iterator[tuple[Any, Any]]:
    """Yield the database and the program an import writes into."""
    from referflow.actions.common import load_program
    from referflow.storage.db import Database

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            ctx = load_program(session, program_id, settings.secret_key)
        yield db, ctx
    except ApiError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        db.dispose()


def _data_lines(path: str, header: bool) -> int:
    """Count a file's lines after its header (the progress total); 0 for standard input."""
    if path == "-":
        return 0
    lines, end = 0, b"\n"
    with open(path, "rb") as raw:
        for block in iter(lambda: raw.read(1 << 20), b""):
            lines, end = lines + block.count(b"\n"), block[-1:]
    return max(lines + (end != b"\n") - header, 0)


def _refuse_problems(path: str, report: Any) -> None:
    """List a file's bad rows on stderr and stop: nothing was written."""
    problems = report.problems
    if not problems:
        return
    for line, message in problems.listed:
        click.echo(f"{path}:{line}: {message}", err=True)
    if problems.count > len(problems.listed):
        click.echo(f"... and {problems.count - len(problems.listed)} more", err=True)
    raise click.ClickException(f"{problems.count} bad row(s) in {report.read} read; nothing was imported")


@main.group()
def stats() -> None:
    """Program statistics (getProgramStats) and their rollups."""


@stats.command("rebuild")
@click.option("--program", "program_id", help="Only this program (default: every program)")
def stats_rebuild(program_id: str | None) -> None:
    """Recompute the statistics rollups from the referrals, clicks and ledger (idempotent).

    Every change keeps them as it happens; run this after rows were written another way (a bulk
    import, a restore) or after changing a program's timezone (periods are its calendar days).
    """
    from referflow.actions.stats import rebuild
    from referflow.storage.db import Database

    db = Database(_settings().database_url)
    try:
        with db.session() as session:
            written = rebuild(session, program_id)
            if program_id is not None and not written:
                raise click.ClickException(f"program {program_id} not found")
            session.commit()
    finally:
        db.dispose()
    for pid, rows in written.items():
        click.echo(f"{pid}: {rows} rollup row(s)")


@main.group()
def workflows() -> None:
    """Render and check the n8n workflow pack."""


@workflows.command("render")
@click.option("--client", "client_file", type=click.Path(exists=True, dir_okay=False),
              help="Client file (YAML or JSON), see schemas/client.schema.json; without one, --flavour "
                   "native writes the pack as shipped")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--flavour", type=click.Choice(["http", "native"]), default="http", show_default=True,
              help="http: HTTP Request nodes and a Header Auth credential (no community package needed); "
                   "native: the Referflow node and Referflow Trigger of the n8n-nodes-referflow package")
def workflows_render(client_file: str | None, out_dir: str, flavour: str) -> None:
    """Render the pack for one client: base URL, credentials, providers, prefix, tags."""
    import yaml

    from referflow import workflows as pack

    if client_file is None and flavour == "http":
        raise click.UsageError("--client is required (without one, only --flavour native writes the pack as shipped)")
    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        # The native flavour converts what the http one renders; nothing lands in --out unless
        # every file converts.
        target = out if flavour == "http" else Path(tmp)
        client: dict[str, Any] = {}
        try:
            if client_file is None:
                written = _copy_pack(pack.pack_dir(), target)
            else:
                client = yaml.safe_load(Path(client_file).read_text())
                written = pack.render(client, target)
        except yaml.YAMLError as exc:
            raise click.ClickException(f"{client_file} is not valid YAML: {exc}") from exc
        except ApiError as exc:
            details = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors) or exc.message
            raise click.ClickException(f"{client_file}: {details}") from exc
        if flavour == "native":
            texts = [_to_native(path, (client.get("credentials") or {})) for path in written]
            out.mkdir(parents=True, exist_ok=True)
            written = [out / path.name for path in written]
            for path, text in zip(written, texts, strict=True):
                path.write_text(text)
    for path in written:
        click.echo(f"wrote {path}")


def _copy_pack(source: Path, out: Path) -> list[Path]:
    """Write the pack's workflow files as shipped into ``out`` (the manifest's order)."""
    manifest = json.loads((source / "pack.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in manifest["workflows"]:
        target = out / entry["file"]
        target.write_text((source / entry["file"]).read_text())
        written.append(target)
    return written


def _to_native(path: Path, names: dict[str, str]) -> str:
    """The native-node flavour of one written workflow file, as text."""
    from referflow import workflows as pack
    from referflow.native_flavour import NativeFlavourError, to_native

    try:
        workflow = to_native(json.loads(path.read_text()))
    except NativeFlavourError as exc:
        raise click.ClickException(f"{path.name}: {exc}") from exc
    # A credential the conversion added (the trigger's) takes the client's name, like the others.
    for node in workflow["nodes"]:
        for credential in (node.get("credentials") or {}).values():
            key = pack.CREDENTIALS.get(credential["id"])
            if key and names.get(key):
                credential["name"] = names[key]
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"


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
    """Create a demo program (approves at once, pays both sides) and print its API key."""
    _emit(_create_program(_settings(), first_hour.DEMO_NAME, first_hour.DEMO_CONFIG), as_json)
    if not as_json:
        _say(first_hour.describe())


@main.command()
@progress_option
def sweep(progress: bool | None) -> None:
    """Run the periodic work once (holds, reviews, outbox, retries, retention); safe from cron."""
    from referflow.app import create_app
    from referflow.jobs.queue import InlineQueue, RqQueue
    from referflow.jobs.runner import dispatch, prune_expired
    from referflow.jobs.runner import sweep as run_sweep

    settings = _settings()
    services = create_app(settings).extensions["referflow"]
    queue = RqQueue(settings.redis_url) if settings.redis_url else InlineQueue()
    services.queue = services.queue or queue
    try:
        with Progress("sweep", 3, progress) as bar:
            moved = run_sweep(services)
            bar.advance(item="holds and reviews")
            dispatched = dispatch(services, queue)
            bar.advance(item="outbox and retries")
            pruned = prune_expired(services)
            bar.advance(item="retention")
    finally:
        services.db.dispose()
    click.echo(f"moved {moved} referral(s); dispatched {dispatched} job(s)")
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
        if with_demo:
            _greet(settings, host, port or settings.port)
    from referflow.server import run

    run(settings, host, port or settings.port, workers, threads)


def _greet(settings: Settings, host: str, port: int) -> None:
    """On the embedded default: create and explain the demo program, or say how to find programs."""
    if _has_programs(settings):
        _say(first_hour.lost_key_help())
        return
    created = _create_program(settings, first_hour.DEMO_NAME, first_hour.DEMO_CONFIG)
    click.echo("demo program created:")
    _emit(created, as_json=False)
    loopback = host in ("127.0.0.1", "0.0.0.0", "localhost", "::1", "::")  # noqa: S104 (a comparison)
    base = f"http://{'localhost' if loopback else host}:{port}"
    _say(["", *first_hour.describe(), "", *first_hour.next_steps(base, created["api_key"]), ""])


def _has_programs(settings: Settings) -> bool:
    from referflow.actions.programs import list_programs
    from referflow.storage.db import Database

    db = Database(settings.database_url)
    try:
        with db.session() as session:
            return bool(list_programs(session, limit=1))
    finally:
        db.dispose()


@main.group("secrets")
def secrets_group() -> None:
    """Secrets at rest: provider credentials and webhook secrets, encrypted under REFERFLOW_SECRET_KEY."""


@secrets_group.command("rotate")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Rows re-encrypted per transaction")
@progress_option
def secrets_rotate(batch_size: int, progress: bool | None) -> None:
    """Re-encrypt every stored secret under REFERFLOW_SECRET_KEY (idempotent, safe to interrupt).

    Run it once the previous key is in REFERFLOW_OLD_SECRET_KEYS; when it has finished, the old
    keys can be removed (REFERFLOW_HASH_KEY stays).
    """
    from referflow.errors import UnreadableSecret
    from referflow.progress import Progress
    from referflow.storage.crypto import Keyring
    from referflow.storage.db import Database, compact_sqlite
    from referflow.storage.migrate import is_at_head
    from referflow.storage.models import Base
    from referflow.storage.rekey import count, rotate, secret_columns

    settings = _settings()
    db = Database(settings.database_url)
    columns = secret_columns(Base.metadata)
    try:
        with db.engine.connect() as conn:
            if not is_at_head(conn):
                raise click.ClickException("the database is not at the latest migration: run `referflow migrate`")
            total = sum(count(conn, col) for col in columns)
        with Progress("re-encrypting secrets", total, progress) as bar:
            done = rotate(db.engine, Keyring(settings.secret_keys), columns, bar.advance, batch_size)
    except UnreadableSecret as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        db.dispose()
    if settings.embedded and any(done.rotated.values()):
        compact_sqlite(settings.database_url)  # no copy under the old key left in free pages
    for purpose, changed in done.rotated.items():
        click.echo(f"{purpose}: {changed} re-encrypted")
    click.echo(f"{done.seen} value(s) read; all are under the current REFERFLOW_SECRET_KEY")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
