"""Evolve a state into the next one: arrivals, departures and changes at about ``rate``.

Per degree, about ``rate`` of the pupils leave, as many arrive (mostly with new families, some
as siblings of pupils already there) and as many change (class, régime, bourse, 1D services);
responsables left without a pupil leave too, about ``rate`` of the others change phone, mail or
address (which moves the pupils living there); about ``rate`` of the staff leave and are
replaced one for one, as many change (a teacher takes a class or group from a colleague of the
same discipline, or changes name or mail). Structures and nomenclatures do not change.
"""

from __future__ import annotations

import dataclasses
import datetime
import random

from ._build import (
    GroupIndex,
    draw_tags,
    new_pupil_1d,
    new_pupil_2d,
    new_staff,
    school_year_of,
)
from ._catalog import BOARDER, KINDS_2D, LEVELS_2D, REGIMES
from ._model import AcademieState, DegreeState, Pupil, Staff, Structure
from ._people import Family, PeopleFactory, academic_domain, mail_local

__all__ = ["apply_delta"]


def apply_delta(
    state: AcademieState, *, seed: int, rate: float, date: datetime.date
) -> AcademieState:
    """The state after one delta; ``state`` itself is left unchanged."""
    new = AcademieState(state.academie, state.academie_code, date)
    taken_mails = {s.mail for d in state.degrees.values() for s in d.staff.values() if s.mail}
    for degree, previous in state.degrees.items():
        rng = random.Random(f"aiguillage-sample-delta:{seed}:{degree}")
        factory = PeopleFactory(
            rng,
            school_year=school_year_of(date),
            next_id=previous.next_person,
            staff_domain=academic_domain(state.academie),
            taken_mails=taken_mails,
        )
        current = previous.copy()
        _Evolution(rng, factory, current, date).run(rate)
        current.next_person = factory.next_id
        new.degrees[degree] = current
    return new


def _count(population: int, rate: float) -> int:
    return min(population, round(population * rate))


class _Evolution:
    def __init__(
        self,
        rng: random.Random,
        factory: PeopleFactory,
        state: DegreeState,
        date: datetime.date,
    ) -> None:
        self.rng = rng
        self.factory = factory
        self.state = state
        self.today = date.toordinal()
        self.group_index: dict[int, GroupIndex] = {}

    def run(self, rate: float) -> None:
        state = self.state
        pupil_count = len(state.pupils)
        guardian_count = len(state.guardians)
        staff_count = len(state.staff)
        self._pupils(_count(pupil_count, rate))
        self._guardians(_count(guardian_count, rate))
        self._staff(_count(staff_count, rate))

    # -- pupils -------------------------------------------------------------------------------
    def _pupils(self, k: int) -> None:
        rng = self.rng
        state = self.state
        ids = list(state.pupils)
        leaving = set(rng.sample(ids, k))
        for pid in ids:
            if pid in leaving:
                del state.pupils[pid]
        linked = {link[0] for p in state.pupils.values() for link in p.links}
        for gid in list(state.guardians):
            if gid not in linked:
                del state.guardians[gid]
        staying = [pid for pid in ids if pid not in leaving]
        for pid in rng.sample(staying, min(k, len(staying))):
            state.pupils[pid] = self._change_pupil(state.pupils[pid])
        if not staying:
            return
        for _ in range(k):
            self._arrival(state.pupils[rng.choice(staying)])

    def _groups(self, structure: Structure) -> GroupIndex:
        index = self.group_index.get(structure.jointure)
        if index is None:
            index = self.group_index[structure.jointure] = GroupIndex(structure)
        return index

    def _change_pupil(self, pupil: Pupil) -> Pupil:
        rng = self.rng
        structure = self.state.structures[pupil.structure]
        roll = rng.random()
        if roll < 0.5:
            others = [
                c.code
                for c in structure.classes
                if pupil.level in c.levels and c.code != pupil.class_code
            ]
            if others:
                class_code = rng.choice(others)
                tags, groups = pupil.tags, pupil.groups
                if self.state.degree == "2D":
                    level = LEVELS_2D[pupil.level]
                    tags, groups = self._groups(structure).fit(rng, level, class_code, pupil.tags)
                return dataclasses.replace(
                    pupil, class_code=class_code, tags=tags, groups=groups, entry=self.today
                )
        if self.state.degree == "1D":
            if roll < 0.75:
                return dataclasses.replace(pupil, canteen=not pupil.canteen)
            return dataclasses.replace(pupil, evening_care=not pupil.evening_care)
        if roll < 0.75:
            regimes = [r for r, _ in REGIMES if r != pupil.regime]
            if pupil.regime != BOARDER:
                regimes.append(BOARDER)
            return dataclasses.replace(pupil, regime=rng.choice(regimes))
        return dataclasses.replace(pupil, scholarship=not pupil.scholarship)

    def _arrival(self, template: Pupil) -> None:
        """A new pupil in the school and level of ``template``; 20 % are its siblings."""
        rng = self.rng
        state = self.state
        structure = state.structures[template.structure]
        if rng.random() < 0.2:
            family = Family(template.links, template.residence, template.surname, 0, [])
        else:
            family = self.factory.new_family(structure.commune, first_degree=state.degree == "1D")
            for guardian in family.guardians:
                state.guardians[guardian.id] = guardian
        candidates = [c for c in structure.classes if template.level in c.levels]
        school_class = rng.choice(candidates)
        if state.degree == "1D":
            pupil = new_pupil_1d(
                self.factory, structure, school_class, template.level, family, self.today
            )
        else:
            level = LEVELS_2D[template.level]
            tags, groups = self._groups(structure).fit(
                rng, level, school_class.code, draw_tags(rng, level)
            )
            pupil = new_pupil_2d(
                self.factory,
                structure,
                school_class.code,
                level,
                family,
                tags,
                groups,
                self.today,
                KINDS_2D[structure.kind].boarding,
            )
        state.pupils[pupil.id] = pupil

    # -- responsables -------------------------------------------------------------------------
    def _guardians(self, k: int) -> None:
        rng = self.rng
        factory = self.factory
        guardians = self.state.guardians
        for gid in rng.sample(list(guardians), min(k, len(guardians))):
            guardian = guardians[gid]
            roll = rng.random()
            if roll < 0.4:
                mobile = factory.mobile()
                guardians[gid] = dataclasses.replace(guardian, mobile=mobile, sms=mobile)
            elif roll < 0.7:
                mail = factory.guardian_mail(guardian.given, guardian.surname)
                if mail == guardian.mail:
                    mail = f"{mail_local(guardian.given, guardian.surname)}.new@example.invalid"
                guardians[gid] = dataclasses.replace(guardian, mail=mail)
            else:
                address = factory.address()
                while address == guardian.address:
                    address = factory.address()
                commune = factory.nearby_commune(guardian.commune)
                guardians[gid] = dataclasses.replace(guardian, address=address, commune=commune)

    # -- staff --------------------------------------------------------------------------------
    def _staff(self, k: int) -> None:
        rng = self.rng
        staff = self.state.staff
        ids = list(staff)
        leaving = rng.sample(ids, k)
        for sid in leaving:
            old = staff.pop(sid)
            replacement = new_staff(
                self.factory,
                old.structure,
                old.functions,
                teacher=old.teacher,
                in_class=old.in_class,
                services=old.services,
                head_of=old.head_of,
                director_of=old.director_of,
            )
            staff[replacement.id] = replacement
        gone = set(leaving)
        staying = [sid for sid in ids if sid not in gone]
        for sid in rng.sample(staying, min(k, len(staying))):
            member = staff[sid]
            if member.services and rng.random() < 0.6 and self._take_service(member):
                continue
            staff[sid] = self._change_identity(staff[sid])

    def _change_identity(self, member: Staff) -> Staff:
        factory = self.factory
        if self.rng.random() < 0.5:
            surname = factory.surname()
            while surname == member.surname:
                surname = factory.surname()
            return dataclasses.replace(member, surname=surname)
        mail = factory.staff_mail(member.given, member.surname)
        return dataclasses.replace(member, mail=mail)

    def _take_service(self, member: Staff) -> bool:
        """``member`` takes one class or group from a colleague of the same discipline."""
        rng = self.rng
        staff = self.state.staff
        own = {(s[0], s[1], s[2]) for s in member.services}
        disciplines = {(f[0], f[3]) for f in member.functions if f[1] == "ENS"}
        offers = []
        for colleague in staff.values():
            if colleague.id == member.id:
                continue
            for function in colleague.functions:
                if (function[0], function[3]) not in disciplines:
                    continue
                for service in colleague.services:
                    if (
                        service[0] == function[0]
                        and (service[0], service[1], service[2]) not in own
                    ):
                        offers.append((colleague.id, service))
        if not offers:
            return False
        colleague_id, service = rng.choice(offers)
        colleague = staff[colleague_id]
        remaining = tuple(s for s in colleague.services if s != service)
        head_of = colleague.head_of
        head = (service[0], service[1])
        member_head = member.head_of
        still_teaches = any(s[0] == head[0] and s[1] == head[1] for s in remaining)
        if head in head_of and not service[3] and not still_teaches:
            head_of = tuple(h for h in head_of if h != head)
            member_head = (*member_head, head)
        staff[colleague_id] = dataclasses.replace(colleague, services=remaining, head_of=head_of)
        staff[member.id] = dataclasses.replace(
            member, services=(*member.services, service), head_of=member_head
        )
        return True
