"""Build the base state of a synthetic académie from (pupil count, seed, degree, date).

2D: collèges and lycées of about 600 pupils, classes of 24–33, option groups spanning blocks of
classes, teachers sized from weekly hours (a few share two schools), one head teacher per
class, direction, vie scolaire, documentation and administration staff.
1D: écoles maternelles, élémentaires and primaires of about 130 pupils grouped under IEN
circonscriptions, single- and multi-level classes with one teacher each, directors.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from annuaire.schema.uai import uai_check_letter

from ._catalog import (
    BOARDER,
    CIVILITY,
    DISCIPLINES,
    EPONYMS,
    KINDS_1D,
    KINDS_2D,
    LEVELS_1D,
    LEVELS_2D,
    NON_TEACHING_2D,
    PRIVATE_EPONYMS,
    REGIMES,
    SUBJECT_HOURS,
    Level2D,
    Option,
    discipline_for,
)
from ._model import (
    AcademieState,
    DegreeState,
    Function,
    Group,
    Pupil,
    SchoolClass,
    Service,
    Staff,
    Structure,
)
from ._people import Family, PeopleFactory, academic_domain

__all__ = [
    "FIRST_IDS",
    "GroupIndex",
    "apportion",
    "build_state",
    "draw_regime",
    "draw_tags",
    "group_code",
    "new_pupil_1d",
    "new_pupil_2d",
    "new_staff",
    "school_year_of",
]

# Join-key ranges per degree so that a "both" export never collides:
# (first structure, first person, first 1D class id).
FIRST_IDS = {"2D": (4001, 1_000_001, 0), "1D": (20001, 60_000_001, 70001)}
# Mean pupils per structure.
_PUPILS_PER_SCHOOL = {"2D": 600, "1D": 130}
_KIND_SIZE_2D = {"CLG": 1.0, "LGT": 1.5, "LPO": 1.6, "LP": 0.8}
_KIND_WEIGHT_2D = {"CLG": 0.62, "LGT": 0.15, "LPO": 0.10, "LP": 0.13}
_KIND_WEIGHT_1D = {"EM": 0.30, "EE": 0.35, "EP": 0.35}
_TEACHER_HOURS = 18.0


def school_year_of(date: datetime.date) -> int:
    """The calendar year of the rentrée of the school year containing ``date``."""
    return date.year if date.month >= 9 else date.year - 1


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` proportionally to ``weights`` (largest remainder, ties by position)."""
    mass = sum(weights)
    shares = [total * w / mass for w in weights]
    counts = [math.floor(s) for s in shares]
    rest = total - sum(counts)
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - shares[i], i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def group_code(block: Sequence[str], tag: str) -> str:
    """``3A-3B ESP``; a block of one class gives ``2COM1 GR1``, of three ``1G1-1G3 SPE-MATH``."""
    span = block[0] if len(block) == 1 else f"{block[0]}-{block[-1]}"
    return f"{span} {tag}"


def draw_tags(rng: random.Random, level: Level2D) -> tuple[str, ...]:
    """The option tags one pupil picks, in option order."""
    tags: list[str] = []
    for option in level.options:
        pool = list(option.choices)
        weights = [w for _, _, w in pool]
        if option.none_weight and rng.random() < option.none_weight / (
            option.none_weight + sum(weights)
        ):
            continue
        for _ in range(min(option.picks, len(pool))):
            index = rng.choices(range(len(pool)), weights)[0]
            tags.append(pool[index][0])
            del pool[index], weights[index]
    return tuple(tags)


def draw_regime(rng: random.Random, boarding: float) -> str:
    if rng.random() < boarding:
        return BOARDER
    return rng.choices([r for r, _ in REGIMES], [w for _, w in REGIMES])[0]


def _option_of(level: Level2D, tag: str) -> Option:
    for option in level.options:
        if any(t == tag for t, _, _ in option.choices):
            return option
    raise KeyError(tag)


def _blocks(option: Option, classes: Sequence[str]) -> list[tuple[str, ...]]:
    """Consecutive classes of a level taught together for ``option``."""
    return [tuple(classes[i : i + option.block]) for i in range(0, len(classes), option.block)]


class GroupIndex:
    """Which group a pupil of a given class joins for a given tag, among existing groups."""

    def __init__(self, structure: Structure) -> None:
        self._by_class: dict[tuple[str, str], dict[str, str]] = {}
        for group in structure.groups:
            for class_code in group.classes:
                key = (class_code, group.option)
                self._by_class.setdefault(key, {})[group.tag] = group.code

    def fit(
        self, rng: random.Random, level: Level2D, class_code: str, tags: Sequence[str]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Keep the tags whose group exists for ``class_code``; replace or drop the others."""
        kept_tags: list[str] = []
        codes: list[str] = []
        for option in level.options:
            wanted = [t for t in tags if any(t == c for c, _, _ in option.choices)]
            existing = self._by_class.get((class_code, option.name), {})
            for tag in wanted:
                if tag in existing and tag not in kept_tags:
                    kept_tags.append(tag)
                    codes.append(existing[tag])
                    continue
                spare = [t for t in existing if t not in kept_tags]
                if spare:
                    choice = rng.choice(spare)
                    kept_tags.append(choice)
                    codes.append(existing[choice])
        return tuple(kept_tags), tuple(codes)


def _siret(rng: random.Random, head: str) -> str:
    """A 14-digit SIRET starting with ``head``, with a valid Luhn key."""
    body = head + "".join(str(rng.randrange(10)) for _ in range(13 - len(head)))
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return body + str((10 - total % 10) % 10)


def _uai(rng: random.Random, dept: str, taken: set[str]) -> str:
    while True:
        digits = f"0{dept}{rng.randrange(10000):04d}"
        uai = digits + uai_check_letter(digits)
        if uai not in taken:
            taken.add(uai)
            return uai


def new_pupil_2d(
    factory: PeopleFactory,
    structure: Structure,
    class_code: str,
    level: Level2D,
    family: Family,
    tags: tuple[str, ...],
    groups: tuple[str, ...],
    entry: int,
    boarding: float,
) -> Pupil:
    rng = factory.rng
    female = rng.random() < 0.5
    given = factory.given(female)
    return Pupil(
        id=factory.take_id(),
        female=female,
        surname=family.surname,
        birth_surname=family.surname,
        given=given,
        other_given=factory.other_given(given, female),
        birth=factory.birth_for_offset(level.birth_offset),
        structure=structure.jointure,
        class_code=class_code,
        level=level.key,
        tags=tags,
        groups=groups,
        links=family.links,
        residence=family.residence,
        entry=entry,
        regime=draw_regime(rng, boarding),
        scholarship=rng.random() < 0.25,
        transport=rng.random() < 0.2,
        canteen=False,
        morning_care=False,
        evening_care=False,
        study=False,
    )


def new_pupil_1d(
    factory: PeopleFactory,
    structure: Structure,
    school_class: SchoolClass,
    level_key: str,
    family: Family,
    entry: int,
) -> Pupil:
    rng = factory.rng
    female = rng.random() < 0.5
    given = factory.given(female)
    elementary = LEVELS_1D[level_key].cycle != "1$CYCLE I"
    return Pupil(
        id=factory.take_id(),
        female=female,
        surname=family.surname,
        birth_surname=family.surname,
        given=given,
        other_given=(given,) if rng.random() < 0.7 else factory.other_given(given, female),
        birth=factory.birth_for_offset(LEVELS_1D[level_key].birth_offset),
        structure=structure.jointure,
        class_code=school_class.code,
        level=level_key,
        tags=(),
        groups=(),
        links=family.links,
        residence=family.residence,
        entry=entry,
        regime="",
        scholarship=False,
        transport=rng.random() < 0.1,
        canteen=rng.random() < 0.7,
        morning_care=rng.random() < 0.25,
        evening_care=rng.random() < 0.3,
        study=elementary and rng.random() < 0.15,
    )


def new_staff(
    factory: PeopleFactory,
    structure: int | None,
    functions: tuple[Function, ...],
    *,
    teacher: bool,
    in_class: bool,
    services: tuple[Service, ...] = (),
    head_of: tuple[tuple[int, str], ...] = (),
    director_of: tuple[int, ...] = (),
) -> Staff:
    rng = factory.rng
    female = rng.random() < (0.7 if teacher else 0.6)
    surname = factory.surname()
    birth_surname = factory.surname() if female and rng.random() < 0.4 else surname
    given = factory.given(female)
    return Staff(
        id=factory.take_id(),
        female=female,
        title=CIVILITY[female],
        surname=surname,
        birth_surname=birth_surname,
        given=given,
        other_given=factory.other_given(given, female),
        birth=factory.adult_birth(),
        mail=factory.staff_mail(given, surname) if rng.random() < 0.97 else "",
        structure=structure,
        functions=functions,
        services=services,
        head_of=head_of,
        director_of=director_of,
        teacher=teacher,
        in_class=in_class,
    )


@dataclass(slots=True)
class _TeacherDraft:
    """A 2D teacher while schools are being staffed (may gain a second school)."""

    structure: int
    functions: list[Function]
    services: list[Service] = field(default_factory=list)
    head_of: list[tuple[int, str]] = field(default_factory=list)


class _Builder:
    def __init__(
        self,
        rng: random.Random,
        degree: str,
        date: datetime.date,
        academie: str,
        taken_mails: set[str],
        taken_uai: set[str],
    ) -> None:
        first_structure, first_person, first_class = FIRST_IDS[degree]
        self.rng = rng
        self.degree = degree
        self.state = DegreeState(degree)
        self.next_structure = first_structure
        self.next_class = first_class
        self.taken_uai = taken_uai
        self.factory = PeopleFactory(
            rng,
            school_year=school_year_of(date),
            next_id=first_person,
            staff_domain=academic_domain(academie),
            taken_mails=taken_mails,
        )
        self.rentree = datetime.date(school_year_of(date), 9, 1).toordinal()

    def take_structure(self) -> int:
        value = self.next_structure
        self.next_structure += 1
        return value

    def _kinds(self, count: int, first: Sequence[str], weights: dict[str, float]) -> list[str]:
        kinds = list(first[:count])
        keys = list(weights)
        while len(kinds) < count:
            kinds.append(self.rng.choices(keys, [weights[k] for k in keys])[0])
        return kinds

    def _place(self, dept: str | None = None) -> tuple[int, str, str, str]:
        """Commune index, street, phone, fax of a new structure (in ``dept`` if given)."""
        rng = self.rng
        factory = self.factory
        if dept is None:
            commune = rng.randrange(len(factory.book.communes))
        else:
            commune = rng.choice(factory.book.by_dept[dept])
        street = f"{rng.randint(1, 80)} {rng.choice(_STRUCTURE_STREETS)}"
        fax = factory.landline(commune) if rng.random() < 0.5 else ""
        return commune, street, factory.landline(commune), fax

    # -- 2D -----------------------------------------------------------------------------------
    def build_2d(self, pupils: int) -> DegreeState:
        rng = self.rng
        count = max(1, round(pupils / _PUPILS_PER_SCHOOL["2D"]))
        kinds = self._kinds(count, ("CLG", "LGT", "LP"), _KIND_WEIGHT_2D)
        weights = [_KIND_SIZE_2D[k] * rng.uniform(0.6, 1.4) for k in kinds]
        sizes = [1 + n for n in apportion(pupils - count, weights)] if pupils >= count else []
        pool: dict[str, list[_TeacherDraft]] = {}
        drafts: list[_TeacherDraft] = []
        for kind, size in zip(kinds, sizes, strict=True):
            self._school_2d(kind, size, pool, drafts)
        for draft in drafts:
            staff = new_staff(
                self.factory,
                draft.structure,
                tuple(draft.functions),
                teacher=True,
                in_class=True,
                services=tuple(draft.services),
                head_of=tuple(draft.head_of),
            )
            self.state.staff[staff.id] = staff
        self.state.next_person = self.factory.next_id
        return self.state

    def _school_2d(
        self,
        kind_key: str,
        size: int,
        pool: dict[str, list[_TeacherDraft]],
        drafts: list[_TeacherDraft],
    ) -> None:
        rng = self.rng
        factory = self.factory
        kind = KINDS_2D[kind_key]
        jointure = self.take_structure()
        commune, street, phone, fax = self._place()
        place = factory.book.communes[commune]
        private = rng.random() < (0.1 if kind_key == "LP" else 0.18)
        if private:
            name = f"{kind.name_prefix} PRIVE {rng.choice(PRIVATE_EPONYMS)}"
        else:
            name = f"{kind.name_prefix} {rng.choice(EPONYMS)}"
        uai = _uai(rng, place.dept, self.taken_uai)
        siret = _siret(rng, "19" + uai[:7]) if rng.random() < 0.9 else ""

        # Classes per level.
        level_weights = [w * rng.uniform(0.9, 1.1) for w in kind.level_weights]
        per_level = apportion(size, level_weights)
        classes: list[SchoolClass] = []
        seats: list[tuple[Level2D, str, int]] = []
        level_classes: dict[str, list[str]] = {}
        for level_key, count in zip(kind.levels, per_level, strict=True):
            if count == 0:
                continue
            level = LEVELS_2D[level_key]
            n_classes = max(1, math.ceil(count / level.capacity))
            codes = []
            for index, class_size in enumerate(apportion(count, [1.0] * n_classes)):
                lettered = level.lettered and index < 26
                suffix = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[index] if lettered else str(index + 1)
                code = f"{level.class_prefix}{suffix}"
                codes.append(code)
                classes.append(SchoolClass(code, level.niv, (level_key,)))
                seats.append((level, code, class_size))
            level_classes[level_key] = codes

        # Option blocks: (class, option) -> block of classes.
        block_of: dict[tuple[str, str], tuple[str, ...]] = {}
        for level_key, codes in level_classes.items():
            level = LEVELS_2D[level_key]
            for option in level.options:
                for block in _blocks(option, codes):
                    for code in block:
                        block_of[(code, option.name)] = block

        structure = Structure(
            jointure=jointure,
            uai=uai,
            siret=siret,
            kind=kind_key,
            contract="PR" if private else "PU",
            name=name,
            commune=commune,
            street=street,
            phone=phone,
            fax=fax,
            area=f"{place.dept}{1 + jointure % 4:03d}$BASSIN DE {place.name}",
            district="",
            classes=tuple(classes),
        )

        # Pupils, their families and option groups.
        used_groups: dict[str, Group] = {}
        families: list[Family] = []
        for level, class_code, class_size in seats:
            for _ in range(class_size):
                family = self._family(families, commune, first_degree=False)
                tags = draw_tags(rng, level)
                codes = []
                for tag in tags:
                    option = _option_of(level, tag)
                    block = block_of[(class_code, option.name)]
                    code = group_code(block, tag)
                    codes.append(code)
                    if code not in used_groups:
                        subject = next(s for t, s, _ in option.choices if t == tag)
                        used_groups[code] = Group(
                            code, "", block, subject, level.key, option.name, tag
                        )
                pupil = new_pupil_2d(
                    factory,
                    structure,
                    class_code,
                    level,
                    family,
                    tags,
                    tuple(codes),
                    self.rentree,
                    kind.boarding,
                )
                self.state.pupils[pupil.id] = pupil
        # Groups in a stable order: by level, option, first class, tag order.
        order = {
            (lv, o.name, t): (i, j, k)
            for i, lv in enumerate(kind.levels)
            for j, o in enumerate(LEVELS_2D[lv].options)
            for k, (t, _, _) in enumerate(o.choices)
        }
        class_rank = {c.code: i for i, c in enumerate(classes)}
        groups = sorted(
            used_groups.values(),
            key=lambda g: (
                order[(g.level, g.option, g.tag)][:2],
                class_rank[g.classes[0]],
                order[(g.level, g.option, g.tag)][2],
            ),
        )
        structure = dataclasses.replace(structure, groups=tuple(groups))
        self.state.structures[jointure] = structure
        self._staff_2d(structure, seats, groups, pool, drafts)

    def _family(self, families: list[Family], commune: int, *, first_degree: bool) -> Family:
        """A new family, or (8 %) the family of a pupil already placed in this school."""
        if families and self.rng.random() < 0.08:
            return self.rng.choice(families)
        family = self.factory.new_family(commune, first_degree=first_degree)
        for guardian in family.guardians:
            self.state.guardians[guardian.id] = guardian
        families.append(family)
        return family

    def _staff_2d(
        self,
        structure: Structure,
        seats: Sequence[tuple[Level2D, str, int]],
        groups: Sequence[Group],
        pool: dict[str, list[_TeacherDraft]],
        drafts: list[_TeacherDraft],
    ) -> None:
        rng = self.rng
        jointure = structure.jointure
        # (code, subject, hours, is_group) by discipline, in a stable order.
        by_discipline: dict[str, list[tuple[str, str, float, bool]]] = {}
        for level, class_code, _ in seats:
            for subject in level.core:
                discipline = discipline_for(subject, level.vocational).code
                hours = SUBJECT_HOURS[subject]
                by_discipline.setdefault(discipline, []).append((class_code, subject, hours, False))
        for group in groups:
            discipline = discipline_for(group.subject, LEVELS_2D[group.level].vocational).code
            hours = SUBJECT_HOURS[group.subject]
            by_discipline.setdefault(discipline, []).append(
                (group.code, group.subject, hours, True)
            )

        school_teachers: list[_TeacherDraft] = []
        for code, services in by_discipline.items():
            label = DISCIPLINES[code].label
            function: Function = (jointure, "ENS", "ENSEIGNEMENT", code, label)
            total = sum(hours for _, _, hours, _ in services)
            wanted = max(1, min(len(services), round(total / _TEACHER_HOURS)))
            team: list[_TeacherDraft] = []
            shared = pool.get(code, [])
            if shared and rng.random() < 0.15:
                teacher = shared.pop(rng.randrange(len(shared)))
                teacher.functions.append(function)
                team.append(teacher)
                wanted -= 1
            for _ in range(max(0, wanted)):
                teacher = _TeacherDraft(jointure, [function])
                team.append(teacher)
                drafts.append(teacher)
                pool.setdefault(code, []).append(teacher)
            # Contiguous runs of classes per teacher (6A-6B-6C, then 6D-5A…), like real timetables.
            share = total / len(team)
            done = 0.0
            for item_code, subject, hours, is_group in services:
                index = min(len(team) - 1, int((done + hours / 2) / share))
                done += hours
                team[index].services.append((jointure, item_code, subject, is_group))
            school_teachers += team

        # One head teacher per class, among those teaching it, spreading the load.
        head_count = {id(t): 0 for t in school_teachers}
        for _, class_code, _ in seats:
            candidates = [
                t
                for t in school_teachers
                if any(s[0] == jointure and s[1] == class_code and not s[3] for s in t.services)
            ]
            rng.shuffle(candidates)
            chosen = min(candidates, key=lambda t: head_count[id(t)])
            head_count[id(chosen)] += 1
            chosen.head_of.append((jointure, class_code))

        # Non-teaching staff.
        size = sum(n for _, _, n in seats)
        for spec in NON_TEACHING_2D:
            count = max(spec.minimum, size // spec.per_pupils if spec.per_pupils else 0)
            for _ in range(count):
                function = (jointure, spec.code, spec.label, spec.discipline, spec.discipline_label)
                chief = spec.discipline == "D0010"
                staff = new_staff(
                    self.factory,
                    jointure,
                    (function,),
                    teacher=False,
                    in_class=False,
                    director_of=(jointure,) if chief else (),
                )
                self.state.staff[staff.id] = staff

    # -- 1D -----------------------------------------------------------------------------------
    def build_1d(self, pupils: int) -> DegreeState:
        rng = self.rng
        count = max(1, round(pupils / _PUPILS_PER_SCHOOL["1D"]))
        kinds = ["EP"] if count == 1 else self._kinds(count, ("EM", "EE", "EP"), _KIND_WEIGHT_1D)
        weights = [KINDS_1D[k].weight * rng.uniform(0.6, 1.4) for k in kinds]
        sizes = [1 + n for n in apportion(pupils - count, weights)] if pupils >= count else []
        districts = []
        for index in range(max(1, math.ceil(count / 20))):
            districts.append(self._district(index))
        for index, (kind, size) in enumerate(zip(kinds, sizes, strict=True)):
            district = districts[index * len(districts) // count]
            self._school_1d(kind, size, district)
        self.state.next_person = self.factory.next_id
        return self.state

    def _district(self, index: int) -> Structure:
        """An IEN circonscription, with two remplaçants attached to it."""
        rng = self.rng
        factory = self.factory
        jointure = self.take_structure()
        commune, street, phone, fax = self._place()
        place = factory.book.communes[commune]
        roman = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")[index % 10]
        structure = Structure(
            jointure=jointure,
            uai=_uai(rng, place.dept, self.taken_uai),
            siret="",
            kind="IEN",
            contract="PU",
            name=f"{place.name} {roman}",
            commune=commune,
            street=street,
            phone=phone,
            fax=fax,
            area="",
            district=str(1401 + index),
        )
        self.state.structures[jointure] = structure
        for _ in range(2):
            function = (jointure, "ENS", "ENSEIGNEMENT", "G0000", "SANS SPECIALITE")
            staff = new_staff(factory, None, (function,), teacher=True, in_class=True)
            self.state.staff[staff.id] = staff
        return structure

    def _school_1d(self, kind_key: str, size: int, district: Structure) -> None:
        rng = self.rng
        factory = self.factory
        kind = KINDS_1D[kind_key]
        jointure = self.take_structure()
        district_dept = factory.book.communes[district.commune].dept
        commune, street, phone, fax = self._place(district_dept)
        place = factory.book.communes[commune]
        private = rng.random() < 0.08
        name = "" if rng.random() < 0.2 else rng.choice(EPONYMS)
        if private:
            name = rng.choice(PRIVATE_EPONYMS)
        uai = _uai(rng, place.dept, self.taken_uai)
        levels = list(kind.levels)
        if "PS" in levels and rng.random() < 0.2:
            levels.insert(0, "TPS")
        level_weights = [0.2 if lv == "TPS" else rng.uniform(0.9, 1.1) for lv in levels]
        per_level = apportion(size, level_weights)
        class_members = _classes_1d(list(zip(levels, per_level, strict=True)), kind.capacity)
        n_classes = len(class_members)

        # Teachers come first: their names go into class labels.
        classes: list[SchoolClass] = []
        teachers: list[Staff] = []
        for seated in class_members:
            class_levels = tuple(dict.fromkeys(seated))
            function = (jointure, "ENS", "ENSEIGNEMENT", "G0000", "SANS SPECIALITE")
            teacher = new_staff(factory, jointure, (function,), teacher=True, in_class=True)
            teachers.append(teacher)
            if len(class_levels) == 1:
                levels_label = LEVELS_1D[class_levels[0]].label
            else:
                levels_label = "-".join(class_levels)
            label = f"{levels_label} {teacher.title} {teacher.surname}"
            class_id = str(self.next_class)
            self.next_class += 1
            classes.append(SchoolClass(class_id, label, class_levels))

        direction: Function = (jointure, "ENS", "ENSEIGNEMENT", "D0000", "DIRECTION")
        if n_classes >= 10:
            director = new_staff(
                factory,
                jointure,
                (direction,),
                teacher=True,
                in_class=False,
                director_of=(jointure,),
            )
            teachers.append(director)
        else:
            first = teachers[0]
            teachers[0] = dataclasses.replace(
                first, functions=(direction, *first.functions), director_of=(jointure,)
            )
        if rng.random() < 0.15:
            function = (
                jointure,
                "AVS",
                "ASS EDUCATION-AUXILIAIRE DE VIE SCOLAIRE",
                "-",
                "SANS OBJET",
            )
            teachers.append(
                new_staff(factory, jointure, (function,), teacher=False, in_class=False)
            )

        structure = Structure(
            jointure=jointure,
            uai=uai,
            siret=_siret(rng, "21" + place.insee) if rng.random() < 0.9 else "",
            kind=kind_key,
            contract="PR" if private else "PU",
            name=name,
            commune=commune,
            street=street,
            phone=phone,
            fax=fax,
            area="",
            district=district.district,
            classes=tuple(classes),
        )
        self.state.structures[jointure] = structure
        families: list[Family] = []
        for school_class, seated in zip(classes, class_members, strict=True):
            for level_key in seated:
                family = self._family(families, commune, first_degree=True)
                pupil = new_pupil_1d(
                    factory, structure, school_class, level_key, family, self.rentree
                )
                self.state.pupils[pupil.id] = pupil
        for teacher in teachers:
            self.state.staff[teacher.id] = teacher


def _classes_1d(per_level: Sequence[tuple[str, int]], capacity: int) -> list[list[str]]:
    """Pupils' levels per class: single-level classes of 18 to ``capacity`` where numbers allow,
    the remainder of a level sharing a class with the next level (CE1-CE2 and the like)."""
    target = 22
    classes: list[list[str]] = []
    mixed: list[str] = []
    for level, count in per_level:
        rest = count
        if mixed:
            take = min(rest, max(0, target - len(mixed)))
            mixed += [level] * take
            rest -= take
            classes.append(mixed)
            mixed = []
        if rest == 0:
            continue
        n_classes = math.ceil(rest / capacity)
        if rest / n_classes >= 18:
            classes += [[level] * n for n in apportion(rest, [1.0] * n_classes)]
            continue
        for _ in range(n_classes - 1):
            classes.append([level] * target)
            rest -= target
        mixed = [level] * rest
    if mixed:
        if classes and len(classes[-1]) + len(mixed) <= capacity + 2:
            classes[-1] += mixed
        else:
            classes.append(mixed)
    return classes


_STRUCTURE_STREETS = (
    "RUE DE L'ECOLE",
    "AVENUE DU COLLEGE",
    "RUE DES ECOLES",
    "BOULEVARD DU LYCEE",
    "RUE JULES FERRY",
    "PLACE DE LA MAIRIE",
    "RUE DU STADE",
    "AVENUE DE LA REPUBLIQUE",
    "ALLEE DES SPORTS",
    "CHEMIN DES ECOLIERS",
)


def build_state(
    *,
    pupils: int,
    seed: int,
    degrees: Sequence[str],
    academie: str,
    academie_code: str,
    date: datetime.date,
) -> AcademieState:
    """The base state. ``pupils`` is split between degrees (2D gets the odd one)."""
    state = AcademieState(academie, academie_code, date)
    taken_mails: set[str] = set()
    taken_uai: set[str] = set()
    shares = apportion(pupils, [1.0] * len(degrees))
    for degree, share in zip(degrees, shares, strict=True):
        rng = random.Random(f"aiguillage-sample:{seed}:{degree}")
        builder = _Builder(rng, degree, date, academie, taken_mails, taken_uai)
        if degree == "2D":
            state.degrees[degree] = builder.build_2d(share)
        else:
            state.degrees[degree] = builder.build_1d(share)
    return state
