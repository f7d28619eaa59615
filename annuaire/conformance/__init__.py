"""The conformance kit: checks that a deployment of the /v1 API keeps the published contract.

An editor (or the hub's operator, or CI) points it at any deployment::

    aiguillage conformance --base-url https://hub.example.fr [--token TOKEN] \\
        [--spec specs/openapi.json] [--max-examples 25] \\
        [--mutate-command ./import-next-delta.sh] [--report conformance.json]

``--base-url`` is the root that serves ``/health`` and ``/v1``; ``--token`` is sent as
``Authorization: Bearer`` with every request. The contract is the OpenAPI document generated
from the installed code (the same as ``specs/openapi.json``), or ``--spec``. The command prints
a table (check, PASS/FAIL/SKIP, detail) and each failure with the request that shows it, writes
the same as JSON with ``--report``, and exits 0 when no check failed, 1 otherwise (2 when the
spec cannot be read). SKIP means the deployment holds nothing to test the property on.

A sandbox to try it on: ``aiguillage sample academie --out A --pupils 500``, then
``aiguillage db upgrade``, ``aiguillage import aaf A`` and ``aiguillage serve``; the deltas
of ``aiguillage sample academie --out D1 --delta-from A`` (then ``--delta-from D1``...) make
a series for the mutate command to import one at a time (``--allow-mass-removal``).

What each check proves:

- ``schema``: every operation answers generated requests (``--max-examples`` valid ones and as
  many invalid ones, derandomized) with a declared status code, content type, headers and a
  body valid against the spec; invalid input is refused with a 4xx; never a 5xx.
- ``errors``: each problem type (unknown-parameter, invalid-cursor, unknown-field,
  invalid-parameter, not-found, not-acceptable, method-not-allowed) is what the request that
  should cause it gets: right status, ``application/problem+json``, every RFC 9457 member,
  ``instance`` the path of the request, the parameter at fault named in ``invalid_params``; a
  path with a trailing slash is a 404 (never a redirect), a ``DELETE`` a 405 whose ``Allow``
  names ``GET`` and ``HEAD``.
- ``filters``: a filter selects exactly what the unfiltered data says it must: on /v1/persons
  ``status``, ``modifiedSince`` (everyone at the oldest ``modified_at``, no one after the
  newest) and ``structure`` (the persons with one of their ``roles[]`` there), each compared with
  the whole export; on /v1/changes, ``entityType`` and ``structure`` over the first 2,000
  entries. A deployment ignoring a filter serves valid pages: only this check sees it.
- ``shape``: an object carries exactly the properties of its schema (every one, ``null`` when
  unknown, and no other), ``fields=a,b`` narrows it to ``id``, ``a`` and ``b``, in every
  collection and for an object read alone (the schemas require ``id`` only, since ``fields=``
  narrows: a member renamed, dropped or added would pass ``schema``); so do the objects inside
  it (a person's ``roles[]`` and ``external_ids[]``), each with its own schema.
- ``etag``: single objects carry a strong, stable ETag; ``If-None-Match`` gives a bodiless 304,
  another tag a 200, and ``fields=`` another tag; a HEAD answers as the GET, without a body.
- ``pagination``: paging /v1/persons 37 at a time serves ids in strictly increasing order,
  each once, with ``next`` and ``Link`` on every page but the last; it serves what the NDJSON
  export serves. With ``--mutate-command`` (run in the background while paging, repeatedly),
  nobody present before and after the change is missed.
- ``feed``: /v1/changes pages without missing or repeating entries, seqs strictly increase.
  With ``--mutate-command`` (run to its end), every person whose JSON changed between an
  NDJSON export before and one after has an entry after the cursor taken before.

The mutate command runs once for the pagination check and once for the feed check, through
the shell, with the kit's environment: it must change data each time (import the next delta
of a series, for instance). Without it, the kit only reads. Checks are independent functions
of a :class:`Deployment`; :func:`run_conformance` runs them in order and never raises for what
the deployment answers (an unexpected answer fails the check that got it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ._etag import check_etag
from ._feed import check_feed
from ._filters import check_filters
from ._http import Deployment, Unexpected
from ._paging import check_pagination
from ._problems import check_errors
from ._report import CheckResult, Findings, Outcome, Report, render_report
from ._schema import check_schema
from ._shape import check_shape

__all__ = [
    "CHECKS",
    "CheckResult",
    "Deployment",
    "Outcome",
    "Report",
    "builtin_spec",
    "load_spec",
    "render_report",
    "run_conformance",
]

#: The checks, in the order they run (read-only ones first, then those that mutate).
CHECKS = ("schema", "shape", "errors", "filters", "etag", "pagination", "feed")


def builtin_spec() -> dict[str, Any]:
    """The OpenAPI document of the installed code (kept equal to specs/openapi.json)."""
    from annuaire.api.main import contract_app
    from annuaire.api.openapi import build_openapi

    return build_openapi(contract_app())


def load_spec(path: Path | None) -> tuple[dict[str, Any], str]:
    """The document to check against, and how to name it in the report."""
    if path is None:
        document = builtin_spec()
        return document, f"the built-in spec (API {document.get('info', {}).get('version')})"
    document = json.loads(path.read_text(encoding="utf-8"))
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("paths"), dict)
        or not str(document.get("openapi", "")).startswith("3.")
    ):
        raise ValueError(f"{path} is not an OpenAPI 3 document (openapi: 3.x, paths)")
    return document, str(path)


def run_conformance(
    base_url: str,
    *,
    token: str | None = None,
    spec: dict[str, Any] | None = None,
    spec_name: str = "the built-in spec",
    max_examples: int = 25,
    mutate_command: str | None = None,
    checks: tuple[str, ...] = CHECKS,
) -> Report:
    """Run ``checks`` against the deployment at ``base_url``; see the module docstring."""
    document = spec if spec is not None else builtin_spec()
    deployment = Deployment(base_url, token)
    runners: dict[str, Callable[[], Findings | None]] = {
        "schema": lambda: check_schema(deployment, document, max_examples),
        "shape": lambda: check_shape(deployment, document),
        "errors": lambda: check_errors(deployment),
        "filters": lambda: check_filters(deployment),
        "etag": lambda: check_etag(deployment, document),
        "pagination": lambda: check_pagination(deployment, mutate_command),
        "feed": lambda: check_feed(deployment, mutate_command),
    }
    started = time.monotonic()
    results: list[CheckResult] = []
    try:
        unreachable = _unreachable(deployment)
        for name in checks:
            if unreachable is not None:
                results.append(CheckResult(name, Outcome.FAIL, unreachable, (unreachable,)))
            else:
                results.append(_run_one(name, runners[name]))
    finally:
        deployment.close()
    return Report(deployment.base_url, spec_name, tuple(results), time.monotonic() - started)


def _unreachable(deployment: Deployment) -> str | None:
    """Why nothing can be checked (no HTTP answer from /health), or None."""
    try:
        deployment.get("/health")
    except httpx.TransportError as exc:
        return f"no answer from {deployment.base_url}/health: {type(exc).__name__}: {exc}"
    return None


def _run_one(name: str, runner: Callable[[], Findings | None]) -> CheckResult:
    started = time.monotonic()
    try:
        findings = runner()
    except Unexpected as exc:
        findings = Findings()
        findings.expect(False, str(exc))
    except httpx.HTTPError as exc:
        findings = Findings()
        findings.expect(False, f"{type(exc).__name__}: {exc}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # A body that is not the JSON the contract describes (not JSON, a member missing...).
        findings = Findings()
        findings.expect(False, f"unexpected answer: {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    if findings is None:
        return CheckResult(name, Outcome.SKIP, "no data to test on", duration_s=elapsed)
    return CheckResult.of(name, findings, elapsed)
