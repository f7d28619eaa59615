"""The ``shape`` check: objects carry exactly the properties the contract documents.

The schemas require ``id`` only (``fields=`` may narrow an object to a few members), so a body
that renames, drops or adds a member still validates against them. The contract says more:
without ``fields=`` an object carries every property of its schema (``null`` when unknown) and
nothing else, but those marked ``x-restricted`` that the caller may not read (a person's
demographics, for a client without their scope); with ``fields=a,b`` it carries ``id``, ``a``
and ``b``. The objects inside an object (a person's ``roles[]`` and ``external_ids[]``, any
member whose schema is an object or an array of objects) carry exactly the properties of
their own schema in the same way; ``fields=`` narrows the top object only. An object whose
schema allows ``additionalProperties`` may carry members it does not list.

For each collection of the spec (a page of ``items``), the first page of a few objects (and
the pages after it, up to 500 objects, while a member that holds objects was empty in all of
them: the first persons may be guardians, without roles), the first page narrowed to two
properties that are not restricted, and one object read alone (among those compared, the
first that holds the most kinds of nested objects) are compared with the schemas (``$ref``
followed; a member that may be null or one kind of object follows that object's schema).
Members never seen holding an object are named in the summary.

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
#: Pages read on (of this many objects) while a member that holds objects (a person's
#: ``roles``) was empty in every object compared so far: a first page of guardians holds none.
ON_PAGE, ON_PAGES = 100, 5


def check_shape(deployment: Deployment, document: dict[str, Any]) -> Findings | None:
    """None when every collection is empty."""
    findings = Findings()
    tested, unseen = [], []
    for path, listed, single, narrows in _collections(document):
        page = deployment.get_json(path, {"limit": PAGE})
        items = page.get("items") or []
        if not items:
            continue
        tested.append(path)
        for item in items:
            _compare(findings, document, f"GET {path}?limit={PAGE}", item, listed)
        holding = _holding_objects(document, listed)
        examples = [item for item in items if _holds(item, holding)]
        cursor, pages = page.get("next"), 0
        while holding - _held(examples, holding) and isinstance(cursor, str) and pages < ON_PAGES:
            page = deployment.get_json(path, {"limit": ON_PAGE, "cursor": cursor})
            pages, cursor = pages + 1, page.get("next")
            request = f"GET {path}?limit={ON_PAGE} (page {pages + 1} after the first {PAGE})"
            for item in page.get("items") or []:
                _compare(findings, document, request, item, listed)
                if _holds(item, holding - _held(examples, holding)):
                    examples.append(item)
        unseen += [f"{path} {name}" for name in sorted(holding - _held(examples, holding))]
        if narrows:
            properties = listed.get("properties", {})
            chosen = sorted(set(properties) - {"id"} - _restricted(properties))[:2]
            narrowed = deployment.get_json(path, {"limit": PAGE, "fields": ",".join(chosen)})
            request = f"GET {path}?fields={','.join(chosen)}"
            for item in narrowed.get("items") or []:
                _compare(findings, document, request, item, listed, asked={"id", *chosen})
        if single is not None:
            fullest = max(examples or items, key=lambda item: len(_held([item], holding)))
            one = f"{path}/{fullest['id']}"
            _compare(findings, document, f"GET {one}", deployment.get_json(one), single)
    if not tested:
        return None
    findings.note(
        f"{len(tested)} collections: objects (and the objects inside them) carry exactly "
        "their documented properties, fields= narrows them to those asked"
        + (f"; never seen holding an object: {', '.join(unseen)}" if unseen else "")
    )
    return findings


def _holding_objects(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The members of ``schema`` whose value is an object or an array of objects."""
    properties: dict[str, Any] = schema.get("properties", {})
    return {name for name, member in properties.items() if _nested_object(document, member)[0]}


def _holds(item: Any, members: set[str]) -> bool:
    return isinstance(item, dict) and any(item.get(name) for name in members)


def _held(items: list[Any], members: set[str]) -> set[str]:
    return {name for name in members for item in items if item.get(name)}


def _compare(
    findings: Findings,
    document: dict[str, Any],
    request: str,
    item: Any,
    schema: dict[str, Any],
    *,
    asked: set[str] | None = None,
    within: str = "",
) -> None:
    """Compare ``item`` with the object ``schema``, then each object inside it with its own
    schema. ``asked`` narrows the top object (``fields=``); ``within`` names a nested one
    (``object <id> roles[0]``)."""
    if not findings.expect(
        isinstance(item, dict),
        f"{request}: {within + ' ' if within else ''}{item!r:.80} is not an object",
    ):
        return
    label = within or f"object {item.get('id')}"
    properties: dict[str, Any] = schema.get("properties", {})
    documented = set(properties) if asked is None else asked
    # Where the schema says so (a JWK, say), an object may carry members it does not list.
    open_ended = schema.get("additionalProperties", False) not in (False, None)
    extra = [] if open_ended else sorted(set(item) - documented)
    missing = sorted(documented - set(item) - _restricted(properties))
    findings.expect(
        not extra and not missing,
        f"{request}: {label}"
        + (f" carries undocumented {', '.join(extra)}" if extra else "")
        + (" and" if extra and missing else "")
        + (f" lacks documented {', '.join(missing)}" if missing else ""),
    )
    for name in sorted(documented & set(item) & set(properties)):
        nested, is_array = _nested_object(document, properties[name])
        value, member = item[name], f"{label}{'.' if within else ' '}{name}"
        if nested is not None and is_array and isinstance(value, list):
            for index, element in enumerate(value):
                _compare(findings, document, request, element, nested, within=f"{member}[{index}]")
        elif nested is not None and not is_array and isinstance(value, dict):
            _compare(findings, document, request, value, nested, within=member)


def _restricted(properties: dict[str, Any]) -> set[str]:
    return {name for name, schema in properties.items() if "x-restricted" in schema}


def _nested_object(
    document: dict[str, Any], schema: dict[str, Any], depth: int = 0
) -> tuple[dict[str, Any] | None, bool]:
    """The object schema (with ``properties``) a member's value follows, and whether the value
    is an array of such objects; ``(None, False)`` when it holds no object the spec
    describes member by member (a string, a map, several kinds of object)."""
    schema = _schema(document, schema)
    if depth > 8:  # a schema that refers to itself
        return None, False
    if isinstance(schema.get("properties"), dict):
        return schema, False
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        items, nested_array = _nested_object(document, schema["items"], depth + 1)
        return (items, True) if items is not None and not nested_array else (None, False)
    alternatives = [
        _nested_object(document, alternative, depth + 1)
        for keyword in ("anyOf", "oneOf", "allOf")
        for alternative in schema.get(keyword, [])
        if isinstance(alternative, dict)
    ]
    objects = [found for found in alternatives if found[0] is not None]
    # A member that is null or one object (or one array of them): that object's schema.
    return objects[0] if len(objects) == 1 else (None, False)


def _collections(
    document: dict[str, Any],
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None, bool]]:
    """``(path, schema of its items, schema of the object read alone or None, whether it
    takes fields=)`` for each collection of the spec."""
    paths = document.get("paths", {})
    for path, operations in paths.items():
        if "{" in path:
            continue
        page = _schema(document, _json_200(operations))
        items = page.get("properties", {}).get("items", {}).get("items")
        if "next" not in page.get("properties", {}) or not isinstance(items, dict):
            continue
        alone = paths.get(f"{path}/{{id}}")
        single = _schema(document, _json_200(alone)) if alone else None
        parameters = operations.get("get", {}).get("parameters", [])
        narrows = any(p.get("name") == "fields" for p in parameters if isinstance(p, dict))
        yield path, _schema(document, items), single, narrows


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
