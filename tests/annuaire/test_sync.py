"""The sync engine on both backends: diff/apply, idempotence, atomicity, guards, delta, purge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import random
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from annuaire.errors import BadInput, Refused
from annuaire.registre.flowlog import ENTRY, SUBJECT_SET
from annuaire.registre.runtime import open_registre
from annuaire.schema import (
    TABLES,
    ChangeEntry,
    EntityKind,
    ExternalId,
    ImportRun,
    NeutralRecord,
    Person,
    Provenance,
    Ref,
    Status,
    StreamItem,
)
from annuaire.schema.records import RecordOp
from annuaire.store import changes as changes_module
from annuaire.store import changes_after
from annuaire.store.changes import ChangeRecorder, PackedIds, pack_sorted, structures_text
from annuaire.sync import Scope, apply_run, hub_id, purge
from annuaire.sync.engine import RUN_GC_THRESHOLDS
from tests.annuaire import toy
from tests.conftest import Store

SCOPE = Scope("aaf", academie="077", degree="2d")


def run(store: Store, items: Any, mode: str = "complet", **kwargs: Any):
    return apply_run(store.engine, SCOPE, items, mode=mode, settings=store.settings, **kwargs)  # type: ignore[arg-type]


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every entity row, external id and change-log entry, in a comparable form."""
    tables = [t.__table__ for t in TABLES.values()] + [ExternalId.__table__, ChangeEntry.__table__]  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(str(v) for v in row) for row in connection.execute(select(table))),
            )
            for table in tables
        }


def person_status(store: Store, key: str) -> tuple[str, dt.datetime | None]:
    with store.engine.connect() as connection:
        row = connection.execute(
            select(Person.status, Person.leaving_since).where(
                Person.id == hub_id(SCOPE.key, EntityKind.PERSON, key)
            )
        ).one()
    return row.status, row.leaving_since


def feed(store: Store, after: int = 0) -> list[ChangeEntry]:
    with store.engine.connect() as connection:
        return changes_after(connection, after, 100_000).entries


def test_complet_creates_every_entity_with_provenance_and_feed(store: Store) -> None:
    report = run(store, toy.academie(range(30)))
    assert report.outcome == "applied"
    created = sum(c.created for c in report.counts.values())
    assert created == toy.entity_count(30)
    assert report.counts[EntityKind.PERSON].created == 60
    entries = feed(store)
    assert len(entries) == created
    assert {e.op for e in entries} == {"create"}
    assert all(e.structures == f"|{toy.UAI}|" for e in entries)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    with store.engine.connect() as connection:
        pupil = connection.execute(
            select(Person).where(Person.id == hub_id(SCOPE.key, EntityKind.PERSON, "P7"))
        ).one()
        ids = connection.execute(
            select(ExternalId.type, ExternalId.value).where(ExternalId.entity_id == pupil.id)
        ).all()
        run_row = connection.execute(select(ImportRun)).one()
    assert pupil.source_file == "toy_Eleve.xml" and pupil.source_record == "P7"
    assert pupil.import_run_id == report.run_id and len(pupil.content_hash) == 32
    assert pupil.birth_date == dt.date(2012, 1, 8) and pupil.other_first_names == ["Deux"]
    assert sorted(ids) == [("aaf:ENTPersonJointure", "P7"), ("ine", "0000000007X")]
    assert run_row.outcome == "applied" and run_row.counts["person"]["created"] == 60


def test_same_input_twice_changes_nothing(store: Store) -> None:
    run(store, toy.academie(range(30)))
    before = snapshot(store)
    report = run(store, toy.academie(range(30)))
    assert sum(c.unchanged for c in report.counts.values()) == toy.entity_count(30)
    assert sum(c.created + c.updated + c.leaving for c in report.counts.values()) == 0
    assert snapshot(store) == before


def test_changed_content_is_an_update(store: Store) -> None:
    run(store, toy.academie(range(30)))
    cursor = feed(store)[-1].seq
    report = run(store, toy.academie(range(30), renamed={3: "DUPONT"}))
    assert report.counts[EntityKind.PERSON].updated == 1
    assert sum(c.updated for c in report.counts.values()) == 1
    entries = feed(store, cursor)
    assert [(e.op, e.entity_id) for e in entries] == [
        ("update", hub_id(SCOPE.key, EntityKind.PERSON, "P3"))
    ]


def test_complet_marks_missing_as_leaving_then_purge_deletes_after_delay(store: Store) -> None:
    run(store, toy.academie(range(30)))
    report = run(store, toy.academie(n for n in range(30) if n != 5))
    assert report.counts[EntityKind.PERSON].leaving == 2  # the pupil and their guardian
    assert report.counts[EntityKind.ROLE].leaving == 1
    assert report.counts[EntityKind.ENROLLMENT].leaving == 1
    assert report.counts[EntityKind.GUARDIANSHIP].leaving == 1
    status, since = person_status(store, "P5")
    assert status == Status.TOBEDELETED and since is not None
    assert person_status(store, "P6")[0] == Status.ACTIVE
    leave_ops = [e for e in feed(store) if e.op == "leave"]
    assert len(leave_ops) == 5

    # Not yet past the delay: nothing purged.
    assert purge(store.engine, store.settings, now=since + dt.timedelta(days=89)) == {}
    cursor = feed(store)[-1].seq
    purged = purge(store.engine, store.settings, now=since + dt.timedelta(days=91))
    assert purged == {"person": 2, "role": 1, "enrollment": 1, "guardianship": 1}
    with store.engine.connect() as connection:
        remaining = connection.execute(select(func.count()).select_from(Person)).scalar_one()
        orphan_ids = connection.execute(
            select(func.count())
            .select_from(ExternalId)
            .where(ExternalId.entity_id == hub_id(SCOPE.key, EntityKind.PERSON, "P5"))
        ).scalar_one()
    assert remaining == 58 and orphan_ids == 0
    assert {e.op for e in feed(store, cursor)} == {"purge"}


def test_returning_entity_is_restored(store: Store) -> None:
    run(store, toy.academie(range(30)))
    run(store, toy.academie(n for n in range(30) if n != 5))
    report = run(store, toy.academie(range(30)))
    assert report.counts[EntityKind.PERSON].returning == 2
    assert person_status(store, "P5") == (Status.ACTIVE, None)
    assert feed(store)[-1].op == "return"


def test_rows_a_later_run_writes_carry_its_ids_provenance_and_content(store: Store) -> None:
    """A run compares its rows with the store before their hub id, provenance and documents
    are staged: the rows it writes (created, updated, returning) carry this run's, exactly,
    and the rows it leaves as they are (unchanged, restored) keep the earlier run's."""
    run(store, toy.academie(range(30)))
    run(store, toy.academie(range(2, 30)))  # P0 and P1 (and their guardians) leave

    def moved(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
        for item in items:
            if isinstance(item, NeutralRecord) and item.provenance is not None:
                where = item.provenance
                item.provenance = Provenance(
                    f"B_{where.file}", (where.line or 0) + 1000, where.record_id
                )
            yield item

    # P1 comes back renamed (return), P0 as it was (restore), P12 is renamed (update),
    # P30 to P34 are new (create), the others are unchanged.
    report = run(store, moved(toy.academie(range(35), renamed={1: "RETOUR", 12: "DURAND"})))
    counts = report.counts[EntityKind.PERSON]
    assert (counts.created, counts.updated, counts.returning) == (10, 1, 4)
    with store.engine.connect() as connection:
        rows = {
            row.source_key: row
            for row in connection.execute(select(Person).where(Person.scope == SCOPE.key))
        }
        ids = connection.execute(
            select(ExternalId.entity_id, ExternalId.type, ExternalId.value)
        ).all()
    external: dict[uuid.UUID, set[tuple[str, str]]] = {}
    for entity_id, id_type, value in ids:
        external.setdefault(entity_id, set()).add((id_type, value))
    for n in (1, 12, 30, 34):
        pupil = rows[f"P{n}"]
        assert pupil.id == hub_id(SCOPE.key, EntityKind.PERSON, f"P{n}")
        assert (pupil.source_file, pupil.source_record) == ("B_toy_Eleve.xml", f"P{n}")
        assert pupil.import_run_id == report.run_id and pupil.status == Status.ACTIVE
        assert pupil.birth_date == dt.date(2012, 1, 1) + dt.timedelta(days=n)
        assert pupil.other_first_names == ["Deux"]
        assert external[pupil.id] == {("aaf:ENTPersonJointure", f"P{n}"), ("ine", f"{n:010d}X")}
    assert (rows["P1"].usage_name, rows["P12"].usage_name) == ("RETOUR", "DURAND")
    for n in (0, 20):  # restored, unchanged
        pupil = rows[f"P{n}"]
        assert pupil.status == Status.ACTIVE and pupil.source_file == "toy_Eleve.xml"
        assert external[pupil.id] == {("aaf:ENTPersonJointure", f"P{n}"), ("ine", f"{n:010d}X")}
    assert rows["P0"].import_run_id == report.run_id  # restored: its status was written
    assert rows["P20"].import_run_id != report.run_id
    # The same input, delta-style: a modify of an unknown id is reported where it was read.
    delta = run(store, moved(toy.pupil(50, op="modify")), mode="delta")
    assert any("B_toy_Eleve.xml, line 1051, record P50" in str(w) for w in delta.warnings)


def test_a_complet_finds_the_missing_even_when_as_many_come_back_or_repeat(store: Store) -> None:
    """A complet skips its scan for absent keys only when every active row was matched: rows
    that come back, and keys given twice, must not stand in for those that left."""
    run(store, toy.academie(range(30)))
    run(store, toy.academie(n for n in range(30) if n != 5))
    # P5 and its guardian come back as P6 and its guardian leave: as many rows either way.
    report = run(store, toy.academie(n for n in range(30) if n != 6))
    assert report.counts[EntityKind.PERSON].returning == 2
    assert report.counts[EntityKind.PERSON].leaving == 2
    assert person_status(store, "P6")[0] == Status.TOBEDELETED
    # P7 is given twice as P8 is missing.
    items = [*toy.academie(n for n in range(30) if n not in (6, 8)), *toy.pupil(7)]
    report = run(store, items, allow_mass_removal=True)
    assert report.warning_codes["duplicate-record"] > 0
    assert report.counts[EntityKind.PERSON].leaving == 2
    assert person_status(store, "P8")[0] == Status.TOBEDELETED
    # Nothing missing: nothing leaves. The active rows counted before the run (all the scope's
    # rows less those that left, through two indexes) are the rows whose status is active.
    statuses: dict[str, int] = {}
    with store.engine.connect() as connection:
        for table in (model.__table__ for model in TABLES.values()):  # type: ignore[attr-defined]
            for status, count in connection.execute(
                select(table.c.status, func.count()).group_by(table.c.status)
            ):
                statuses[status] = statuses.get(status, 0) + count
    assert statuses[Status.TOBEDELETED.value] >= 4  # P6, P8 and their guardians
    report = run(store, toy.academie(n for n in range(30) if n not in (6, 8)))
    assert sum(c.leaving for c in report.counts.values()) == 0
    assert report.active_before == statuses[Status.ACTIVE.value]


def test_mass_removal_is_refused_and_changes_nothing(store: Store) -> None:
    run(store, toy.academie(range(30)))
    before = snapshot(store)
    with pytest.raises(Refused, match="allow-mass-removal"):
        run(store, toy.academie(range(20)))
    assert snapshot(store) == before
    with store.engine.connect() as connection:
        outcomes = (
            connection.execute(select(ImportRun.outcome).order_by(ImportRun.started_at))
            .scalars()
            .all()
        )
    assert outcomes == ["applied", "refused"]
    report = run(store, toy.academie(range(20)), allow_mass_removal=True)
    assert report.counts[EntityKind.PERSON].leaving == 20


def test_threshold_is_configurable(store: Store) -> None:
    run(store, toy.academie(range(30)))
    strict = store.settings.model_copy(update={"mass_removal_threshold": 0.01})
    with pytest.raises(Refused):
        apply_run(store.engine, SCOPE, toy.academie(range(29)), mode="complet", settings=strict)


def failing_stream(after: int) -> Iterator[StreamItem]:
    for i, item in enumerate(toy.academie(range(40))):
        if i == after:
            raise BadInput(
                "unexpected end of file", file="toy_Eleve.xml", line=120, record_id="P20"
            )
        yield item


def test_error_in_the_middle_leaves_the_store_exactly_as_before(store: Store) -> None:
    run(store, toy.academie(range(30), renamed={1: "AVANT"}))
    before = snapshot(store)
    small = store.settings.model_copy(update={"batch_size": 7})  # several batches applied first
    with pytest.raises(BadInput, match=r"toy_Eleve\.xml, line 120, record P20"):
        apply_run(store.engine, SCOPE, failing_stream(150), mode="complet", settings=small)
    assert snapshot(store) == before
    with store.engine.connect() as connection:
        failed = connection.execute(select(ImportRun).where(ImportRun.outcome == "failed")).one()
    assert "unexpected end of file" in (failed.message or "")


def test_dry_run_reports_and_changes_nothing(store: Store) -> None:
    run(store, toy.academie(range(30)))
    before = snapshot(store)
    report = run(store, toy.academie(range(31), renamed={2: "X"}), dry_run=True)
    assert report.outcome == "dry_run"
    assert report.counts[EntityKind.PERSON].created == 2
    assert report.counts[EntityKind.PERSON].updated == 1
    assert snapshot(store) == before


def test_delta_add_modify_delete(store: Store) -> None:
    run(store, toy.academie(range(30)))
    delta: list[StreamItem] = [
        *toy.pupil(100),  # add: new pupil (its guardian G100 is absent: dangling warning)
        *toy.pupil(3, op="modify", class_code="C9"),  # modify: changes class
        toy.guardian(4, op="delete"),
    ]
    report = run(store, delta, mode="delta")
    assert report.counts[EntityKind.PERSON].created == 1
    assert report.counts[EntityKind.ENROLLMENT].created == 2  # pupil 100 and pupil 3's new class
    assert report.counts[EntityKind.ENROLLMENT].leaving == 1  # pupil 3's old class, replaced
    assert report.counts[EntityKind.PERSON].leaving == 1  # G4
    assert person_status(store, "G4")[0] == Status.TOBEDELETED
    assert person_status(store, "P4")[0] == Status.ACTIVE  # a delta never infers removals
    codes = report.warning_codes
    assert codes["dangling-reference"] >= 1  # G100 and class C9 are unknown to the store


def test_delta_delete_cascades_to_what_the_owner_carries(store: Store) -> None:
    run(store, toy.academie(range(30)))
    report = run(store, [toy.pupil(7, op="delete")[0]], mode="delta")
    assert report.counts[EntityKind.PERSON].leaving == 1
    assert report.counts[EntityKind.ROLE].leaving == 1
    assert report.counts[EntityKind.ENROLLMENT].leaving == 1
    assert report.counts[EntityKind.GUARDIANSHIP].leaving == 1
    assert person_status(store, "G7")[0] == Status.ACTIVE  # the guardian is their own record


def test_delta_modify_unknown_is_an_add_and_delete_unknown_a_warning(store: Store) -> None:
    run(store, toy.academie(range(30)))
    report = run(
        store, [*toy.pupil(200, op="modify"), toy.guardian(300, op="delete")], mode="delta"
    )
    assert report.counts[EntityKind.PERSON].created == 1
    assert report.warning_codes["modify-unknown"] == 1  # the pupil record, not its links
    assert report.warning_codes["delete-unknown"] == 1
    messages = [str(w) for w in report.warnings]
    assert any("toy_Eleve.xml, line 201, record P200" in m for m in messages)


def test_delta_modify_with_same_content_writes_nothing(store: Store) -> None:
    run(store, toy.academie(range(30)))
    before = snapshot(store)
    report = run(store, toy.pupil(3, op="modify"), mode="delta")
    assert sum(c.unchanged for c in report.counts.values()) == 4
    assert snapshot(store) == before


def test_an_update_rewrites_only_the_external_ids_that_changed(store: Store) -> None:
    run(store, toy.academie(range(30)))
    pupil_id = hub_id(SCOPE.key, EntityKind.PERSON, "P3")
    learnt = {"type": "educonnect", "value": "EC-3", "scope": "educonnect"}  # another source's
    with store.engine.begin() as connection:
        connection.execute(
            ExternalId.__table__.insert(),  # type: ignore[attr-defined]
            [{"entity_type": "person", "entity_id": pupil_id, **learnt}],
        )

    def ids() -> dict[tuple[str, str, str], int]:
        with store.engine.connect() as connection:
            rows = connection.execute(
                select(ExternalId.type, ExternalId.value, ExternalId.scope, ExternalId.id).where(
                    ExternalId.entity_id == pupil_id
                )
            ).all()
        return {(t, v, s): i for t, v, s, i in rows}

    before = ids()
    record, *links = toy.pupil(3, op="modify", name="DUPONT")
    record.external_ids = (("aaf:ENTPersonJointure", "P3"), ("ine", "9999999999Z"), ("mef", "X"))
    report = run(store, [record, *links], mode="delta")
    assert report.counts[EntityKind.PERSON].updated == 1
    after = ids()
    assert set(after) == {
        ("aaf:ENTPersonJointure", "P3", SCOPE.key),
        ("ine", "9999999999Z", SCOPE.key),
        ("mef", "X", SCOPE.key),
        ("educonnect", "EC-3", "educonnect"),
    }
    kept = [key for key in after if key in before]
    assert len(kept) == 2  # the join key and the other source's id: not rewritten
    assert all(after[key] == before[key] for key in kept)
    # The same update again: nothing to write, the ids stay as they are.
    run(store, [record, *links], mode="delta")
    assert ids() == after


def test_partial_never_infers_removals(store: Store) -> None:
    run(store, toy.academie(range(30)))
    partial = toy.academie(range(10), renamed={1: "NOUVEAU"}, classes_of=range(30))
    report = run(store, partial, mode="partial")
    assert report.leaving == 0
    assert report.counts[EntityKind.PERSON].updated == 1
    assert person_status(store, "P25")[0] == Status.ACTIVE


def test_scopes_do_not_touch_each_other(store: Store) -> None:
    run(store, toy.academie(range(30)))
    other = Scope("aaf", academie="078", degree="2d")
    apply_run(store.engine, other, toy.academie(range(5)), mode="complet", settings=store.settings)
    report = run(store, toy.academie(range(30)))
    assert report.leaving == 0 and sum(
        c.unchanged for c in report.counts.values()
    ) == toy.entity_count(30)
    assert hub_id(other.key, EntityKind.PERSON, "P1") != hub_id(SCOPE.key, EntityKind.PERSON, "P1")


def test_feed_pages_with_a_cursor_and_filters_by_structure(store: Store) -> None:
    run(store, toy.academie(range(30)))
    total = len(feed(store))
    seen: list[int] = []
    cursor = 0
    with store.engine.connect() as connection:
        while True:
            page = changes_after(connection, cursor, 17)
            if not page.entries:
                break
            seen.extend(e.seq for e in page.entries if e.seq is not None)
            cursor = page.next_cursor
        assert changes_after(connection, 0, 1000, structure="9999999Z").entries == []
        assert len(changes_after(connection, 0, 1000, structure=toy.UAI).entries) == total
    assert seen == sorted(set(seen)) and len(seen) == total


def test_a_record_given_twice_is_reported_and_the_last_one_wins(store: Store) -> None:
    items = [*toy.academie(range(30)), *toy.pupil(3, name="SECOND")]
    report = run(store, items)
    assert report.warning_codes["duplicate-record"] == 4  # person, role, enrollment, link
    assert report.counts[EntityKind.PERSON].created == 60
    with store.engine.connect() as connection:
        name = connection.execute(
            select(Person.usage_name).where(Person.id == hub_id(SCOPE.key, EntityKind.PERSON, "P3"))
        ).scalar_one()
    assert name == "SECOND"


def statuses(store: Store, kind: EntityKind, owner: str) -> dict[str, str]:
    """Source key -> status of the rows of ``kind`` that ``owner`` (``kind:key``) carries."""
    table = TABLES[kind].__table__  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(table.c.source_key, table.c.status).where(table.c.owner_key == owner)
        )
        return {key: status for key, status in rows}


def test_an_owner_given_twice_carries_what_its_last_record_carries(store: Store) -> None:
    """Of a pupil given twice in one run, the enrollments of the earlier record are not
    written: the last record replaces the owner and everything it carries, in a first import,
    a delta and a complet alike."""
    enrollment = "P{n}|class|S1${code}|pupil".format
    # First import: P5's earlier record (class C9) is staged whole, already as a create.
    items = [*toy.pupil(5, class_code="C9"), *toy.academie(range(30))]
    report = run(store, items)
    assert report.warning_codes["duplicate-record"] == 3  # person, role, link
    assert statuses(store, EntityKind.ENROLLMENT, "person:P5") == {
        enrollment(n=5, code="C0"): Status.ACTIVE
    }
    assert report.counts[EntityKind.ENROLLMENT].created == 30
    # A delta gives P3 (class C0) twice: moved to C1, then to C2.
    before = len(feed(store))
    items = [
        *toy.pupil(3, op="modify", class_code="C1"),
        *toy.pupil(3, op="modify", class_code="C2"),
    ]
    report = run(store, items, mode="delta")
    assert statuses(store, EntityKind.ENROLLMENT, "person:P3") == {
        enrollment(n=3, code="C0"): Status.TOBEDELETED,
        enrollment(n=3, code="C2"): Status.ACTIVE,
    }
    counts = report.counts[EntityKind.ENROLLMENT]
    assert (counts.created, counts.leaving, counts.updated) == (1, 1, 0)
    assert [e.op for e in feed(store, before) if e.entity_type == "enrollment"] == [
        "create",
        "leave",
    ]
    # A complet gives P4 twice, in C1 then in its class C0 again: nothing of C1 is written,
    # and P3's C2 enrollment, which the complet does not give, leaves.
    items = [*toy.pupil(4, class_code="C1"), *toy.academie(range(30))]
    report = run(store, items)
    assert statuses(store, EntityKind.ENROLLMENT, "person:P4") == {
        enrollment(n=4, code="C0"): Status.ACTIVE
    }
    assert (
        statuses(store, EntityKind.ENROLLMENT, "person:P3")[enrollment(n=3, code="C2")]
        == Status.TOBEDELETED
    )
    counts = report.counts[EntityKind.ENROLLMENT]
    assert (counts.created, counts.leaving, counts.returning) == (0, 1, 1)


def test_a_class_its_structure_no_longer_gives_stays_while_pupils_are_enrolled_in_it(
    store: Store,
) -> None:
    """A delta's structure record that drops a class whose pupils the delta does not give:
    the class stays, with a warning, until a later run finds nothing active pointing to it."""
    run(store, toy.academie(range(30)))  # classes C0, C1, C2; pupil n is in C{n // 10}
    structure = [toy.structure("modify"), toy.school_class("C0"), toy.school_class("C1")]
    report = run(store, structure, mode="delta")
    assert statuses(store, EntityKind.CLASS, "structure:S1") == {
        "S1$C0": Status.ACTIVE,
        "S1$C1": Status.ACTIVE,
        "S1$C2": Status.ACTIVE,
    }
    assert report.counts[EntityKind.CLASS].leaving == 0
    (kept,) = [w for w in report.warnings if w.code == "kept-referenced"]
    assert "1 class row(s)" in kept.message and "'S1$C2' of structure:S1" in kept.message
    # C2's pupils move to C1 in a delta that does not give the structure: C2 is not looked
    # at; the structure's next record that does not give it makes it leave.
    moved = [r for n in range(20, 30) for r in toy.pupil(n, op="modify", class_code="C1")]
    run(store, moved, mode="delta")
    assert statuses(store, EntityKind.CLASS, "structure:S1")["S1$C2"] == Status.ACTIVE
    report = run(store, structure, mode="delta")
    assert statuses(store, EntityKind.CLASS, "structure:S1")["S1$C2"] == Status.TOBEDELETED
    assert report.counts[EntityKind.CLASS].leaving == 1
    assert "kept-referenced" not in report.warning_codes


def test_a_class_leaves_with_the_enrollments_that_leave_in_the_same_delta(store: Store) -> None:
    run(store, toy.academie(range(30)))
    cursor = feed(store)[-1].seq
    moved = [r for n in range(20, 30) for r in toy.pupil(n, op="modify", class_code="C1")]
    structure = [toy.structure("modify"), toy.school_class("C0"), toy.school_class("C1")]
    report = run(store, [*structure, *moved], mode="delta")
    assert statuses(store, EntityKind.CLASS, "structure:S1")["S1$C2"] == Status.TOBEDELETED
    assert (
        report.counts[EntityKind.CLASS].leaving,
        report.counts[EntityKind.ENROLLMENT].leaving,
    ) == (1, 10)
    assert "kept-referenced" not in report.warning_codes
    # Dependents first in the feed: the enrollments leave before their class.
    leaving = [e.entity_type for e in feed(store, cursor) if e.op == "leave"]
    assert leaving == ["enrollment"] * 10 + ["class"]


def ensured_class(code: str, label: str) -> NeutralRecord:
    """A class known in part (from a few pupil records): self-owned, op ``ensure``."""
    known = toy.school_class(code)
    return dataclasses.replace(known, data={**known.data, "label": label}, owner=None, op="ensure")


def class_row(store: Store, code: str, scope: Scope = SCOPE) -> Any:
    table = TABLES[EntityKind.CLASS].__table__  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        return connection.execute(
            select(table).where(table.c.id == hub_id(scope.key, EntityKind.CLASS, f"S1${code}"))
        ).one()


def test_an_ensure_record_creates_what_is_missing_and_leaves_the_rest_as_stored(
    store: Store,
) -> None:
    run(store, toy.academie(range(30)))  # classes C0, C1, C2, declared (owned by S1)
    cursor = feed(store)[-1].seq
    report = run(store, [ensured_class("C1", "seen"), ensured_class("C7", "seen")], mode="delta")
    counts = report.counts[EntityKind.CLASS]
    assert (counts.created, counts.updated, counts.unchanged) == (1, 0, 1)
    stored, new = class_row(store, "C1"), class_row(store, "C7")
    assert (stored.label, stored.owner_key) == ("classe C1", "structure:S1")  # as it was
    assert (new.label, new.owner_key, new.status) == ("seen", "class:S1$C7", Status.ACTIVE)
    assert [(e.op, e.entity_id) for e in feed(store, cursor)] == [("create", new.id)]
    # C2 leaves with its pupils (a complet without them); ensured, it is active again, as it
    # was stored.
    run(store, toy.academie(range(20)), allow_mass_removal=True)
    assert class_row(store, "C2").status == Status.TOBEDELETED
    report = run(store, [ensured_class("C2", "seen")], mode="delta")
    assert report.counts[EntityKind.CLASS].returning == 1
    returned = class_row(store, "C2")
    assert (returned.status, returned.label, returned.leaving_since) == (
        Status.ACTIVE,
        "classe C2",
        None,
    )
    # A scope's first rows of the kind: created.
    other = Scope("aaf", academie="078", degree="2d")
    apply_run(
        store.engine, other, [ensured_class("C4", "seen")], mode="delta", settings=store.settings
    )
    assert class_row(store, "C4", other).label == "seen"


def test_an_ensured_row_that_comes_back_is_logged_with_the_uais_it_keeps(store: Store) -> None:
    """An ``ensure`` record makes a leaving row active again as it was stored, its UAIs too:
    its change entry names the UAIs the row has, not those of the partial record."""
    run(store, toy.academie(range(30)))
    run(store, toy.academie(range(20)), allow_mass_removal=True)  # C2 leaves
    cursor = feed(store)[-1].seq
    seen = ensured_class("C2", "seen")
    seen.structures = ("0770002B",)
    report = run(store, [seen], mode="delta")
    assert report.counts[EntityKind.CLASS].returning == 1
    returned = class_row(store, "C2")
    assert (returned.status, returned.structures) == (Status.ACTIVE, f"|{toy.UAI}|")
    assert [(e.op, e.entity_id, e.structures) for e in feed(store, cursor)] == [
        ("return", returned.id, f"|{toy.UAI}|")
    ]


def dangling(report: Any) -> list[str]:
    return sorted(w.message for w in report.warnings if w.code == "dangling-reference")


def test_dangling_references_are_counted_on_a_first_import_and_on_later_runs(
    store: Store,
) -> None:
    # First import of the scope (every kind read in full) and a later complet (rows looked up
    # from the stage) must find the same dangling references: guardians 3 and 7 are absent.
    items = [i for i in toy.academie(range(10)) if i.key not in ("G3", "G7")]  # type: ignore[union-attr]
    first = run(store, items)
    expected = [
        "2 guardianship row(s) point through guardian_id to a person the store does not hold "
        "(e.g. guardianship 'G3|P3')"
    ]
    assert dangling(first) == expected
    renamed = [i for i in toy.academie(range(10), renamed={3: "X"}) if i.key not in ("G3", "G7")]  # type: ignore[union-attr]
    later = run(store, renamed)
    assert later.counts[EntityKind.PERSON].updated == 1
    # Only the rows this run wrote are checked: pupil 3's guardianship is unchanged.
    assert dangling(later) == []
    changed = [
        i
        for i in toy.academie(range(10), classes_of=range(20))
        if i.key not in ("G3", "G7")  # type: ignore[union-attr]
    ]
    assert dangling(run(store, [*changed, *toy.pupil(12, class_code="C9")])) == [
        "1 enrollment row(s) point through class_id to a class the store does not hold "
        "(e.g. enrollment 'P12|class|S1$C9|pupil')",
        "1 guardianship row(s) point through guardian_id to a person the store does not hold "
        "(e.g. guardianship 'G12|P12')",
    ]


def test_a_run_collects_cycles_less_often_and_restores_the_collector(store: Store) -> None:
    seen: list[tuple[int, ...]] = []

    def observed(items: Iterator[StreamItem]) -> Iterator[StreamItem]:
        seen.append(gc.get_threshold())
        yield from items

    before = gc.get_threshold()
    run(store, observed(toy.academie(range(5))))
    assert seen == [RUN_GC_THRESHOLDS] and gc.get_threshold() == before
    with pytest.raises(BadInput):
        run(store, observed(failing_stream(3)))
    assert seen[-1] == RUN_GC_THRESHOLDS and gc.get_threshold() == before


def test_packed_ids_are_a_sorted_set_of_hub_ids() -> None:
    ids = [uuid.uuid4() for _ in range(500)]
    packed = PackedIds(i.bytes for i in [*ids, *ids[:50]])  # repeats count once
    assert len(packed) == 500
    assert list(packed) == sorted(ids, key=lambda i: i.bytes)
    assert all(i in packed for i in ids)
    assert uuid.uuid4() not in packed and ids[0].hex not in packed
    assert len(PackedIds([])) == 0 and uuid.uuid4() not in PackedIds([])
    assert list(packed.raw()) == [i.bytes for i in packed]


def test_packed_ids_sort_runs_apart_then_merge_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first import's persons are sorted by runs (a set of every id at once would take 90
    bytes an id); an id repeated in another run counts once."""
    monkeypatch.setattr(changes_module, "_SORTED_AT_ONCE", 64)
    ids = [uuid.uuid4() for _ in range(1000)]
    given = [*ids, *ids[::7], *ids[:3]]
    random.Random(5).shuffle(given)
    packed = PackedIds(i.bytes for i in given)
    assert list(packed) == sorted(ids, key=lambda i: i.bytes)
    assert pack_sorted([b"bb", b"aa", b"bb"], width=2) == b"aabb"
    assert pack_sorted([]) == b""


def test_the_persons_a_run_concerns_are_named_once(store: Store) -> None:
    """A person with several change entries in one run is one subject of its flow entry; the
    entries of earlier transactions are not this run's (on SQLite they are in the same table)."""
    person, other, role = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    with store.engine.connect() as connection, connection.begin():
        earlier = ChangeRecorder(connection, scope="s", run_id=None)
        earlier.stage([("person", uuid.uuid4(), "create", "|0750009Z|")], now)
        earlier.publish()
    with store.engine.connect() as connection, connection.begin() as transaction:
        recorder = ChangeRecorder(connection, scope="s", run_id=None)
        recorder.stage(
            [
                ("person", person, "update", "|0750001A|"),
                ("person", other, "create", ""),
                ("person", person, "leave", "|0750002B|"),
                ("role", role, "create", "|0750003C|"),
            ],
            now,
        )
        persons, uais, kinds = recorder.concerned()
        recorder.publish()
        published = [e.entity_id for e in changes_after(connection, 0, 100).entries]
        transaction.rollback()
    assert published[1:] == [person, other, person, role]  # in the order they were recorded
    assert list(persons) == sorted([person, other], key=lambda i: i.bytes)
    assert uais == {"0750001A", "0750002B", "0750003C"}
    assert kinds == {"person", "role"}


def test_a_run_names_every_person_it_wrote_in_its_flow_entry(store: Store) -> None:
    report = run(store, toy.academie(range(30)))
    with store.engine.connect() as connection:
        entry = connection.execute(
            select(ENTRY.c.subject_set, ENTRY.c.persons).where(
                ENTRY.c.target.like("import aaf complet%")
            )
        ).one()
        subjects = connection.execute(
            select(SUBJECT_SET.c.subjects).where(SUBJECT_SET.c.digest == entry.subject_set)
        ).scalar_one()
    keys = [f"P{n}" for n in range(30)] + [f"G{n}" for n in range(30)]
    persons = [hub_id(SCOPE.key, EntityKind.PERSON, key) for key in keys]
    assert report.counts[EntityKind.PERSON].created == entry.persons == 60
    assert list(subjects) == sorted(
        open_registre(store.settings, store.engine).keys.pseudonyms(persons)
    )


def flow_persons(store: Store, target: str) -> tuple[int, list[str]]:
    """(persons, pseudonyms) of the last flow entry whose target starts with ``target``."""
    with store.engine.connect() as connection:
        entry = connection.execute(
            select(ENTRY.c.subject_set, ENTRY.c.persons)
            .where(ENTRY.c.target.like(f"{target}%"))
            .order_by(ENTRY.c.seq.desc())
            .limit(1)
        ).one()
        subjects = connection.execute(
            select(SUBJECT_SET.c.subjects).where(SUBJECT_SET.c.digest == entry.subject_set)
        ).scalar_one_or_none()
    return entry.persons, list(subjects or [])


def test_the_flow_entries_name_the_persons_whose_links_changed(store: Store) -> None:
    """A pupil moved to another class (their person row unchanged) is a person the run
    concerns, and so are a purged enrollment's pupil and a purged guardianship's two persons."""
    run(store, toy.academie(range(30)))
    keys = toy.academie(range(30))
    moved = [
        dataclasses.replace(item, key=item.key.replace("S1$C0", "S1$C1"))
        if isinstance(item, NeutralRecord) and item.key == "P3|class|S1$C0|pupil"
        else item
        for item in keys
    ]
    for item in moved:
        if isinstance(item, NeutralRecord) and item.key == "P3|class|S1$C1|pupil":
            item.refs = {**item.refs, "class_id": Ref(EntityKind.CLASS, "S1$C1")}
    report = run(store, moved)
    assert report.counts[EntityKind.PERSON].updated == 0
    assert report.counts[EntityKind.ENROLLMENT].created == 1
    pseudonyms = open_registre(store.settings, store.engine).keys.pseudonyms
    pupil = hub_id(SCOPE.key, EntityKind.PERSON, "P3")
    assert flow_persons(store, "import aaf complet") == (1, pseudonyms([pupil]))

    since = person_status(store, "P3")[1]
    assert since is None  # the pupil stays; their old enrollment left
    guardian_link = hub_id(SCOPE.key, EntityKind.PERSON, "G4")
    run(
        store,
        [item for item in moved if not (isinstance(item, NeutralRecord) and item.key == "G4|P4")],
    )
    purged = purge(
        store.engine, store.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    )
    assert purged == {"enrollment": 1, "guardianship": 1}
    persons = [pupil, hub_id(SCOPE.key, EntityKind.PERSON, "P4"), guardian_link]
    assert flow_persons(store, "purge") == (3, sorted(pseudonyms(persons)))


def test_a_purge_keeps_what_other_rows_still_point_to(store: Store) -> None:
    """A guardian deleted by a delta leaves, but their pupil's record still gives the
    guardianship (it stays active): past the delay the guardian is kept, not purged (the
    guardianship would name a person that is gone), and counted as kept; once the link has
    left too, a later purge removes both, the link first."""
    run(store, toy.academie(range(30)))
    run(store, [toy.guardian(5, op="delete")], mode="delta")
    guardian = hub_id(SCOPE.key, EntityKind.PERSON, "G5")
    status, since = person_status(store, "G5")
    assert status == Status.TOBEDELETED and since is not None
    later = since + dt.timedelta(days=91)

    purged = purge(store.engine, store.settings, now=later)
    assert purged == {} and purged.kept == {"person": 1}
    assert person_status(store, "G5")[0] == Status.TOBEDELETED

    # The pupil's record without the link: the guardianship leaves, and then both go.
    pupil = [r for r in toy.pupil(5, op="modify") if r.kind is not EntityKind.GUARDIANSHIP]
    run(store, pupil, mode="delta")
    cursor = feed(store)[-1].seq
    purged = purge(store.engine, store.settings, now=later + dt.timedelta(days=91))
    assert purged == {"guardianship": 1, "person": 1} and purged.kept == {}
    assert [(e.entity_type, e.op) for e in feed(store, cursor)] == [
        ("guardianship", "purge"),
        ("person", "purge"),
    ]
    with store.engine.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(Person).where(Person.id == guardian)
            ).scalar_one()
            == 0
        )


def test_a_purge_waits_for_no_import_of_its_scopes(store: Store) -> None:
    """On PostgreSQL an import and a purge of one scope never run together (a purge would
    delete what the import brings back): each refuses while the other holds the scope."""
    if store.backend != "postgres":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): PostgreSQL's lock is tested")
    run(store, toy.academie(range(30)))
    run(store, toy.academie(n for n in range(30) if n != 5))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    with store.engine.connect() as other:
        key = zlib.crc32(SCOPE.key.encode())
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        with pytest.raises(Refused, match=f"an import or a purge of scope {SCOPE.key} is running"):
            purge(store.engine, store.settings, now=later)
        other.rollback()
    assert purge(store.engine, store.settings, now=later)["person"] == 2


def guardian_with(uais: tuple[str, ...], *, floor: bool, op: RecordOp = "modify") -> Any:
    """Guardian G1 as ``toy.guardian`` gives it, with other UAIs, given as a floor or not."""
    record = toy.guardian(1, op=op)
    record.structures = uais
    record.structures_floor = floor
    return record


def stored_structures(store: Store, key: str) -> str:
    with store.engine.connect() as connection:
        return str(
            connection.execute(
                select(Person.structures).where(
                    Person.id == hub_id(SCOPE.key, EntityKind.PERSON, key)
                )
            ).scalar_one()
        )


def test_uais_given_as_a_floor_are_added_to_the_stored_ones(store: Store) -> None:
    """A guardian of whose pupils a delta shows only some: the UAIs seen are a floor. Within
    the stored ones: nothing changes; beyond them: the union is written, with its change
    entry; a Complet's UAIs replace them; a new entity takes the floor as it is."""
    run(store, toy.academie(range(30)))
    run(store, [guardian_with((toy.UAI, "0770002B"), floor=False)], mode="delta")
    assert stored_structures(store, "G1") == f"|{toy.UAI}|0770002B|"
    before, last = snapshot(store), feed(store)[-1].seq

    report = run(store, [guardian_with(("0770002B",), floor=True)], mode="delta")
    assert report.counts[EntityKind.PERSON].unchanged == 1
    assert snapshot(store) == before

    report = run(store, [guardian_with(("0770003C",), floor=True)], mode="delta")
    assert report.counts[EntityKind.PERSON].updated == 1
    union = f"|{toy.UAI}|0770002B|0770003C|"
    assert stored_structures(store, "G1") == union
    (entry,) = [e for e in feed(store, last) if e.entity_type == "person"]
    assert (entry.op, entry.structures) == ("update", union)

    run(store, [guardian_with((toy.UAI,), floor=False)], mode="delta")
    assert stored_structures(store, "G1") == f"|{toy.UAI}|"

    new = toy.guardian(99, op="add")
    new.structures, new.structures_floor = ("0770004D",), True
    report = run(store, [new], mode="delta")
    assert report.counts[EntityKind.PERSON].created == 1
    assert stored_structures(store, "G99") == "|0770004D|"


def test_a_delta_derives_the_uais_of_the_guardians_of_what_it_changed(store: Store) -> None:
    """A guardian (no active role) belongs to the structures of their active pupils: a Delta
    that moves a pupil derives them again; a person with a role keeps what their records say.
    The guardian's update entry names the school they leave and the one they join."""
    staff_role = NeutralRecord(
        EntityKind.ROLE,
        "G1|S1|staff",
        data={"role": "staff"},
        refs={
            "person_id": Ref(EntityKind.PERSON, "G1"),
            "structure_id": Ref(EntityKind.STRUCTURE, "S1"),
        },
        structures=(toy.UAI,),
        owner=Ref(EntityKind.PERSON, "G1"),
    )
    run(store, [*toy.academie(range(30)), staff_role])
    moved = []
    for n in (1, 2):
        records = toy.pupil(n, op="modify")
        records[0].structures = ("0770002B",)
        moved += records
    last = feed(store)[-1].seq
    report = run(store, moved, mode="delta")
    assert stored_structures(store, "P2") == stored_structures(store, "G2") == "|0770002B|"
    assert stored_structures(store, "G1") == f"|{toy.UAI}|"  # a role: not derived
    assert report.counts[EntityKind.PERSON].updated == 3  # P1, P2, G2
    g2 = hub_id(SCOPE.key, EntityKind.PERSON, "G2")
    both = structures_text([toy.UAI, "0770002B"])
    assert [(e.op, e.structures) for e in feed(store, last) if e.entity_id == g2] == [
        ("update", both)
    ]
    p2 = hub_id(SCOPE.key, EntityKind.PERSON, "P2")
    assert [(e.op, e.structures) for e in feed(store, last) if e.entity_id == p2] == [
        ("update", both)
    ]


def test_a_guardian_given_unchanged_whose_uais_are_derived_again_is_counted_once(
    store: Store,
) -> None:
    """A delta deletes one of a guardian's two pupils and gives the guardian's record as it is
    stored (the delivery cannot tell their UAIs): the UAIs derived again from the pupil left
    change the guardian, who is counted as updated, not also as unchanged."""
    items = list(toy.academie(range(30)))
    for item in items:
        if isinstance(item, NeutralRecord) and item.key == "P2":
            item.structures = ("0770002B",)  # P2 is at another school
        if isinstance(item, NeutralRecord) and item.key == "G1":
            item.structures = (toy.UAI, "0770002B")
    second = dataclasses.replace(
        toy.pupil(2)[3],
        key="G1|P2",
        refs={
            "guardian_id": Ref(EntityKind.PERSON, "G1"),
            "pupil_id": Ref(EntityKind.PERSON, "P2"),
        },
    )
    run(store, [*items, second])
    assert stored_structures(store, "G1") == f"|{toy.UAI}|0770002B|"
    cursor = feed(store)[-1].seq
    guardian = toy.guardian(1, op="modify")
    guardian.structures = None
    report = run(store, [toy.pupil(1, op="delete")[0], guardian], mode="delta")
    assert stored_structures(store, "G1") == "|0770002B|"
    counts = report.counts[EntityKind.PERSON]
    assert (counts.updated, counts.unchanged, counts.leaving) == (1, 0, 1)
    g1 = hub_id(SCOPE.key, EntityKind.PERSON, "G1")
    assert [(e.op, e.structures) for e in feed(store, cursor) if e.entity_id == g1] == [
        ("update", f"|{toy.UAI}|0770002B|")  # the school they leave, the one they stay in
    ]


def test_what_is_given_as_carried_by_a_deleted_owner_is_not_written(store: Store) -> None:
    """A delete carries nothing: the owner and what it carried leave. A pupil modified then
    deleted in one delta, with a guardianship given after the delete (AAF gives a pupil's
    guardianships with their guardian's record, in a later file), or deleted once with one:
    the guardianship is neither created nor rewritten only to leave in the same run."""
    run(store, toy.academie(range(30)))
    cursor = feed(store)[-1].seq

    def linked(n: int, guardian: str) -> NeutralRecord:
        link = toy.pupil(n)[3]
        guardian_ref = Ref(EntityKind.PERSON, guardian)
        return dataclasses.replace(
            link, key=f"{guardian}|P{n}", refs={**link.refs, "guardian_id": guardian_ref}
        )

    person, role, enrollment, _ = toy.pupil(3, op="modify", class_code="C1")
    given = [person, role, enrollment, toy.pupil(3, op="delete")[0], linked(3, "G9")]
    given += [toy.pupil(4, op="delete")[0], linked(4, "G8"), linked(4, "G4")]
    report = run(store, given, mode="delta")
    assert statuses(store, EntityKind.GUARDIANSHIP, "person:P3") == {"G3|P3": Status.TOBEDELETED}
    assert statuses(store, EntityKind.GUARDIANSHIP, "person:P4") == {"G4|P4": Status.TOBEDELETED}
    assert statuses(store, EntityKind.ENROLLMENT, "person:P3") == {
        "P3|class|S1$C0|pupil": Status.TOBEDELETED
    }
    counts = report.counts[EntityKind.GUARDIANSHIP]
    assert (counts.created, counts.updated, counts.unchanged, counts.leaving) == (0, 0, 0, 2)
    assert report.counts[EntityKind.ENROLLMENT].created == 0
    entries = [(e.entity_type, e.entity_id, e.op) for e in feed(store, cursor)]
    assert {op for kind, _, op in entries if kind != "person"} == {"leave"}
    assert len({entity for _, entity, _ in entries}) == len(entries)  # one entry per entity
