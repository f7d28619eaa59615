"""Read one planned export into a stream of neutral records and source warnings.

Files are read in dependency order (EtabEducNat -> MatiereEducNat/MefEducNat -> Eleve ->
PersRelEleve -> PersEducNat, chunks in order). Guardianships are emitted after the
PersRelEleve pass, and classes/groups known only from person records at the very end.
A malformed file raises :class:`annuaire.errors.BadInput` in the middle of the stream: the
consumer must then drop everything it received from this export (the sync engine applies a
run in one transaction).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping

from annuaire.schema import SourceWarning, StreamItem

from ._context import Context, Output, ReadStats
from ._feed import RawFeed
from ._files import AafExport, AafFile, reading_order
from ._map_people import map_pupil, map_relative, map_staff
from ._map_structures import map_mef, map_structure, map_subject
from ._xml import RawFile, RawRecord

__all__ = ["AafReader", "iter_raw", "read"]

Mapper = Callable[[Context, RawRecord, Output], None]

_MAPPERS: dict[str, Mapper] = {
    "EtabEducNat": map_structure,
    "MatiereEducNat": map_subject,
    "MefEducNat": map_mef,
    "Eleve": map_pupil,
    "PersRelEleve": map_relative,
    "PersEducNat": map_staff,
}
_AFTER_RELATIVES = frozenset(("PersEducNat",))


def iter_raw(file: AafFile) -> Iterator[RawRecord | SourceWarning]:
    """The raw requests of one file (canonical attribute names, nothing mapped)."""
    stream = file.opener()
    try:
        yield from RawFile(stream, file.path, file.category)
    finally:
        stream.close()


class AafReader:
    """Reads an :class:`AafExport`; ``stream()`` yields, ``stats`` counts what was seen.

    ``known_structures`` (structure join key -> UAI) lets a caller resolve the structures of a
    Delta whose EtabEducNat is not part of the delivery, typically from the store.

    ``parallel``: parse the files in a worker process while this one maps them (see
    ``_feed.py``); None (the default) decides by input size. The stream is the same either way.
    """

    def __init__(
        self,
        export: AafExport,
        *,
        known_structures: Mapping[str, str] | None = None,
        parallel: bool | None = None,
    ) -> None:
        self.export = export
        self._known = known_structures
        self._parallel = parallel
        self.stats = ReadStats()

    def stream(self) -> Generator[StreamItem]:
        ctx = Context(self.export, self._known)
        stats = self.stats = ctx.stats
        guardianships_done = False
        files = sorted(self.export.files, key=reading_order)
        with RawFeed(files, parallel=self._parallel) as feed:
            for file, raw in feed:
                if not guardianships_done and file.category in _AFTER_RELATIVES:
                    guardianships_done = True
                    yield from self._produced(ctx.unclaimed_guardianships)
                # One generator level per item: this loop is the connector's hot path.
                mapper = _MAPPERS[file.category]
                stats.files += 1
                ops = dict.fromkeys(("add", "modify", "delete"), 0)
                started = False
                emitted = 0
                warned = ctx.warnings_in_stream
                try:
                    for item in raw:
                        if type(item) is not RawRecord:
                            stats.warnings[item.code] += 1  # type: ignore[union-attr]
                            yield item  # type: ignore[misc]
                            continue
                        if not started:
                            started = True
                            ctx.begin_file(
                                file.path,
                                raw.header.get("versionAF")
                                or file.header.get("versionAF")
                                or self.export.version_af,
                            )
                        ops[item.op] += 1
                        out: Output = []
                        mapper(ctx, item, out)
                        emitted += len(out)
                        yield from out
                finally:
                    stats.unknown_attributes.update(raw.unknown_attributes)
                    for op, count in ops.items():
                        if count:
                            stats.requests[(file.category, op)] += count
                    stats.records += emitted - (ctx.warnings_in_stream - warned)
        if not guardianships_done:
            yield from self._produced(ctx.unclaimed_guardianships)
        yield from self._produced(ctx.deferred_code_warnings)
        yield from self._produced(ctx.derived_records)

    def _produced(self, produce: Callable[[], Iterable[StreamItem]]) -> Iterator[StreamItem]:
        for item in produce():
            if type(item) is not SourceWarning:
                self.stats.records += 1
            yield item


def read(
    export: AafExport, *, known_structures: Mapping[str, str] | None = None
) -> Iterator[StreamItem]:
    """Neutral records and warnings of one export (see :class:`AafReader` for statistics)."""
    return AafReader(export, known_structures=known_structures).stream()
