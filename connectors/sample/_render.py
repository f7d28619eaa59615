"""Render state records as the ``<attr>`` lines of AAF records, per degree and category.

A rendered body is the exact text between ``<attributes>`` and ``</attributes>``: one
``<attr name="X"><value>…</value></attr>`` line per attribute, values XML-escaped (``'`` as
``&apos;`` like real exports), empty attributes as ``<value/>``. Bodies are plain strings so a
delta can compare two states record by record, and a modifyRequest is the same text with the
element names swapped (see ``_xml``). Attribute names and order follow Annexe 4bis (2D) and
Annexe 1 (1D) as seen in 2018–2024 files; derived values (reverse links, the pupil's address,
subject lists, INE) are computed here from the state.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable, Iterator

from ._catalog import (
    ACADEMIE_MINISTRY,
    DISCIPLINES,
    KINDS_1D,
    KINDS_2D,
    LEVELS_1D,
    LEVELS_2D,
    MEFS,
    SUBJECT_LABELS,
    SUBJECTS,
)
from ._model import AcademieState, DegreeState, Guardian, Pupil, SchoolClass, Staff, Structure
from ._people import academic_domain, name_book

__all__ = ["Renderer", "escape"]

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})
_SPECIAL = re.compile(r"[&<>'\"]")
_KEY_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_TAG_SUBJECT = {
    (level.key, tag): subject
    for level in LEVELS_2D.values()
    for option in level.options
    for tag, subject, _ in option.choices
}


def escape(value: str) -> str:
    """XML character data, with ``&apos;`` and ``&quot;`` as AAF exports write them."""
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _one(name: str, value: str) -> str:
    if not value:
        return f'<attr name="{name}"><value/></attr>\n'
    return f'<attr name="{name}"><value>{escape(value)}</value></attr>\n'


def _many(name: str, values: Iterable[str]) -> str:
    inner = "</value><value>".join(escape(v) for v in values)
    if not inner:
        return f'<attr name="{name}"><value/></attr>\n'
    return f'<attr name="{name}"><value>{inner}</value></attr>\n'


def _yes(flag: bool) -> str:
    return "O" if flag else "N"


@functools.lru_cache(maxsize=65536)
def _date(ordinal: int) -> str:
    return datetime.date.fromordinal(ordinal).strftime("%d/%m/%Y")


def _ine(person_id: int) -> str:
    # A bijection of the join key onto 10 digits, plus a key letter: unique and stable.
    digits = (person_id * 7_919_311 + 1_234_567) % 10**10
    return f"{digits:010d}{_KEY_LETTERS[digits % 23]}"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class Renderer:
    """Bodies of the records of one degree of one state."""

    def __init__(self, state: AcademieState, degree: DegreeState) -> None:
        self.state = state
        self.degree = degree
        self.communes = name_book().communes
        self._children: dict[int, list[int]] | None = None
        self._classes: dict[tuple[int, str], SchoolClass] = {}
        self._group_levels: dict[tuple[int, str], str] = {}
        for structure in degree.structures.values():
            for school_class in structure.classes:
                self._classes[(structure.jointure, school_class.code)] = school_class
            for group in structure.groups:
                self._group_levels[(structure.jointure, group.code)] = group.level

    @property
    def first_degree(self) -> bool:
        return self.degree.degree == "1D"

    def children(self) -> dict[int, list[int]]:
        """Guardian join key -> the pupils linked to it (the reverse links)."""
        if self._children is None:
            children: dict[int, list[int]] = {}
            for pupil in self.degree.pupils.values():
                for link in pupil.links:
                    children.setdefault(link[0], []).append(pupil.id)
            for ids in children.values():
                ids.sort()
            self._children = children
        return self._children

    # -- nomenclatures ------------------------------------------------------------------------
    def subjects(self) -> Iterator[tuple[str, str]]:
        for code, label in SUBJECTS:
            yield code, _one("ENTMatJointure", code) + _one("ENTLibelleMatiere", label)

    def mefs(self) -> Iterator[tuple[str, str]]:
        used = {
            LEVELS_2D[level].mef
            for structure in self.degree.structures.values()
            for school_class in structure.classes
            for level in school_class.levels
        }
        for mef in MEFS.values():
            if mef.code in used:
                yield (
                    mef.code,
                    (
                        _one("ENTMefJointure", mef.code)
                        + _one("ENTLibelleMef", mef.label)
                        + _one("ENTMEFRattach", mef.code)
                        + _one("ENTMEFSTAT11", mef.stat)
                    ),
                )

    # -- structures ---------------------------------------------------------------------------
    def structure(self, s: Structure) -> str:
        return self._structure_1d(s) if self.first_degree else self._structure_2d(s)

    def _structure_2d(self, s: Structure) -> str:
        kind = KINDS_2D[s.kind]
        place = self.communes[s.commune]
        ministry, ministry_code = ACADEMIE_MINISTRY
        classes = [f"{c.code}${c.label}${LEVELS_2D[c.levels[0]].mef}" for c in s.classes]
        groups = [f"{g.code}${g.label}${'$'.join(g.classes)}" for g in s.groups]
        return "".join(
            (
                _one("ENTStructureJointure", str(s.jointure)),
                _one("ENTStructureUAI", s.uai),
                _one("ENTEtablissementUAI", s.uai),
                _one("ENTStructureSIREN", s.siret),
                _one("ENTStructureNomCourant", f"{kind.sigle}${s.name}${place.name}"),
                _one("ENTStructureTypeStruct", kind.type_label),
                _one("ENTStructureCodeTypeStruct", kind.type_code),
                _one("ENTEtablissementMinistereTutelle", ministry),
                _one("ENTEtablissementCodeMinistereTutelle", ministry_code),
                _one("ENTEtablissementContrat", s.contract),
                _one("postOfficeBox", ""),
                _one("street", s.street),
                _one("postalCode", place.postal),
                _one("l", place.name),
                _one("telephoneNumber", s.phone),
                _one("facsimileTelephoneNumber", s.fax),
                _one("ENTStructureMailSI", f"ce.{s.uai}@{self._academic_domain()}"),
                _one("ENTEtablissementStructRattachFctl", ""),
                _one("ENTEtablissementBassin", s.area),
                _one("ENTServAcAcademie", self.state.academie),
                _one("ENTServAcCodeAcademie", self.state.academie_code),
                _many("ENTStructureClasses", classes),
                _many("ENTStructureGroupes", groups),
            )
        )

    def _academic_domain(self) -> str:
        return academic_domain(self.state.academie)

    def _structure_1d(self, s: Structure) -> str:
        place = self.communes[s.commune]
        if s.kind == "IEN":
            sigle, type_label = "IEN", "CIRCONSCRIPTIONS INSPECTION EDUC NAT"
        else:
            kind = KINDS_1D[s.kind]
            sigle, type_label = f"{kind.sigle}.{s.contract}", kind.type_label
        ministry, _ = ACADEMIE_MINISTRY
        return "".join(
            (
                _one("ENTStructureJointure", str(s.jointure)),
                _one("ENTStructureUAI", s.uai),
                _one("ENTStructureSIREN", s.siret),
                _one("ENTStructureNomCourant", f"{sigle}${s.name}${place.name}"),
                _one("ENTStructureTypeStruct", type_label),
                _one("ENTEcoleMinistereTutelle", ministry),
                _one("ENTEcoleSecteur", s.contract),
                _one("ENTEcoleCirconscription", s.district),
                _one("ENTEcoleCommune", f"{place.insee}${place.name}$0{place.dept}"),
                _one("ENTEcoleRPI", ""),
                _one("ENTServAcAcademie", self.state.academie),
                _one("ENTServAcCodeAcademie", self.state.academie_code),
                _one("ENTStructureAdresse", s.street),
                _one("ENTStructureBoitePostale", ""),
                _one("ENTStructureCodePostal", place.postal),
                _one("ENTStructureVille", place.name),
                _one("ENTStructureTelephone", s.phone),
                _one("ENTStructureFax", s.fax),
                _one("ENTStructureMailSI", f"ce.{s.uai}@{self._academic_domain()}"),
            )
        )

    # -- pupils -------------------------------------------------------------------------------
    def pupil(self, p: Pupil) -> str:
        return self._pupil_1d(p) if self.first_degree else self._pupil_2d(p)

    def _pupil_2d(self, p: Pupil) -> str:
        level = LEVELS_2D[p.level]
        codes = _unique((*level.core, *(_TAG_SUBJECT[(p.level, t)] for t in p.tags)))
        home = self.degree.guardians.get(p.residence)
        place = self.communes[home.commune] if home else None
        structure = str(p.structure)
        return "".join(
            (
                _one("ENTPersonJointure", str(p.id)),
                _one("ENTEleveINE", _ine(p.id)),
                _one("ENTEleveStructRattachId", str((p.id * 37) % 8_999_999 + 1_000_000)),
                _one("ENTPersonDateNaissance", _date(p.birth)),
                _one("ENTPersonNomPatro", p.birth_surname),
                _one("sn", p.surname),
                _one("givenName", p.given),
                _many("ENTPersonAutresPrenoms", p.other_given),
                _one("personalTitle", "Mme" if p.female else "M."),
                _many(
                    "ENTElevePersRelEleve", (f"{g}${code}${flags}" for g, code, flags in p.links)
                ),
                _one("ENTEleveAdresseRel", str(p.residence)),
                _one("ENTPersonAdresse", home.address if home else ""),
                _one("ENTPersonCodePostal", place.postal if place else ""),
                _one("ENTPersonVille", place.name if place else ""),
                _one("ENTPersonPays", "FRANCE" if place else ""),
                _one("ENTEleveBoursier", _yes(p.scholarship)),
                _one("ENTEleveRegime", p.regime),
                _one("ENTEleveTransport", _yes(p.transport)),
                _one("ENTEleveStatutEleve", "SCOLAIRE"),
                _one("ENTEleveMEF", level.mef),
                _one("ENTEleveLibelleMEF", MEFS[level.mef].label),
                _one("ENTEleveNivFormation", level.niv),
                _one("ENTEleveFiliere", level.filiere),
                _many("ENTEleveEnseignements", (SUBJECT_LABELS[c] for c in codes)),
                _many("ENTEleveCodeEnseignements", codes),
                _one("ENTPersonStructRattach", structure),
                _one("ENTEleveClasses", f"{structure}${p.class_code}"),
                _many("ENTEleveGroupes", (f"{structure}${g}" for g in p.groups)),
                _one("ENTEleveDateEntreeClasses", f"{structure}${_date(p.entry)}${p.class_code}"),
            )
        )

    def _pupil_1d(self, p: Pupil) -> str:
        level = LEVELS_1D[p.level]
        structure = str(p.structure)
        school_class = self._classes[(p.structure, p.class_code)]
        return "".join(
            (
                _one("ENTPersonJointure", str(p.id)),
                _one("ENTEleveINE", _ine(p.id)),
                _one("ENTPersonDateNaissance", _date(p.birth)),
                _one("ENTPersonCivilite", "Mme" if p.female else "M."),
                _one("ENTPersonStructRattach", structure),
                _many("ENTEleveAutoriteParentale", (f"{g}${code}" for g, code, _ in p.links)),
                _one(
                    "ENTPersonClasses",
                    f"{structure}$11$ORDINAIRE${school_class.code}${school_class.label}",
                ),
                _one("ENTPersonGroupes", ""),
                _one("ENTEleveNiveau", f"{level.code}${level.key}"),
                _one("ENTEleveCycle", level.cycle),
                _one("ENTEleveTypeClasse", "11$ORDINAIRE"),
                _one("ENTEleveDateEntreeClasses", f"{structure}${_date(p.entry)}${p.class_code}"),
                _one("ENTEleveRestaurantScolaire", _yes(p.canteen)),
                _one("ENTEleveTransport", _yes(p.transport)),
                _one("ENTEleveGarderieMatin", _yes(p.morning_care)),
                _one("ENTEleveGarderieSoir", _yes(p.evening_care)),
                _one("ENTEleveEtudesSurveillees", _yes(p.study)),
                _one("ENTPersonNomPatro", p.birth_surname),
                _one("ENTPersonNom", p.surname),
                _one("ENTPersonPrenom", p.given),
                _many("ENTPersonAutresPrenoms", p.other_given),
                _one("ENTPersonMail", ""),
            )
        )

    # -- responsables -------------------------------------------------------------------------
    def guardian(self, g: Guardian) -> str:
        place = self.communes[g.commune]
        children = (str(i) for i in self.children().get(g.id, ()))
        if self.first_degree:
            return "".join(
                (
                    _one("ENTPersonJointure", str(g.id)),
                    _one("ENTPersonDateNaissance", ""),
                    _one("ENTPersonCivilite", g.title),
                    _one("ENTPersonNomPatro", g.birth_surname),
                    _one("ENTPersonNom", g.surname),
                    _one("ENTPersonPrenom", g.given),
                    _many("ENTPersonAutresPrenoms", g.other_given),
                    _one("ENTPersonMail", g.mail),
                    _one("ENTPersonTelPerso", g.home_phone),
                    _one("ENTPersRelEleveTelMobile", g.mobile),
                    _one("ENTPersRelEleveTelPro", g.work_phone),
                    _one("ENTPersonAdresse", g.address),
                    _one("ENTPersonCodePostal", place.postal),
                    _one("ENTPersonVille", place.name),
                    _one("ENTPersonPays", "FRANCE"),
                    _one("ENTPersonAdresseDiffusion", _yes(g.diffusion)),
                    _many("ENTPersRelEleveEleve", children),
                )
            )
        return "".join(
            (
                _one("ENTPersonJointure", str(g.id)),
                _one("ENTPersonDateNaissance", ""),
                _one("ENTPersonNomPatro", g.birth_surname),
                _one("sn", g.surname),
                _one("givenName", g.given),
                _many("ENTPersonAutresPrenoms", g.other_given),
                _one("personalTitle", g.title),
                _one("homePhone", g.home_phone),
                _one("telephoneNumber", g.work_phone),
                _one("mobile", g.mobile),
                _one("ENTPersonMobileSMS", g.sms),
                _one("mail", g.mail),
                _one("ENTPersonAdresse", g.address),
                _one("ENTPersonCodePostal", place.postal),
                _one("ENTPersonVille", place.name),
                _one("ENTPersonPays", "FRANCE"),
                _one("ENTPersonAdresseDiffusion", _yes(g.diffusion)),
                _many("ENTAuxPersRelEleveEleve", children),
            )
        )

    # -- staff --------------------------------------------------------------------------------
    def staff(self, s: Staff) -> str:
        functions = [f"{j}${code}${label}${d}${dl}" for j, code, label, d, dl in s.functions]
        attached = "" if s.structure is None else str(s.structure)
        if self.first_degree:
            specialities = _unique(f"{d}${dl}" for _, _, _, d, dl in s.functions)
            return "".join(
                (
                    _one("ENTPersonJointure", str(s.id)),
                    _one("ENTPersonDateNaissance", _date(s.birth)),
                    _one("ENTPersonCivilite", s.title),
                    _one("ENTPersonStructRattach", attached),
                    _many("ENTPersonFonctions", functions),
                    _one("ENTPersonCategorieEnseignant", _yes(s.teacher)),
                    _many("ENTEnsFonctionDir", (str(j) for j in s.director_of)),
                    _many("ENTEnsSpecialites", specialities),
                    _one("ENTPersonNomPatro", s.birth_surname),
                    _one("ENTPersonNom", s.surname),
                    _one("ENTPersonPrenom", s.given),
                    _many("ENTPersonAutresPrenoms", s.other_given),
                    _one("ENTPersonMail", s.mail),
                )
            )
        teaching = [f for f in s.functions if f[1] == "ENS"]
        categories = _unique(DISCIPLINES[f[3]].category for f in teaching)
        post = ""
        if teaching:
            category_code = DISCIPLINES[teaching[0][3]].category.split("$", 1)[0]
            post = f"{teaching[0][4]}${category_code}"
        classes = [sv for sv in s.services if not sv[3]]
        groups = [sv for sv in s.services if sv[3]]
        return "".join(
            (
                _one("ENTPersonJointure", str(s.id)),
                _one("ENTPersonDateNaissance", _date(s.birth)),
                _one("ENTPersonNomPatro", s.birth_surname),
                _one("sn", s.surname),
                _one("givenName", s.given),
                _many("ENTPersonAutresPrenoms", s.other_given),
                _one("personalTitle", s.title),
                _one("mail", s.mail),
                _one("ENTPersonStructRattach", attached),
                _many("ENTAuxEnsCategoDiscipline", categories),
                _one("ENTAuxEnsDisciplinesPoste", post),
                _many("ENTAuxEnsMEF", self._staff_mefs(s)),
                _many(
                    "ENTAuxEnsMatiereEnseignEtab",
                    _unique(f"{j}${SUBJECT_LABELS[subject]}" for j, _, subject, _ in s.services),
                ),
                _many("ENTAuxEnsClasses", _unique(f"{j}${code}" for j, code, _, _ in classes)),
                _many("ENTAuxEnsGroupes", _unique(f"{j}${code}" for j, code, _, _ in groups)),
                _many("ENTAuxEnsClassesMatieres", (f"{j}${c}${m}" for j, c, m, _ in classes)),
                _many("ENTAuxEnsGroupesMatieres", (f"{j}${c}${m}" for j, c, m, _ in groups)),
                _many("ENTAuxEnsClassesPrincipal", (f"{j}${c}" for j, c in s.head_of)),
                _many("ENTPersonFonctions", functions),
                _many("ENTEnsFonctionDir", (str(j) for j in s.director_of)),
                _one("ENTPersonCategorieEnseignant", _yes(s.teacher)),
                _one("PersEducNatPresenceDevantEleves", _yes(s.in_class)),
            )
        )

    def _staff_mefs(self, s: Staff) -> list[str]:
        levels: list[tuple[int, str]] = []
        for jointure, code, _, is_group in s.services:
            if is_group:
                levels.append((jointure, self._group_levels[(jointure, code)]))
            else:
                levels.append((jointure, self._classes[(jointure, code)].levels[0]))
        mefs = (LEVELS_2D[level].mef for _, level in levels)
        return _unique(
            f"{j}${mef}${MEFS[mef].label}" for (j, _), mef in zip(levels, mefs, strict=True)
        )

    # -- whole categories ---------------------------------------------------------------------
    def all_structures(self) -> Iterator[tuple[str, str]]:
        for s in self.degree.structures.values():
            yield str(s.jointure), self.structure(s)

    def all_pupils(self) -> Iterator[tuple[str, str]]:
        for p in self.degree.pupils.values():
            yield str(p.id), self.pupil(p)

    def all_guardians(self) -> Iterator[tuple[str, str]]:
        for g in self.degree.guardians.values():
            yield str(g.id), self.guardian(g)

    def all_staff(self) -> Iterator[tuple[str, str]]:
        for s in self.degree.staff.values():
            yield str(s.id), self.staff(s)
