"""Reading an export's pages ahead in a thread: order, errors, bounded memory, clean stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from annuaire.api._prefetch import prefetched


class Source:
    """An iterator that records which thread reads it, how far, and whether it was closed."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.read = 0
        self.closed = False
        self.threads: set[str] = set()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        self.threads.add(threading.current_thread().name)
        if self.read == self.fail_at:
            raise ValueError(f"item {self.read} cannot be read")
        if self.read >= self.count:
            raise StopIteration
        self.read += 1
        return self.read - 1

    def close(self) -> None:
        self.closed = True


def prefetch_threads() -> set[threading.Thread]:
    """Prefetch threads alive now (an earlier test's export may still be ending: compare)."""
    return {t for t in threading.enumerate() if t.name == "prefetch"}


def test_items_come_in_order_read_by_another_thread_and_the_source_is_closed() -> None:
    before = prefetch_threads()
    source = Source(50)
    with prefetched(source, depth=2) as ahead:
        assert list(ahead) == list(range(50))
    assert source.threads == {"prefetch"} and source.closed
    assert prefetch_threads() <= before


def test_the_thread_reads_at_most_depth_items_ahead() -> None:
    before = prefetch_threads()
    source = Source(1000)
    with prefetched(source, depth=3) as ahead:
        assert next(ahead) == 0
        time.sleep(0.3)  # give the thread every chance to read further
        # Taken 1, 3 waiting, 1 read and blocked on the full queue.
        assert source.read <= 1 + 3 + 1
    assert source.closed and prefetch_threads() <= before


def test_an_error_of_the_source_reaches_the_consumer_where_the_item_would_have() -> None:
    before = prefetch_threads()
    source = Source(10, fail_at=4)
    seen = []
    with pytest.raises(ValueError, match="item 4 cannot be read"), prefetched(source) as ahead:
        for item in ahead:
            seen.append(item)
    assert seen == [0, 1, 2, 3] and source.closed
    assert prefetch_threads() <= before


def test_leaving_early_stops_the_thread_before_the_block_ends() -> None:
    before = prefetch_threads()
    source = Source(10_000)
    with prefetched(source) as ahead:
        for item in ahead:
            if item == 5:
                break
    # The caller may now close what the source used: the thread is gone, the source closed.
    assert prefetch_threads() <= before and source.closed
    assert source.read < 10
