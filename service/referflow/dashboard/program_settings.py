"""Settings: the program's config with its versions side by side, edited by owners; API keys."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import yaml
from flask import current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from referflow.actions import programs
from referflow.api.operations import db_session
from referflow.dashboard.auth import require
from referflow.dashboard.blueprint import bp
from referflow.domain.scopes import DEFAULT_SCOPES, Scope
from referflow.errors import ValidationFailed

log = logging.getLogger("referflow.dashboard")
MAX_CONFIG_CHARS = 60_000
# The fields most edits touch, as (form name, config path, label, kind).
COMMON = (
    ("landing_url", ("landing_url",), "Landing URL", "url"),
    ("timezone", ("timezone",), "Timezone (IANA)", "text"),
    ("hold_days", ("hold_days",), "Hold days", "int"),
    ("attribution_window_days", ("attribution_window_days",), "Attribution window (days)", "int"),
    ("review_deadline_hours", ("review", "deadline_hours"), "Review deadline (hours)", "int"),
)


def _services() -> Any:
    return current_app.extensions["referflow"]


def pretty(config: dict[str, Any]) -> str:
    """Return a config as people read and edit it: indented JSON, keys in stored order."""
    return json.dumps(config, indent=2, ensure_ascii=False)


def _get(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        config = config.get(part) if isinstance(config, dict) else None  # type: ignore[assignment]
    return config


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Return the JSON-pointer-like paths where two configs differ (for the side-by-side view)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [path for key in sorted(set(old) | set(new), key=str)
                for path in changed_paths(old.get(key), new.get(key), f"{prefix}/{key}")]
    return [] if old == new else [prefix or "/"]


def _versions_to_compare() -> tuple[Any, Any, list[Any]]:
    versions = programs.config_versions(db_session(), g.program_ctx.id)
    by_number = {v.version: v for v in versions}

    def pick(name: str, default: Any) -> Any:
        raw = request.args.get(name, "")
        return by_number.get(int(raw), default) if raw.isascii() and raw.isdigit() else default

    right = pick("b", versions[0] if versions else None)
    left = pick("a", versions[1] if len(versions) > 1 else right)
    return left, right, versions


def _page(status: int = 200, errors: list[dict[str, str]] | None = None, which: str = "",
          raw: str | None = None, common: dict[str, str] | None = None) -> tuple[str, int]:
    config = g.program_ctx.program.config
    left, right, versions = _versions_to_compare()
    values = common or _current_values()
    return render_template(
        "dashboard/settings.html", config_text=pretty(config), raw=raw if raw is not None else pretty(config),
        common=COMMON, values=values, errors=errors or [], which=which, versions=versions,
        left=left, right=right, pretty=pretty,
        changed=changed_paths(left.config, right.config) if left and right else []), status


def _current_values() -> dict[str, str]:
    config = g.program_ctx.program.config
    return {name: "" if _get(config, path) is None else str(_get(config, path))
            for name, path, _label, _kind in COMMON}


@bp.route("/p/<program_id>/settings", endpoint="settings")
@require("viewer")
def settings_page(program_id: str) -> Any:
    """Show the config, its versions side by side, and (to owners) the forms that edit it."""
    return _page()


@bp.route("/p/<program_id>/settings", methods=["POST"])
@require("owner")
def settings_save(program_id: str) -> Any:
    """Save a new config version from the common fields or the full JSON/YAML text."""
    which = request.form.get("form", "")
    if which == "raw":
        raw = request.form.get("config", "")
        try:
            config = _parse_text(raw)
            return _save(config)
        except ValidationFailed as exc:
            return _page(422, _errors(exc), which, raw=raw)
    values = {name: request.form[name].strip() for name, _path, _label, _kind in COMMON
              if name in request.form}  # a field not sent is left as it is
    try:
        return _save(_with_common(values))
    except ValidationFailed as exc:
        return _page(422, _errors(exc), "common", common={**_current_values(), **values})


REQUIRED = re.compile(r"^'([^']+)' is a required property$")


def _errors(exc: ValidationFailed) -> list[dict[str, str]]:
    """Return the errors to show, each at the path of the field it is about."""
    listed = []
    for error in exc.errors:
        if isinstance(error, dict):
            path, message = str(error.get("path", "")), str(error.get("message", ""))
            missing = REQUIRED.match(message)
            if missing:  # jsonschema puts a missing key at its parent: point at the key itself
                path = f"{path.rstrip('/')}/{missing.group(1)}"
            listed.append({"path": path, "message": message})
    return listed or [{"path": "", "message": exc.message}]


def _parse_text(raw: str) -> dict[str, Any]:
    """Read the config text as JSON or YAML (a JSON document is YAML too)."""
    if len(raw) > MAX_CONFIG_CHARS:
        raise ValidationFailed(f"the config is longer than {MAX_CONFIG_CHARS} characters")
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValidationFailed(f"not valid JSON or YAML{where}") from exc
    if not isinstance(parsed, dict):
        raise ValidationFailed("the config must be an object (keys and values)")
    return parsed


def _with_common(values: dict[str, str]) -> dict[str, Any]:
    """Return the current config with the common fields set from the form."""
    config = json.loads(json.dumps(g.program_ctx.program.config))
    problems = []
    for name, path, label, kind in COMMON:
        if name not in values:
            continue
        value: Any = values[name]
        if kind == "int" and value:
            if not (value.isascii() and value.isdigit()):
                problems.append({"path": "/" + "/".join(path), "message": f"{label} must be a whole number"})
                continue
            value = int(value)
        target = config
        for part in path[:-1]:
            target = target.setdefault(part, {})
        if value == "":
            target.pop(path[-1], None)  # empty: the default applies
        else:
            target[path[-1]] = value
    if problems:
        raise ValidationFailed(problems[0]["message"], errors=problems)
    return config


def _save(config: dict[str, Any]) -> Response:
    before = g.program_ctx.program.config_version
    program = programs.update_config(db_session(), _services().schemas, g.program_ctx.id, config)
    _services().keys.forget_program(program.id)
    log.info("user %s saved config version %d of %s", g.user.id, program.config_version, program.id)
    if program.config_version == before:
        flash("Nothing changed: the config is the same as the current version.", "warning")
    else:
        flash(f"Saved as version {program.config_version}.", "success")
    return redirect(url_for("dashboard.settings", program_id=program.id))


@bp.route("/p/<program_id>/settings/keys")
@require("owner")
def settings_keys(program_id: str) -> Any:
    """List the program's API keys with the form that makes another."""
    return _keys_page()


def _keys_page(issued: Any = None, status: int = 200) -> tuple[str, int]:
    keys = programs.list_api_keys(db_session(), g.program_ctx.id)
    return render_template("dashboard/api_keys.html", keys=keys, issued=issued, scopes=list(Scope),
                           default_scope=DEFAULT_SCOPES[0]), status


@bp.route("/p/<program_id>/settings/keys", methods=["POST"])
@require("owner")
def settings_keys_create(program_id: str) -> Any:
    """Make an API key and show it once (never stored, never put in the session)."""
    label = request.form.get("label", "").strip()[:200] or None
    scope = request.form.get("scope", DEFAULT_SCOPES[0])
    if scope not in set(Scope):
        flash("Choose one of the listed scopes.", "error")
        return redirect(url_for("dashboard.settings_keys", program_id=program_id))
    issued = programs.create_api_key(db_session(), g.program_ctx.id, label, [scope])
    log.info("user %s made API key %s… of %s", g.user.id, issued.row.prefix, program_id)
    return _keys_page(issued, 201)


@bp.route("/p/<program_id>/settings/keys/<key_id>/revoke", methods=["POST"])
@require("owner")
def settings_keys_revoke(program_id: str, key_id: str) -> Response:
    """Revoke an API key: refused from then on."""
    row = programs.revoke_api_key(db_session(), g.program_ctx.id, key_id)
    _services().keys.forget_key(row.id)
    log.info("user %s revoked API key %s… of %s", g.user.id, row.prefix, program_id)
    flash(f"API key {row.prefix}… revoked.", "success")
    return redirect(url_for("dashboard.settings_keys", program_id=program_id))
