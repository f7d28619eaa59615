"""The register file: the example loads, every rule refuses what it should, errors say where."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annuaire.errors import AiguillageError, ConfigurationError
from annuaire.registre import (
    EXAMPLE_FILE,
    Activity,
    ActivityStatus,
    DataCategory,
    FlowKind,
    RegistreConfigError,
    load_registre,
)

from .support import EXAMPLE_TEXT, Edit, edited, write

CONFIG = load_registre(EXAMPLE_FILE)


def refused(tmp_path: Path, edits: list[Edit]) -> str:
    path = write(tmp_path, edited(edits))
    with pytest.raises(RegistreConfigError) as caught:
        load_registre(path)
    message = str(caught.value)
    for line in message.splitlines():
        assert line.startswith(f"registre file {path}: ")
    assert caught.value.problems == [
        line.removeprefix(f"registre file {path}: ") for line in message.splitlines()
    ]
    return message


def test_the_example_loads() -> None:
    assert [a.id for a in CONFIG.activities] == [
        "alimentation-ent",
        "portail-familles",
        "acces-personnels",
        "import-annuaire",
        "journalisation-flux",
    ]
    assert CONFIG.organisation.name == "Région Exemple"
    assert CONFIG.dpo.accounts == ["dpo@region-exemple.fr", "adjoint.dpo@region-exemple.fr"]
    assert CONFIG.flow_log.retention_months == 12
    assert CONFIG.activity("portail-familles").created == date(2026, 6, 1)


def test_lookups() -> None:
    assert CONFIG.activity_for(FlowKind.IMPORT) == CONFIG.activity("import-annuaire")
    assert CONFIG.activity_for(FlowKind.REGISTRE) == CONFIG.activity("journalisation-flux")
    assert CONFIG.activity_for(FlowKind.API_OPERATOR) == CONFIG.activity("journalisation-flux")
    assert [a.id for a in CONFIG.client_activities()] == ["alimentation-ent"]
    with pytest.raises(ValueError, match="client_activities"):
        CONFIG.activity_for(FlowKind.API_CLIENT)
    with pytest.raises(RegistreConfigError, match="no activity 'x' in the register; declared: "):
        CONFIG.activity("x")


def test_an_unclaimed_operator_kind_is_none(tmp_path: Path) -> None:
    text = edited(
        [("journalisation-flux", 'flows = ["registre", "api-operator"]', 'flows = ["registre"]')]
    )
    assert load_registre(write(tmp_path, text)).activity_for(FlowKind.API_OPERATOR) is None


def test_a_retired_fiche_keeps_its_flows_without_claiming_them(tmp_path: Path) -> None:
    start = EXAMPLE_TEXT.index('\nid = "import-annuaire"')
    block = EXAMPLE_TEXT[EXAMPLE_TEXT.rindex("[[activities]]", 0, start) :]
    block = block[: block.index("[[activities]]", 1)]
    retired = block.replace('id = "import-annuaire"', 'id = "import-annuaire-2025"').replace(
        "updated = 2026-06-01", 'updated = 2026-06-01\nstatus = "retired"'
    )
    config = load_registre(write(tmp_path, EXAMPLE_TEXT + "\n" + retired))
    assert config.activity("import-annuaire-2025").status is ActivityStatus.RETIRED
    assert config.activity_for(FlowKind.IMPORT) == config.activity("import-annuaire")


RULES: dict[str, tuple[list[Edit], list[str]]] = {
    "duplicate id": (
        [("portail-familles", 'id = "portail-familles"', 'id = "alimentation-ent"')],
        ["activities[1] (id \"alimentation-ent\") → id: 'alimentation-ent' is already"],
    ),
    "reserved id": (
        [("portail-familles", 'id = "portail-familles"', 'id = "organisation"')],
        ["activities[1] (id \"organisation\") → id: 'organisation' is reserved"],
    ),
    "id clashing with a flows file": (
        [("portail-familles", 'id = "portail-familles"', 'id = "alimentation-ent-flux"')],
        ['activities[1] (id "alimentation-ent-flux") → id: ', "would clash"],
    ),
    "bad slug": (
        [("portail-familles", 'id = "portail-familles"', 'id = "Portail familles"')],
        ['activities[1] (id "Portail familles") → id: String should match pattern'],
    ),
    "import claimed twice": (
        [
            (
                "portail-familles",
                'flows = ["api-educonnect"]',
                'flows = ["api-educonnect", "import"]',
            )
        ],
        [
            "activities[3] (id \"import-annuaire\") → flows: 'import' is claimed by "
            "'portail-familles', 'import-annuaire'"
        ],
    ),
    "api-educonnect unclaimed": (
        [("portail-familles", 'flows = ["api-educonnect"]', 'flows = ["api-client"]')],
        ["activities: no activity in force (active or draft) claims 'api-educonnect'"],
    ),
    "api-guichet-agent unclaimed": (
        [("acces-personnels", 'flows = ["api-guichet-agent"]', 'flows = ["api-client"]')],
        ["activities: no activity in force (active or draft) claims 'api-guichet-agent'"],
    ),
    "registre unclaimed": (
        [("journalisation-flux", '"registre", ', "")],
        ["activities: no activity in force (active or draft) claims 'registre'"],
    ),
    "import unclaimed once its fiche is retired": (
        [
            (
                "import-annuaire",
                'register_kind = "processor"',
                'register_kind = "processor"\nstatus = "retired"',
            )
        ],
        ["activities: no activity in force (active or draft) claims 'import'"],
    ),
    "api-client unclaimed": (
        [("alimentation-ent", 'status = "active"', 'status = "retired"')],
        ["activities: no activity in force (active or draft) claims 'api-client'"],
    ),
    "api-operator claimed twice": (
        [
            (
                "acces-personnels",
                'flows = ["api-guichet-agent"]',
                'flows = ["api-guichet-agent", "api-operator"]',
            )
        ],
        ["activities[4] (id \"journalisation-flux\") → flows: 'api-operator' is claimed by"],
    ),
    "flow kind listed twice": (
        [("alimentation-ent", 'flows = ["api-client"]', 'flows = ["api-client", "api-client"]')],
        ['activities[0] (id "alimentation-ent") → flows: listed twice: api-client'],
    ),
    "unknown flow kind": (
        [("alimentation-ent", 'flows = ["api-client"]', 'flows = ["api-client", "ftp"]')],
        ['activities[0] (id "alimentation-ent") → flows[1]: Input should be', "got 'ftp'"],
    ),
    "retention misses a category": (
        [
            (
                "portail-familles",
                '    { data_category = "identity.birth_date", period = "Tant que l\'élève est '
                'inscrit", deletion_trigger = "Départ de l\'élève" },\n',
                "",
            )
        ],
        [
            'activities[1] (id "portail-familles") → retention: no rule for the declared '
            "category 'identity.birth_date'"
        ],
    ),
    "retention names an undeclared category": (
        [
            (
                "portail-familles",
                "retention = [\n",
                'retention = [\n    { data_category = "professional", period = "1 an", '
                'deletion_trigger = "départ" },\n',
            )
        ],
        [
            'activities[1] (id "portail-familles") → retention[0].data_category: '
            "'professional' is not in data_categories"
        ],
    ),
    "updated before created": (
        [("alimentation-ent", "updated = 2026-09-01", "updated = 2026-05-31")],
        ['activities[0] (id "alimentation-ent") → updated: 2026-05-31 is before created'],
    ),
    "transfer to an EU country": (
        [
            (
                "portail-familles",
                "purposes = [",
                'transfers_outside_eu = [{ recipient = "Hébergeur", country = "DE", '
                'safeguard = "CCT", documentation = "annexe 3" }]\npurposes = [',
            )
        ],
        [
            'activities[1] (id "portail-familles") → transfers_outside_eu[0].country: DE is in '
            "the EU/EEA: a flow there is not a transfer, got 'DE'"
        ],
    ),
    "registre without connection data": (
        [
            (
                "journalisation-flux",
                'data_categories = ["identifiers", "connection"]',
                'data_categories = ["identifiers"]',
            ),
            (
                "journalisation-flux",
                '    { data_category = "connection"',
                '#    { data_category = "connection"',
            ),
        ],
        [
            'activities[4] (id "journalisation-flux") → data_categories: the activity claiming '
            "'registre' must declare 'connection'"
        ],
    ),
    "sensitive data without a note": (
        [("alimentation-ent", "sensitive_data = false", "sensitive_data = true")],
        [
            'activities[0] (id "alimentation-ent") → sensitive_data_note: required when '
            "sensitive_data is true"
        ],
    ),
    "required DPIA without its reference": (
        [("journalisation-flux", "dpia = { required = false }", "dpia = { required = true }")],
        [
            'activities[4] (id "journalisation-flux") → dpia.reference: required when the DPIA',
            'activities[4] (id "journalisation-flux") → dpia.done_on: required',
            'activities[4] (id "journalisation-flux") → dpia.next_review: required',
        ],
    ),
    "processor record without a processor": (
        [("import-annuaire", "processor = {", "#processor = {")],
        [
            'activities[3] (id "import-annuaire") → processor: required in a processor\'s '
            "record (art. 30(2))"
        ],
    ),
    "unknown legal basis": (
        [("portail-familles", '"6(1)(e)"', '"6(1)(z)"')],
        [
            'activities[1] (id "portail-familles") → legal_basis.article: Input should be '
            "'6(1)(a)', '6(1)(b)', '6(1)(c)', '6(1)(d)', '6(1)(e)' or '6(1)(f)', got '6(1)(z)'"
        ],
    ),
    "bad UAI": (
        [
            (
                "acces-personnels",
                'kind = "chef_etablissement",',
                'kind = "chef_etablissement", uai = "075001A",',
            )
        ],
        ['activities[2] (id "acces-personnels") → controller.uai: String should match pattern'],
    ),
    "bad country code": (
        [("acces-personnels", 'country = "FR"', 'country = "France"')],
        ['activities[2] (id "acces-personnels") → recipients[0].country: String should match'],
    ),
    "unknown field": (
        [("alimentation-ent", 'status = "active"', 'status = "active"\ncolour = "red"')],
        [
            'activities[0] (id "alimentation-ent") → colour: Extra inputs are not permitted, '
            "got 'red'"
        ],
    ),
    "missing field": (
        [("alimentation-ent", 'responsible = "', 'responsable = "')],
        [
            'activities[0] (id "alimentation-ent") → responsible: Field required',
            'activities[0] (id "alimentation-ent") → responsable: Extra inputs',
        ],
    ),
    "empty purposes": (
        [("acces-personnels", "purposes = [\n", "purposes = [\n]\nx = [\n")],
        ['activities[2] (id "acces-personnels") → purposes: List should have at least 1 item'],
    ),
    "flow-log retention beyond a year": (
        [(None, "retention_months = 12", "retention_months = 24")],
        ["flow_log.retention_months: Input should be less than or equal to 12, got 24"],
    ),
    "bad DPO account": (
        [(None, '"adjoint.dpo@region-exemple.fr"', '"adjoint.dpo"')],
        ["dpo.accounts[1]: String should match pattern"],
    ),
}


@pytest.mark.parametrize(("edits", "expected"), list(RULES.values()), ids=list(RULES))
def test_each_rule_refuses_with_the_field_path(
    tmp_path: Path, edits: list[Edit], expected: list[str]
) -> None:
    message = refused(tmp_path, edits)
    for part in expected:
        assert part in message


def test_every_problem_is_listed_one_per_line(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        [
            ("alimentation-ent", "updated = 2026-09-01", "updated = 2026-05-31"),
            ("portail-familles", '"6(1)(e)"', '"6(1)(z)"'),
            (None, "retention_months = 12", "retention_months = 3"),
        ],
    )
    lines = message.splitlines()
    assert len(lines) == 3
    assert "flow_log.retention_months" in lines[0]
    assert 'activities[0] (id "alimentation-ent") → updated' in lines[1]
    assert 'activities[1] (id "portail-familles") → legal_basis.article' in lines[2]


def test_a_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    line = EXAMPLE_TEXT.splitlines().index('name = "Région Exemple"') + 1
    path = write(tmp_path, edited([(None, 'name = "Région Exemple"', 'name = "Région Exemple')]))
    with pytest.raises(RegistreConfigError, match=rf"TOML syntax error: .*line {line}\b"):
        load_registre(path)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(RegistreConfigError, match=rf"^registre file {path}: not found$"):
        load_registre(path)


def test_the_error_is_a_configuration_error() -> None:
    assert issubclass(RegistreConfigError, ConfigurationError)
    assert issubclass(RegistreConfigError, AiguillageError)


def test_the_digest_follows_the_content(tmp_path: Path) -> None:
    again = load_registre(EXAMPLE_FILE)
    assert [a.digest for a in again.activities] == [a.digest for a in CONFIG.activities]
    assert len({a.digest for a in CONFIG.activities}) == len(CONFIG.activities)
    changed = load_registre(
        write(
            tmp_path, edited([("portail-familles", "updated = 2026-06-01", "updated = 2026-06-02")])
        )
    )
    for before, after in zip(CONFIG.activities, changed.activities, strict=True):
        assert (before.digest == after.digest) == (before.id != "portail-familles")


def test_the_digest_ignores_layout(tmp_path: Path) -> None:
    # Inline tables written as multi-line sections, comments and blank lines: same content.
    text = edited(
        [
            (
                "journalisation-flux",
                "dpia = { required = false }\n",
                "\n# AIPD non requise\ndpia.required = false\n",
            )
        ]
    )
    reloaded = load_registre(write(tmp_path, text))
    assert (
        reloaded.activity("journalisation-flux").digest
        == CONFIG.activity("journalisation-flux").digest
    )


@given(st.text(min_size=1).filter(lambda s: s.strip() == s and s != ""))
def test_any_change_of_a_text_changes_the_digest(responsible: str) -> None:
    original = CONFIG.activity("alimentation-ent")
    variant = Activity.model_validate({**original.model_dump(), "responsible": responsible})
    assert (variant.digest == original.digest) == (responsible == original.responsible)


def test_labels_are_french() -> None:
    assert DataCategory.IDENTITY_NAME.label == "État civil — nom, prénoms, civilité"
    assert all(category.label for category in DataCategory)
