"""A tiny académie written as neutral records, to test the store and the sync engine alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from annuaire.schema import EntityKind, NeutralRecord, Provenance, Ref, StreamItem
from annuaire.schema.records import RecordOp

UAI = "0770001A"


def structure(op: RecordOp = "add", name: str = "COLLEGE DU TEST") -> NeutralRecord:
    return NeutralRecord(
        EntityKind.STRUCTURE,
        "S1",
        data={"uai": UAI, "name": name, "kind": "college", "degree": "2d"},
        external_ids=(("uai", UAI), ("aaf:ENTStructureJointure", "S1")),
        structures=(UAI,),
        op=op,
        provenance=Provenance("toy_EtabEducNat.xml", 1, "S1"),
    )


def school_class(code: str) -> NeutralRecord:
    return NeutralRecord(
        EntityKind.CLASS,
        f"S1${code}",
        data={"code": code, "label": f"classe {code}"},
        refs={"structure_id": Ref(EntityKind.STRUCTURE, "S1")},
        structures=(UAI,),
        owner=Ref(EntityKind.STRUCTURE, "S1"),
    )


def pupil(
    n: int, op: RecordOp = "add", class_code: str | None = None, name: str | None = None
) -> list[NeutralRecord]:
    """A pupil, their role, class enrollment and one guardianship (to guardian ``G<n>``)."""
    key = f"P{n}"
    owner = Ref(EntityKind.PERSON, key)
    code = class_code or f"C{n // 10}"
    provenance = Provenance("toy_Eleve.xml", n + 1, key)
    return [
        NeutralRecord(
            EntityKind.PERSON,
            key,
            data={
                "usage_name": name or f"NOM{n}",
                "first_name": f"Prenom{n}",
                "birth_date": dt.date(2012, 1, 1) + dt.timedelta(days=n),
                "other_first_names": ["Deux"],
            },
            external_ids=(("aaf:ENTPersonJointure", key), ("ine", f"{n:010d}X")),
            structures=(UAI,),
            op=op,
            provenance=provenance,
        ),
        NeutralRecord(
            EntityKind.ROLE,
            f"{key}|S1|pupil",
            data={"role": "pupil"},
            refs={"person_id": owner, "structure_id": Ref(EntityKind.STRUCTURE, "S1")},
            structures=(UAI,),
            owner=owner,
            op=op,
            provenance=provenance,
        ),
        NeutralRecord(
            EntityKind.ENROLLMENT,
            f"{key}|class|S1${code}|pupil",
            data={"role": "pupil"},
            refs={
                "person_id": owner,
                "structure_id": Ref(EntityKind.STRUCTURE, "S1"),
                "class_id": Ref(EntityKind.CLASS, f"S1${code}"),
            },
            structures=(UAI,),
            owner=owner,
            op=op,
            provenance=provenance,
        ),
        NeutralRecord(
            EntityKind.GUARDIANSHIP,
            f"G{n}|{key}",
            data={"relation": "mother", "relation_code": "10", "legal": True},
            refs={"guardian_id": Ref(EntityKind.PERSON, f"G{n}"), "pupil_id": owner},
            structures=(UAI,),
            owner=owner,
            op=op,
            provenance=provenance,
        ),
    ]


def guardian(n: int, op: RecordOp = "add") -> NeutralRecord:
    return NeutralRecord(
        EntityKind.PERSON,
        f"G{n}",
        data={
            "usage_name": f"PARENT{n}",
            "first_name": "Camille",
            "phone_mobile": "+33 6 00 00 00 00",
        },
        external_ids=(("aaf:ENTPersonJointure", f"G{n}"),),
        structures=(UAI,),
        op=op,
        provenance=Provenance("toy_PersRelEleve.xml", n + 1, f"G{n}"),
    )


def academie(
    pupils: Iterable[int],
    renamed: dict[int, str] | None = None,
    classes_of: Iterable[int] | None = None,
) -> Iterator[StreamItem]:
    """A complet: the structure, its classes (those of ``classes_of``, by default of the
    pupils), the pupils with their guardians."""
    numbers = sorted(pupils)
    renamed = renamed or {}
    yield structure()
    for code in sorted({f"C{n // 10}" for n in (numbers if classes_of is None else classes_of)}):
        yield school_class(code)
    for n in numbers:
        yield from pupil(n, name=renamed.get(n))
        yield guardian(n)


def entity_count(pupils: int) -> int:
    """Entities ``academie(range(pupils))`` yields."""
    return 1 + len({n // 10 for n in range(pupils)}) + 5 * pupils
