"""In-memory state of a synthetic académie: compact, immutable records keyed by join key.

A state is what one Complet export describes. Records are frozen; a delta copies the dicts of a
:class:`DegreeState` and replaces the records it changes, so two states can be diffed by
rendering both. Derived values (reverse links, a pupil's address, subject lists, INE) are not
stored: the renderer computes them, which keeps every cross-reference consistent by construction.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

__all__ = [
    "AcademieState",
    "DegreeState",
    "Function",
    "Group",
    "Guardian",
    "Link",
    "Pupil",
    "SchoolClass",
    "Service",
    "Staff",
    "Structure",
]

# (guardian join key, relation code, flags): 2D flags are "fin$legal$contact$paiement",
# 1D flags are empty (ENTEleveAutoriteParentale carries the relation code only).
Link = tuple[int, str, str]
# (structure join key, function code, label, discipline code, discipline label)
Function = tuple[int, str, str, str, str]
# (structure join key, class or group code, subject code, is a group)
Service = tuple[int, str, str, bool]


@dataclass(frozen=True, slots=True)
class SchoolClass:
    code: str  # 2D class code ("3A"); 1D numeric class id
    label: str
    levels: tuple[str, ...]  # 2D: one level key; 1D: the levels of a (multi-level) class


@dataclass(frozen=True, slots=True)
class Group:
    code: str
    label: str
    classes: tuple[str, ...]
    subject: str
    level: str
    option: str
    tag: str


@dataclass(frozen=True, slots=True)
class Structure:
    jointure: int
    uai: str
    siret: str
    kind: str  # a KINDS_2D / KINDS_1D key, or "IEN"
    contract: str  # PU / PR
    name: str
    commune: int  # index in the commune list
    street: str
    phone: str
    fax: str
    area: str  # 2D ENTEtablissementBassin
    district: str  # 1D ENTEcoleCirconscription
    classes: tuple[SchoolClass, ...] = ()
    groups: tuple[Group, ...] = ()


@dataclass(frozen=True, slots=True)
class Pupil:
    id: int
    female: bool
    surname: str
    birth_surname: str
    given: str
    other_given: tuple[str, ...]
    birth: int  # proleptic Gregorian ordinal
    structure: int
    class_code: str
    level: str
    tags: tuple[str, ...]  # 2D option tags, in option order
    groups: tuple[str, ...]  # 2D group codes
    links: tuple[Link, ...]
    residence: int  # guardian whose address is the pupil's (2D ENTEleveAdresseRel)
    entry: int  # ordinal of the entry in the class
    regime: str  # 2D
    scholarship: bool  # 2D
    transport: bool
    canteen: bool  # 1D periscolaire flags
    morning_care: bool
    evening_care: bool
    study: bool


@dataclass(frozen=True, slots=True)
class Guardian:
    id: int
    female: bool
    title: str
    surname: str
    birth_surname: str
    given: str
    other_given: tuple[str, ...]
    home_phone: str
    work_phone: str
    mobile: str
    sms: str
    mail: str
    address: str  # four `$`-separated lines
    commune: int
    diffusion: bool


@dataclass(frozen=True, slots=True)
class Staff:
    id: int
    female: bool
    title: str
    surname: str
    birth_surname: str
    given: str
    other_given: tuple[str, ...]
    birth: int
    mail: str
    structure: int | None  # ENTPersonStructRattach; None for unattached staff
    functions: tuple[Function, ...]
    services: tuple[Service, ...] = ()
    head_of: tuple[tuple[int, str], ...] = ()
    director_of: tuple[int, ...] = ()
    teacher: bool = False  # ENTPersonCategorieEnseignant
    in_class: bool = False  # PersEducNatPresenceDevantEleves


@dataclass(slots=True)
class DegreeState:
    degree: str  # "1D" or "2D"
    structures: dict[int, Structure] = field(default_factory=dict)
    pupils: dict[int, Pupil] = field(default_factory=dict)
    guardians: dict[int, Guardian] = field(default_factory=dict)
    staff: dict[int, Staff] = field(default_factory=dict)
    next_person: int = 0

    def copy(self) -> DegreeState:
        """A new state sharing the (immutable) records."""
        return DegreeState(
            self.degree,
            dict(self.structures),
            dict(self.pupils),
            dict(self.guardians),
            dict(self.staff),
            self.next_person,
        )


@dataclass(slots=True)
class AcademieState:
    academie: str
    academie_code: str
    date: datetime.date
    degrees: dict[str, DegreeState] = field(default_factory=dict)  # "2D" before "1D"
