"""Fake but realistic people: names, birth dates, phones, mails, addresses and families.

Every draw goes through the ``random.Random`` handed to :class:`PeopleFactory`; nothing reads
the clock or the global RNG. Mails use ``.invalid`` domains only (RFC 2606), phones the
``+33 …`` shape of current AAF files.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import random
import unicodedata
from dataclasses import dataclass
from importlib import resources

from ._catalog import CIVILITY, CONTACT_RELATIONS, RESIDENCES, STREETS
from ._model import Guardian, Link

__all__ = [
    "Commune",
    "Family",
    "NameBook",
    "PeopleFactory",
    "academic_domain",
    "mail_local",
    "name_book",
]

_GUARDIAN_DOMAINS = ("example.invalid", "mail.example.invalid", "courriel.example.invalid")
# First digit after +33 for landlines, by département.
_AREA = {"77": "1", "91": "1", "94": "1", "95": "1", "28": "2", "45": "2", "89": "3"}


@dataclass(frozen=True, slots=True)
class Commune:
    insee: str
    postal: str
    name: str

    @property
    def dept(self) -> str:
        return self.postal[:2]


@dataclass(frozen=True, slots=True)
class NameBook:
    surnames: tuple[str, ...]
    surname_weights: tuple[float, ...]
    female: tuple[str, ...]
    female_weights: tuple[float, ...]
    male: tuple[str, ...]
    male_weights: tuple[float, ...]
    communes: tuple[Commune, ...]
    by_dept: dict[str, tuple[int, ...]]


def _lines(name: str) -> tuple[str, ...]:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _cumulative(count: int) -> tuple[float, ...]:
    # A Zipf-like tail: the first names of a list are the most frequent.
    total = 0.0
    out = []
    for rank in range(count):
        total += 1.0 / (rank + 8)
        out.append(total)
    return tuple(out)


@functools.cache
def name_book() -> NameBook:
    """The name and commune lists shipped in ``data/``."""
    surnames = _lines("surnames.txt")
    female = _lines("given_names_female.txt")
    male = _lines("given_names_male.txt")
    communes = tuple(Commune(*line.split(";")) for line in _lines("communes.txt"))
    by_dept: dict[str, list[int]] = {}
    for index, commune in enumerate(communes):
        by_dept.setdefault(commune.dept, []).append(index)
    return NameBook(
        surnames,
        _cumulative(len(surnames)),
        female,
        _cumulative(len(female)),
        male,
        _cumulative(len(male)),
        communes,
        {dept: tuple(indexes) for dept, indexes in by_dept.items()},
    )


def academic_domain(academie: str) -> str:
    """``ac-<académie>.invalid``: the domain of staff and school mails."""
    slug = "".join(c if c.isalnum() else "-" for c in academie.lower()).strip("-") or "sandbox"
    return f"ac-{slug}.invalid"


@functools.lru_cache(maxsize=4096)
def _mail_part(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return plain.lower().replace("'", "").replace(" ", "-")


def mail_local(given: str, surname: str) -> str:
    """``prenom.nom`` without accents, apostrophes or spaces (``LÉA``, ``N'DIAYE`` → lea.ndiaye)."""
    return f"{_mail_part(given)}.{_mail_part(surname)}"


def _pick(rng: random.Random, population: tuple[str, ...], cumulative: tuple[float, ...]) -> str:
    # What rng.choices(population, cum_weights=cumulative)[0] does, without its overhead.
    return population[
        bisect.bisect(cumulative, rng.random() * cumulative[-1], 0, len(population) - 1)
    ]


@dataclass(slots=True)
class Family:
    """The responsables of one or more siblings."""

    links: tuple[Link, ...]
    residence: int
    surname: str
    commune: int
    guardians: list[Guardian]


class PeopleFactory:
    """Draws people from one RNG; allocates person join keys from ``next_id`` upward."""

    def __init__(
        self,
        rng: random.Random,
        *,
        school_year: int,
        next_id: int,
        staff_domain: str,
        taken_mails: set[str],
    ) -> None:
        self.rng = rng
        self.book = name_book()
        self.school_year = school_year
        self.next_id = next_id
        self.staff_domain = staff_domain
        self.taken_mails = taken_mails

    # -- identities ---------------------------------------------------------------------------
    def take_id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    def surname(self) -> str:
        book = self.book
        return _pick(self.rng, book.surnames, book.surname_weights)

    def given(self, female: bool) -> str:
        book = self.book
        if female:
            return _pick(self.rng, book.female, book.female_weights)
        return _pick(self.rng, book.male, book.male_weights)

    def other_given(self, given: str, female: bool) -> tuple[str, ...]:
        # ENTPersonAutresPrenoms usually repeats the first given name.
        extra = self.rng.random()
        if extra < 0.55:
            return (given,)
        second = self.given(female)
        if extra < 0.9 or second == given:
            return (given, second) if second != given else (given,)
        third = self.given(female)
        return tuple(dict.fromkeys((given, second, third)))

    def birth_for_offset(self, offset: int) -> int:
        """A birth date for a pupil whose level is usually reached ``offset`` years after birth."""
        rng = self.rng
        year = self.school_year - offset
        drift = rng.random()
        if drift < 0.12:
            year -= 1  # one year behind
        elif drift < 0.13:
            year += 1  # one year ahead
        return datetime.date(year, 1, 1).toordinal() + rng.randrange(365)

    def adult_birth(self, youngest: int = 23, oldest: int = 64) -> int:
        year = self.school_year - self.rng.randint(youngest, oldest)
        return datetime.date(year, 1, 1).toordinal() + self.rng.randrange(365)

    # -- contact details ----------------------------------------------------------------------
    def _digits(self) -> str:
        digits = f"{self.rng.randrange(1_000_000):06d}"
        return f"{digits[:2]} {digits[2:4]} {digits[4:]}"

    def landline(self, commune: int) -> str:
        area = _AREA.get(self.book.communes[commune].dept, "1")
        return f"+33 {area} {self.rng.randrange(10, 100):02d} {self._digits()}"

    def mobile(self) -> str:
        lead = "6" if self.rng.random() < 0.7 else "7"
        return f"+33 {lead} {self.rng.randrange(100):02d} {self._digits()}"

    def address(self) -> str:
        """Four `$`-separated lines (AFNOR lines 2 to 5)."""
        rng = self.rng
        street = f"{rng.randint(1, 120)} {rng.choice(STREETS)}"
        shape = rng.random()
        if shape < 0.6:
            return f"$${street}$"
        if shape < 0.85:
            return f"{street}$$$"
        return f"APPT {rng.randint(1, 80)}${rng.choice(RESIDENCES)}${street}$"

    def nearby_commune(self, commune: int) -> int:
        if self.rng.random() < 0.75:
            return commune
        book = self.book
        return self.rng.choice(book.by_dept[book.communes[commune].dept])

    def guardian_mail(self, given: str, surname: str) -> str:
        rng = self.rng
        local = mail_local(given, surname)
        if rng.random() < 0.3:
            local += str(rng.randint(1, 99))
        return f"{local}@{rng.choice(_GUARDIAN_DOMAINS)}"

    def staff_mail(self, given: str, surname: str) -> str:
        """A unique academic mail; suffixes 2, 3… separate homonyms."""
        local = mail_local(given, surname)
        candidate = f"{local}@{self.staff_domain}"
        suffix = 1
        while candidate in self.taken_mails:
            suffix += 1
            candidate = f"{local}{suffix}@{self.staff_domain}"
        self.taken_mails.add(candidate)
        return candidate

    # -- guardians and families ----------------------------------------------------------------
    def new_guardian(
        self, female: bool, surname: str, birth_surname: str, commune: int, address: str
    ) -> Guardian:
        rng = self.rng
        given = self.given(female)
        mobile = self.mobile() if rng.random() < 0.92 else ""
        return Guardian(
            id=self.take_id(),
            female=female,
            title=CIVILITY[female] if rng.random() < 0.95 else "",
            surname=surname,
            birth_surname=birth_surname,
            given=given,
            other_given=self.other_given(given, female),
            home_phone=self.landline(commune) if rng.random() < 0.45 else "",
            work_phone=self.landline(commune) if rng.random() < 0.25 else "",
            mobile=mobile,
            sms=mobile if mobile and rng.random() < 0.85 else "",
            mail=self.guardian_mail(given, surname) if rng.random() < 0.75 else "",
            address=address,
            commune=commune,
            diffusion=rng.random() < 0.3,
        )

    def new_family(self, commune: int, *, first_degree: bool) -> Family:
        """One to three responsables. 2D links carry VE2407 flags (legal = 1 for both parents)."""
        rng = self.rng
        home_commune = self.nearby_commune(commune)
        home = self.address()
        father_name = self.surname()
        shape = rng.random()
        couple = shape < 0.80
        contact = not first_degree and shape >= 0.92
        guardians: list[Guardian] = []
        links: list[Link] = []
        if couple or contact:
            mother_birth = self.surname()
            separated = rng.random() < 0.15
            mother_usage = father_name if not separated and rng.random() < 0.6 else mother_birth
            mother = self.new_guardian(True, mother_usage, mother_birth, home_commune, home)
            if separated:
                father_commune = self.nearby_commune(commune)
                father = self.new_guardian(
                    False, father_name, father_name, father_commune, self.address()
                )
            else:
                father = self.new_guardian(False, father_name, father_name, home_commune, home)
            mother_pays = rng.random() < 0.6
            payer, other = (mother, father) if mother_pays else (father, mother)
            other_fin = "1" if rng.random() < 0.4 else "0"
            flags = {payer.id: "1$1$0$1", other.id: f"{other_fin}$1$0$0"}
            guardians += [mother, father]
            links += [(mother.id, "10", flags[mother.id]), (father.id, "20", flags[father.id])]
            residence = payer.id if rng.random() < 0.85 else other.id
            child = rng.random()
            if child < 0.88:
                surname = father_name
            elif child < 0.95:
                surname = mother_birth
            else:
                surname = f"{father_name} {mother_birth}"
            if contact:
                code = rng.choices(
                    [c for c, _ in CONTACT_RELATIONS], [w for _, w in CONTACT_RELATIONS]
                )[0]
                female = rng.random() < 0.6
                name = surname if code in ("37", "38", "39") and rng.random() < 0.7 else None
                name = name or self.surname()
                person = self.new_guardian(
                    female, name, name, self.nearby_commune(commune), self.address()
                )
                guardians.append(person)
                links.append((person.id, code, "0$0$1$0"))
        else:
            who = rng.random()
            if who < 0.70:
                code, female = "10", True
            elif who < 0.95:
                code, female = "20", False
            else:
                code, female = "50", rng.random() < 0.5  # tuteur
            person = self.new_guardian(female, father_name, father_name, home_commune, home)
            guardians.append(person)
            links.append((person.id, code, "1$1$0$1"))
            residence = person.id
            surname = father_name
        if first_degree:
            links = [(gid, code, "") for gid, code, _ in links]
        return Family(tuple(links), residence, surname, home_commune, guardians)
