"""Read an iterator ahead in a thread of its own: what it does (a database building the next
rows) overlaps with what the consumer does with the previous item (log it, send it).

Contract
    :func:`prefetched` yields the items of ``source`` in order, at most ``depth`` of them waiting
    (memory stays bounded); an exception raised by ``source`` is raised to the consumer at the
    point where the item would have come. Leaving the block, early or not, stops the thread
    (after the item it may be reading), closes ``source`` in that thread, and returns once the
    thread has ended: the caller may then release what ``source`` used (its connection).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

__all__ = ["prefetched"]

T = TypeVar("T")
#: How often a producer blocked on a full queue looks whether the consumer has gone.
_POLL_S = 0.05
_END = object()


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextlib.contextmanager
def prefetched(source: Iterator[T], depth: int = 1) -> Iterator[Iterator[T]]:
    """``source``'s items, read ahead by a thread (at most ``depth`` waiting)."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as exc:  # the consumer raises it
            hand_over(_Failed(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def items() -> Iterator[T]:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        yield items()
    finally:
        stop.set()
        thread.join()
