"""MkDocs hook: render the code's OpenAPI document and JSON Schemas as two pages, at every build.

`openapi.md` and `schemas.md` are never files in docs/: they are made from the operation table
(the same `openapi_document()` that `GET /openapi.json` serves) and `schemas/` each time
`mkdocs build` or `mkdocs serve` runs, so they cannot go stale. No server, no network.
tests/test_docs.py holds the pages to the API (every operationId, every schema it names).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

OPENAPI_PAGE, SCHEMAS_PAGE = "openapi.md", "schemas.md"
# The order tags are shown in (the order of the README's walkthrough); any other tag follows.
TAG_ORDER = ["admin", "program", "advocates", "referrals", "rewards", "reviews", "eligibility",
             "audit", "privacy", "webhooks", "ingress"]
METHODS = ("get", "post", "put", "patch", "delete")


def openapi() -> dict[str, Any]:
    """Return the OpenAPI document `GET /openapi.json` serves, without a server."""
    from referflow import api  # noqa: PLC0415 - imported when the hook runs, not when MkDocs loads it
    from referflow.api.meta import openapi_document  # noqa: PLC0415

    api.modules()  # fills the operation table the document is built from
    return openapi_document()


def anchor(name: str) -> str:
    """Return the HTML id of a schema's section (`event.referral.approved` -> `event-referral-approved`)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def schema_name(ref: str) -> str:
    """Return the schema name of a `$ref` (`/schemas/referral.json` or `referral.json` -> `referral`)."""
    return ref.rsplit("/", 1)[-1].removesuffix(".json")


def schema_link(ref: str, page: str = SCHEMAS_PAGE) -> str:
    name = schema_name(ref)
    return f"[`{name}`]({page}#{anchor(name)})"


def _refs(node: Any) -> list[str]:
    """Every `$ref` in a JSON value, in order, once."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
        for value in node.values():
            found += [r for r in _refs(value) if r not in found]
    elif isinstance(node, list):
        for value in node:
            found += [r for r in _refs(value) if r not in found]
    return found


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _schema_summary(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    words = [" or ".join(kind) if isinstance(kind, list) else kind]
    if "maxLength" in schema:
        words.append(f"at most {schema['maxLength']} characters")
    return ", ".join(words)


def _security(op: dict[str, Any]) -> str:
    if "security" not in op:
        return "none (public)"
    parts = []
    for requirement in op["security"]:
        for scheme, scopes in requirement.items():
            if scheme == "apiKey":
                parts.append("a program API key with scope " + ", ".join(f"`{s}`" for s in scopes))
            elif scheme == "adminToken":
                parts.append("the admin token (`REFERFLOW_ADMIN_TOKEN`)")
            else:
                parts.append(f"`{scheme}`")
    return " or ".join(parts)


def _body(content: dict[str, Any]) -> str:
    links = []
    for media, spec in content.items():
        refs = _refs(spec.get("schema", {}))
        links.append(" or ".join(schema_link(r) for r in refs) + f" (`{media}`)" if refs else f"`{media}`")
    return "; ".join(links)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the document, in path order."""
    return [(method.upper(), path, op) for path, item in document["paths"].items()
            for method, op in item.items() if method in METHODS]


def _tags(ops: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    seen = {tag for _, _, op in ops for tag in op.get("tags", ["other"])}
    return [t for t in TAG_ORDER if t in seen] + sorted(seen - set(TAG_ORDER))


def render_openapi(document: dict[str, Any]) -> str:
    """The OpenAPI reference page: one section per tag, one entry per operation."""
    ops = operations(document)
    info = document.get("info", {})
    out = [
        "# OpenAPI reference", "",
        f"Generated at every docs build (`docs/hooks/openapi.py`) from the code's OpenAPI {document['openapi']}",
        f"document, the one `GET /openapi.json` serves ({info.get('title', '')}, version "
        f"{info.get('version', '')}): {len(ops)} operations.",
        "Request and response bodies link to their JSON Schema on [JSON Schemas](schemas.md). The rules",
        "every operation shares (errors, idempotency, rate limits, `Prefer: outcome=explicit`) are in",
        "[API](api.md).", "",
        "Authentication (`Authorization: Bearer ...`):", "",
        "| scheme | type | what |", "|---|---|---|",
    ]
    for name, scheme in document.get("components", {}).get("securitySchemes", {}).items():
        kind = f"{scheme.get('type', '')} {scheme.get('scheme', '')}".strip()
        out.append(f"| `{name}` | {kind} | {_cell(scheme.get('description', ''))} |")
    out += ["", "| operationId | method and path | tag | summary |", "|---|---|---|---|"]
    for tag in _tags(ops):
        for method, path, op in ops:
            if tag in op.get("tags", ["other"]):
                out.append(f"| [`{op['operationId']}`](#{op['operationId']}) | `{method} {path}` | {tag} "
                           f"| {_cell(op.get('summary', ''))} |")
    for tag in _tags(ops):
        out += ["", f"## {tag.capitalize()} {{ #tag-{anchor(tag)} }}"]
        for method, path, op in ops:
            if tag in op.get("tags", ["other"]):
                out += ["", *_operation(method, path, op)]
    return "\n".join(out) + "\n"


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    out = [f"### `{op['operationId']}` {{ #{op['operationId']} }}", "",
           f"`{method} {path}`: {op.get('summary', '')}", "",
           f"**Auth**: {_security(op)}"]
    params = op.get("parameters", [])
    if params:
        out += ["", "**Parameters**", "", "| name | in | required | schema | description |",
                "|---|---|---|---|---|"]
        out += [f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
                f"| {_cell(_schema_summary(p.get('schema', {})))} | {_cell(p.get('description', ''))} |"
                for p in params]
    body = op.get("requestBody")
    if body:
        required = ", required" if body.get("required") else ""
        out += ["", f"**Request body**{required}: {_body(body.get('content', {}))}"]
    out += ["", "**Responses**", "", "| status | description | body |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        content = _body(response.get("content", {})) or "-"
        out.append(f"| `{status}` | {_cell(response.get('description', ''))} | {content} |")
    return out


def schema_files(schemas_dir: Path) -> dict[str, dict[str, Any]]:
    """Every JSON Schema under schemas/, by name (the file name without `.json`)."""
    return {path.name.removesuffix(".json"): json.loads(path.read_text())
            for path in sorted(schemas_dir.glob("*.json"))}


def render_schemas(document: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> str:
    """The JSON Schemas page: each schema, the operations that use it, and its JSON (folded)."""
    used: dict[str, list[str]] = {}
    for _, _, op in operations(document):
        link = f"[`{op['operationId']}`]({OPENAPI_PAGE}#{op['operationId']})"
        body = op.get("requestBody", {})
        for ref in _refs(body):
            used.setdefault(schema_name(ref), []).append(f"{link} (request)")
        for ref in _refs(op.get("responses", {})):
            if f"{link} (response)" not in used.get(schema_name(ref), []):
                used.setdefault(schema_name(ref), []).append(f"{link} (response)")
    out = [
        "# JSON Schemas", "",
        f"The {len(schemas)} JSON Schemas (Draft 2020-12) in `schemas/`, each served at "
        "`/schemas/<name>.json`: the",
        "contract's one source of truth (requests are validated against them, the tests check every",
        "response). Generated at every docs build (`docs/hooks/openapi.py`); the operations are in the",
        "[OpenAPI reference](openapi.md).", "",
        "| schema | title | used by |", "|---|---|---|",
    ]
    everyone = len(operations(document))
    for name, users in used.items():
        if len(users) == everyone:  # the error shape: name it once, not 39 times
            used[name] = ["every operation (its `4XX` answers)"]
    for name, schema in schemas.items():
        users = ", ".join(used.get(name, [])) or "-"
        out.append(f"| [`{name}`](#{anchor(name)}) | {_cell(schema.get('title', ''))} | {users} |")
    for name, schema in schemas.items():
        out += ["", f"## `{name}` {{ #{anchor(name)} }}", "", f"**{schema.get('title', name)}**"
                + (f": {schema['description']}" if schema.get("description") else "")]
        refs = [r for r in _refs(schema) if not r.startswith("#")]
        if used.get(name):
            out += ["", "Used by " + ", ".join(used[name]) + "."]
        if refs:
            out += ["", "Refers to " + ", ".join(schema_link(r, "") for r in refs) + "."]
        out += ["", f'??? example "`schemas/{name}.json`"', "", "    ```json"]
        out += [f"    {line}".rstrip() for line in json.dumps(schema, indent=2).splitlines()]
        out += ["    ```"]
    return "\n".join(out) + "\n"


def on_config(config: Any) -> Any:
    """Let `--8<--` snippets (README.md sections) resolve from the repository, whatever the cwd."""
    snippets = config.mdx_configs.setdefault("pymdownx.snippets", {})
    snippets["base_path"] = [str(Path(config.config_file_path).resolve().parent)]
    return config


def on_files(files: Any, config: Any) -> Any:
    """Add the two generated pages to the build."""
    from mkdocs.structure.files import File  # noqa: PLC0415 - MkDocs is there when a hook runs

    document = openapi()
    schemas = schema_files(Path(config.config_file_path).resolve().parent / "schemas")
    files.append(File.generated(config, OPENAPI_PAGE, content=render_openapi(document)))
    files.append(File.generated(config, SCHEMAS_PAGE, content=render_schemas(document, schemas)))
    return files
