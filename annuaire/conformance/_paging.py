"""The ``pagination`` check: keyset paging of /v1/persons neither misses nor repeats anyone.

One pass pages through ``/v1/persons`` with a small ``limit`` until ``next`` is null. Each page
is a 200 with at most ``limit`` items; every page but the last has a ``next`` cursor and a
``Link: <URL>; rel="next"`` whose URL is this request with ``cursor=<next>``; the last page
has neither; the first page has an ``X-Feed-Cursor``. Over the pass, ids are strictly
increasing (hub-id order), hence never served twice.

Without a mutate command, one pass must serve exactly the ids of an NDJSON export (same ids,
same order). With one, the command runs in the background and passes repeat until it has
finished, so that its commit lands in the middle of a pass: every person in both an export
taken before and one taken after must be in every pass (nothing missed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx

from ._http import Deployment, Export, described, hub_order
from ._mutation import run_mutation
from ._report import Findings

__all__ = ["check_pagination"]

COLLECTION = "/v1/persons"
PAGE_LIMIT = 37
#: Passes made while a mutation runs, at most (then the kit waits for it).
_MAX_PASSES = 500


@dataclass
class _Pass:
    ids: list[str] = field(default_factory=list)
    pages: int = 0


def check_pagination(deployment: Deployment, mutate_command: str | None) -> Findings | None:
    """None when there is nothing to page through and nothing will change."""
    findings = Findings()
    before = deployment.export(COLLECTION)
    _check_export(findings, before)
    # More pages than this: the cursors never reach the end (the data may grow a little).
    max_pages = 2 * len(before.order) // PAGE_LIMIT + 100
    if mutate_command is None:
        if not before.order and not findings.failures:
            return None
        one = _page_through(deployment, findings, max_pages)
        findings.expect(
            one.ids == before.order,
            f"paging {COLLECTION} served {len(one.ids)} ids, the NDJSON export "
            f"{len(before.order)}: {_difference(before.order, one.ids)}",
        )
        findings.note(f"{len(one.ids)} persons in {one.pages} pages of {PAGE_LIMIT}")
        return findings
    passes: list[_Pass] = []
    with run_mutation(mutate_command) as mutation:
        while not passes or (mutation.running and len(passes) < _MAX_PASSES):
            passes.append(_page_through(deployment, findings, max_pages))
        failure = mutation.wait()
    if not findings.expect(failure is None, str(failure)):
        return findings
    after = deployment.export(COLLECTION)
    _check_export(findings, after)
    both = before.lines.keys() & after.lines.keys()
    for number, one in enumerate(passes, start=1):
        missed = sorted(both - set(one.ids), key=hub_order)
        findings.expect(
            not missed,
            f"pass {number} of {COLLECTION}?limit={PAGE_LIMIT} missed {len(missed)} persons "
            f"present before and after the mutation, e.g. {missed[:3]}",
        )
    findings.note(
        f"{len(passes)} passes while --mutate-command ran ({mutation.duration_s or 0:.1f} s); "
        f"{len(both)} persons before and after, "
        f"{len(before.lines.keys() ^ after.lines.keys())} added or removed"
    )
    return findings


def _check_export(findings: Findings, export: Export) -> None:
    findings.expect(
        export.feed_cursor is not None,
        f"GET {COLLECTION} (Accept: application/x-ndjson): no X-Feed-Cursor header",
    )
    _check_order(findings, export.order, f"NDJSON export of {COLLECTION}")


def _check_order(findings: Findings, ids: list[str], what: str) -> None:
    for previous, current in itertools.pairwise(ids):
        if not findings.expect(
            hub_order(previous) < hub_order(current),
            f"{what}: ids not strictly increasing ({previous} then {current})",
        ):
            return


def _page_through(deployment: Deployment, findings: Findings, max_pages: int) -> _Pass:
    one = _Pass()
    params: dict[str, str | int] = {"limit": PAGE_LIMIT}
    cursors: set[str] = set()
    while findings.expect(
        one.pages < max_pages, f"{COLLECTION}?limit={PAGE_LIMIT}: no end after {max_pages} pages"
    ):
        response = deployment.get(COLLECTION, params)
        one.pages += 1
        if not findings.expect(response.status_code == 200, described(response)):
            break
        body = response.json()
        items, next_cursor = body.get("items"), body.get("next")
        if not findings.expect(
            isinstance(items, list) and (next_cursor is None or isinstance(next_cursor, str)),
            f"{described(response)}: not a page (items list and next cursor or null)",
        ):
            break
        findings.expect(
            len(items) <= PAGE_LIMIT, f"{described(response)}: {len(items)} items > limit"
        )
        one.ids.extend(str(item["id"]) for item in items)
        if one.pages == 1:
            findings.expect(
                "x-feed-cursor" in response.headers,
                f"{described(response)}: first page without X-Feed-Cursor",
            )
        _check_link(findings, response, next_cursor)
        if next_cursor is None:
            break
        if not findings.expect(
            next_cursor not in cursors, f"{described(response)}: next cursor repeats a cursor"
        ):
            break
        cursors.add(next_cursor)
        params = {"limit": PAGE_LIMIT, "cursor": next_cursor}
    _check_order(findings, one.ids, f"paging {COLLECTION}?limit={PAGE_LIMIT}")
    return one


def _check_link(findings: Findings, response: httpx.Response, next_cursor: str | None) -> None:
    link = response.links.get("next")
    if next_cursor is None:
        findings.expect(link is None, f"{described(response)}: last page with a Link rel=next")
        return
    if not findings.expect(
        link is not None and "url" in link,
        f"{described(response)}: next cursor but no Link rel=next header",
    ):
        return
    assert link is not None
    url = urlsplit(link["url"])
    query = parse_qs(url.query)
    findings.expect(
        url.path == response.request.url.path
        and query.get("cursor") == [next_cursor]
        and query.get("limit") == [str(PAGE_LIMIT)],
        f"{described(response)}: Link {link['url']} is not this request with cursor=<next>",
    )


def _difference(expected: list[str], served: list[str]) -> str:
    missing = sorted(set(expected) - set(served), key=hub_order)
    extra = sorted(set(served) - set(expected), key=hub_order)
    repeated = len(served) - len(set(served))
    return (
        f"missing {missing[:3]} ({len(missing)}), extra {extra[:3]} ({len(extra)}), "
        f"{repeated} repeated"
    )
