"""The feed under concurrent writers: a follower sees every committed entry exactly once.

Two writer processes run overlapping import transactions on their own scopes. Each one stages
its changes early and commits late, after sleeping inside its record stream, so that on
PostgreSQL a naive "take a sequence number at insert time" log would let a later-starting
transaction commit higher sequence numbers first, and a follower would skip the lower ones.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator

from annuaire.schema import StreamItem
from annuaire.settings import Settings
from annuaire.store import changes_after, make_engine
from annuaire.sync import Scope, apply_run
from tests.annuaire import toy
from tests.conftest import Store

ROUNDS = 4
PUPILS = 40


def _slow(items: Iterator[StreamItem], pause_every: int, pause: float) -> Iterator[StreamItem]:
    for i, item in enumerate(items):
        if i % pause_every == 0:
            time.sleep(pause)
        yield item


def _writer(url: str, name: str, pause: float, done: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    settings = Settings(database_url=url, environment="test", batch_size=25)
    engine = make_engine(settings)
    scope = Scope("aaf", academie=name, degree="2d")
    written = 0
    for round_ in range(ROUNDS):
        renamed = {n: f"{name}-{round_}" for n in range(0, PUPILS, 3)}
        report = apply_run(
            engine,
            scope,
            _slow(toy.academie(range(PUPILS), renamed=renamed), 20, pause),
            mode="complet",
            settings=settings,
        )
        written += sum(c.created + c.updated for c in report.counts.values())
    engine.dispose()
    done.put(written)


def test_a_follower_sees_every_committed_change_exactly_once(store: Store) -> None:
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    url = store.settings.database_url
    writers = [
        context.Process(target=_writer, args=(url, "W1", 0.02, done)),
        context.Process(target=_writer, args=(url, "W2", 0.005, done)),
    ]
    for process in writers:
        process.start()
    seen: list[int] = []
    cursor = 0
    deadline = time.monotonic() + 120
    with store.engine.connect() as connection:
        while time.monotonic() < deadline:
            alive = any(p.is_alive() for p in writers)
            page = changes_after(connection, cursor, 7)
            connection.rollback()  # next read sees newly committed rows
            seen.extend(e.seq for e in page.entries if e.seq is not None)
            cursor = page.next_cursor
            if not page.entries and not alive:
                break
            if not page.entries:
                time.sleep(0.005)
        for process in writers:
            process.join(timeout=10)
            assert process.exitcode == 0, "a writer process failed"
        all_seqs = [e.seq for e in changes_after(connection, 0, 1_000_000).entries]
    written = done.get(timeout=5) + done.get(timeout=5)
    assert len(seen) == len(set(seen)), "an entry was delivered twice"
    assert seen == sorted(seen)
    assert seen == all_seqs, f"missed {len(set(all_seqs) - set(seen))} committed entries"
    assert len(all_seqs) == written
