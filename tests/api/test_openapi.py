"""The published contract: OpenAPI 3.1 document and JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from referflow.contract import schemas_dir

CONTRACT_OPERATIONS = {
    "createLink", "claimReferral", "qualifyReferral", "reverseReferral", "issueGiftCard",
    "redeemGiftCard", "getReferral", "getAdvocate", "createProgram", "createApiKey",
}


def test_openapi_lists_every_contract_operation(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert set(ids) >= CONTRACT_OPERATIONS


def test_every_schema_reference_is_served_and_valid(client):
    doc = client.get("/openapi.json").get_json()
    refs = set()
    for path in doc["paths"].values():
        for op in path.values():
            text = json.dumps(op)
            refs |= {part.split('"')[0] for part in text.split('"$ref": "')[1:]}
    assert refs
    for ref in refs:
        response = client.get(ref)
        assert response.status_code == 200, ref
        Draft202012Validator.check_schema(response.get_json())


@pytest.mark.parametrize("path", sorted(Path(schemas_dir()).glob("*.json")), ids=lambda p: p.name)
def test_schema_files_are_valid_draft_2020_12(path):
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_unknown_schema_is_404(client):
    assert client.get("/schemas/nope.json").get_json()["code"] == "schema_not_found"


def test_health(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
