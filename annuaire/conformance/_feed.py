"""The ``feed`` check: /v1/changes is ordered, pages cleanly and tells about every change.

Always: read from the start, the feed served 1,000 entries a page equals the same entries
served 97 a page (paging neither misses nor repeats; the first 2,000 entries), then the whole
feed is read once, 1,000 a page, to its end: seqs strictly increase across every page (an entry
served twice, or a page going back, fails), each entry names a known ``op``; a read with
nothing new returns the cursor it was sent.

With a mutate command: take the head cursor and an NDJSON export of /v1/persons, run the
command to its end, export again and read the feed from that cursor to its end. Every person
added, removed or whose JSON changed between the two exports must have at least one
``person`` entry after the cursor (completeness: a client following the feed from an export's
``X-Feed-Cursor`` stays in sync), and ``entityType=person`` must serve exactly those entries.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from ._http import FEED_PAGE, Deployment, hub_order
from ._mutation import run_mutation
from ._report import Findings

__all__ = ["check_feed"]

OPS = frozenset({"create", "update", "leave", "return", "purge"})
#: Entries of the feed compared between a read in big pages and one in small pages.
WINDOW = 2000
SMALL_PAGE = 97


def check_feed(deployment: Deployment, mutate_command: str | None) -> Findings:
    findings = Findings()
    head = deployment.feed_cursor()
    _check_window(deployment, findings)
    _check_whole_feed(deployment, findings)
    if mutate_command is None:
        _check_quiet_head(deployment, findings, head)
        return findings
    before = deployment.export("/v1/persons")
    with run_mutation(mutate_command) as mutation:
        failure = mutation.wait()
    if not findings.expect(failure is None, str(failure)):
        return findings
    after = deployment.export("/v1/persons")
    entries = _read_to_end(deployment, findings, head)
    _check_entries(findings, entries, f"/v1/changes?after={head}")
    changed = _changed_persons(before.lines, after.lines)
    covered = {str(e["entity_id"]) for e in entries if e.get("entity_type") == "person"}
    missing = sorted(changed - covered, key=hub_order)
    findings.expect(
        not missing,
        f"{len(missing)} of the {len(changed)} persons changed by --mutate-command have no "
        f"entry in /v1/changes?after={head}, e.g. {missing[:3]}",
    )
    persons_only = _read_to_end(deployment, findings, head, {"entityType": "person"})
    expected = [e["seq"] for e in entries if e.get("entity_type") == "person"]
    findings.expect(
        [e["seq"] for e in persons_only] == expected,
        f"/v1/changes?after={head}&entityType=person served {len(persons_only)} entries, "
        f"the person entries of the unfiltered feed are {len(expected)}",
    )
    findings.note(f"{len(entries)} entries after the mutation; {len(changed)} persons changed")
    return findings


def _check_window(deployment: Deployment, findings: Findings) -> None:
    big: list[dict[str, Any]] = []
    for _, items, _ in deployment.feed_pages(None):
        big.extend(items)
        if len(big) >= WINDOW:
            break
    small: list[dict[str, Any]] = []
    for _, items, _ in deployment.feed_pages(None, limit=SMALL_PAGE):
        small.extend(items)
        if len(small) >= len(big):
            break
    _check_entries(findings, big, "/v1/changes from the start")
    findings.expect(
        small[: len(big)] == big,
        f"/v1/changes from the start: {len(big)} entries read {FEED_PAGE} a page differ from the "
        f"same read {SMALL_PAGE} a page (seqs {_seqs(big)} vs {_seqs(small[: len(big)])})",
    )
    findings.note(f"first {len(big)} entries alike in pages of {FEED_PAGE} and {SMALL_PAGE}")


def _check_whole_feed(deployment: Deployment, findings: Findings) -> None:
    """Every entry once, in increasing seqs, known ops: kept as a count and the last seq only
    (a feed of millions of entries is read in constant memory). The first entry out of order
    ends the read (the cursors of such a feed may never reach its end)."""
    count, last = 0, None
    for response, items, _ in deployment.feed_pages(None):
        for entry in items:
            seq = entry.get("seq")
            if not findings.expect(
                isinstance(seq, int) and (last is None or seq > last),
                f"GET {response.request.url}: seq {seq!r} served after seq {last} (an entry "
                "repeated, the feed going back, or no seq)",
            ):
                return
            findings.expect(
                entry.get("op") in OPS,
                f"GET {response.request.url}: unknown op {entry.get('op')!r}",
            )
            count, last = count + 1, seq
    findings.note(f"the whole feed once: {count} entries, seqs increasing")


def _check_quiet_head(deployment: Deployment, findings: Findings, head: str) -> None:
    response, items, next_cursor = next(deployment.feed_pages(head))
    if not items:
        findings.expect(
            next_cursor == head,
            f"GET {response.request.url}: no entries but next is not the cursor sent",
        )


def _read_to_end(
    deployment: Deployment, findings: Findings, after: str, filters: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    sent = after
    for response, items, next_cursor in deployment.feed_pages(after, filters=filters):
        if not items:
            findings.expect(
                next_cursor == sent,
                f"GET {response.request.url}: no entries but next is not the cursor sent",
            )
        entries.extend(items)
        sent = next_cursor
    return entries


def _check_entries(findings: Findings, entries: list[dict[str, Any]], what: str) -> None:
    seqs = [e.get("seq") for e in entries]
    numbers = [s for s in seqs if isinstance(s, int)]
    findings.expect(len(numbers) == len(seqs), f"{what}: an entry without an integer seq")
    findings.expect(len(set(numbers)) == len(numbers), f"{what}: a seq is served twice")
    findings.expect(
        all(a < b for a, b in itertools.pairwise(numbers)),
        f"{what}: seqs not strictly increasing",
    )
    unknown = sorted({str(e.get("op")) for e in entries} - OPS)
    findings.expect(not unknown, f"{what}: unknown op {unknown}")


def _changed_persons(before: dict[str, str], after: dict[str, str]) -> set[str]:
    changed = set(before.keys() ^ after.keys())
    for person_id in before.keys() & after.keys():
        old, new = before[person_id], after[person_id]
        if old != new and json.loads(old) != json.loads(new):
            changed.add(person_id)
    return changed


def _seqs(entries: list[dict[str, Any]]) -> str:
    seqs = [e.get("seq") for e in entries]
    return f"{seqs[:2]}..{seqs[-2:]}" if len(seqs) > 4 else str(seqs)
