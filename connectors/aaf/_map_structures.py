"""EtabEducNat, MatiereEducNat and MefEducNat records -> STRUCTURE, CLASS, GROUP, SUBJECT, LEVEL."""

from __future__ import annotations

from annuaire.schema import EntityKind, NeutralRecord, Ref, StructureKind

from ._context import Context, Output, one
from ._values import BadValue, parse_dollar
from ._xml import RawRecord

__all__ = ["map_mef", "map_structure", "map_subject", "structure_kind"]

_STRUCTURE = EntityKind.STRUCTURE
_SECTORS = frozenset(("PU", "PR"))

_LABEL_KINDS = (
    ("ECOLE", StructureKind.ECOLE),
    ("COLLEGE", StructureKind.COLLEGE),
    ("LYCEE", StructureKind.LYCEE),
    ("INSPECTION", StructureKind.SERVICE),
    ("SERVICE", StructureKind.SERVICE),
    ("RECTORAT", StructureKind.SERVICE),
    ("CENTRE D INFORMATION", StructureKind.SERVICE),
)
_NAME_PREFIXES = (
    (("E.E.", "E.M.", "E.P.", "ECOLE "), StructureKind.ECOLE),
    (("CLG",), StructureKind.COLLEGE),
    (("LYC", "LP ", "LPO", "LGT", "LEGT"), StructureKind.LYCEE),
    (("SCE ", "IEN", "I.A.", "IA ", "RECTORAT", "D.S.D.E", "CIO"), StructureKind.SERVICE),
)


def structure_kind(type_label: str | None, type_code: str | None, name: str | None) -> str:
    """ecole / college / lycee / service / other, from the nature label, code or name prefix."""
    label = (type_label or "").upper()
    for word, kind in _LABEL_KINDS:
        if word in label:
            return kind.value
    if type_code and type_code.isdigit():
        code = int(type_code)
        if 100 <= code < 200:
            return StructureKind.ECOLE.value
        if code in (340, 350, 352):
            return StructureKind.COLLEGE.value
        if 300 <= code < 340:
            return StructureKind.LYCEE.value
    upper = (name or "").upper()
    for prefixes, kind in _NAME_PREFIXES:
        if upper.startswith(prefixes):
            return kind.value
    return StructureKind.OTHER.value


def _delete(kind: EntityKind, key: str, ctx: Context, record: RawRecord, out: Output) -> None:
    out.append(NeutralRecord(kind, key, op="delete", provenance=ctx.provenance(record)))


def map_structure(ctx: Context, record: RawRecord, out: Output) -> None:
    key = record.id
    if ctx.structures_read is None:
        ctx.structures_read = set()
    ctx.structures_read.add(key)
    if record.op == "delete":
        _delete(_STRUCTURE, key, ctx, record, out)
        return
    a = record.attrs
    provenance = ctx.provenance(record)
    uai = one(a, "ENTStructureUAI") or one(a, "ENTEtablissementUAI")
    ctx.uais[key] = uai or ""

    raw_name = one(a, "ENTStructureNomCourant")
    name = raw_name
    type_token = raw_name
    if raw_name is not None and "$" in raw_name:
        try:
            kind_token, own_name, city = parse_dollar(raw_name, 3, "ENTStructureNomCourant")
            name = own_name or " ".join(x for x in (kind_token, city) if x)
            type_token = kind_token
        except BadValue as error:
            ctx.bad_value(out, record, error, "kept as the name")
    type_label = one(a, "ENTStructureTypeStruct")
    type_code = one(a, "ENTStructureCodeTypeStruct")
    sector = one(a, "ENTEtablissementContrat")
    if sector is not None and sector not in _SECTORS:
        problem = BadValue(sector, "PU or PR", "ENTEtablissementContrat")
        ctx.bad_value(out, record, problem, "sector left empty")
        sector = None
    parent = one(a, "ENTEtablissementStructRattachFctl")
    join = one(a, "ENTStructureJointure") or key
    out.append(
        NeutralRecord(
            _STRUCTURE,
            key,
            {
                "uai": uai,
                "name": name or uai or key,
                "kind": structure_kind(type_label, type_code, type_token),
                "type_label": type_label,
                "type_code": type_code,
                "degree": ctx.degree,
                "sector": sector,
                "academie": one(a, "ENTServAcCodeAcademie"),
                "academie_name": one(a, "ENTServAcAcademie"),
                "ministry": one(a, "ENTEtablissementMinistereTutelle"),
                "siret": one(a, "ENTStructureSIREN"),
                "street": one(a, "street"),
                "postal_code": one(a, "postalCode"),
                "city": one(a, "l"),
                "phone": one(a, "telephoneNumber"),
                "email": one(a, "ENTStructureMailSI"),
            },
            {"parent_id": Ref(_STRUCTURE, parent) if parent else None},
            (("aaf:ENTStructureJointure", join), ("uai", uai))
            if uai
            else (("aaf:ENTStructureJointure", join),),
            (uai,) if uai else (),
            op=record.op,
            provenance=provenance,
        )
    )

    structures = (uai,) if uai else ()
    structure_ref = Ref(_STRUCTURE, key)
    declared_classes = ctx.declared[EntityKind.CLASS]
    for value in a.get("ENTStructureClasses", ()):
        try:
            code, label, *mefs = parse_dollar(value, (3, None), "ENTStructureClasses")
        except BadValue as error:
            ctx.bad_value(out, record, error, "class skipped")
            continue
        class_key = f"{key}${code}"
        declared_classes.add(class_key)
        level_codes = [m for m in mefs if m]
        ctx.defer_codes("MefEducNat", level_codes, record)
        out.append(
            NeutralRecord(
                EntityKind.CLASS,
                class_key,
                {"code": code, "label": label or None, "level_codes": level_codes},
                {"structure_id": structure_ref},
                structures=structures,
                owner=structure_ref,
                op=record.op,
                provenance=provenance,
            )
        )
    declared_groups = ctx.declared[EntityKind.GROUP]
    for value in a.get("ENTStructureGroupes", ()):
        try:
            code, label, *classes = parse_dollar(value, (3, None), "ENTStructureGroupes")
        except BadValue as error:
            ctx.bad_value(out, record, error, "group skipped")
            continue
        group_key = f"{key}${code}"
        declared_groups.add(group_key)
        out.append(
            NeutralRecord(
                EntityKind.GROUP,
                group_key,
                {"code": code, "label": label or None},
                {
                    "structure_id": structure_ref,
                    "class_ids": [Ref(EntityKind.CLASS, f"{key}${c}") for c in classes if c],
                },
                structures=structures,
                owner=structure_ref,
                op=record.op,
                provenance=provenance,
            )
        )


def map_subject(ctx: Context, record: RawRecord, out: Output) -> None:
    if record.op == "delete":
        _delete(EntityKind.SUBJECT, record.id, ctx, record, out)
        return
    a = record.attrs
    ctx.codes["MatiereEducNat"].add(record.id)
    out.append(
        NeutralRecord(
            EntityKind.SUBJECT,
            record.id,
            {
                "code": record.id,
                "label": one(a, "ENTLibelleMatiere"),
                "parent_code": one(a, "ENTMatiereRattach"),
            },
            op=record.op,
            provenance=ctx.provenance(record),
        )
    )


def map_mef(ctx: Context, record: RawRecord, out: Output) -> None:
    key = f"mef:{record.id}"
    if record.op == "delete":
        _delete(EntityKind.LEVEL, key, ctx, record, out)
        return
    a = record.attrs
    ctx.codes["MefEducNat"].add(record.id)
    out.append(
        NeutralRecord(
            EntityKind.LEVEL,
            key,
            {
                "code": record.id,
                "label": one(a, "ENTLibelleMef"),
                "kind": "mef",
                "parent_code": one(a, "ENTMEFRattach"),
                "stat_code": one(a, "ENTMEFSTAT11"),
            },
            op=record.op,
            provenance=ctx.provenance(record),
        )
    )
