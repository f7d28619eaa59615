"""The ``schema`` check: generated requests for every operation, answers checked against the spec.

For each operation of the OpenAPI document, schemathesis generates up to ``max_examples`` valid
requests and as many invalid ones (a value out of its schema: the API must refuse it with a
4xx). Single-object routes are also called with the id of an object that exists, so that their
200 bodies are checked too, not only their 404s. Each answer must be declared: its status code,
its content type, its headers and its body validate against the document, and it is never a
5xx. Generation is derandomized: the same spec against the same data sends the same requests.

Each distinct failure of an operation (kind of failure, status code) is reported once, with
the first request that showed it and how many requests did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Err
from schemathesis.errors import FailureGroup

from ._http import Deployment, Unexpected
from ._report import Findings

__all__ = ["check_schema"]

_RESPONSE_CHECKS = (
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
)
_SINGLE_ROUTE = re.compile(r"^(?P<collection>/.+)/\{id\}$")
_REQUEST_TIMEOUT_S = 60.0
#: Characters of a failure message kept in the report (the first lines say what is wrong).
_MESSAGE = 400


@dataclass
class _Seen:
    """Distinct failures of one operation: first request that showed each, and a count."""

    first: dict[tuple[str, int | None], str] = field(default_factory=dict)
    count: dict[tuple[str, int | None], int] = field(default_factory=dict)
    requests: int = 0

    def add(self, kind: str, status: int | None, line: str) -> None:
        key = (kind, status)
        self.first.setdefault(key, line)
        self.count[key] = self.count.get(key, 0) + 1


def check_schema(deployment: Deployment, document: dict[str, Any], max_examples: int) -> Findings:
    findings = Findings()
    config = schemathesis.Config(seed=0)  # never a schemathesis.toml found in the cwd
    schema = schemathesis.openapi.from_dict(document, config=config)
    operations, requests_sent = 0, 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            findings.expect(False, f"an operation of the spec cannot be used: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        seen = _Seen()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _exercise(deployment, operation, mode, max_examples, seen)
        requests_sent += seen.requests
        for key, line in seen.first.items():
            times = seen.count[key]
            findings.expect(
                False, f"{operation.label}: {line}" + (f" (x{times})" if times > 1 else "")
            )
    findings.note(f"{operations} operations, {requests_sent} generated requests")
    return findings


def _exercise(
    deployment: Deployment, operation: Any, mode: GenerationMode, max_examples: int, seen: _Seen
) -> None:
    # The kit sends its token as the Authorization header of every request: a generated one
    # would be replaced, and a request made invalid there only would be judged as invalid.
    fixed = deployment.auth_headers or None
    strategy = operation.as_strategy(generation_mode=mode, headers=fixed)
    checks_run = list(_RESPONSE_CHECKS)
    if mode is GenerationMode.NEGATIVE:
        checks_run.append(checks.negative_data_rejection)
    else:
        existing = _existing_id(deployment, operation.path)
        if existing is not None:
            strategy = st.one_of(
                operation.as_strategy(
                    generation_mode=mode, headers=fixed, path_parameters={"id": existing}
                ),
                strategy,
            )

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: each failure is reported as first seen
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def send(case: Any) -> None:
        _send_and_validate(deployment, case, checks_run, mode, seen)

    try:
        send()
    except Unsatisfiable:
        pass  # nothing in this operation can be made invalid (no parameters)
    except Exception as exc:  # a generation error must not hide the other operations
        seen.add(
            f"{mode.value} generation failed: {type(exc).__name__}: {exc}"[:_MESSAGE], None, ""
        )


def _send_and_validate(
    deployment: Deployment,
    case: Any,
    checks_run: list[Callable[..., Any]],
    mode: GenerationMode,
    seen: _Seen,
) -> None:
    seen.requests += 1
    headers = deployment.auth_headers
    try:
        response = case.call(
            base_url=deployment.base_url, headers=headers, timeout=_REQUEST_TIMEOUT_S
        )
    except requests.RequestException as exc:
        seen.add(f"transport error {type(exc).__name__}", None, f"{case.method} {case.path}: {exc}")
        return
    request = f"{response.request.method} {response.request.url}"
    generated_headers = {
        k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
    }
    if generated_headers:
        request += f" with headers {generated_headers}"
    try:
        case.validate_response(
            response,
            checks=checks_run,
            headers=headers,
            transport_kwargs={"base_url": deployment.base_url, "headers": headers},
        )
    except FailureGroup as group:
        for failure in group.exceptions:
            message = " ".join(str(failure.message).split())[:_MESSAGE]
            line = f"{failure.title} ({mode.value} data): {request} -> {response.status_code}"
            seen.add(failure.title, response.status_code, f"{line}: {message}" if message else line)


def _existing_id(deployment: Deployment, path: str) -> str | None:
    """The id of an object served by ``/collection/{id}``, taken from the collection."""
    match = _SINGLE_ROUTE.match(path)
    if match is None:
        return None
    try:
        return deployment.first_id(match["collection"])
    except (Unexpected, httpx.HTTPError, ValueError, KeyError, TypeError):
        return None  # the collection itself is exercised as an operation of its own
