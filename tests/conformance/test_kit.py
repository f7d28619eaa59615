"""The conformance kit against real servers: the hub's own passes, a broken one fails.

The kit runs as an editor would run it (``aiguillage conformance`` in a subprocess) against
uvicorn subprocesses; its JSON report is what the assertions read.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from annuaire.conformance import CHECKS, Outcome, run_conformance
from tests._personal_data_guard import record_output
from tests.conformance.conftest import (
    AIGUILLAGE,
    PROJECT_ROOT,
    Academie,
    ClientServer,
    Server,
    free_port,
    mutate_command,
)


@dataclass(frozen=True)
class KitRun:
    exit_code: int
    output: str
    report: dict[str, Any]

    def check(self, name: str) -> dict[str, Any]:
        return next(c for c in self.report["checks"] if c["name"] == name)

    def outcomes(self) -> dict[str, str]:
        return {c["name"]: c["result"] for c in self.report["checks"]}


def run_kit(base_url: str, report: Path, *options: str) -> KitRun:
    done = subprocess.run(
        [*AIGUILLAGE, "conformance", "--base-url", base_url, "--report", str(report), *options],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    record_output("aiguillage conformance stderr", done.stderr)
    assert report.exists(), f"no report written:\n{done.stdout}\n{done.stderr}"
    return KitRun(done.returncode, done.stdout + done.stderr, json.loads(report.read_text()))


@pytest.fixture(scope="module")
def conforming_run(conforming: Server, academie: Academie) -> KitRun:
    command = mutate_command(conforming, academie)
    report = conforming.folder / "report.json"
    return run_kit(conforming.base_url, report, "--max-examples", "10", "--mutate-command", command)


def test_the_hub_pages_and_feeds_correctly_while_deltas_are_imported(
    conforming_run: KitRun,
) -> None:
    assert list(conforming_run.outcomes()) == list(CHECKS)
    for name in ("pagination", "feed", "etag"):
        assert conforming_run.check(name)["failures"] == [], conforming_run.output


def test_the_hub_conforms_to_its_spec(conforming_run: KitRun) -> None:
    failures = {
        c["name"]: c["failures"] for c in conforming_run.report["checks"] if c["result"] != "PASS"
    }
    assert failures == {}, conforming_run.output
    assert conforming_run.exit_code == 0
    assert conforming_run.report["passed"] is True


def test_both_deltas_were_applied_and_observed(
    conforming_run: KitRun, conforming: Server, academie: Academie
) -> None:
    assert (conforming.folder / "next-delta").read_text().strip() == str(len(academie.deltas))
    assert "passes while --mutate-command ran" in conforming_run.check("pagination")["detail"]
    feed = conforming_run.check("feed")["detail"]
    changed = int(feed.split(" persons changed")[0].rsplit(" ", 1)[-1])
    assert changed > 0, feed


def test_the_report_is_printed_as_a_table(conforming_run: KitRun) -> None:
    for name in CHECKS:
        assert name in conforming_run.output
    verdict = "conforms" if conforming_run.exit_code == 0 else "does not conform"
    assert f"{conforming_run.report['base_url']} {verdict}" in conforming_run.output


def test_the_hub_conforms_for_an_ent_client_with_its_token(with_client: ClientServer) -> None:
    """As an editor runs the kit: with the token of its contract (one school, no
    demographics). The kit sends that token with every request, so a generated request whose
    only defect was its Authorization header is a valid request: the hub must not be blamed
    for serving it."""
    server = with_client.server
    run = run_kit(server.base_url, server.folder / "report.json", "--token", with_client.token)
    failures = {c["name"]: c["failures"] for c in run.report["checks"] if c["result"] != "PASS"}
    assert failures == {}, run.output
    assert run.exit_code == 0


def test_a_deployment_serving_problems_as_plain_json_fails(broken: Server) -> None:
    run = run_kit(broken.base_url, broken.folder / "report.json", "--max-examples", "3")
    assert run.exit_code == 1, run.output
    assert run.report["passed"] is False
    outcomes = run.outcomes()
    assert outcomes["errors"] == "FAIL"
    assert outcomes["schema"] == "FAIL"
    # The defect touches error responses only: the other checks still pass.
    assert {outcomes[n] for n in ("etag", "pagination", "feed")} == {"PASS"}
    errors = run.check("errors")["failures"]
    plain = [f for f in errors if "content type application/json" in f]
    assert len(plain) >= 15, errors  # every probe that gets a problem document
    assert any("/v1/persons?colour=blue -> 400" in f for f in errors)
    assert any("application/json" in f for f in run.check("schema")["failures"])
    assert "does not conform" in run.output


def test_a_deployment_renaming_a_member_fails_the_shape_check(renaming: Server) -> None:
    """Its bodies validate against the schemas (``schema`` passes: they require ``id`` only,
    since ``fields=`` narrows objects); ``shape`` compares them with the documented
    properties."""
    run = run_kit(renaming.base_url, renaming.folder / "report.json", "--max-examples", "3")
    assert run.exit_code == 1, run.output
    outcomes = run.outcomes()
    assert outcomes["shape"] == "FAIL"
    assert outcomes["schema"] == "PASS"
    failures = run.check("shape")["failures"]
    assert any(
        "/v1/persons?limit=3: object" in f
        and "carries undocumented usageName and lacks documented usage_name" in f
        for f in failures
    ), failures
    assert any(f.startswith("GET /v1/persons/") for f in failures), failures
    assert not any("/v1/structures" in f for f in failures)  # only persons are touched


def test_a_member_renamed_inside_a_persons_roles_fails_the_shape_check_only(
    role_renaming: Server,
) -> None:
    """``structure_uai`` is not required in a person's ``roles[]`` items, so the renamed
    member validates; ``shape`` compares each role with the schema of those items."""
    report = run_conformance(role_renaming.base_url, max_examples=3)
    assert report.result("shape").outcome is Outcome.FAIL
    others = {r.name: r.failures for r in report.results if r.outcome is not Outcome.PASS}
    assert list(others) == ["shape"], others
    failures = report.result("shape").failures
    renamed = " roles[0] carries undocumented structure_UAI and lacks documented structure_uai"
    # The first persons may all be guardians (no roles): the check reads on until it sees some.
    assert any(f.startswith("GET /v1/persons?limit=") and renamed in f for f in failures)
    assert any(f.startswith("GET /v1/persons/") and renamed in f for f in failures), [
        f for f in failures if "limit=" not in f
    ]
    # The persons themselves carry exactly their members.
    assert all(" roles[" in f for f in failures), failures


def test_a_problem_instance_that_is_not_the_request_path_fails_the_errors_check(
    relative_instance: Server,
) -> None:
    """``/persons`` for ``/v1/persons``: the request path ends with it, but is not it."""
    report = run_conformance(relative_instance.base_url, max_examples=3)
    assert report.result("errors").outcome is Outcome.FAIL
    others = {r.name: r.failures for r in report.results if r.outcome is not Outcome.PASS}
    assert list(others) == ["errors"], others
    failures = report.result("errors").failures
    assert any(
        "/v1/persons?colour=blue -> 400" in f
        and "instance '/persons' is not the request path /v1/persons" in f
        for f in failures
    ), failures
    assert all("instance" in f for f in failures), failures


def test_a_feed_repeating_entries_past_the_compared_window_fails(repeating: Server) -> None:
    """The first 2,000 entries read in pages of 1,000 and of 97 are alike; the whole feed,
    read once to its end, repeats an entry at each page past seq 2,000."""
    from tests.conformance.broken_app import REPEAT_AFTER

    report = run_conformance(repeating.base_url, checks=("feed",))
    result = report.result("feed")
    assert result.outcome is Outcome.FAIL
    assert any(
        "an entry repeated, the feed going back" in f and f"seq {REPEAT_AFTER + 1000}" in f
        for f in result.failures
    ), result.failures
    assert "first 2000 entries alike" in result.detail


def test_pages_repeating_a_person_fail_the_pagination_check(overlapping: Server) -> None:
    report = run_conformance(overlapping.base_url, checks=("pagination", "errors"))
    failures = report.result("pagination").failures
    assert report.result("pagination").outcome is Outcome.FAIL
    assert any("ids not strictly increasing" in f for f in failures), failures
    assert any("repeated" in f and "the NDJSON export" in f for f in failures), failures
    # Its cursors are still refused on another collection or with other filters.
    assert report.result("errors").outcome is Outcome.PASS, report.result("errors").failures


def test_a_deployment_ignoring_if_none_match_fails_the_etag_check(uncached: Server) -> None:
    report = run_conformance(uncached.base_url, checks=("etag", "pagination"))
    assert report.result("etag").outcome is Outcome.FAIL
    failures = report.result("etag").failures
    for sent in ('If-None-Match: "', 'If-None-Match: W/"', 'If-None-Match: "another"'):
        assert any(sent in f and "expected 304" in f for f in failures), (sent, failures)
    assert any(f.startswith("GET ") and "/v1/persons/" in f for f in failures), failures
    assert report.result("pagination").outcome is Outcome.PASS


def test_a_deployment_refusing_head_fails_the_etag_check(get_only: Server) -> None:
    """The contract (1.1.0) has every GET answer HEAD with the same status and headers."""
    report = run_conformance(get_only.base_url, checks=("etag",))
    assert report.result("etag").outcome is Outcome.FAIL
    failures = report.result("etag").failures
    assert any(f.startswith("HEAD ") and "/v1/persons/" in f and "-> 405" in f for f in failures), (
        failures
    )


def test_a_redirected_trailing_slash_and_a_405_without_head_fail_the_errors_check(
    redirecting: Server,
) -> None:
    report = run_conformance(redirecting.base_url, checks=("errors",))
    assert report.result("errors").outcome is Outcome.FAIL
    failures = report.result("errors").failures
    assert any("/v1/persons/ -> 307" in f and "expected 404 not-found" in f for f in failures), (
        failures
    )
    assert any(
        f.startswith("DELETE ") and "Allow 'GET' does not name GET and HEAD" in f for f in failures
    ), failures
    assert len(failures) == 2, failures


def test_a_deployment_ignoring_a_filter_fails_the_filters_check_only(unfiltered: Server) -> None:
    """Every page it serves is valid, in order, of well-formed objects: only what the filter
    selects shows the defect."""
    checks = ("shape", "errors", "filters", "pagination")
    report = run_conformance(unfiltered.base_url, checks=checks)
    for name in ("shape", "errors", "pagination"):
        assert report.result(name).outcome is Outcome.PASS, report.result(name).failures
    assert report.result("filters").outcome is Outcome.FAIL
    failures = report.result("filters").failures
    assert any(
        f.startswith("GET /v1/persons?modifiedSince=") and "it should not select" in f
        for f in failures
    ), failures
    assert not any("status=" in f or "structure=" in f for f in failures), failures


def test_a_value_outside_its_enum_fails_the_schema_check_only(shouting: Server) -> None:
    """Every object still carries exactly its members: ``shape`` passes, ``schema`` reads the
    values."""
    report = run_conformance(shouting.base_url, max_examples=3, checks=("schema", "shape"))
    assert report.result("shape").outcome is Outcome.PASS, report.result("shape").failures
    assert report.result("schema").outcome is Outcome.FAIL
    failures = report.result("schema").failures
    assert any(
        f.startswith("GET /v1/persons:") and "Response violates schema" in f and "ACTIVE" in f
        for f in failures
    ), failures


def test_a_feed_without_updates_fails_only_when_data_changes(
    forgetful: Server, academie: Academie
) -> None:
    """Read alone, the feed pages cleanly; after a delta, the persons it modified have no
    entry."""
    quiet = run_conformance(forgetful.base_url, checks=("feed",))
    assert quiet.result("feed").outcome is Outcome.PASS, quiet.result("feed").failures
    report = run_conformance(
        forgetful.base_url,
        checks=("feed",),
        mutate_command=mutate_command(forgetful, academie),
    )
    assert report.result("feed").outcome is Outcome.FAIL
    failures = report.result("feed").failures
    assert any(
        "persons changed by --mutate-command have no entry in /v1/changes?after=" in f
        for f in failures
    ), failures


def test_a_failing_mutate_command_fails_the_check_that_ran_it(conforming: Server) -> None:
    report = run_conformance(
        conforming.base_url,
        checks=("pagination",),
        mutate_command="echo 'no delta left' >&2; exit 3",
    )
    result = report.result("pagination")
    assert result.outcome is Outcome.FAIL
    assert "exited with 3" in result.failures[0] and "no delta left" in result.failures[0]
    assert not report.passed


@pytest.mark.parametrize("content", ["[]", '{"paths": 5}', '{"paths": {}}'])
def test_an_unreadable_spec_is_bad_usage(tmp_path: Path, content: str) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(content)
    done = subprocess.run(
        [*AIGUILLAGE, "conformance", "--base-url", "http://127.0.0.1:9", "--spec", str(spec)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    record_output("aiguillage conformance stderr", done.stderr)
    assert done.returncode == 2
    assert "is not an OpenAPI 3 document" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_base_url_that_is_not_one_is_bad_usage() -> None:
    done = subprocess.run(
        [*AIGUILLAGE, "conformance", "--base-url", "not-a-url"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "an http:// or https:// URL" in " ".join(done.stderr.split())


def test_a_report_that_cannot_be_written_is_bad_usage_after_the_table(tmp_path: Path) -> None:
    report = tmp_path / "missing" / "report.json"
    done = subprocess.run(
        [*AIGUILLAGE, "conformance", "--base-url", "http://127.0.0.1:9", "--report", str(report)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "cannot write the report" in done.stderr and "Traceback" not in done.stderr
    assert "does not conform" in done.stdout  # the run's table was printed first


def test_an_unreachable_deployment_fails_every_check_at_once() -> None:
    port = free_port()  # nothing listens there
    report = run_conformance(f"http://127.0.0.1:{port}", spec={"paths": {}})
    assert [r.outcome for r in report.results] == [Outcome.FAIL] * len(CHECKS)
    assert all("no answer from" in r.detail for r in report.results)
    assert report.duration_s < 10
