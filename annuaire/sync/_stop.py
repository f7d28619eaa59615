"""Stopping a run on request (Ctrl-C, SIGTERM) where nothing is half done.

Why
    A KeyboardInterrupt raised by a signal lands on whatever bytecode runs: in the middle of a
    rollback or of a connection going back to the pool, it can leave the run's write lock held
    by a connection nobody will release, and the run could then not even be recorded as
    failed (SQLite: "database is locked"). So the first signal only asks; the run stops at its
    next safe point: between batches of the stream and between the statements of the apply
    phase. A second signal stops at once (the process is about to end anyway).

Contract
    :meth:`Stop.check` raises :class:`Interrupted` (a ``KeyboardInterrupt``, so no ``except
    Exception`` swallows it) once a stop was asked; :meth:`Stop.on_signals` turns SIGINT and
    SIGTERM into such a request for the duration of a block (main thread only, as any signal
    handler).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

__all__ = ["Interrupted", "Stop"]


class Interrupted(KeyboardInterrupt):
    """A run stopped on request; the message says why (``interrupted by SIGTERM``).
    ``safe``: raised at a safe point (not by a second signal, wherever the run stood)."""

    def __init__(self, reason: str, signum: int, *, safe: bool = True) -> None:
        super().__init__(reason)
        self.signum = signum
        self.safe = safe


class Stop:
    """A stop request, asked by a signal handler and checked by the run at its safe points."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signum = 0

    def ask(self, reason: str, signum: int) -> None:
        self.reason, self.signum = reason, signum

    def check(self) -> None:
        if self.reason is not None:
            raise Interrupted(self.reason, self.signum)

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[Stop]:
        """SIGINT and SIGTERM ask this stop during the block; the second one stops at once."""

        def asked(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.reason is not None:
                raise Interrupted(f"interrupted by {name} (twice: at once)", signum, safe=False)
            self.ask(f"interrupted by {name}", signum)

        previous = {s: signal.signal(s, asked) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
