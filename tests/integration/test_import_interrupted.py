"""An import stopped while it runs: by a stop request (both backends), by Ctrl-C or SIGTERM sent
to ``aiguillage import aaf``, or by the death of its process (SIGKILL).

Whatever stops it, nothing of the export in progress is applied, its parsing worker does not
outlive it, and (unless it was killed) the run is recorded as failed with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Engine, select

from annuaire.importing import import_aaf
from annuaire.schema import ImportRun
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade
from annuaire.sync import Interrupted, Stop
from connectors.aaf import _feed as feed
from connectors.aaf import plan
from connectors.sample import generate_academie
from tests._personal_data_guard import record_output
from tests.conftest import PROJECT_ROOT, Store
from tests.integration.import_support import snapshot

#: Enough pupils that the files are parsed in a forked worker (1 MB and more) and that the
#: import still runs when the signal comes.
PUPILS = 6000


class CountingStop(Stop):
    """A stop that counts the safe points it is checked at, and asks itself at the ``at``-th."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__()
        self.at = at
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        if self.checks == self.at:
            self.ask("interrupted by the test", signal.SIGTERM)
        super().check()


@pytest.fixture(scope="module")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interrupted") / "complet"
    generate_academie(folder, pupils=400, seed=23)
    return folder


@pytest.fixture(scope="module")
def large_academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("interrupted-large") / "complet"
    generate_academie(folder, pupils=PUPILS, seed=29, degree="2d")
    assert feed.parallel_by_default(feed_files(folder)), "too small to be parsed by a worker"
    return folder


def feed_files(folder: Path) -> list[feed.AafFile]:
    (export,) = plan([folder])
    return list(export.files)


def import_runs(engine: Engine) -> list[tuple[str, str | None]]:
    table = ImportRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return [(r.outcome, r.message) for r in connection.execute(select(table))]


def test_a_stop_at_any_safe_point_applies_nothing_and_records_the_run(
    store: Store, academie: Path
) -> None:
    counting = CountingStop()
    import_aaf(store.engine, store.settings, [academie], dry_run=True, stop=counting)
    before = snapshot(store.engine)
    # The safe points: before each export (1: nothing started), before each batch staged (2:
    # the first), before each statement of the apply phase (the last one, after the stream).
    for at in (2, counting.checks // 2, counting.checks):
        stop = CountingStop(at)
        with pytest.raises(Interrupted, match="interrupted by the test"):
            import_aaf(store.engine, store.settings, [academie], stop=stop)
        assert stop.checks == at
        assert snapshot(store.engine) == before, at
    runs = import_runs(store.engine)
    assert runs == [("failed", "interrupted by the test")] * 3
    import_aaf(store.engine, store.settings, [academie])  # and the same run then goes through
    assert snapshot(store.engine) != before


def test_a_stop_asked_twice_stops_at_once() -> None:
    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    stop = Stop()
    with stop.on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.reason == "interrupted by SIGTERM"  # asked, not raised: no safe point yet
        with pytest.raises(Interrupted) as raised:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs in this thread, between two bytecodes
    assert not raised.value.safe and raised.value.signum == signal.SIGINT
    with pytest.raises(Interrupted) as checked:
        stop.check()
    assert checked.value.safe and checked.value.signum == signal.SIGTERM
    # The handlers are the ones from before the block again.
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before


def _started(url: str, cwd: Path, folder: Path) -> tuple[subprocess.Popen[str], psutil.Process]:
    """``aiguillage import aaf`` running in its own process group, and its parsing worker."""
    env = {**os.environ, "AIGUILLAGE_DATABASE_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb")
    process = subprocess.Popen(
        [sys.executable, "-m", "annuaire", "import", "aaf", str(folder), "--report", "run.json"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (children := psutil.Process(process.pid).children()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no parsing worker after 60 s"
        time.sleep(0.05)
    return process, children[0]


def _sqlite_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'interrupted.db'}"
    engine = make_engine(Settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGINT, True)],
    ids=["sigterm", "sigterm-to-the-group", "ctrl-c"],
)
def test_a_signal_stops_the_import_at_a_safe_point(
    tmp_path: Path, large_academie: Path, signum: signal.Signals, whole_group: bool
) -> None:
    url = _sqlite_store(tmp_path)
    process, worker = _started(url, tmp_path, large_academie)
    if whole_group:  # as a terminal's Ctrl-C, or systemd stopping the job, does
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    record_output("aiguillage import stderr (tests/integration/test_import_interrupted)", stderr)
    assert process.returncode == 128 + signum, stderr
    assert f"interrupted by {signum.name}: nothing of the export being imported" in stderr
    worker.wait(timeout=10)  # gone with the run (psutil raises if it is still there)
    report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
    assert report["exit_code"] == 128 + signum
    assert report["error"]["kind"] == "interrupted"
    assert report["error"]["message"] == f"interrupted by {signum.name}"
    assert [run["outcome"] for run in report["runs"]] == ["failed"]
    engine = make_engine(Settings(database_url=url))
    try:
        assert not any(rows for rows in snapshot(engine).values())
        assert import_runs(engine) == [("failed", f"interrupted by {signum.name}")]
    finally:
        engine.dispose()


def test_a_killed_import_leaves_no_parsing_worker_behind(
    tmp_path: Path, large_academie: Path
) -> None:
    url = _sqlite_store(tmp_path)
    process, worker = _started(url, tmp_path, large_academie)
    process.kill()  # no handler runs: only the worker's own end of the pipe can stop it
    process.communicate(timeout=60)
    worker.wait(timeout=10)
    engine = make_engine(Settings(database_url=url))
    try:
        assert not any(rows for rows in snapshot(engine).values())
        assert import_runs(engine) == []
    finally:
        engine.dispose()
