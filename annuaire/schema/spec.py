"""The schema half of specs/: JSON Schemas of the public models and SCHEMA.md, generated.

``aiguillage spec write`` regenerates them; a test fails when the committed files drift from
the models, so the documentation can never lag behind the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import PUBLIC_MODELS
from .membership import EnrollmentRole, Relation, RoleKind
from .run import ChangeOp
from .structure import StructureKind

__all__ = ["json_schemas", "render_files", "schema_markdown"]

_INTRO = """\
# Neutral schema v1

Generated from the models by `aiguillage spec write`; do not edit by hand.
The JSON Schemas of the same models are in `schema/`.

Every entity carries a stable hub `id` (UUID), a `status` (`active`, or `tobedeleted` once it
left its source, with `leaving_since`; it is purged after the configured delay, 90 days by
default), `modified_at` and the `source` family that feeds it. Hub ids never change for the
same source record. Identifiers from other systems are typed external ids (`type`, `value`):
`aaf:ENTPersonJointure`, `aaf:ENTStructureJointure`, `uai`, `ine`, `siecle:ELEVE_ID`,
`educonnect:FrEduCtId`, `index_education:IDPN`, `sts:INDIVIDU_ID`.

Dates are ISO 8601 (`YYYY-MM-DD`); times are UTC. Absent values are `null`, absent lists `[]`.
"""

_VOCABULARIES: list[tuple[str, list[str]]] = [
    ("Structure kinds (`Structure.kind`)", list(StructureKind)),
    ("Roles in a structure (`Role.role`)", list(RoleKind)),
    ("Roles in a class or group (`Enrollment.role`)", list(EnrollmentRole)),
    ("Relations of a guardian to a pupil (`Guardianship.relation`)", list(Relation)),
    ("Change operations (`Change.op`)", list(ChangeOp)),
]


def json_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for name, model in PUBLIC_MODELS.items():
        schema = model.model_json_schema()
        schema["title"] = name
        schema["$id"] = f"https://aiguillage.invalid/specs/schema/{name}.json"
        schemas[name] = schema
    return schemas


def _type_of(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        kinds = [_type_of(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " or ".join(kinds) + (" or null" if len(kinds) < len(prop["anyOf"]) else "")
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1].removesuffix("Public")
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    fmt = prop.get("format")
    return f"{prop.get('type', 'any')}" + (f" ({fmt})" if fmt else "")


def _model_section(name: str, model: type[BaseModel], schema: dict[str, Any]) -> str:
    lines = [f"## {name}", ""]
    doc = (model.__doc__ or "").strip()
    if doc and "Usage docs" not in doc:
        lines += [" ".join(doc.split()), ""]
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for field, prop in schema["properties"].items():
        description = (prop.get("description") or "").replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| `{field}` | {_type_of(prop)} | {'yes' if field in required else 'no'} "
            f"| {description} |"
        )
    return "\n".join(lines) + "\n"


def schema_markdown() -> str:
    schemas = json_schemas()
    parts = [_INTRO]
    for name, model in PUBLIC_MODELS.items():
        parts.append(_model_section(name, model, schemas[name]))
    parts.append("## Vocabularies\n")
    for title, values in _VOCABULARIES:
        parts.append(f"- {title}: " + ", ".join(f"`{v}`" for v in values))
    return "\n".join(parts) + "\n"


def render_files() -> dict[Path, str]:
    """Relative path under specs/ -> file content."""
    files = {
        Path("schema") / f"{name}.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in json_schemas().items()
    }
    files[Path("SCHEMA.md")] = schema_markdown()
    return files
