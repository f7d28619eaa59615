"""AAF (annuaire fédérateur, ``ficAlimMENESR`` XML) exports -> neutral records.

    exports = plan([Path("deliveries/2024-09-16")])      # group chunks into exports, in order
    for export in exports:
        if export.mode == "complet" and not export.complete:
            ...                                           # refuse, or import as partial
        reader = AafReader(export)
        for item in reader.stream():                      # NeutralRecord | SourceWarning
            ...
        reader.stats                                      # requests, records, warnings

No database code here: the sync engine consumes the stream. See README.md for what is mapped,
rejected and warned.
"""

from __future__ import annotations

from ._context import ReadStats
from ._files import AafExport, AafFile, plan
from ._reader import AafReader, iter_raw, read
from ._values import (
    BadValue,
    legal_flag,
    parse_bool,
    parse_date,
    parse_dollar,
    parse_flag01,
    parse_relation,
    rank_semantics,
    version_number,
)
from ._xml import RawRecord

__all__ = [
    "AafExport",
    "AafFile",
    "AafReader",
    "BadValue",
    "RawRecord",
    "ReadStats",
    "iter_raw",
    "legal_flag",
    "parse_bool",
    "parse_date",
    "parse_dollar",
    "parse_flag01",
    "parse_relation",
    "plan",
    "rank_semantics",
    "read",
    "version_number",
]
