"""The ``etag`` check: single objects can be revalidated with ``If-None-Match``.

For one object of every collection that has a ``/{id}`` route in the spec: a GET carries a
strong ``ETag`` (quoted, no ``W/``) that stays the same on a second GET; ``If-None-Match`` with
it (as is, or weak per RFC 9110's weak comparison) answers ``304`` with no body and the same
tag; with another tag, ``200`` with the object; ``fields=id`` yields another representation,
hence another tag, which the full object's tag does not revalidate. A HEAD answers as the GET
does (RFC 9110 §9.3.2): ``200``, no body, the same ``ETag``; with ``If-None-Match``, ``304``.
"""

from __future__ import annotations

import re
from typing import Any

from ._http import Deployment, described
from ._report import Findings

__all__ = ["check_etag"]

_SINGLE_ROUTE = re.compile(r"^(?P<collection>/.+)/\{id\}$")
_STRONG = re.compile(r'^"[\x21\x23-\x7e\x80-\xff]*"$')
OTHER_TAG = '"conformance-kit-other-tag"'


def single_routes(document: dict[str, Any]) -> list[str]:
    """Collections (``/v1/persons``) whose objects the spec serves at ``/{id}``."""
    return [
        match["collection"]
        for path, item in document.get("paths", {}).items()
        if (match := _SINGLE_ROUTE.match(path)) and "get" in item
    ]


def check_etag(deployment: Deployment, document: dict[str, Any]) -> Findings | None:
    """None when no collection holds an object to test on."""
    findings = Findings()
    tested: list[str] = []
    for collection in single_routes(document):
        object_id = deployment.first_id(collection)
        if object_id is not None:
            _check_object(deployment, findings, f"{collection}/{object_id}")
            tested.append(collection.rsplit("/", 1)[-1])
    if not tested:
        return None
    findings.note(f"one object of each of {', '.join(tested)}")
    return findings


def _check_object(deployment: Deployment, findings: Findings, path: str) -> None:
    first = deployment.get(path)
    if not findings.expect(first.status_code == 200, described(first)):
        return
    etag = first.headers.get("etag")
    if not findings.expect(etag is not None, f"{described(first)}: no ETag"):
        return
    assert etag is not None
    findings.expect(
        bool(_STRONG.match(etag)), f"{described(first)}: ETag {etag} is not a strong entity tag"
    )
    again = deployment.get(path)
    findings.expect(
        again.headers.get("etag") == etag,
        f"{described(again)}: ETag {again.headers.get('etag')} changed from {etag} "
        "for the same object",
    )
    for sent in (etag, f"W/{etag}", f'"another", {etag}'):
        cached = deployment.get(path, headers={"If-None-Match": sent})
        where = f"{described(cached)} (If-None-Match: {sent})"
        if findings.expect(cached.status_code == 304, f"{where}: expected 304"):
            findings.expect(not cached.content, f"{where}: a 304 with a body")
            findings.expect(
                cached.headers.get("etag") == etag,
                f"{where}: 304 with ETag {cached.headers.get('etag')}, expected {etag}",
            )
    other = deployment.get(path, headers={"If-None-Match": OTHER_TAG})
    where = f"{described(other)} (If-None-Match: {OTHER_TAG})"
    if findings.expect(other.status_code == 200, f"{where}: expected 200"):
        findings.expect(other.content == first.content, f"{where}: not the object served before")
    _check_head(deployment, findings, path, etag)
    narrowed = deployment.get(path, {"fields": "id"})
    if not findings.expect(narrowed.status_code == 200, described(narrowed)):
        return
    narrowed_tag = narrowed.headers.get("etag")
    findings.expect(
        narrowed_tag is not None and narrowed_tag != etag,
        f"{described(narrowed)}: ETag {narrowed_tag} is the full object's {etag}",
    )
    stale = deployment.get(path, {"fields": "id"}, headers={"If-None-Match": etag})
    findings.expect(
        stale.status_code == 200,
        f"{described(stale)} (If-None-Match: the full object's tag): expected 200",
    )


def _check_head(deployment: Deployment, findings: Findings, path: str, etag: str) -> None:
    for headers, status in (({}, 200), ({"If-None-Match": etag}, 304)):
        head = deployment.client.head(path, headers=headers)
        where = described(head) + (f" (If-None-Match: {etag})" if headers else "")
        if not findings.expect(
            head.status_code == status, f"{where}: expected {status}, as the GET"
        ):
            continue
        findings.expect(not head.content, f"{where}: a HEAD with a body")
        findings.expect(
            head.headers.get("etag") == etag,
            f"{where}: ETag {head.headers.get('etag')}, the GET's is {etag}",
        )
