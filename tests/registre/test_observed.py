"""The register's observed flows, aggregated by the database, are what the log holds: per
activity and version of its fiche, flow, operation and recipient (people by kind only), the
number of entries, the persons, the failures, the union of categories and of UAIs, the first and
last flow; checked against a plain aggregation of the entries, on both backends. Each group is
judged against the version of the fiche its flows ran under."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annuaire.registre._wording import FLOW_COLUMNS, flow_row
from annuaire.registre.flowlog import FlowLog, FlowRecord
from annuaire.registre.register import render_json
from annuaire.registre.runtime import observed_flows, open_registre
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.store.engine import write_transaction
from tests.conftest import Store

from .flowlog_support import entries, flow_records, import_record, reset_log
from .support import edited, write

BASE = dt.datetime(2026, 9, 1, 7, 0, tzinfo=dt.UTC)
PEOPLE = {
    RecipientKind.GUARDIAN,
    RecipientKind.PUPIL,
    RecipientKind.STAFF,
    RecipientKind.OPERATOR,
    RecipientKind.DPO,
}


def expected_flows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        people = RecipientKind(row["actor_kind"]) in PEOPLE
        recipient = None if people else ((row["client_id"] or row["actor"]) or None)
        key = (
            row["activity"],
            row["activity_version"],
            row["flow"],
            row["operation"],
            row["actor_kind"],
            recipient,
        )
        group = groups.setdefault(key, defaultdict(int, categories=set(), structures=set()))
        group["entries"] += 1
        group["persons"] += row["persons"]
        group["failures"] += row["outcome"] != "success"
        group["categories"] |= set(row["categories"])
        group["structures"] |= set(row["structures"])
        group["first"] = min(group.get("first", row["occurred_at"]), row["occurred_at"])
        group["last"] = max(group.get("last", row["occurred_at"]), row["occurred_at"])
    return sorted(
        (
            (
                *key,
                g["entries"],
                g["persons"],
                g["failures"],
                sorted(g["categories"]),
                sorted(g["structures"]),
                g["first"],
                g["last"],
            )
            for key, g in groups.items()
        ),
        key=repr,
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_observed_flows_are_the_log_aggregated(store: Store, data: st.DataObject) -> None:
    registre = open_registre(store.settings, store.engine)
    activities = sorted(registre.log.versions)
    records: list[FlowRecord] = data.draw(
        st.lists(flow_records(activities), min_size=0, max_size=16), label="records"
    )
    # Few keys, so that groups hold several entries.
    recipients = st.sampled_from([None, "", "ent-a", "ent-b", "aaf"])
    kinds = st.sampled_from(
        [RecipientKind.CLIENT, RecipientKind.GUARDIAN, RecipientKind.IMPORT_JOB]
    )
    records = [
        FlowRecord(
            **{
                **{f: getattr(r, f) for f in r.__dataclass_fields__},
                "activity": activities[0],
                "flow": data.draw(st.sampled_from([FlowKind.API_CLIENT, FlowKind.IMPORT])),
                "operation": Operation.READ,
                "actor_kind": data.draw(kinds),
                "client_id": data.draw(recipients),
                "actor": data.draw(recipients),
            }
        )
        for r in records
    ]
    steps = data.draw(st.lists(st.integers(0, 10**9), min_size=len(records), max_size=len(records)))
    # Flows under two versions of the fiche: a version is part of a group's key.
    versions = data.draw(
        st.lists(st.sampled_from([1, 2]), min_size=len(records), max_size=len(records))
    )
    reset_log(store.engine, BASE)
    at = BASE
    for record, step, version in zip(records, steps, versions, strict=True):
        at += dt.timedelta(microseconds=step)
        log = FlowLog(registre.keys, {**registre.log.versions, activities[0]: version})
        with write_transaction(store.engine) as connection:
            log.append(connection, record, now=at)
    with store.engine.connect() as connection:
        rows = entries(connection)
        flows = observed_flows(connection)
    seen = sorted(
        (
            (
                activity,
                f.activity_version,
                f.flow.value,
                f.operation.value,
                f.recipient_kind.value,
                f.recipient,
                f.entries,
                f.persons,
                f.failures,
                [c.value for c in f.data_categories],
                f.structures,
                f.first_at,
                f.last_at,
            )
            for activity, listed in flows.items()
            for f in listed
        ),
        key=repr,
    )
    assert seen == expected_flows(rows)


def test_flows_are_judged_against_the_version_of_the_fiche_they_ran_under(
    store: Store, tmp_path: Path
) -> None:
    # Version 1 of import-annuaire does not declare contact data; a flow under it carried some.
    without_contact = edited(
        [
            (
                "import-annuaire",
                '"identifiers", "contact", "professional"',
                '"identifiers", "professional"',
            ),
            (
                "import-annuaire",
                '    { data_category = "contact", period = "Tant que la personne figure dans '
                'l\'annuaire fédérateur, puis 90 jours", deletion_trigger = "Absence de '
                "l'export de l'annuaire fédérateur\" },\n",
                "",
            ),
        ]
    )
    reset_log(store.engine, BASE)
    first = open_registre(
        store.settings.model_copy(update={"registre_file": write(tmp_path, without_contact)}),
        store.engine,
    )
    carried = frozenset({DataCategory.IDENTIFIERS, DataCategory.CONTACT})
    with write_transaction(store.engine) as connection:
        first.log.append(connection, import_record(1, carried), now=BASE)
    # Version 2 (the bundled example) declares contact data; the same flow runs under it.
    second = open_registre(store.settings, store.engine)
    version = first.log.versions["import-annuaire"]
    assert second.log.versions["import-annuaire"] == version + 1
    with write_transaction(store.engine) as connection:
        second.log.append(connection, import_record(2, carried), now=BASE + dt.timedelta(hours=1))
    with store.engine.connect() as connection:
        register = second.register(connection)
    sheet = next(s for s in register.activities if s.id == "import-annuaire")
    assert [
        (f.activity_version, f.entries, f.undeclared_categories) for f in sheet.observed_flows
    ] == [
        (version, 1, [DataCategory.CONTACT]),
        (version + 1, 1, []),
    ]
    # Every rendering says which version each row ran under.
    document = orjson.loads(render_json(register))
    flows = next(a for a in document["activities"] if a["id"] == "import-annuaire")
    assert [f["activity_version"] for f in flows["observed_flows"]] == [version, version + 1]
    rows = [flow_row(f) for f in sheet.observed_flows]
    assert FLOW_COLUMNS[0] == "Version de la fiche"
    assert [row[0] for row in rows] == [str(version), str(version + 1)]
