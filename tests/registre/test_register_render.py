"""The register document: built from the example file and synthetic flows, rendered three ways.

The JSON is checked against the committed ``specs/schema/registre.json`` (what third parties
read), the CSV through :mod:`csv` as a spreadsheet would read it, the HTML through lxml.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from jsonschema import Draft202012Validator
from lxml.html import HtmlElement

from annuaire.registre import (
    EXAMPLE_FILE,
    DataCategory,
    FlowKind,
    Operation,
    RecipientKind,
    RegistreConfig,
    load_registre,
)
from annuaire.registre.register import (
    FICHE_HEADINGS,
    ActivityVersion,
    FlowLogSummary,
    ObservedFlow,
    Register,
    build_register,
    register_json_schema,
    render_csv,
    render_html,
    render_json,
)

from .support import edited, write

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((PROJECT_ROOT / "specs" / "schema" / "registre.json").read_text("utf-8"))
NOW = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
HOSTILE_NAME = '<script>alert("x");</script> Alimentation des ENT'


def flow(kind: FlowKind, operation: Operation, who: RecipientKind, **fields: Any) -> ObservedFlow:
    values: dict[str, Any] = {
        "activity_version": 2,
        "recipient": None,
        "recipient_name": None,
        "entries": 4,
        "persons": 40,
        "failures": 0,
        "data_categories": [DataCategory.IDENTITY_NAME, DataCategory.SCHOOLING],
        "structures": ["0990001A"],
        "first_at": NOW - timedelta(days=30),
        "last_at": NOW - timedelta(hours=1),
    }
    values.update(fields)
    return ObservedFlow(flow=kind, operation=operation, recipient_kind=who, **values)


FLOWS = {
    "alimentation-ent": [
        flow(
            FlowKind.API_CLIENT,
            Operation.READ,
            RecipientKind.CLIENT,
            recipient="ent-exemple",
            recipient_name="Éditeur ENT Exemple",
            entries=1200,
            persons=35000,
            failures=3,
        ),
        flow(
            FlowKind.API_CLIENT,
            Operation.READ,
            RecipientKind.CLIENT,
            recipient="ent-autre",
            recipient_name="Autre <éditeur> ; « test »",
        ),
        flow(FlowKind.API_CLIENT, Operation.DELETE, RecipientKind.CLIENT, recipient="ent-exemple"),
    ],
    "portail-familles": [
        flow(FlowKind.API_EDUCONNECT, Operation.READ, RecipientKind.GUARDIAN),
        # Beyond the fiche, which declares no professional data: flagged in the register.
        flow(
            FlowKind.API_EDUCONNECT,
            Operation.READ,
            RecipientKind.PUPIL,
            data_categories=[DataCategory.IDENTITY_NAME, DataCategory.PROFESSIONAL],
        ),
    ],
    "import-annuaire": [
        flow(
            FlowKind.IMPORT,
            Operation.COLLECT,
            RecipientKind.IMPORT_JOB,
            recipient="aaf",
            data_categories=list(DataCategory)[:7],
            structures=["0990001A", "0990002B"],
        )
    ],
    "journalisation-flux": [
        flow(
            FlowKind.REGISTRE,
            Operation.LOG_ACCESS,
            RecipientKind.DPO,
            data_categories=[DataCategory.CONNECTION],
            structures=[],
        )
    ],
}

FLOW_LOG = FlowLogSummary(
    retention_months=12,
    entries=1209,
    oldest_at=NOW - timedelta(days=30),
    newest_at=NOW - timedelta(hours=1),
    last_checkpoint_seq=1200,
    last_checkpoint_at=NOW - timedelta(hours=2),
    purged_entries=0,
    last_purge_at=None,
    verified=True,
    verification_message="1209 entrées, 12 points de contrôle",
)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> RegistreConfig:
    text = edited(
        [
            (
                "alimentation-ent",
                'name = "Alimentation des ENT des lycées à partir de l\'annuaire fédérateur"',
                f"name = {json.dumps(HOSTILE_NAME)}",
            )
        ]
    )
    return load_registre(write(tmp_path_factory.mktemp("registre"), text))


@pytest.fixture(scope="module")
def register(config: RegistreConfig) -> Register:
    digest = config.activity("alimentation-ent").digest
    versions = {
        "alimentation-ent": [
            ActivityVersion(version=2, digest=digest, recorded_at=NOW - timedelta(days=20)),
            ActivityVersion(version=1, digest="0" * 64, recorded_at=NOW - timedelta(days=90)),
        ]
    }
    return build_register(config, flows=FLOWS, versions=versions, flow_log=FLOW_LOG, now=NOW)


# --- the document ---------------------------------------------------------------------------


def test_versions_and_flows_land_on_their_sheets(register: Register) -> None:
    sheets = {sheet.id: sheet for sheet in register.activities}
    assert sheets["alimentation-ent"].version == 2
    assert [v.version for v in sheets["alimentation-ent"].history] == [1, 2]
    assert sheets["portail-familles"].version == 1
    assert sheets["portail-familles"].history == []
    for activity_id, sheet in sheets.items():
        seen = [f.model_copy(update={"undeclared_categories": []}) for f in sheet.observed_flows]
        assert sorted(seen, key=repr) == sorted(FLOWS.get(activity_id, []), key=repr)


def test_categories_a_fiche_does_not_declare_are_flagged_on_their_flows(
    config: RegistreConfig, register: Register
) -> None:
    flagged = 0
    for sheet in register.activities:
        declared = set(config.activity(sheet.id).data_categories)
        for flow in sheet.observed_flows:
            assert flow.undeclared_categories == [
                c for c in flow.data_categories if c not in declared
            ]
            flagged += bool(flow.undeclared_categories)
    families = next(s for s in register.activities if s.id == "portail-familles")
    (beyond,) = [f for f in families.observed_flows if f.undeclared_categories]
    assert beyond.undeclared_categories == [DataCategory.PROFESSIONAL] and flagged == 1
    page = render_html(register)
    assert page.count('class="hors-fiche"') == flagged
    assert page.count('role="alert"') == sum(
        any(f.undeclared_categories for f in sheet.observed_flows) for sheet in register.activities
    )
    assert DataCategory.PROFESSIONAL.label in page


def test_the_dpo_accounts_stay_out_of_the_register(register: Register) -> None:
    document = json.loads(render_json(register))
    assert set(document["dpo"]) == {"name", "organisation", "email", "phone"}
    assert b"adjoint.dpo" not in render_json(register)


def test_flows_under_an_activity_absent_from_the_file_are_refused(config: RegistreConfig) -> None:
    with pytest.raises(Exception, match="absent from the register file: ancienne-fiche"):
        build_register(
            config,
            flows={"ancienne-fiche": FLOWS["portail-familles"]},
            versions={},
            flow_log=FLOW_LOG,
            now=NOW,
        )


def test_a_flow_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before first_at"):
        flow(
            FlowKind.IMPORT,
            Operation.COLLECT,
            RecipientKind.IMPORT_JOB,
            first_at=NOW,
            last_at=NOW - timedelta(seconds=1),
        )


# --- JSON -----------------------------------------------------------------------------------


def validator() -> Draft202012Validator:
    return Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_the_committed_schema_is_the_generated_one() -> None:
    assert register_json_schema() == SCHEMA


def test_the_json_validates_against_the_committed_schema(register: Register) -> None:
    document = json.loads(render_json(register))
    errors = list(validator().iter_errors(document))
    assert errors == []
    assert document["format"] == "aiguillage-registre/1"
    assert document["generated_at"] == "2026-11-02T08:30:00Z"


def test_the_json_reads_back_as_the_same_register(register: Register) -> None:
    assert Register.model_validate_json(render_json(register)) == register


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return mutate


MUTATIONS = {
    "negative count": _set("activities.0.observed_flows.0.entries", -1),
    "missing field": _set("generated_at", KeyError),
    "missing sheet field": _set("activities.2.purposes", KeyError),
    "missing defaulted field": _set("activities.2.joint_controllers", KeyError),
    "unknown format": _set("format", "aiguillage-registre/2"),
    "not a date-time": _set("flow_log.newest_at", "hier"),
    "not a date": _set("activities.1.created", "2026-13-45"),
    "unknown flow kind": _set("activities.0.flows", ["ftp"]),
    "unknown field": _set("activities.0.colour", "red"),
    "bad digest": _set("activities.0.digest", "abc"),
}


@pytest.mark.parametrize("mutate", list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_a_broken_document_is_refused(
    register: Register, mutate: Callable[[dict[str, Any]], None]
) -> None:
    document = copy.deepcopy(json.loads(render_json(register)))
    mutate(document)
    assert list(validator().iter_errors(document)) != []


def test_times_are_utc_with_a_z(config: RegistreConfig) -> None:
    paris = timezone(timedelta(hours=1))
    naive = flow(
        FlowKind.API_EDUCONNECT,
        Operation.READ,
        RecipientKind.GUARDIAN,
        first_at=datetime(2026, 10, 1, 12, 0),
        last_at=datetime(2026, 10, 1, 14, 0, tzinfo=paris),
    )
    register = build_register(
        config,
        flows={"portail-familles": [naive]},
        versions={},
        flow_log=FLOW_LOG,
        now=datetime(2026, 11, 2, 9, 30, tzinfo=paris),
    )
    document = json.loads(render_json(register))
    assert document["generated_at"] == "2026-11-02T08:30:00Z"
    observed = document["activities"][1]["observed_flows"][0]
    assert (observed["first_at"], observed["last_at"]) == (
        "2026-10-01T12:00:00Z",
        "2026-10-01T13:00:00Z",
    )


# --- CSV ------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[list[str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as source:
        return list(csv.reader(source, delimiter=";"))


def test_csv_files_per_activity(register: Register, tmp_path: Path) -> None:
    written = render_csv(register, tmp_path / "export")
    names = [path.name for path in written]
    assert names[0] == "organisation.csv"
    for sheet in register.activities:
        assert f"{sheet.id}.csv" in names
        assert f"{sheet.id}-flux.csv" in names
    assert len(written) == 1 + 2 * len(register.activities)
    assert all(path.exists() for path in written)


def test_csv_common_page(register: Register, tmp_path: Path) -> None:
    rows = read_csv(render_csv(register, tmp_path)[0])
    assert rows[0] == ["Rubrique", "Valeur"]
    values = {row[0]: row[1] for row in rows if len(row) == 2}
    assert values["Organisme"] == "Région Exemple"
    assert values["Délégué à la protection des données"] == register.dpo.name
    assert values["Conservation du journal des flux"] == "12 mois"
    listing = rows[rows.index([]) + 2 :]
    assert [row[0] for row in listing] == [sheet.id for sheet in register.activities]
    assert listing[0][1] == HOSTILE_NAME


def test_csv_fiche_has_every_heading_and_round_trips(register: Register, tmp_path: Path) -> None:
    render_csv(register, tmp_path)
    for sheet in register.activities:
        rows = read_csv(tmp_path / f"{sheet.id}.csv")
        assert rows[0] == ["Rubrique", "Valeur"]
        assert all(len(row) == 2 for row in rows)
        cells = dict(rows[1:])
        for heading in FICHE_HEADINGS:
            assert heading in cells
        assert cells["Identifiant"] == sheet.id
        assert cells["Nom du traitement"] == sheet.name
        assert cells["Exercice des droits"] == sheet.data_subject_rights
        purposes = cells["Finalité(s)"].split(" | ")
        assert len(purposes) == len(sheet.purposes)
        assert purposes[0] == f"Finalité principale : {sheet.purposes[0]}"
        assert len(cells["Durées de conservation"].split(" | ")) == len(sheet.retention)


def test_csv_flows_one_row_each(register: Register, tmp_path: Path) -> None:
    render_csv(register, tmp_path)
    for sheet in register.activities:
        rows = read_csv(tmp_path / f"{sheet.id}-flux.csv")
        assert rows[0][:2] == ["Version de la fiche", "Type de flux"]
        assert len(rows) == 1 + len(sheet.observed_flows)
        assert all(len(row) == len(rows[0]) for row in rows)
    rows = read_csv(tmp_path / "alimentation-ent-flux.csv")
    by_recipient = {row[3]: row for row in rows[1:]}
    other = by_recipient["Client de l'API (éditeur) : Autre <éditeur> ; « test » (ent-autre)"]
    assert other[0] == "2" and other[4:7] == ["4", "40", "0"]


FORMULAS = ['=HYPERLINK("http://x.invalid")', "+33 5 00 00 00 00"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text(
    tmp_path: Path,
) -> None:
    text = edited(
        [
            (None, 'name = "Région Exemple"', f"name = {json.dumps(FORMULAS[0])}"),
            ("alimentation-ent", 'responsible = "', 'responsible = "-1+1 '),
        ]
    )
    config = load_registre(write(tmp_path, text))
    register = build_register(config, flows=FLOWS, versions={}, flow_log=FLOW_LOG, now=NOW)
    render_csv(register, tmp_path / "csv")
    cells = [
        cell for path in (tmp_path / "csv").iterdir() for row in read_csv(path) for cell in row
    ]
    assert "'" + FORMULAS[0] in cells and FORMULAS[0] not in cells
    assert "'+33 5 00 00 00 00" in cells and "+33 5 00 00 00 00" not in cells
    assert any(cell.startswith("'-1+1 ") for cell in cells)
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    # The other renderings show the values as they are.
    assert json.loads(render_json(register))["organisation"]["name"] == FORMULAS[0]
    assert "+33 5 00 00 00 00" in render_html(register)


# --- HTML -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def html(register: Register) -> str:
    return render_html(register)


def parse(html: str) -> HtmlElement:
    return lxml.html.document_fromstring(html)


def find(element: HtmlElement, path: str) -> list[HtmlElement]:
    found = element.xpath(path)
    assert isinstance(found, list)
    assert all(isinstance(node, HtmlElement) for node in found)
    return [node for node in found if isinstance(node, HtmlElement)]


def test_html_is_one_french_document_without_scripts(html: str) -> None:
    document = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert document.get("lang") == "fr"
    assert find(document, "//script") == []
    assert find(document, "//link") == []
    [style] = find(document, "//style")
    assert "@media print" in style.text_content()
    assert "url(" not in style.text_content()
    assert "@import" not in style.text_content()


def test_html_references_nothing_outside(html: str) -> None:
    for element in parse(html).iter():
        for attribute in ("src", "href", "action", "srcset", "data"):
            value = element.get(attribute)
            if value is not None:
                assert value.startswith("#"), (element.tag, attribute, value)
    head = html.split("<body>")[0]
    assert "http://" not in head
    assert "https://" not in head


def test_html_escapes_the_values_of_the_file(html: str) -> None:
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    [title] = find(parse(html), '//section[@id="activity-alimentation-ent"]/h2')
    assert HOSTILE_NAME in title.text_content()


def test_html_has_one_fiche_per_activity_with_every_heading(html: str, register: Register) -> None:
    sections = find(parse(html), '//section[@class="fiche"]')
    assert [s.get("id") for s in sections] == [f"activity-{a.id}" for a in register.activities]
    for section, sheet in zip(sections, register.activities, strict=True):
        headings = [h3.text_content() for h3 in find(section, "./h3")]
        for heading in (*FICHE_HEADINGS, "Flux observés"):
            assert heading in headings, (sheet.id, heading)
        rows = find(section, './/table[@class="flux"]/tbody/tr')
        assert len(rows) == len(sheet.observed_flows)
        if not sheet.observed_flows:
            assert "Aucun flux observé" in section.text_content()


def test_html_common_page_lists_the_activities(html: str, register: Register) -> None:
    document = parse(html)
    links = [a.get("href") for a in find(document, '//table[@class="activites"]//a')]
    assert links == [f"#activity-{a.id}" for a in register.activities]
    [header] = find(document, '//header[@id="page-commune"]')
    assert "Région Exemple" in header.text_content()


# --- the controller's DPO (art. 30(1)(a), 30(2)(a)) -----------------------------------------


def test_a_controller_names_its_dpo_in_every_rendering(tmp_path: Path) -> None:
    """The record names each controller's DPO, not only the DPO of the organisation keeping the
    register: a processor's record (art. 30(2)(a)) must give the DPO of each controller it acts
    for, here the recteur's."""
    config = load_registre(EXAMPLE_FILE)
    register = build_register(config, flows={}, versions={}, flow_log=FLOW_LOG, now=NOW)
    document = json.loads(render_json(register))
    Draft202012Validator(SCHEMA).validate(document)
    sheet = next(a for a in document["activities"] if a["id"] == "import-annuaire")
    assert sheet["controller"]["dpo"] == {
        "name": "Délégué académique à la protection des données",
        "organisation": "Rectorat de l'académie d'Exemple",
        "email": "dpd@ac-exemple.fr",
        "phone": "+33 5 00 00 00 10",
    }
    cells = dict(
        read_csv(render_csv(register, tmp_path / "csv")[0].parent / "import-annuaire.csv")[1:]
    )
    page = lxml.html.fromstring(render_html(register)).get_element_by_id("activity-import-annuaire")
    for shown in (cells["Responsable de traitement"], page.text_content()):
        assert "DPO : Délégué académique à la protection des données" in shown
        assert "Rectorat de l'académie d'Exemple — dpd@ac-exemple.fr — +33 5 00 00 00 10" in shown


def test_a_fiche_without_a_controller_dpo_keeps_its_digest(config: RegistreConfig) -> None:
    """The digest (hence the version every flow names) of a fiche that names no controller's
    DPO is what it was before controllers could name one: deployments record no new version
    of fiches that did not change."""
    without = [
        activity
        for activity in config.activities
        if all(p.dpo is None for p in [activity.controller, *activity.joint_controllers])
    ]
    assert without and len(without) < len(config.activities)  # the example names one DPO
    for activity in without:
        fields = activity.model_dump(
            mode="json", exclude={"controller": {"dpo"}, "joint_controllers": {"__all__": {"dpo"}}}
        )
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert activity.digest == hashlib.sha256(canonical.encode()).hexdigest()
