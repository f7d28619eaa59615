"""A flow and its log entry commit together or not at all: a crash between the work and the
entry leaves neither, for an import and for an API read, on both backends.

The crash is a flow log whose ``append`` writes the entry (the row is in the transaction) and
then raises, as a process killed before its commit would leave things.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from annuaire.api import create_app
from annuaire.importing import academie_of
from annuaire.registre.flowlog import ENTRY, ChainHead, FlowLog, FlowRecord
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.verify import verify_log
from annuaire.schema import TABLES, EntityKind, ImportRun
from annuaire.sync import RunReport, Scope, apply_run
from connectors.aaf import AafReader, plan
from connectors.sample import generate_academie
from tests.conftest import Store

from .flowlog_support import entries, subjects_of

PERSON = TABLES[EntityKind.PERSON].__table__  # type: ignore[attr-defined]
RUNS = ImportRun.__table__  # type: ignore[attr-defined]


class SimulatedCrash(Exception):
    """The process died after writing the flow entry, before committing."""


class CrashingFlowLog(FlowLog):
    """Appends for real, then crashes, the first ``crashes`` times it is called."""

    def __init__(self, flow_log: FlowLog, *, crashes: int = 1) -> None:
        super().__init__(
            flow_log.keys,
            flow_log.versions,
            checkpoint_every=flow_log.checkpoint_every,
            checkpoint_interval=flow_log.checkpoint_interval,
        )
        self.crashes = crashes
        self.written: list[int] = []

    def append_many(
        self,
        connection: Connection,
        records: Sequence[FlowRecord],
        *,
        now: dt.datetime | None = None,
    ) -> list[int]:
        seqs = super().append_many(connection, records, now=now)
        if self.crashes <= 0:
            return seqs
        self.crashes -= 1
        for seq in seqs:
            with_row = connection.execute(select(ENTRY.c.seq).where(ENTRY.c.seq == seq)).first()
            assert with_row is not None  # the entry is written, only the commit is missing
        self.written.extend(seqs)
        raise SimulatedCrash(f"simulated crash after flow entry {seqs[-1]}")

    def append_after(
        self,
        connection: Any,
        records: Sequence[FlowRecord],
        expected: ChainHead,
        *,
        now: dt.datetime | None = None,
    ) -> ChainHead | None:
        """The API writer's one-statement path (PostgreSQL): crash after the statement and
        before its commit, by running it in a transaction that the crash rolls back."""
        if self.crashes <= 0:
            return super().append_after(connection, records, expected, now=now)
        self.crashes -= 1
        with connection.transaction():
            head = super().append_after(connection, records, expected, now=now)
            assert head is not None
            found = connection.execute("SELECT seq FROM flow_entry WHERE seq = %s", (head.seq,))
            assert found.fetchone() is not None  # written, only the commit is missing
            self.written.append(head.seq)
            raise SimulatedCrash(f"simulated crash after flow entry {head.seq}")


def crashing(registre: Registre, *, crashes: int = 1) -> Registre:
    return Registre(registre.config, registre.keys, CrashingFlowLog(registre.log, crashes=crashes))


@pytest.fixture(scope="module")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atomic-academie")
    generate_academie(out, pupils=24, seed=7)
    return out


def import_academie(
    store: Store, folder: Path, registre: Registre, *, failing_after: int | None = None
) -> RunReport:
    """The académie's complet export applied as one run, with ``registre`` logging it;
    ``failing_after``: its stream breaks after that many items."""
    (export,) = plan([folder])
    code, _note = academie_of(export, None)
    scope = Scope("aaf", academie=code, degree=export.degree)
    files = [f.path for f in export.files]
    report = RunReport(uuid.uuid4(), scope, "complet", files)
    stream: Iterator[Any] = AafReader(export).stream()
    if failing_after is not None:
        stream = itertools.chain(itertools.islice(stream, failing_after), _broken())
    return apply_run(
        store.engine,
        scope,
        stream,
        mode="complet",
        settings=store.settings,
        files=files,
        report=report,
        registre=registre,
    )


def _broken() -> Iterator[Any]:
    raise OSError("the disk holding the export went away")
    yield


def file_digests(folder: Path) -> list[dict[str, str]]:
    """What a flow entry of the académie's import must name: each file and its SHA-256, in
    the export's order."""
    (export,) = plan([folder])
    return [
        {"file": Path(f.path).name, "sha256": hashlib.sha256(Path(f.path).read_bytes()).hexdigest()}
        for f in export.files
    ]


def person_ids(store: Store) -> set[uuid.UUID]:
    with store.engine.connect() as connection:
        return set(connection.execute(select(PERSON.c.id)).scalars())


def import_runs(store: Store) -> list[dict[str, object]]:
    with store.engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(select(RUNS))]


def flow_entries(store: Store) -> list[dict[str, object]]:
    with store.engine.connect() as connection:
        return entries(connection)


def subjects(store: Store, seq: int) -> list[str]:
    """The pseudonyms entry ``seq`` lists, as stored."""
    with store.engine.connect() as connection:
        return subjects_of(connection, seq)


def test_a_crash_before_the_import_commits_leaves_neither_data_nor_entry(
    store: Store, academie: Path
) -> None:
    registre = open_registre(store.settings, store.engine)
    broken = crashing(registre)
    with pytest.raises(SimulatedCrash):
        import_academie(store, academie, broken)
    assert broken.log.written == [1]  # type: ignore[attr-defined]

    assert person_ids(store) == set()
    # The failure itself is recorded, as _record_failure does: a failed run, a failed entry.
    (run,) = import_runs(store)
    assert run["outcome"] == "failed"
    assert run["message"] == "simulated crash after flow entry 1"
    (entry,) = flow_entries(store)
    assert entry["seq"] == 1  # the crashed entry's number was rolled back with it
    assert entry["outcome"] == "failed"
    assert entry["persons"] == 0 and entry["structures"] == [] and entry["categories"] == []
    assert entry["source"]["run"] == str(run["id"])  # type: ignore[index]
    assert entry["source"]["files"] == file_digests(academie)  # type: ignore[index]
    assert entry["detail"] == "simulated crash after flow entry 1"
    assert entry["subjects"] == subjects(store, 1) == []
    with store.engine.connect() as connection:
        assert verify_log(connection, registre.keys).ok


def test_an_import_writes_one_entry_naming_exactly_its_persons(
    store: Store, academie: Path
) -> None:
    registre = open_registre(store.settings, store.engine)
    report = import_academie(store, academie, registre)
    persons = person_ids(store)
    assert persons and report.counts[EntityKind.PERSON].created == len(persons)
    (run,) = import_runs(store)
    assert run["outcome"] == "applied"
    (entry,) = flow_entries(store)
    assert entry["outcome"] == "success" and entry["operation"] == "collect"
    assert entry["source"]["run"] == str(run["id"])  # type: ignore[index]
    assert entry["source"]["files"] == file_digests(academie)  # type: ignore[index]
    assert entry["persons"] == len(persons)
    # Exactly the store's persons, each once, sorted, as the entry's HMAC covers them.
    assert subjects(store, 1) == sorted(registre.keys.pseudonym(p) for p in persons)
    with store.engine.connect() as connection:
        assert verify_log(connection, registre.keys).ok


def test_a_run_failing_while_it_reads_its_stream_still_names_its_files(
    store: Store, academie: Path
) -> None:
    """The files are hashed once the stream is read; a run that fails before hashes them for
    its failure's entry: the DPO still sees which files were attempted."""
    registre = open_registre(store.settings, store.engine)
    with pytest.raises(OSError, match="went away"):
        import_academie(store, academie, registre, failing_after=40)
    assert person_ids(store) == set()
    (run,) = import_runs(store)
    assert run["outcome"] == "failed"
    (entry,) = flow_entries(store)
    assert entry["outcome"] == "failed"
    assert entry["detail"] == "the disk holding the export went away"
    assert entry["source"]["files"] == file_digests(academie)  # type: ignore[index]
    with store.engine.connect() as connection:
        assert verify_log(connection, registre.keys).ok


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def served(store: Store, academie: Path) -> Iterator[TestClient]:
    import_academie(store, academie, open_registre(store.settings, store.engine))
    app = create_app(store.settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.flow_engine.dispose()
    app.state.engine.dispose()


def names(store: Store) -> set[str]:
    """Every name of every person (long enough to be told apart from ordinary words)."""
    columns = (PERSON.c.usage_name, PERSON.c.birth_name, PERSON.c.first_name)
    with store.engine.connect() as connection:
        rows = connection.execute(select(*columns)).all()
    return {name for row in rows for name in row if name and len(name) >= 4}


def named(body: str, every_name: set[str]) -> set[str]:
    return {n for n in every_name if re.search(rf"\b{re.escape(n)}\b", body)}


def test_an_api_read_whose_entry_cannot_commit_serves_nothing(
    store: Store, served: TestClient
) -> None:
    app = served.app
    every_name = names(store)
    before = flow_entries(store)

    # The control: served with its entry, the page does carry names.
    answer = served.get("/v1/persons", params={"limit": 5})
    assert answer.status_code == 200
    assert named(answer.text, every_name)
    after_control = flow_entries(store)
    assert len(after_control) == len(before) + 1
    assert after_control[-1]["persons"] == len(answer.json()["items"]) == 5

    app.state.registre = crashing(app.state.registre)  # type: ignore[attr-defined]
    answer = served.get("/v1/persons", params={"limit": 5})
    assert app.state.registre.log.written == [len(after_control) + 1]  # type: ignore[attr-defined]
    assert answer.status_code != 200
    assert named(answer.text, every_name) == set(), "a person's name was served"
    assert flow_entries(store) == after_control
