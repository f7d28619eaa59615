"""Eleve, PersRelEleve and PersEducNat records -> PERSON, ROLE, ENROLLMENT (+ guardianships).

1D and 2D records are mapped by the same code: the raw reader already folded the 1D
attribute names onto the 2D ones, and the few 1D-only attributes (``ENTPersonClasses``,
``ENTEleveNiveau``, ``ENTEleveAutoriteParentale`` as ``rel$code``) are read when present.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from functools import partial
from typing import Any

from annuaire.schema import (
    EnrollmentRole,
    EntityKind,
    NeutralRecord,
    Provenance,
    RecordOp,
    Ref,
    Relation,
    RoleKind,
)

from ._context import Context, Output, PendingGuardianship, one
from ._values import RELATIONS, BadValue, legal_flag, parse_date, parse_dollar, ranks_for
from ._xml import RawRecord

__all__ = ["map_pupil", "map_relative", "map_staff"]

_PERSON = EntityKind.PERSON
_STRUCTURE = EntityKind.STRUCTURE
_CLASS = EntityKind.CLASS
_GROUP = EntityKind.GROUP
_ROLE = EntityKind.ROLE
_ENROLLMENT = EntityKind.ENROLLMENT
_JOIN_ID = "aaf:ENTPersonJointure"
_STS_ID = "aaf:ENTPersonSTSId"

# References repeat (a school's key, its classes): a frozen dataclass costs ~0.3 µs to build.
_structure_ref = functools.lru_cache(maxsize=1 << 14)(partial(Ref, _STRUCTURE))
_class_ref = functools.lru_cache(maxsize=1 << 17)(partial(Ref, _CLASS))
_group_ref = functools.lru_cache(maxsize=1 << 17)(partial(Ref, _GROUP))

# Enum member `.value` is a Python-level descriptor call: resolve the strings once.
_PUPIL = RoleKind.PUPIL.value
_TEACHER = RoleKind.TEACHER.value
_STAFF = RoleKind.STAFF.value
_HEAD = RoleKind.HEAD.value
_DIRECTOR = RoleKind.DIRECTOR.value
_ENROLLED = EnrollmentRole.PUPIL.value
_TEACHES = EnrollmentRole.TEACHER.value
_HEAD_TEACHER = EnrollmentRole.HEAD_TEACHER.value

_CIVILITIES = {"M": "M.", "Mr": "M.", "MR": "M.", "Mme.": "Mme", "MME": "Mme", "MLLE": "Mlle"}
_FLAGS = {"0": False, "1": True}
_DIRECTION_LABELS = frozenset(
    label.replace("'", apostrophe)
    for label in (
        "DIRECTION",
        "DIRECTION CHEF D'ETABLISSEMENT",
        "DIRECTION ADJOINT AU CHEF ETABLISSEMENT",
        "CHEF D'ETABLISSEMENT ADJOINT",
    )
    for apostrophe in ("'", "&apos;")
)
_TEACHING_FUNCTIONS = frozenset(("ENS", "DOC"))
#: Function codes of staff who do not teach where they hold them (AAF.md §7.4: the
#: consumers that map functions to profiles put them in vie scolaire, administrative,
#: technical, medico-social and inspection staff): the role in that structure is ``staff``
#: whatever the person is elsewhere. A function with another code, or none, takes the
#: person's profile (a teacher by category, presence before pupils or an ENS/DOC function).
_NON_TEACHING_FUNCTIONS = frozenset(
    (
        *("EDU", "AED", "AES", "ADE", "SUR", "AVS"),  # vie scolaire
        *("ADA", "ADF", "ADM", "ALB", "ASE", "ASH", "CFC", "CPD", "CTR", "LAB", "MDS"),
        *("ORI", "OUV", "PSY", "TEC", "ACP"),
        *("INS", "INJ"),  # inspection
    )
)
_NONE_CODES = frozenset(("", "-"))
# `one` inlined on the hot path (a dict of every first value per record cost 0.8 s at 100,000
# pupils): an absent or empty attribute reads as this tuple's None.
_NO_VALUE = (None,)


# -- shared ------------------------------------------------------------------------------------


def _date(
    ctx: Context, record: RawRecord, attribute: str, value: str | None, out: Output
) -> dt.date | None:
    if not value:
        return None
    try:
        return parse_date(value, attribute)
    except BadValue as error:
        ctx.bad_value(out, record, error, "date left empty")
        return None


def _person_data(ctx: Context, record: RawRecord, out: Output) -> dict[str, Any]:
    a = record.attrs
    get = a.get  # first value of an attribute: (get(name) or _NO_VALUE)[0], as `one` gives it
    lines: list[str] = []
    address = (get("ENTPersonAdresse") or _NO_VALUE)[0]
    if address is not None:
        if "$" in address:
            fields = address.split("$")
            if len(fields) != 4:
                expected = "4 `$`-separated address lines, or one line"
                ctx.bad_value(
                    out,
                    record,
                    BadValue(address, expected, "ENTPersonAdresse"),
                    "non-empty fields kept as lines",
                )
            lines = [line for line in fields if line]
        else:
            lines = [address]
    civility = (get("personalTitle") or _NO_VALUE)[0]
    if civility is not None:
        civility = _CIVILITIES.get(civility, civility)
    birth = (get("ENTPersonDateNaissance") or _NO_VALUE)[0]
    return {
        "usage_name": (get("sn") or _NO_VALUE)[0],
        "birth_name": (get("ENTPersonNomPatro") or _NO_VALUE)[0],
        "first_name": (get("givenName") or _NO_VALUE)[0],
        "other_first_names": a.get("ENTPersonAutresPrenoms") or [],
        "birth_date": _date(ctx, record, "ENTPersonDateNaissance", birth, out) if birth else None,
        "civility": civility,
        "email": (get("mail") or _NO_VALUE)[0],
        "phone_home": (get("homePhone") or _NO_VALUE)[0],
        "phone_mobile": (get("ENTPersonMobileSMS") or _NO_VALUE)[0]
        or (get("mobile") or _NO_VALUE)[0],
        "phone_work": (get("telephoneNumber") or _NO_VALUE)[0],
        "address_lines": lines,
        "postal_code": (get("ENTPersonCodePostal") or _NO_VALUE)[0],
        "city": (get("ENTPersonVille") or _NO_VALUE)[0],
        "country": (get("ENTPersonPays") or _NO_VALUE)[0],
    }


def _delete_person(ctx: Context, record: RawRecord, out: Output) -> None:
    out.append(NeutralRecord(_PERSON, record.id, op="delete", provenance=ctx.provenance(record)))


def _role(
    person: Ref,
    structure: str,
    role: str,
    uai: str | None,
    op: RecordOp,
    provenance: Provenance,
    function: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
    start: dt.date | None = None,
    end: dt.date | None = None,
    schooling: tuple[str | None, Sequence[str]] = (None, ()),
) -> NeutralRecord:
    """A role; ``schooling``: a pupil's MEF or level code, and their options (subject codes)."""
    fcode, flabel, dcode, dlabel = function
    level, subjects = schooling
    return NeutralRecord(
        _ROLE,
        f"{person.key}|{structure}|{role}|{fcode or ''}|{dcode or ''}",
        {
            "role": role,
            "function_code": fcode,
            "function_label": flabel,
            "discipline_code": dcode,
            "discipline_label": dlabel,
            "start_date": start,
            "end_date": end,
            "level_code": level,
            "subject_codes": list(subjects),
        },
        {"person_id": person, "structure_id": _structure_ref(structure)},
        structures=(uai,) if uai else (),
        owner=person,
        op=op,
        provenance=provenance,
    )


def _enrollment(
    person: Ref,
    kind: EntityKind,
    structure: str,
    code: str,
    role: str,
    subject: str | None,
    uai: str | None,
    op: RecordOp,
    provenance: Provenance,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> NeutralRecord:
    target = f"{structure}${code}"
    is_class = kind is _CLASS
    return NeutralRecord(
        _ENROLLMENT,
        f"{person.key}|{'class' if is_class else 'group'}|{target}|{role}|{subject or ''}",
        {"role": role, "subject_code": subject, "start_date": start, "end_date": end},
        {
            "person_id": person,
            "structure_id": _structure_ref(structure),
            "class_id": _class_ref(target) if is_class else None,
            "group_id": None if is_class else _group_ref(target),
        },
        structures=(uai,) if uai else (),
        owner=person,
        op=op,
        provenance=provenance,
    )


def _pairs(ctx: Context, record: RawRecord, attribute: str, out: Output) -> list[tuple[str, str]]:
    """``structJointure$code`` values."""
    result = []
    for value in record.attrs.get(attribute, ()):
        fields = value.split("$")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            ctx.bad_value(
                out, record, BadValue(value, "structJointure$code", attribute), "value skipped"
            )
            continue
        result.append((fields[0], fields[1]))
    return result


# -- pupils ------------------------------------------------------------------------------------


def _class_dates(
    ctx: Context, record: RawRecord, attribute: str, out: Output
) -> dict[tuple[str, str], dt.date]:
    dates: dict[tuple[str, str], dt.date] = {}
    for value in record.attrs.get(attribute, ()):
        try:
            structure, day, code = parse_dollar(value, 3, attribute)
        except BadValue as error:
            ctx.bad_value(out, record, error, "value skipped")
            continue
        parsed = _date(ctx, record, attribute, day, out)
        if parsed is not None:
            dates[(structure, code)] = parsed
    return dates


def _level(ctx: Context, record: RawRecord, attribute: str, kind: str, out: Output) -> str | None:
    """A 1D ``code$label`` level/cycle: emitted once per export; returns the code."""
    value = one(record.attrs, attribute)
    if value is None:
        return None
    try:
        code, label = parse_dollar(value, 2, attribute)
    except BadValue as error:
        ctx.bad_value(out, record, error, "level ignored")
        return None
    if not code:
        return None
    key = f"1d-{'level' if kind == '1d_level' else 'cycle'}:{code}"
    if key not in ctx.levels:
        ctx.levels.add(key)
        out.append(
            NeutralRecord(
                EntityKind.LEVEL,
                key,
                {
                    "code": code,
                    "label": label or None,
                    "kind": kind,
                    "parent_code": None,
                    "stat_code": None,
                },
                op=record.op,
                provenance=ctx.provenance(record),
            )
        )
    return code


def map_pupil(ctx: Context, record: RawRecord, out: Output) -> None:
    ctx.pupil_record(record)
    if record.op == "delete":
        _delete_person(ctx, record, out)
        return
    a = record.attrs
    key = record.id
    op = record.op
    provenance = ctx.provenance(record)

    # Classes and groups: 2D `struct$code`, 1D `struct$type$typeLabel$id$label`.
    memberships: list[tuple[EntityKind, str, str, str | None]] = []
    for attribute, kind in (("ENTEleveClasses", _CLASS), ("ENTEleveGroupes", _GROUP)):
        if attribute in a:
            for structure, code in _pairs(ctx, record, attribute, out):
                memberships.append((kind, structure, code, None))
    for attribute, kind in (("ENTPersonClasses", _CLASS), ("ENTPersonGroupes", _GROUP)):
        for value in a.get(attribute, ()):
            try:
                where, _type, _type_label, number, name = parse_dollar(value, 5, attribute)
            except BadValue as error:
                ctx.bad_value(out, record, error, "value skipped")
                continue
            if where and number:
                memberships.append((kind, where, number, name))

    attachment = one(a, "ENTPersonStructRattach")
    structure_keys = [attachment] if attachment else []
    for _kind, structure, _code, _label in memberships:
        if structure not in structure_keys:
            structure_keys.append(structure)
    uais = ctx.uais_of(structure_keys, record, out)

    external: tuple[tuple[str, str], ...] = ((_JOIN_ID, one(a, "ENTPersonJointure") or key),)
    ine = one(a, "ENTEleveINE")
    if ine:
        external += (("ine", ine),)
    siecle = one(a, "ENTEleveStructRattachId")
    if siecle:
        external += (("siecle:ELEVE_ID", siecle),)
    out.append(
        NeutralRecord(
            _PERSON,
            key,
            _person_data(ctx, record, out),
            {},
            external,
            uais,
            op=op,
            provenance=provenance,
        )
    )

    # The pupil's MEF (2D) or level (1D) and options, on their role.
    level_code = one(a, "ENTEleveMEF")
    if level_code:
        ctx.check_codes("MefEducNat", (level_code,), record, out)
    if "ENTEleveNiveau" in a:
        level_code = _level(ctx, record, "ENTEleveNiveau", "1d_level", out)
    if "ENTEleveCycle" in a:
        _level(ctx, record, "ENTEleveCycle", "1d_cycle", out)
    options = a.get("ENTEleveCodeEnseignements", ())
    ctx.check_codes("MatiereEducNat", options, record, out)
    schooling = (level_code, options)

    uai_of = ctx.uais.get
    person = Ref(_PERSON, key)
    for structure in [attachment] if attachment else structure_keys:
        out.append(
            _role(
                person,
                structure,
                _PUPIL,
                uai_of(structure) or None,
                op,
                provenance,
                start=_date(
                    ctx,
                    record,
                    "ENTEleveDateEntreeStructRattach",
                    one(a, "ENTEleveDateEntreeStructRattach"),
                    out,
                ),
                end=_date(
                    ctx,
                    record,
                    "ENTEleveDateSortieStructRattach",
                    one(a, "ENTEleveDateSortieStructRattach"),
                    out,
                ),
                schooling=schooling,
            )
        )

    starts = (
        _class_dates(ctx, record, "ENTEleveDateEntreeClasses", out)
        if ("ENTEleveDateEntreeClasses" in a)
        else {}
    )
    ends = (
        _class_dates(ctx, record, "ENTEleveDateSortieClasses", out)
        if ("ENTEleveDateSortieClasses" in a)
        else {}
    )
    classes = {(structure, code) for kind, structure, code, _ in memberships if kind is _CLASS}
    for attribute, dates in (
        ("ENTEleveDateEntreeClasses", starts),
        ("ENTEleveDateSortieClasses", ends),
    ):
        for structure, code in sorted(dates.keys() - classes):  # warnings in a stable order
            ctx.bad_value(
                out,
                record,
                BadValue(f"{structure}$…${code}", "a class of the pupil's classes", attribute),
                "date ignored",
            )
    seen: set[str] = set()
    for kind, structure, code, label in memberships:
        # Class dates are a class's: a group with the same code has none.
        dated = kind is _CLASS
        record_out = _enrollment(
            person,
            kind,
            structure,
            code,
            _ENROLLED,
            None,
            uai_of(structure) or None,
            op,
            provenance,
            starts.get((structure, code)) if dated else None,
            ends.get((structure, code)) if dated else None,
        )
        if record_out.key in seen:
            continue
        seen.add(record_out.key)
        out.append(record_out)
        ctx.derive(
            kind, structure, code, label, level_code if kind is _CLASS else None, op, provenance
        )

    _guardianships(ctx, record, uais, out)


def _guardianships(ctx: Context, record: RawRecord, uais: tuple[str, ...], out: Output) -> None:
    a = record.attrs
    pupil = record.id
    residence_of = one(a, "ENTEleveAdresseRel")
    links: dict[str, PendingGuardianship] = {}

    def keep(
        guardian: str,
        relation: Relation,
        code: str | None,
        legal: bool | None,
        financial: bool | None,
        contact: bool | None,
        payment: bool | None,
    ) -> None:
        if guardian == pupil and relation is not Relation.PUPIL_SELF:
            ctx.bad_value(
                out,
                record,
                BadValue(
                    guardian,
                    "another person than the pupil (or the relation 7/70, the pupil themself)",
                    "ENTElevePersRelEleve",
                ),
                "link skipped",
            )
            return
        if guardian in links:
            ctx.bad_value(
                out,
                record,
                BadValue(guardian, "each related person once", "ENTElevePersRelEleve"),
                "repeat ignored",
            )
            return
        links[guardian] = PendingGuardianship(
            guardian,
            pupil,
            relation.value,
            code,
            legal,
            financial,
            contact,
            payment,
            (guardian == residence_of) if residence_of else None,
            record.op,
            uais,
            ctx.file,
            record.line,
        )

    values = a.get("ENTElevePersRelEleve")
    if values:
        # Field 3 = 2 under the flag reading (>= VE17xx) is "at most a person in charge"
        # (AAF.md §6.2). A record that also sends the older ENTEleveAutoriteParentale (bare
        # ids: duplicates, VE1711, still writes ranks) says itself who holds parental authority.
        authority = a.get("ENTEleveAutoriteParentale")
        # The older ENTElevePere / ENTEleveMere, when sent too, should agree with the codes.
        fathers = a.get("ENTElevePere")
        mothers = a.get("ENTEleveMere")
        for value in values:
            fields = value.split("$")
            if len(fields) != 6 or not fields[0]:
                ctx.bad_value(
                    out,
                    record,
                    BadValue(
                        value,
                        "relJointure$lien$financier$legal$contact$paiement",
                        "ENTElevePersRelEleve",
                    ),
                    "link skipped",
                )
                continue
            guardian, code, financial, legal, contact, payment = fields
            relation = _relation(ctx, record, code, "ENTElevePersRelEleve", out)
            if fathers and guardian in fathers and relation is not Relation.FATHER:
                _parent_mismatch(ctx, record, "ENTElevePere", guardian, relation, code, out)
            if mothers and guardian in mothers and relation is not Relation.MOTHER:
                _parent_mismatch(ctx, record, "ENTEleveMere", guardian, relation, code, out)
            ranks = ranks_for(ctx.version, code)
            try:
                is_legal: bool | None = legal_flag(legal, ranks, "ENTElevePersRelEleve")
            except BadValue as error:
                ctx.bad_value(out, record, error, "legal flag left empty")
                is_legal = None
            if legal == "2" and not ranks and authority:
                is_legal = guardian in authority
            flags = []
            for flag in (financial, contact, payment):
                parsed = _FLAGS.get(flag)
                if parsed is None:
                    ctx.bad_value(
                        out,
                        record,
                        BadValue(flag, "0 or 1", "ENTElevePersRelEleve"),
                        "flag left empty",
                    )
                flags.append(parsed)
            keep(guardian, relation, code, is_legal, flags[0], flags[1], flags[2])
    else:
        # 1D `rel$code` (the only link of 1D); legacy 2D: bare ids (AAF.md §6.3).
        legacy: list[str] = []
        for value in a.get("ENTEleveAutoriteParentale", ()):
            if "$" not in value:
                legacy.append(value)
                continue
            try:
                guardian, code = parse_dollar(value, 2, "ENTEleveAutoriteParentale")
            except BadValue as error:
                ctx.bad_value(out, record, error, "link skipped")
                continue
            relation = _relation(ctx, record, code, "ENTEleveAutoriteParentale", out)
            keep(guardian, relation, code, True, None, None, None)
        if legacy or any(a.get(name) for name in _LEGACY_LINKS):
            for named in _legacy_links(a, pupil, legacy):
                keep(*named)

    for link in links.values():
        ctx.add_guardianship(link)


def _parent_mismatch(
    ctx: Context,
    record: RawRecord,
    attribute: str,
    guardian: str,
    relation: Relation,
    code: str,
    out: Output,
) -> None:
    """Report a link whose relation code the record's ENTElevePere / ENTEleveMere contradicts
    (duplicates, VE1711: code 1, father, for the person ENTEleveMere names). The code is kept:
    ENTElevePersRelEleve is authoritative (AAF.md §6.3)."""
    ctx.warn(
        out,
        "link-mismatch",
        f"{attribute} names {guardian}, whose ENTElevePersRelEleve relation code {code!r}"
        f" means {relation.value}; the relation code is kept",
        ctx.provenance(record),
    )


def _relation(ctx: Context, record: RawRecord, code: str, attribute: str, out: Output) -> Relation:
    """The relation a code of ``attribute`` stands for; unknown, with a warning, for a code
    that is none (AAF.md §6.1)."""
    relation = RELATIONS.get(code)
    if relation is None:
        ctx.bad_value(
            out,
            record,
            BadValue(code, "a relation code (AAF.md §6.1)", attribute),
            "relation unknown",
        )
        return Relation.UNKNOWN
    return relation


#: The 2D link attributes older than ``ENTElevePersRelEleve`` besides the parental authority.
_LEGACY_LINKS = (
    "ENTElevePere",
    "ENTEleveMere",
    "ENTEleveParents",
    "ENTElevePersRelEleve1",
    "ENTElevePersRelEleve2",
)
#: ``ENTEleveQualitePersRelEleve1/2`` -> the flag it sets (financial, contact, payment).
_QUALITIES = {"FINANCIER": 0, "CONTACT": 1, "PAIEMENT": 2}


def _legacy_links(
    a: dict[str, list[str]], pupil: str, authority: list[str]
) -> list[tuple[str, Relation, None, bool | None, bool | None, bool | None, bool | None]]:
    """The links of a 2D record without ``ENTElevePersRelEleve`` (AAF.md §6.3, which gives how
    each legacy attribute derives from it): the father and mother, the other parents, up to two
    non-parent persons qualified ``FINANCIER``/``CONTACT``/``PAIEMENT``, and the persons with
    parental authority. ``legal`` is whether the person is in ``ENTEleveAutoriteParentale``
    (unknown when the record does not send it); a flag no attribute states is unknown."""
    father, mother = one(a, "ENTElevePere"), one(a, "ENTEleveMere")
    found: dict[str, list[bool | None]] = {}
    order = [*authority]
    for name in ("ENTElevePere", "ENTEleveMere", "ENTEleveParents"):
        order.extend(a.get(name, ()))
    for person, qualities in (
        ("ENTElevePersRelEleve1", "ENTEleveQualitePersRelEleve1"),
        ("ENTElevePersRelEleve2", "ENTEleveQualitePersRelEleve2"),
    ):
        other = one(a, person)
        if other is None:
            continue
        order.append(other)
        flags = found.setdefault(other, [None, None, None])
        for quality in a.get(qualities, ()):
            index = _QUALITIES.get(quality.upper())
            if index is not None:
                flags[index] = True
    sent = "ENTEleveAutoriteParentale" in a
    legal = set(authority)
    result = []
    for guardian in dict.fromkeys(order):
        if guardian == pupil:
            relation = Relation.PUPIL_SELF
        elif guardian == father:
            relation = Relation.FATHER
        elif guardian == mother:
            relation = Relation.MOTHER
        else:
            relation = Relation.UNKNOWN
        financial, contact, payment = found.get(guardian, (None, None, None))
        is_legal = (guardian in legal) if sent else None
        result.append((guardian, relation, None, is_legal, financial, contact, payment))
    return result


# -- related persons -----------------------------------------------------------------------


def map_relative(ctx: Context, record: RawRecord, out: Output) -> None:
    if record.op == "delete":
        _delete_person(ctx, record, out)
        return
    key = record.id
    links, claimed = ctx.links_of(key)
    uais: dict[str, None] = {}
    for link in links:
        uais.update(dict.fromkeys(link.structures))
    # A guardian's structures are those of their pupils. When none of them is in a delta (or
    # in an incomplete complet), the delivery cannot tell: the store keeps what it knows. When
    # only some are (the guardian's own list of pupils names others, or is absent), their UAIs
    # are a floor: the store adds them to those it has, and the next Complet sets them all.
    structures = tuple(uais) if links or not ctx.partial_view else None
    listed = record.attrs.get("ENTAuxPersRelEleveEleve")
    linked = {link.pupil for link in links} if listed else set()
    floor = ctx.partial_view and bool(links)
    if floor and listed:
        floor = not linked.issuperset(listed)
    out.append(
        NeutralRecord(
            _PERSON,
            key,
            _person_data(ctx, record, out),
            {},
            ((_JOIN_ID, one(record.attrs, "ENTPersonJointure") or key),),
            structures,
            op=record.op,
            provenance=ctx.provenance(record),
            structures_floor=floor,
        )
    )
    out.extend(ctx.guardianship(link) for link in claimed)
    if listed:
        # AAF.md §6.4: links come from the pupil side; the reverse list is only a check.
        missing = linked.difference(listed)
        if missing:
            ctx.warn(
                out,
                "link-mismatch",
                f"pupils {', '.join(sorted(missing))} name this person, who does not list"
                " them in ENTAuxPersRelEleveEleve; the pupils' links are kept",
                ctx.provenance(record),
            )


# -- staff -------------------------------------------------------------------------------------


def map_staff(ctx: Context, record: RawRecord, out: Output) -> None:
    if record.op == "delete":
        _delete_person(ctx, record, out)
        return
    a = record.attrs
    key = record.id
    op = record.op
    provenance = ctx.provenance(record)

    functions: list[tuple[str, str | None, str | None, str | None, str | None]] = []
    for value in a.get("ENTPersonFonctions", ()):
        fields = value.split("$")
        if len(fields) != 5 or not fields[0]:
            ctx.bad_value(
                out,
                record,
                BadValue(
                    value,
                    "5 `$`-separated fields (structure$function$label$discipline$label)",
                    "ENTPersonFonctions",
                ),
                "function skipped",
            )
            continue
        functions.append(
            (
                fields[0],
                None if fields[1] in _NONE_CODES else fields[1],
                fields[2] or None,
                None if fields[3] in _NONE_CODES else fields[3],
                fields[4] or None,
            )
        )
    directs = a.get("ENTEnsFonctionDir") or []
    attachment = one(a, "ENTPersonStructRattach")

    teaching: list[tuple[EntityKind, str, str, str, str | None]] = []
    for attribute, kind in (
        ("ENTAuxEnsClassesMatieres", _CLASS),
        ("ENTAuxEnsGroupesMatieres", _GROUP),
    ):
        for value in a.get(attribute, ()):
            fields = value.split("$")
            if len(fields) == 3 and fields[0] and fields[1]:
                teaching.append((kind, fields[0], fields[1], _TEACHES, fields[2] or None))
            elif len(fields) == 2 and fields[0] and fields[1]:
                # springboard VE1711 fixture: `42$1TES 2`; the link is clear, the subject absent.
                ctx.bad_value(
                    out,
                    record,
                    BadValue(value, "structJointure$code$subjectCode", attribute),
                    "link kept without a subject",
                )
                teaching.append((kind, fields[0], fields[1], _TEACHES, None))
            else:
                ctx.bad_value(
                    out,
                    record,
                    BadValue(value, "structJointure$code$subjectCode", attribute),
                    "value skipped",
                )
    ctx.check_codes("MatiereEducNat", [t[4] for t in teaching if t[4]], record, out)
    # The older 2-field links (AAF.md §7.1: a fallback) count for the classes and groups that no
    # link with a subject names: a record may give the subjects of some classes only.
    with_subject = {(kind, structure, code) for kind, structure, code, *_ in teaching}
    for attribute, kind in (("ENTAuxEnsClasses", _CLASS), ("ENTAuxEnsGroupes", _GROUP)):
        if attribute in a:
            for structure, code in _pairs(ctx, record, attribute, out):
                if (kind, structure, code) not in with_subject:
                    teaching.append((kind, structure, code, _TEACHES, None))
    if "ENTAuxEnsClassesPrincipal" in a:
        for structure, code in _pairs(ctx, record, "ENTAuxEnsClassesPrincipal", out):
            teaching.append((_CLASS, structure, code, _HEAD_TEACHER, None))

    structure_keys: list[str] = [attachment] if attachment else []
    for item in functions:
        if item[0] not in structure_keys:
            structure_keys.append(item[0])
    for structure in directs:
        if structure not in structure_keys:
            structure_keys.append(structure)
    for _kind, structure, _code, _role_name, _subject in teaching:
        if structure not in structure_keys:
            structure_keys.append(structure)
    uais = ctx.uais_of(structure_keys, record, out)

    # ENTPersonSTSId (AAF.md §4.4) is kept under its own name: that it is STS-web's
    # INDIVIDU@ID is likely but not established, so it is not typed as STS's id.
    external: tuple[tuple[str, str], ...] = ((_JOIN_ID, one(a, "ENTPersonJointure") or key),)
    for sts_id in a.get("ENTPersonSTSId", ()):
        external += ((_STS_ID, sts_id),)
    out.append(
        NeutralRecord(
            _PERSON,
            key,
            _person_data(ctx, record, out),
            {},
            external,
            uais,
            op=op,
            provenance=provenance,
        )
    )

    # AAF.md §7.4 (entcore's rule): a teacher by category, by presence before pupils, or by an
    # ENS/DOC function.
    is_teacher = (
        one(a, "ENTPersonCategorieEnseignant") in ("O", "o")
        or one(a, "PersEducNatPresenceDevantEleves") in ("O", "o")
        or any(f[1] in _TEACHING_FUNCTIONS for f in functions)
    )
    uai_of = ctx.uais.get
    person = Ref(_PERSON, key)
    first_degree = ctx.degree == "1d"
    roles: dict[str, NeutralRecord] = {}
    covered: set[str] = set()
    headed: set[str] = set()
    # Structures the person runs: 2D ENTEnsFonctionDir; 1D school directors, which
    # ENTEnsFonctionDir names (AAF.md §5.4). A 1D function whose speciality is DIRECTION
    # (`ENS$ENSEIGNEMENT$D0000$DIRECTION`) counts only in a record without that attribute: in
    # besancon-1d, which sends it in every record, 25 holders of the speciality are not listed
    # there, and counting them gave 18 schools several directors (1 with the attribute alone).
    leads: dict[str, None] = dict.fromkeys(directs)
    by_speciality = first_degree and "ENTEnsFonctionDir" not in a
    for structure, fcode, flabel, dcode, dlabel in functions:
        direction = fcode == "DIR" or (dlabel is not None and dlabel in _DIRECTION_LABELS)
        if direction and not first_degree:
            role = _HEAD
            headed.add(structure)
        elif fcode == "ENS" or (is_teacher and fcode not in _NON_TEACHING_FUNCTIONS):
            role = _TEACHER
        else:
            role = _STAFF
        if direction and by_speciality:
            leads[structure] = None
        made = _role(
            person,
            structure,
            role,
            uai_of(structure) or None,
            op,
            provenance,
            (fcode, flabel, dcode, dlabel),
        )
        roles.setdefault(made.key, made)
        covered.add(structure)
    leader = _DIRECTOR if first_degree else _HEAD
    for structure in leads:
        if structure in headed:
            continue
        made = _role(person, structure, leader, uai_of(structure) or None, op, provenance)
        roles.setdefault(made.key, made)
        covered.add(structure)
    if attachment and attachment not in covered:
        role = _TEACHER if is_teacher else _STAFF
        made = _role(person, attachment, role, uai_of(attachment) or None, op, provenance)
        roles.setdefault(made.key, made)
    out.extend(roles.values())

    seen: set[str] = set()
    for kind, structure, code, role, subject in teaching:
        made = _enrollment(
            person, kind, structure, code, role, subject, uai_of(structure) or None, op, provenance
        )
        if made.key in seen:
            continue
        seen.add(made.key)
        out.append(made)
        ctx.derive(kind, structure, code, None, None, op, provenance)
