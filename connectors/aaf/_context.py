"""What the mapping of one export remembers between records, files and categories.

Only compact things are kept: the structure join key -> UAI table (a few thousand entries per
académie), the keys of classes and levels already emitted, and the guardianship links waiting
for the ``PersRelEleve`` pass (one compact string per link, about 100 bytes), and a bitmap of
the pupils seen (2 MB, whatever the size of the académie).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from annuaire.schema import (
    EntityKind,
    NeutralRecord,
    Provenance,
    RecordOp,
    Ref,
    SourceWarning,
    StreamItem,
)

from ._files import AafExport
from ._values import BadValue, version_number
from ._xml import RawRecord

__all__ = [
    "PERSONAL_ATTRIBUTES",
    "Context",
    "Output",
    "PendingGuardianship",
    "ReadStats",
    "masked",
    "one",
]

Output = list[StreamItem]

#: Attributes of a person record whose values are the person's own data (names, civility, birth
#: date, address, e-mail, phones, INE), under their canonical names. A warning about one of
#: them never quotes the value: warnings are kept in the import run, served by
#: ``/v1/import-runs`` to API clients and printed to operators. The record's id and line, the
#: attribute and what was expected are enough to correct it in the source.
PERSONAL_ATTRIBUTES = frozenset(
    {
        "sn",
        "givenName",
        "ENTPersonNomPatro",
        "ENTPersonAutresPrenoms",
        "personalTitle",
        "ENTPersonDateNaissance",
        "ENTPersonAdresse",
        "ENTPersonCodePostal",
        "ENTPersonVille",
        "ENTPersonPays",
        "mail",
        "homePhone",
        "mobile",
        "ENTPersonMobileSMS",
        "telephoneNumber",
        "ENTEleveINE",
    }
)
_PERSON_CATEGORIES = frozenset({"Eleve", "PersRelEleve", "PersEducNat"})
#: Longest shape a masked value shows (an address may run to hundreds of characters).
_MASKED_SHAPE = 40


def masked(value: str) -> str:
    """What a warning says of a personal value: its length and its shape, every letter and
    digit hidden (``'**/**/****'`` tells a date in the wrong format from an impossible one;
    ``$`` separators stay, since a wrong field count is what is reported)."""
    shape = "".join("*" if c.isalnum() else c for c in value[:_MASKED_SHAPE])
    more = "…" if len(value) > _MASKED_SHAPE else ""
    return f"a value of {len(value)} characters shaped {shape + more!r}"


def one(attrs: dict[str, list[str]], name: str) -> str | None:
    """The first value of a single-valued attribute, None when absent or empty."""
    values = attrs.get(name)
    return values[0] if values else None


@dataclass
class ReadStats:
    """What a read saw: requests per (category, op), unknown attributes, warnings per code."""

    files: int = 0
    #: ``(category, "add"|"modify"|"delete") -> requests``, category as the file-name token.
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Neutral records emitted (all kinds).
    records: int = 0
    #: Occurrences of attributes outside the AAF vocabulary, by name.
    unknown_attributes: Counter[str] = field(default_factory=Counter)
    #: Warnings per code (``bad-value``, ``dangling-reference``...).
    warnings: Counter[str] = field(default_factory=Counter)
    #: Classes and groups created from person records (not declared by their structure).
    derived_classes: int = 0
    #: Guardianships dropped because their guardian is not in the Complet.
    dropped_guardianships: int = 0

    @property
    def warnings_total(self) -> int:
        return sum(self.warnings.values())

    def requests_by_category(self, category: str) -> dict[str, int]:
        return {op: self.requests[(category, op)] for op in ("add", "modify", "delete")}


class PendingGuardianship(NamedTuple):
    guardian: str
    pupil: str
    relation: str
    relation_code: str | None
    legal: bool | None
    financial: bool | None
    contact: bool | None
    payment: bool | None
    residence: bool | None
    op: RecordOp
    structures: tuple[str, ...]
    file: str
    line: int


_SEP = "\x1f"
#: Bits of the map of the pupils seen (``Context.pupil_record``): 2 MB. About 0.3 % of 100,000
#: pupils, 3 % of a million, find their bit set by another pupil (candidates given once).
_PUPIL_BITS = 1 << 24
_FLAG_TEXT = {True: "1", False: "0", None: ""}
_TEXT_FLAG: dict[str, bool | None] = {"1": True, "0": False, "": None}


@dataclass(slots=True)
class DerivedGrouping:
    """A class or group known only from person records, emitted once at the end."""

    kind: EntityKind
    structure: str
    code: str
    label: str | None
    level_codes: list[str]
    op: RecordOp
    provenance: Provenance


class Context:
    """Per-export state shared by the mappers."""

    def __init__(self, export: AafExport, known_structures: Mapping[str, str] | None) -> None:
        self.export = export
        self.delta = export.mode == "delta"
        #: The delivery shows part of the académie only (a delta, or a complet with a gap).
        self.partial_view = self.delta or not export.complete
        self.degree = export.degree
        self.stats = ReadStats()
        #: Structure join key -> UAI ("" when the structure has none).
        self.uais: dict[str, str] = dict(known_structures or {})
        #: Structure keys of this export's EtabEducNat records; None until one is read.
        self.structures_read: set[str] | None = None
        self._reported_structures: set[str] = set()
        #: CLASS/GROUP keys declared by ENTStructureClasses/ENTStructureGroupes.
        self.declared: dict[EntityKind, set[str]] = {
            EntityKind.CLASS: set(),
            EntityKind.GROUP: set(),
        }
        self.derived: dict[EntityKind, dict[str, DerivedGrouping]] = {
            EntityKind.CLASS: {},
            EntityKind.GROUP: {},
        }
        self.levels: set[str] = set()
        #: The codes of this export's nomenclatures (file category -> codes), which records
        #: name: a pupil's options and MEF, a teacher's subjects, a class's MEFs. A
        #: nomenclature's file is a full list in a delta too (AAF.md §8.1): the codes are
        #: checked whenever the export has that file with no chunk missing.
        self.codes: dict[str, set[str]] = {"MatiereEducNat": set(), "MefEducNat": set()}
        self.checked_codes = {c for c in export.whole_categories if c in self.codes}
        self._reported_codes: set[tuple[str, str]] = set()
        #: Codes named before their nomenclature is read (a class's MEFs: EtabEducNat comes
        #: first), with the first record naming each; checked once the export is read.
        self._deferred_codes: dict[tuple[str, str], tuple[str, Provenance]] = {}
        # Guardianships seen from the pupil side, waiting for their guardian's record. Kept as
        # one compact string each (see _encode): this buffer is the reader's only state that
        # grows with the number of pupils, so it must stay small.
        self._links: list[str] = []
        self._sorted = False
        # A pupil given more than once (in two chunks, or modified twice in a Delta) has the
        # links of their last record only. A set of every pupil would grow with the académie:
        # a bitmap of their ids' hashes marks the pupils seen, and a pupil whose bit was set
        # already (given before, or sharing a bit) is a candidate, with the rank of their
        # latest record among the pupil records. Each link carries its record's rank.
        self._pupils_seen = bytearray(_PUPIL_BITS // 8)
        self._pupil_rank = 0
        self._latest_rank: dict[str, int] = {}
        self._emitted = bytearray()
        self._files: list[str] = []
        self._file_numbers: dict[str, int] = {}
        self.file = ""
        self.version: int | None = None
        #: Warnings the mappers put in their output (so records = items - warnings).
        self.warnings_in_stream = 0

    def begin_file(self, name: str, version_af: str | None) -> None:
        self.file = name
        self.version = version_number(version_af)

    # -- warnings -----------------------------------------------------------------------------

    def provenance(self, record: RawRecord) -> Provenance:
        return Provenance(self.file, record.line, record.id)

    def warn(self, out: Output, code: str, message: str, provenance: Provenance | None) -> None:
        """Every mapping warning goes through here, so that the stream needs no scanning."""
        self.stats.warnings[code] += 1
        self.warnings_in_stream += 1
        out.append(SourceWarning(code, message, provenance))

    def bad_value(self, out: Output, record: RawRecord, error: BadValue, outcome: str) -> None:
        personal = error.attribute in PERSONAL_ATTRIBUTES and record.category in _PERSON_CATEGORIES
        value = masked(error.value) if personal else repr(error.value)
        self.warn(
            out,
            "bad-value",
            f"{error.attribute}: {value} is not valid, expected {error.expected}; {outcome}",
            self.provenance(record),
        )

    # -- structures ---------------------------------------------------------------------------

    def uai(self, structure: str, record: RawRecord, out: Output) -> str | None:
        """The UAI of a structure join key; an unknown key is reported once per export."""
        uai = self.uais.get(structure)
        if uai is not None:
            return uai or None
        if structure not in self._reported_structures:
            self._reported_structures.add(structure)
            where = (
                "this export's EtabEducNat"
                if self.structures_read is not None
                else ("this export (it has no EtabEducNat file)")
            )
            self.warn(
                out,
                "dangling-reference",
                f"structure join key {structure!r} (first referenced by {record.category}"
                f" record {record.id}) is not in {where}; its UAI is unknown",
                self.provenance(record),
            )
        return None

    def check_codes(
        self, category: str, codes: Iterable[str], record: RawRecord, out: Output
    ) -> None:
        """Report the ``codes`` that ``category``, this export's nomenclature, does not hold,
        once per export each (see ``codes``); the records keep them as given."""
        if category not in self.checked_codes:
            return
        known = self.codes[category]
        for code in codes:
            if code not in known:
                # Named first by a record read before the nomenclature (a class), maybe.
                named_by, provenance = self._deferred_codes.get(
                    (category, code), (self._named_by(record), self.provenance(record))
                )
                self._report_code(category, code, named_by, provenance, out)

    def defer_codes(self, category: str, codes: Iterable[str], record: RawRecord) -> None:
        """:meth:`check_codes` for codes named before ``category`` is read: see
        :meth:`deferred_code_warnings`."""
        if category not in self.checked_codes:
            return
        for code in codes:
            if (category, code) not in self._deferred_codes:
                self._deferred_codes[(category, code)] = (
                    self._named_by(record),
                    self.provenance(record),
                )

    def deferred_code_warnings(self) -> Output:
        """The deferred codes that their nomenclature does not hold, reported once the export is
        read (in the order first named)."""
        out: Output = []
        for (category, code), (named_by, provenance) in self._deferred_codes.items():
            if code not in self.codes[category]:
                self._report_code(category, code, named_by, provenance, out)
        return out

    @staticmethod
    def _named_by(record: RawRecord) -> str:
        return f"{record.category} record {record.id}"

    def _report_code(
        self, category: str, code: str, named_by: str, provenance: Provenance, out: Output
    ) -> None:
        if (category, code) in self._reported_codes:
            return
        self._reported_codes.add((category, code))
        self.warn(
            out,
            "dangling-reference",
            f"code {code!r} (first named by {named_by}) is not"
            f" in this export's {category}; kept as given",
            provenance,
        )

    def uais_of(self, structures: list[str], record: RawRecord, out: Output) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for structure in structures:
            uai = self.uai(structure, record, out)
            if uai:
                found[uai] = None
        return tuple(found)

    # -- classes, groups, levels --------------------------------------------------------------

    def derive(
        self,
        kind: EntityKind,
        structure: str,
        code: str,
        label: str | None,
        level_code: str | None,
        op: RecordOp,
        provenance: Provenance,
    ) -> None:
        """Remember a class/group seen in a person record, unless its structure declares it.

        A complete Complet derives it from all its pupils, for a structure of its EtabEducNat.
        A Delta or an incomplete Complet sees some of its pupils only: a record built from
        them would overwrite the class with partial content. There it is derived, for a
        structure whose UAI is known (from the export or the store), as an ``ensure`` record:
        created if the store lacks it (a class new since the last Complet, which the
        enrollments name), made active again if it was leaving, and otherwise left as stored.
        """
        if self.partial_view:
            if structure not in self.uais:
                return
            op = "ensure"
        elif self.structures_read is None or structure not in self.structures_read:
            return
        key = f"{structure}${code}"
        if key in self.declared[kind]:
            return
        table = self.derived[kind]
        known = table.get(key)
        if known is None:
            table[key] = DerivedGrouping(
                kind,
                structure,
                code,
                label or None,
                [level_code] if level_code else [],
                op,
                provenance,
            )
            return
        if label and not known.label:
            known.label = label
        if level_code and level_code not in known.level_codes:
            known.level_codes.append(level_code)

    def derived_records(self) -> list[NeutralRecord]:
        records = []
        for kind, table in self.derived.items():
            for key, item in table.items():
                uai = self.uais.get(item.structure)
                data: dict[str, object] = {"code": item.code, "label": item.label}
                refs: dict[str, Ref | list[Ref] | None] = {
                    "structure_id": Ref(EntityKind.STRUCTURE, item.structure)
                }
                if kind is EntityKind.CLASS:
                    data["level_codes"] = item.level_codes
                else:
                    refs["class_ids"] = []
                records.append(
                    NeutralRecord(
                        kind,
                        key,
                        data,
                        refs,
                        structures=(uai,) if uai else (),
                        op=item.op,
                        provenance=item.provenance,
                    )
                )
        self.stats.derived_classes = len(records)
        return records

    # -- guardianships ------------------------------------------------------------------------

    def pupil_record(self, record: RawRecord) -> None:
        """Count a pupil record, before its links (``add_guardianship``) if it has any."""
        self._pupil_rank += 1
        bit = hash(record.id) & (_PUPIL_BITS - 1)
        byte, mask = bit >> 3, 1 << (bit & 7)
        if self._pupils_seen[byte] & mask:
            self._latest_rank[record.id] = self._pupil_rank
        else:
            self._pupils_seen[byte] |= mask

    def add_guardianship(self, link: PendingGuardianship) -> None:
        """Buffer a link read on the pupil side (AAF.md §6, §11 item 9), from the pupil record
        counted last (``pupil_record``)."""
        number = self._file_numbers.get(link.file)
        if number is None:
            number = self._file_numbers[link.file] = len(self._files)
            self._files.append(link.file)
        self._links.append(
            _SEP.join(
                (
                    link.guardian,
                    link.pupil,
                    link.relation,
                    link.relation_code or "",
                    _FLAG_TEXT[link.legal],
                    _FLAG_TEXT[link.financial],
                    _FLAG_TEXT[link.contact],
                    _FLAG_TEXT[link.payment],
                    _FLAG_TEXT[link.residence],
                    link.op,
                    "|".join(link.structures),
                    str(number),
                    str(link.line),
                    str(self._pupil_rank),
                )
            )
        )
        self._sorted = False

    def _drop_earlier_links(self) -> None:
        """Drop the links of a pupil's records before their last one: those of the candidates
        (``pupil_record``) whose rank is not their latest record's. A candidate that shares a
        bit with another pupil has one record, whose links all carry its latest rank."""
        latest = self._latest_rank
        if latest:
            kept = []
            for text in self._links:
                rank = latest.get(text.split(_SEP, 2)[1])
                if rank is None or int(text.rpartition(_SEP)[2]) == rank:
                    kept.append(text)
            self._links = kept

    def _decode(self, text: str) -> PendingGuardianship:
        f = text.split(_SEP)
        return PendingGuardianship(
            f[0],
            f[1],
            f[2],
            f[3] or None,
            _TEXT_FLAG[f[4]],
            _TEXT_FLAG[f[5]],
            _TEXT_FLAG[f[6]],
            _TEXT_FLAG[f[7]],
            _TEXT_FLAG[f[8]],
            f[9],  # type: ignore[arg-type]
            tuple(f[10].split("|")) if f[10] else (),
            self._files[int(f[11])],
            int(f[12]),
        )

    def links_of(
        self, guardian: str
    ) -> tuple[list[PendingGuardianship], list[PendingGuardianship]]:
        """The buffered links naming ``guardian``, and those of them that no earlier record of
        ``guardian`` claimed (a person given twice: each record belongs to the pupils' schools,
        the guardianships are given once); all are claimed now."""
        if not self._sorted:
            self._drop_earlier_links()
            self._links.sort()  # groups links by guardian key (the first field)
            self._emitted = bytearray(len(self._links))
            self._sorted = True
        links = self._links
        first = bisect.bisect_left(links, guardian + _SEP)
        last = bisect.bisect_left(links, guardian + "\x20", first)  # "\x20" follows _SEP
        found, claimed = [], []
        for index in range(first, last):
            link = self._decode(links[index])
            found.append(link)
            if not self._emitted[index]:
                self._emitted[index] = 1
                claimed.append(link)
        return found, claimed

    def guardianship(self, link: PendingGuardianship) -> NeutralRecord:
        pupil = Ref(EntityKind.PERSON, link.pupil)
        return NeutralRecord(
            EntityKind.GUARDIANSHIP,
            f"{link.guardian}|{link.pupil}",
            {
                "relation": link.relation,
                "relation_code": link.relation_code,
                "legal": link.legal,
                "financial": link.financial,
                "contact": link.contact,
                "payment": link.payment,
                "residence": link.residence,
            },
            {"guardian_id": Ref(EntityKind.PERSON, link.guardian), "pupil_id": pupil},
            structures=link.structures,
            owner=pupil,
            op=link.op,
            provenance=Provenance(link.file, link.line, link.pupil),
        )

    def unclaimed_guardianships(self) -> Iterator[StreamItem]:
        """After the PersRelEleve pass: the links no guardian record claimed.

        In a complete Complet such a link names a person who is not a PersRelEleve record of
        the export: it is reported and dropped. In a Delta, or a Complet imported as partial
        (a chunk or a file missing), it is kept: the guardian may already be stored, or be in
        what this delivery lacks. Dropped there, the link would make the stored guardianship
        leave (a pupil's record replaces what it carries): a removal inferred from absence,
        which a partial import never does. The sync engine reports a kept link whose guardian
        the store does not hold (``dangling-reference``).
        """
        if not self._sorted:
            self.links_of("")  # sorts and sizes the claim flags
        for index, text in enumerate(self._links):
            if self._emitted[index]:
                continue
            link = self._decode(text)
            if self.partial_view:
                yield self.guardianship(link)
                continue
            self.stats.dropped_guardianships += 1
            out: Output = []
            self.warn(
                out,
                "dangling-reference",
                f"pupil {link.pupil} names related person {link.guardian}, who is not"
                " a PersRelEleve record of this Complet; guardianship dropped",
                Provenance(link.file, link.line, link.pupil),
            )
            yield from out
        self._links = []
        self._emitted = bytearray()
        self._sorted = False
