"""The ``shape`` check: objects carry exactly the properties the contract documents.

The schemas require ``id`` only (``fields=`` may narrow an object to a few members), so a body
that renames, drops or adds a member still validates against them. The contract says more:
without ``fields=`` an object carries every property of its schema (``null`` when unknown) and
nothing else, but those marked ``x-restricted`` that the caller may not read (a person's
demographics, for a client without their scope); with ``fields=a,b`` it carries ``id``, ``a``
and ``b``. For each collection of the spec (a page of ``items``), the first page of a few
objects, the same page narrowed to two properties that are not restricted, and the first
object read alone are compared with the schema's properties.

Give the kit the spec of the deployment's own version: a later ``1.y`` may add members
(specs/VERSIONING.md), which the spec of an earlier one does not document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._http import Deployment
from ._report import Findings

__all__ = ["check_shape"]

PAGE = 3


def check_shape(deployment: Deployment, document: dict[str, Any]) -> Findings | None:
    """None when every collection is empty."""
    findings = Findings()
    tested = []
    for path, listed, single, narrows, restricted in _collections(document):
        page = deployment.get_json(path, {"limit": PAGE})
        items = page.get("items") or []
        if not items:
            continue
        tested.append(path)
        for item in items:
            _compare(findings, f"GET {path}?limit={PAGE}", item, listed, restricted)
        if narrows:
            chosen = sorted(listed - {"id"} - restricted)[:2]
            narrowed = deployment.get_json(path, {"limit": PAGE, "fields": ",".join(chosen)})
            for item in narrowed.get("items") or []:
                asked = {"id", *chosen}
                _compare(findings, f"GET {path}?fields={','.join(chosen)}", item, asked, restricted)
        if single is not None:
            one = f"{path}/{items[0]['id']}"
            _compare(findings, f"GET {one}", deployment.get_json(one), single, restricted)
    if not tested:
        return None
    findings.note(
        f"{len(tested)} collections: objects carry exactly their documented properties, "
        "fields= narrows them to those asked"
    )
    return findings


def _compare(
    findings: Findings, request: str, item: Any, documented: set[str], restricted: set[str]
) -> None:
    if not findings.expect(isinstance(item, dict), f"{request}: {item!r:.80} is not an object"):
        return
    extra = sorted(set(item) - documented)
    missing = sorted(documented - set(item) - restricted)
    findings.expect(
        not extra and not missing,
        f"{request}: object {item.get('id')}"
        + (f" carries undocumented {', '.join(extra)}" if extra else "")
        + (" and" if extra and missing else "")
        + (f" lacks documented {', '.join(missing)}" if missing else ""),
    )


def _collections(
    document: dict[str, Any],
) -> Iterator[tuple[str, set[str], set[str] | None, bool, set[str]]]:
    """``(path, properties of its items, properties of the object read alone or None, whether
    it takes fields=, the restricted properties)`` for each collection of the spec."""
    paths = document.get("paths", {})
    for path, operations in paths.items():
        if "{" in path:
            continue
        page = _schema(document, _json_200(operations))
        items = page.get("properties", {}).get("items", {}).get("items")
        if "next" not in page.get("properties", {}) or not isinstance(items, dict):
            continue
        properties = _schema(document, items).get("properties", {})
        restricted = {name for name, schema in properties.items() if "x-restricted" in schema}
        alone = paths.get(f"{path}/{{id}}")
        single = set(_schema(document, _json_200(alone)).get("properties", {})) if alone else None
        parameters = operations.get("get", {}).get("parameters", [])
        narrows = any(p.get("name") == "fields" for p in parameters if isinstance(p, dict))
        yield path, set(properties), single, narrows, restricted


def _json_200(operations: dict[str, Any]) -> dict[str, Any]:
    response = operations.get("get", {}).get("responses", {}).get("200", {})
    schema: dict[str, Any] = (
        response.get("content", {}).get("application/json", {}).get("schema", {})
    )
    return schema


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, its ``$ref`` followed (``#/components/schemas/...``)."""
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return schema
    found: Any = document
    for part in reference[2:].split("/"):
        found = found.get(part, {}) if isinstance(found, dict) else {}
    return found if isinstance(found, dict) else {}
