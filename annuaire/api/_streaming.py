"""A streamed response whose body, a blocking generator, is closed as soon as the response ends,
however it ends: sent, failed, or the client gone.

Why
    Starlette iterates a blocking generator in worker threads and, when the client disconnects,
    cancels the iteration without closing the generator. What the generator's ``finally``
    releases (an export's read-ahead thread, its snapshot's connection) then waits for the
    garbage collector, which may run it in any thread: once, in the read-ahead thread itself, in
    the middle of a database call holding the connection's lock, which deadlocked the export's
    connection "idle in transaction" for good (a pool slot lost, VACUUM held back).

Contract
    :class:`ClosingStreamingResponse` produces each chunk with ``next()`` in a worker thread,
    one at a time. When the response ends, once the step that may be running has returned, it
    closes the generator in a worker thread (its ``finally`` blocks run there, never in another
    thread of the generator's), then runs ``on_close`` in a worker thread: also when the body
    never started (the client gone before the first byte).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["ClosingStreamingResponse"]


async def _chunks(content: Generator[bytes]) -> AsyncGenerator[bytes]:
    try:
        while (chunk := await anyio.to_thread.run_sync(next, content, None)) is not None:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(content.close)


class ClosingStreamingResponse(StreamingResponse):
    """A :class:`StreamingResponse` of a blocking generator, closed when the response ends."""

    def __init__(
        self,
        content: Generator[bytes],
        *,
        on_close: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._chunks = _chunks(content)
        self._on_close = on_close
        super().__init__(self._chunks, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._chunks.aclose()
                if self._on_close is not None:
                    await anyio.to_thread.run_sync(self._on_close)
