"""The ``filters`` check: a filter selects what it says, no more and no less.

A deployment that ignores a filter still serves valid pages of valid objects: ``schema`` and
``shape`` pass, and a client polling with ``modifiedSince`` re-reads everything, or one
reading ``status=tobedeleted`` to drop those who left drops everybody. So each filter is
compared with what the unfiltered data says it must select.

On ``/v1/persons``, as NDJSON exports narrowed to ``id,status,modified_at,roles``, against the
export of the whole collection:

- ``status=active`` and ``status=tobedeleted``: exactly the persons with that status;
- ``modifiedSince``: at the oldest ``modified_at``, everyone; a microsecond after the newest,
  no one; at each other instant found, exactly those modified then or later;
- ``structure=UAI`` (the UAI that most persons' ``roles[]`` name): exactly the persons one of
  whose ``roles[]`` is at that UAI (both go through the roles the caller may read).

On ``/v1/changes``, from the start and over the first 2,000 entries of the unfiltered feed:
``entityType=person`` serves exactly its ``person`` entries, ``structure=UAI`` (the UAI most
entries name) exactly those whose ``structures`` name it, in the same order.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
from typing import Any

from ._http import Deployment, Export, hub_order
from ._report import Findings

__all__ = ["check_filters"]

COLLECTION = "/v1/persons"
FIELDS = "id,status,modified_at,roles"
STATUSES = ("active", "tobedeleted")
#: Entries of the feed the filtered reads are compared on.
WINDOW = 2000
#: Instants of ``modified_at`` tried at most (the oldest, the newest and some between).
_INSTANTS = 5


def check_filters(deployment: Deployment) -> Findings | None:
    """None when there is neither a person nor a feed entry to test on."""
    findings = Findings()
    whole = deployment.export(COLLECTION, {"fields": FIELDS})
    persons = {i: _parsed(line) for i, line in whole.lines.items()}
    feed = _feed_window(deployment, None)
    if not persons and not feed:
        return None
    if persons:
        _check_status(deployment, findings, persons)
        _check_modified_since(deployment, findings, persons)
        _check_persons_structure(deployment, findings, persons)
    if feed:
        _check_feed(deployment, findings, feed)
    findings.note(f"{len(persons)} persons, {len(feed)} feed entries")
    return findings


def _parsed(line: str) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(line)
    return item


def _selects(
    deployment: Deployment,
    findings: Findings,
    params: dict[str, str],
    expected: set[str],
) -> None:
    """The export with ``params`` serves exactly ``expected``."""
    served: Export = deployment.export(COLLECTION, {"fields": FIELDS, **params})
    got = set(served.order)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    extra = sorted(got - expected, key=hub_order)
    missing = sorted(expected - got, key=hub_order)
    findings.expect(
        not extra and not missing,
        f"GET {COLLECTION}?{query} (NDJSON) served {len(got)} persons, {len(expected)} expected: "
        f"{len(extra)} it should not select (e.g. {extra[:2]}), {len(missing)} missed "
        f"(e.g. {missing[:2]})",
    )


def _check_status(
    deployment: Deployment, findings: Findings, persons: dict[str, dict[str, Any]]
) -> None:
    for status in STATUSES:
        expected = {i for i, p in persons.items() if p.get("status") == status}
        _selects(deployment, findings, {"status": status}, expected)


def _instant(text: Any) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _check_modified_since(
    deployment: Deployment, findings: Findings, persons: dict[str, dict[str, Any]]
) -> None:
    times = {i: _instant(p.get("modified_at")) for i, p in persons.items()}
    bad = sorted(i for i, t in times.items() if t is None)
    if not findings.expect(
        not bad, f"GET {COLLECTION}: modified_at of {bad[:2]} is not an RFC 3339 date-time"
    ):
        return
    known = sorted({t for t in times.values() if t is not None})
    step = max(1, len(known) // (_INSTANTS - 2))
    instants = [*known[::step][: _INSTANTS - 1], known[-1] + dt.timedelta(microseconds=1)]
    for instant in instants:
        expected = {i for i, t in times.items() if t is not None and t >= instant}
        text = instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        _selects(deployment, findings, {"modifiedSince": text}, expected)


def _check_persons_structure(
    deployment: Deployment, findings: Findings, persons: dict[str, dict[str, Any]]
) -> None:
    at: dict[str, set[str]] = collections.defaultdict(set)
    for person_id, person in persons.items():
        for role in person.get("roles") or []:
            if isinstance(role, dict) and role.get("structure_uai"):
                at[str(role["structure_uai"])].add(person_id)
    if not at:
        return
    uai = max(sorted(at), key=lambda u: len(at[u]))
    _selects(deployment, findings, {"structure": uai}, at[uai])


def _feed_window(
    deployment: Deployment, filters: dict[str, str] | None, up_to: int | None = None
) -> list[dict[str, Any]]:
    """Feed entries from the start: the first ``WINDOW`` ones, or (``up_to``) all those up to
    that seq."""
    entries: list[dict[str, Any]] = []
    for _, items, _ in deployment.feed_pages(None, filters=filters):
        for entry in items:
            seq = entry.get("seq")
            if up_to is not None and isinstance(seq, int) and seq > up_to:
                return entries
            entries.append(entry)
        if up_to is None and len(entries) >= WINDOW:
            return entries[:WINDOW]
    return entries


def _check_feed(deployment: Deployment, findings: Findings, feed: list[dict[str, Any]]) -> None:
    last = feed[-1].get("seq")
    if not isinstance(last, int):
        return  # the feed check says what is wrong with the seqs
    counted = collections.Counter(
        uai for entry in feed for uai in entry.get("structures") or [] if isinstance(uai, str)
    )
    filters: list[tuple[dict[str, str], list[dict[str, Any]]]] = [
        ({"entityType": "person"}, [e for e in feed if e.get("entity_type") == "person"])
    ]
    if counted:
        uai = max(sorted(counted), key=lambda u: counted[u])
        selected = [e for e in feed if uai in (e.get("structures") or [])]
        filters.append(({"structure": uai}, selected))
    for params, expected in filters:
        served = _feed_window(deployment, params, up_to=last)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        findings.expect(
            [e.get("seq") for e in served] == [e.get("seq") for e in expected],
            f"GET /v1/changes?{query} served {len(served)} entries up to seq {last}, the "
            f"unfiltered feed has {len(expected)} such entries",
        )
