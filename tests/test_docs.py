"""The docs site: the generated OpenAPI and schema pages cover the API; the README and the nav map every page.

`mkdocs build --strict` itself runs in CI (.ci/run); these checks need no MkDocs.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_openapi_hook", DOCS / "hooks" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return HOOK.openapi()


def test_the_openapi_page_has_an_entry_for_every_operation(document):
    page = HOOK.render_openapi(document)
    ops = HOOK.operations(document)
    assert len(ops) >= 39
    for method, path, op in ops:
        op_id = op["operationId"]
        entry = page.split(f"### `{op_id}` {{ #{op_id} }}\n", 1)
        assert len(entry) == 2, f"no entry for {op_id}"
        assert entry[1].split("\n### ", 1)[0].count(f"`{method} {path}`") == 1, op_id
        assert f"| [`{op_id}`](#{op_id}) | `{method} {path}` |" in page  # the index table
    for tag in {t for _, _, op in ops for t in op["tags"]}:
        assert f"## {tag.capitalize()} {{ #tag-{tag} }}" in page


def test_every_request_and_response_schema_links_to_its_section(document):
    openapi_page = HOOK.render_openapi(document)
    schemas = HOOK.schema_files(ROOT / "schemas")
    schemas_page = HOOK.render_schemas(document, schemas)
    named = {HOOK.schema_name(ref) for _, _, op in HOOK.operations(document) for ref in HOOK._refs(op)}
    assert named <= set(schemas), "the API names schemas that schemas/ lacks"
    for name in named:
        assert f"(schemas.md#{HOOK.anchor(name)})" in openapi_page, name
    for name in schemas:  # every file of schemas/, with its JSON
        assert f"## `{name}` {{ #{HOOK.anchor(name)} }}" in schemas_page, name
        assert f'??? example "`schemas/{name}.json`"' in schemas_page, name


def _pages() -> set[str]:
    written = {p.name for p in DOCS.glob("*.md")}
    return written | {HOOK.OPENAPI_PAGE, HOOK.SCHEMAS_PAGE}


def test_the_readme_maps_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Documentation\n", 1)[1].split("\n## ", 1)[0]
    for page in sorted(_pages()):
        assert re.search(rf"(docs/)?\b{re.escape(page)}\b", section), f"README 'Documentation' lacks {page}"


def test_the_nav_and_the_overview_list_every_page():
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r"^\s+- [^:\n]+: ([\w-]+\.md)$", mkdocs.split("\nnav:\n", 1)[1], re.MULTILINE))
    assert nav == _pages()
    overview = (DOCS / "index.md").read_text()
    assert {p for p in _pages() if p != "index.md"} <= set(re.findall(r"\]\(([\w-]+\.md)\)", overview))


def test_the_readme_keeps_its_first_screen_and_the_sections_the_overview_includes():
    readme = (ROOT / "README.md").read_text()
    first = readme.split("\n## ", 1)[0]
    assert "pip install -e . && .venv/bin/referflow serve" in first
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/pytest" in first
    for name in re.findall(r'--8<-- "README\.md:(\w+)"', (DOCS / "index.md").read_text()):
        assert readme.count(f"<!-- --8<-- [start:{name}] -->") == 1 == readme.count(f"<!-- --8<-- [end:{name}] -->")
