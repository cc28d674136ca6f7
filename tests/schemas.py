"""Validate real ``--json`` outputs against the JSON Schemas shipped in srsfwd/schemas."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_FILES = ("decision.schema.json", "mailbox.schema.json", "reports.schema.json")


def load_schema(name: str) -> dict[str, Any]:
    """One shipped schema file, read through the installed package."""
    text = files("srsfwd").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _registry() -> Registry[Any]:
    resources = [Resource.from_contents(load_schema(name)) for name in SCHEMA_FILES]
    return Registry().with_resources((r.id() or "", r) for r in resources)


def validate(document: object, name: str, definition: str | None = None) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``document`` fits the schema ``name``
    (or its ``$defs/definition``)."""
    schema = load_schema(name)
    if definition is not None:
        schema = {"$ref": f"{schema['$id']}#/$defs/{definition}"}
    validator = Draft202012Validator(
        schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(document)
