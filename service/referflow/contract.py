"""The published JSON Schemas (Draft 2020-12): loaded once, used to validate bodies."""

from __future__ import annotations

import difflib
import json
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource

from referflow.domain.timeutil import parse_rfc3339
from referflow.domain.urls import parse_http_url
from referflow.errors import ValidationFailed

FORMATS = FormatChecker()


# The preference that turns an ordinary "nothing to do" into 200 with an outcome (RFC 7240
# ``Prefer``): honoured by the API (api/operations.py), sent by the workflows and the nodes.
PREFER_OUTCOME = "outcome=explicit"

def _strict_integer(_checker: object, value: object) -> bool:
    # JSON Schema counts 1000.0 as an integer; money in minor units must be a real integer.
    return isinstance(value, int) and not isinstance(value, bool)


@lru_cache(maxsize=256)
def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262, where "$" ends the input; Python's "$" also matches
    # before a final newline, which let "ABCD\n" through a "^[A-Z0-9]+$" pattern. Only a bare
    # "$" is an anchor: escaped ones and those inside a character class stay as they are.
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append("\\Z" if char == "$" and not in_class else char)
        i += 1
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, _schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


@FORMATS.checks("http-url", raises=ValueError)
def _is_http_url(value: object) -> bool:
    """Accept absolute http(s) URLs with a host that every parser reads the same way."""
    if isinstance(value, str):
        parse_http_url(value)
    return True


@FORMATS.checks("date-time", raises=ValueError)
def _is_rfc3339(value: object) -> bool:
    """Accept only RFC 3339 timestamps with an explicit offset."""
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


# Which errors name the real mistake: a misspelt or unknown field explains the "required" error
# beside it ({"externalid": ...} is why external_id is missing), and a value of the wrong type or
# shape is a mistake in itself; a missing field is most often the consequence of one of those.
_FIRST, _VALUE, _OTHER, _MISSING = range(4)
_RANK = {"additionalProperties": _FIRST, "unevaluatedProperties": _FIRST, "propertyNames": _FIRST,
         "type": _VALUE, "enum": _VALUE, "const": _VALUE, "format": _VALUE, "pattern": _VALUE,
         "required": _MISSING, "dependentRequired": _MISSING}


def _error_order(err: ValidationError) -> tuple[int, tuple[str, ...], str]:
    return (_RANK.get(str(err.validator), _OTHER), tuple(str(p) for p in err.absolute_path),
            err.message)


def _message(err: ValidationError) -> str:
    """Return the error's message, naming the allowed field an unexpected one was likely meant as."""
    if err.validator != "additionalProperties" or not isinstance(err.instance, dict):
        return err.message
    schema = err.schema if isinstance(err.schema, dict) else {}
    allowed, patterns = list(schema.get("properties", {})), list(schema.get("patternProperties", {}))
    hints = []
    unexpected = [key for key in err.instance
                  if key not in allowed and not any(re.search(p, key) for p in patterns)]
    for extra in unexpected:
        close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.75)
        if close:
            hints.append(f"{extra!r}: did you mean {close[0]!r}?")
    return f"{err.message}; {'; '.join(hints)}" if hints else err.message


def schemas_dir() -> Path:
    """Return the folder of the schemas: packaged copy first, then the source tree."""
    packaged = Path(__file__).parent / "_schemas"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "schemas"


class SchemaStore:
    """Every schema file by name, with validators that resolve cross-file $refs."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or schemas_dir()
        self.documents: dict[str, dict[str, Any]] = {
            path.name[: -len(".json")]: json.loads(path.read_text())
            for path in sorted(self.directory.glob("*.json"))
        }
        self._validators: dict[str, Any] = {}

    @cached_property
    def registry(self) -> Registry:
        """Return a registry holding every schema under its file name."""
        resources = [(f"{name}.json", Resource.from_contents(doc))
                     for name, doc in self.documents.items()]
        return Registry().with_resources(resources)

    def validator(self, name: str) -> Any:
        """Return the cached validator of one schema."""
        if name not in self._validators:
            self._validators[name] = StrictValidator(
                self.documents[name], registry=self.registry, format_checker=FORMATS
            )
        return self._validators[name]

    def errors(self, name: str, data: Any) -> list[dict[str, str]]:
        """Return the validation errors of ``data`` as ``{path, message}``, the likeliest cause first."""
        found = sorted(self.validator(name).iter_errors(data), key=_error_order)
        return [{"path": "/" + "/".join(str(p) for p in err.absolute_path), "message": _message(err)}
                for err in found]

    def validate(self, name: str, data: Any) -> None:
        """Raise ValidationFailed when ``data`` does not match schema ``name``."""
        errors = self.errors(name, data)
        if errors:
            first = errors[0]
            raise ValidationFailed(f"{first['path']}: {first['message']}", errors=errors)
