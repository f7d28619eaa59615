"""The raw requests of an export's files, parsed in order, in this process or in a worker.

Why a worker: parsing XML (lxml, then a Python object per request) is the larger half of
reading an export, and it depends on nothing but the file. A forked worker process parses the
files one after the other, in reading order, and sends the raw requests in batches through a
pipe; this process maps them to neutral records (which needs the export's state: structures,
pending guardianships) while the worker parses what comes next. The consumer sees exactly the
sequence that parsing in-process gives: the same items in the same order, the same header and
unknown-attribute counts per file, and a malformed file raises the same
:class:`annuaire.errors.BadInput` (file, line, column, record) at the same point of the stream.

Memory stays flat: a batch is a few hundred requests and the pipe holds about two (the worker
blocks until this process reads them). A batch of requests travels as ``marshal`` data (plain
tuples, strings, lists and dicts, rebuilt in C: this process, the busier of the two, spends
less on it than on splitting one string per request in Python); a batch that carries a warning
object, and the rare error messages, travel pickled. Closing the feed early (the consumer
failed or stopped) stops the worker; a worker that dies is an error, never a short stream.

The worker is a ``fork`` of this process (nothing to pickle but the requests: openers of
archive members are closures); where ``fork`` does not exist, or for small inputs where a
process would cost more than it saves, files are parsed in-process.
"""

from __future__ import annotations

import contextlib
import marshal
import multiprocessing
import pickle
import signal
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from annuaire.errors import BadInput
from annuaire.schema import SourceWarning

from ._files import AafFile
from ._xml import RawFile, RawRecord

__all__ = ["PARALLEL_MIN_BYTES", "RawFeed", "RawSource", "parallel_by_default"]

#: Below this input size (plain files), parsing stays in-process: a worker costs ~10 ms.
PARALLEL_MIN_BYTES = 1 << 20
_BATCH = 256  # requests per message: ~0.5 MB pickled for pupils
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux; elsewhere the default pipe size is kept

# Messages, worker -> consumer: (kind, file index, header, payload)
_ITEMS, _END, _BAD, _CRASH = 0, 1, 2, 3

RawItem = RawRecord | SourceWarning
# A message's first byte says how the rest is encoded.
_MARSHAL, _PICKLE = b"M", b"P"


def parallel_by_default(files: Sequence[AafFile]) -> bool:
    """True when a worker process is available and the input is worth one."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    total = 0
    for file in files:
        path = Path(file.path)
        if not path.is_file():
            return True  # an archive member: decompression is worth a worker too
        total += path.stat().st_size
        if total >= PARALLEL_MIN_BYTES:
            return True
    return False


class RawSource:
    """One file's raw requests, as :class:`~connectors.aaf._xml.RawFile` gives them.

    ``header`` is filled once the first request has been read; ``unknown_attributes`` once the
    file has been read to its end.
    """

    def __init__(self, feed: RawFeed, index: int, file: AafFile) -> None:
        self.file = file
        self.header: dict[str, str] = {}
        self.unknown_attributes: Counter[str] = Counter()
        self._feed = feed
        self._index = index

    def __iter__(self) -> Iterator[RawItem]:
        return self._feed._items(self)


class RawFeed:
    """Iterate ``(file, source)`` over ``files`` in order; use as a context manager.

    A source must be read to its end (or the feed closed) before the next one is asked for.
    """

    def __init__(self, files: Sequence[AafFile], *, parallel: bool | None = None) -> None:
        self.files = list(files)
        self.parallel = parallel_by_default(self.files) if parallel is None else parallel
        self._connection: Connection | None = None
        self._process: Any = None

    def __enter__(self) -> RawFeed:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[AafFile, RawSource]]:
        if self.parallel:
            self._start()
        for index, file in enumerate(self.files):
            yield file, RawSource(self, index, file)

    # -- in-process ----------------------------------------------------------------------------

    def _items(self, source: RawSource) -> Iterator[RawItem]:
        if self._connection is not None:
            yield from self._received(source)
            return
        stream = source.file.opener()
        raw = RawFile(stream, source.file.path, source.file.category)
        source.header = raw.header  # filled in place by the parser
        try:
            yield from raw
        finally:
            stream.close()
            source.unknown_attributes = raw.unknown_attributes

    # -- worker ------------------------------------------------------------------------------

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        receiving, sending = context.Pipe(duplex=False)
        # A pipe of ~2 batches lets the worker run ahead when mapping a batch takes longer
        # than parsing the next one (and the other way round), instead of waiting in lockstep.
        with contextlib.suppress(OSError, ImportError):
            import fcntl  # POSIX, like fork

            fcntl.fcntl(sending.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self._process = context.Process(
            target=_parse_files,
            args=(self.files, sending, receiving),
            name="aaf-parse",
            daemon=True,
        )
        self._process.start()
        sending.close()  # the worker holds the only sending end: EOF if it dies
        self._connection = receiving

    def _received(self, source: RawSource) -> Iterator[RawItem]:
        connection = self._connection
        assert connection is not None
        while True:
            try:
                kind, index, header, payload = _received_message(connection)
            except EOFError:
                code = self._process.exitcode if self._process is not None else None
                raise RuntimeError(
                    f"the AAF parsing worker stopped while reading {source.file.path}"
                    f" (exit code {code})"
                ) from None
            if index != source._index:  # a consumer that skipped a file: a programming error
                raise RuntimeError(f"feed out of order: file {index}, expected {source._index}")
            if header:
                source.header = header
            if kind in (_ITEMS, _END):
                for item in payload if kind == _ITEMS else payload[0]:
                    yield RawRecord(*item) if type(item) is tuple else item
                if kind == _END:
                    source.unknown_attributes = Counter(payload[1])
                    return
            elif kind == _BAD:
                message, file, line, column, record_id = payload
                raise BadInput(message, file=file, line=line, column=column, record_id=record_id)
            else:
                error, trace = payload
                if error is not None:  # an OSError opening a file, say: as in-process
                    raise error
                raise RuntimeError(f"the AAF parsing worker failed:\n{trace}")

    def close(self) -> None:
        """Stop the worker (if any); safe to call twice."""
        connection, process = self._connection, self._process
        self._connection = self._process = None
        if connection is not None:
            connection.close()  # a worker blocked on send gets a broken pipe and exits
        if process is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


def _parse_files(files: list[AafFile], connection: Connection, inherited: Connection) -> None:
    """Worker body: parse every file in order and send its requests in batches.

    ``inherited`` is the fork's copy of the receiving end: closed first, so that the importing
    process holds the only one. Otherwise, once that process is gone (killed by a scheduler's
    timeout, say), the worker would wait for ever on a full pipe that it alone could read.
    Ctrl-C reaches the whole process group: it is ignored here, the importing process decides
    (it stops at its next safe point and closes the pipe, and the broken pipe ends the worker).
    SIGTERM ends the worker, whatever handler it was forked with: ``close`` and the interpreter's
    exit rely on it."""
    inherited.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    index = 0
    batch: list[Any] = []
    plain = True  # the batch holds requests only (no warning object): marshal can carry it
    header: dict[str, str] = {}
    try:
        for index, file in enumerate(files):
            stream = file.opener()
            try:
                raw = RawFile(stream, file.path, file.category)
                header = raw.header
                sent_header = False
                for item in raw:
                    if type(item) is RawRecord:
                        batch.append((item.op, item.category, item.id, item.line, item.attrs))
                    else:
                        batch.append(item)
                        plain = False
                    if len(batch) >= _BATCH:
                        message = (_ITEMS, index, None if sent_header else header, batch)
                        _send(connection, message, plain)
                        sent_header = True
                        batch, plain = [], True
                unknown = dict(raw.unknown_attributes)
                _send(connection, (_END, index, header, (batch, unknown)), plain)
                batch, plain = [], True
            finally:
                stream.close()
    except BadInput as error:
        # What was parsed before the error goes first: the consumer sees what it would have
        # seen reading in-process, then the error.
        if batch:
            _send_last(connection, (_ITEMS, index, header, batch))
        payload = (error.message, error.file, error.line, error.column, error.record_id)
        _send_last(connection, (_BAD, index, None, payload))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the consumer closed the feed
    except BaseException as error:  # reported to the consumer, which raises it
        if batch:
            _send_last(connection, (_ITEMS, index, header, batch))
        try:
            pickle.dumps(error)
            kept: BaseException | None = error
        except Exception:
            kept = None
        _send_last(connection, (_CRASH, index, None, (kept, traceback.format_exc())))
    finally:
        connection.close()


def _send(connection: Connection, message: tuple[Any, ...], plain: bool) -> None:
    """Send ``message``: marshalled when ``plain`` (builtin types only), else pickled."""
    if plain:
        connection.send_bytes(_MARSHAL + marshal.dumps(message))
    else:
        connection.send_bytes(_PICKLE + pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _received_message(connection: Connection) -> Any:
    data = memoryview(connection.recv_bytes())
    if data[:1] == _MARSHAL:
        return marshal.loads(data[1:])
    return pickle.loads(data[1:])


def _send_last(connection: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        _send(connection, message, False)
