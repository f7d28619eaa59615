"""The ``errors`` check: each documented problem type answers the request that should cause it.

For each probe (an unknown parameter, a forged or foreign cursor, an unknown field, a value out
of range, a missing object, a path with a trailing slash, an unsupported ``Accept``, a method
other than GET and HEAD), the answer must have the problem's
status, the ``application/problem+json`` content type and an RFC 9457 body whose members are
all there: ``type`` (the expected URN), ``title``, ``status`` (the HTTP status), ``detail``,
``instance`` (the contract's "path of the request": the path asked, without its query, or the
same below the base URL's own path when the deployment is served under one), ``request_id``
(the ``X-Request-Id`` header). A 400 must name the parameter at fault in ``invalid_params``; a
405's ``Allow`` must name ``GET`` and ``HEAD``. A redirect (of ``/v1/persons/``) fails: the
contract has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from ._http import Deployment, described, media_type
from ._report import Findings

__all__ = ["check_errors"]

PROBLEM = "application/problem+json"
URN = "urn:aiguillage:problem:"
MISSING_ID = "00000000-0000-4000-8000-000000000000"
_MEMBERS = ("type", "title", "status", "detail", "instance", "request_id")


@dataclass(frozen=True)
class Probe:
    path: str
    params: dict[str, str]
    problem: str
    status: int
    #: The parameter ``invalid_params`` must name (400s).
    names: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"


def probes(person_id: str | None, persons_cursor: str | None) -> list[Probe]:
    found = [
        Probe("/v1/persons", {"colour": "blue"}, "unknown-parameter", 400, "colour"),
        Probe("/v1/changes", {"colour": "blue"}, "unknown-parameter", 400, "colour"),
        Probe("/v1/persons", {"cursor": "not-a-cursor"}, "invalid-cursor", 400, "cursor"),
        Probe("/v1/changes", {"after": "not-a-cursor"}, "invalid-cursor", 400, "after"),
        Probe("/v1/persons", {"fields": "id,shoe_size"}, "unknown-field", 400, "fields"),
        Probe("/v1/persons", {"limit": "0"}, "invalid-parameter", 400, "limit"),
        Probe("/v1/persons", {"limit": "1001"}, "invalid-parameter", 400, "limit"),
        Probe("/v1/persons", {"status": "sleeping"}, "invalid-parameter", 400, "status"),
        Probe("/v1/persons", {"modifiedSince": "soon"}, "invalid-parameter", 400, "modifiedSince"),
        # A Unix time is not the RFC 3339 date-time the spec declares.
        Probe(
            "/v1/persons",
            {"modifiedSince": "1700000000"},
            "invalid-parameter",
            400,
            "modifiedSince",
        ),
        Probe("/v1/changes", {"entityType": "unicorn"}, "invalid-parameter", 400, "entityType"),
        Probe("/v1/persons/not-a-uuid", {}, "invalid-parameter", 400, "id"),
        Probe(f"/v1/persons/{MISSING_ID}", {}, "not-found", 404),
        Probe("/v1/no-such-collection", {}, "not-found", 404),
        Probe("/v1/persons", {}, "not-acceptable", 406, headers={"Accept": "text/csv"}),
        # A trailing slash is not a route: a 404, never a redirect to another URL (1.1.0).
        Probe("/v1/persons/", {}, "not-found", 404),
        # The API is read-only: another method is a 405 whose Allow names GET and HEAD.
        Probe("/v1/persons", {}, "method-not-allowed", 405, method="DELETE"),
    ]
    if person_id is not None:
        found.append(
            Probe(
                f"/v1/persons/{person_id}", {"fields": "shoe_size"}, "unknown-field", 400, "fields"
            )
        )
    if persons_cursor is not None:
        # A real cursor replayed on another collection, or with other filters, is refused.
        found.append(
            Probe("/v1/roles", {"cursor": persons_cursor}, "invalid-cursor", 400, "cursor")
        )
        found.append(
            Probe(
                "/v1/persons",
                {"cursor": persons_cursor, "status": "active"},
                "invalid-cursor",
                400,
                "cursor",
            )
        )
    return found


def check_errors(deployment: Deployment) -> Findings:
    findings = Findings()
    first = deployment.get_json("/v1/persons", {"limit": 1, "fields": "id"})
    person_id = str(first["items"][0]["id"]) if first["items"] else None
    all_probes = probes(person_id, first.get("next"))
    for probe in all_probes:
        _check_probe(deployment, findings, probe)
    kinds = sorted({p.problem for p in all_probes})
    findings.note(f"{len(all_probes)} requests, problem types {', '.join(kinds)}")
    return findings


def _check_probe(deployment: Deployment, findings: Findings, probe: Probe) -> None:
    response = deployment.client.request(
        probe.method, probe.path, params=probe.params, headers=probe.headers
    )
    where = described(response) + (f" (Accept: {probe.headers['Accept']})" if probe.headers else "")
    if not findings.expect(
        response.status_code == probe.status, f"{where}: expected {probe.status} {probe.problem}"
    ):
        return
    if not findings.expect(
        media_type(response) == PROBLEM,
        f"{where}: content type {media_type(response) or 'none'}, expected {PROBLEM}",
    ):
        return
    try:
        body = response.json()
    except ValueError:
        findings.expect(False, f"{where}: the body is not JSON")
        return
    if not findings.expect(isinstance(body, dict), f"{where}: the body is not a JSON object"):
        return
    missing = [m for m in _MEMBERS if m not in body]
    findings.expect(not missing, f"{where}: problem without {', '.join(missing)}")
    findings.expect(
        body.get("type") == URN + probe.problem,
        f"{where}: type {body.get('type')!r}, expected {URN + probe.problem!r}",
    )
    findings.expect(
        body.get("status") == probe.status, f"{where}: status member {body.get('status')!r}"
    )
    for member in ("title", "detail"):
        findings.expect(
            isinstance(body.get(member), str) and bool(body.get(member)),
            f"{where}: {member} is not a non-empty string",
        )
    # The path the deployment was asked, or the same below the base URL's own path (a proxy
    # that serves the hub under /annuaire and strips it); never its query, nor a part of it.
    instance, path = body.get("instance"), response.request.url.path
    findings.expect(
        instance in (path, _below(deployment.base_url, path)),
        f"{where}: instance {instance!r} is not the request path {path}",
    )
    request_id = response.headers.get("x-request-id")
    findings.expect(
        request_id is not None and body.get("request_id") == request_id,
        f"{where}: request_id {body.get('request_id')!r}, X-Request-Id header {request_id!r}",
    )
    if probe.names is not None:
        _check_invalid_params(findings, where, body.get("invalid_params"), probe.names)
    if probe.status == 405:
        allowed = {m.strip().upper() for m in response.headers.get("allow", "").split(",")}
        findings.expect(
            {"GET", "HEAD"} <= allowed,
            f"{where}: Allow {response.headers.get('allow')!r} does not name GET and HEAD",
        )


def _below(base_url: str, path: str) -> str:
    """``path`` without the path of ``base_url`` (``/v1/persons`` for ``/annuaire/v1/persons``
    under ``https://hub.example.fr/annuaire``)."""
    root = httpx.URL(base_url).path.rstrip("/")
    return path.removeprefix(root) if root and path.startswith(root + "/") else path


def _check_invalid_params(findings: Findings, where: str, params: object, name: str) -> None:
    if not findings.expect(
        isinstance(params, list) and bool(params), f"{where}: no invalid_params list"
    ):
        return
    assert isinstance(params, list)
    well_formed = all(
        isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("reason"), str)
        for p in params
    )
    findings.expect(well_formed, f"{where}: invalid_params entries need a name and a reason")
    names = [p.get("name") for p in params if isinstance(p, dict)]
    findings.expect(name in names, f"{where}: invalid_params names {names}, not {name!r}")
