"""Static vocabulary of the synthetic académie: subjects, MEF, levels, school kinds, functions.

Everything here is data, written for this generator. Codes have the shape of the national
nomenclatures (6-digit subjects, 11-digit MEF, ``L0202``-style disciplines, BCN-style structure
natures); the pre-2019 ones are real code/label pairs, the newer lycée subjects carry
illustrative codes. Nothing in this module draws random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACADEMIE_MINISTRY",
    "BOARDER",
    "CIVILITY",
    "CONTACT_RELATIONS",
    "DISCIPLINES",
    "EPONYMS",
    "KINDS_1D",
    "KINDS_2D",
    "LEVELS_1D",
    "LEVELS_2D",
    "MEFS",
    "NON_TEACHING_2D",
    "PRIVATE_EPONYMS",
    "REGIMES",
    "RESIDENCES",
    "STREETS",
    "SUBJECTS",
    "SUBJECT_HOURS",
    "SUBJECT_LABELS",
    "Discipline",
    "Function",
    "Kind1D",
    "Kind2D",
    "Level1D",
    "Level2D",
    "Mef",
    "Option",
    "discipline_for",
]

ACADEMIE_MINISTRY = ("MINISTERE DE L'EDUCATION NATIONALE", "06")
CIVILITY = {True: "Mme", False: "M."}

# ---------------------------------------------------------------------------------------------
# Subjects (MatiereEducNat). A realistic subset of an académie's list: more codes than the
# levels below use, as real files carry the whole nomenclature.
SUBJECTS: tuple[tuple[str, str], ...] = (
    ("002400", "ACCES EN AUTONOMIE AU LABO.INFORMATIQUE"),
    ("003700", "AIDE ET ACCOMPAGNEMENT TRAVAIL PERSONNEL"),
    ("006600", "ACCOMPAGNEMENT PERSONNALISE"),
    ("008400", "VIE DE CLASSE"),
    ("010300", "PHILOSOPHIE"),
    ("020100", "LATIN"),
    ("020200", "GREC ANCIEN"),
    ("020700", "FRANCAIS"),
    ("022500", "LATIN SPECIALITE"),
    ("023100", "AIDE INDIVIDUALISEE EN FRANCAIS"),
    ("030101", "ALLEMAND LV1"),
    ("030102", "ALLEMAND LV2"),
    ("030103", "ALLEMAND LV3"),
    ("030201", "ANGLAIS LV1"),
    ("030202", "ANGLAIS LV2"),
    ("030203", "ANGLAIS LV3"),
    ("030401", "CHINOIS LV1"),
    ("030402", "CHINOIS LV2"),
    ("030601", "ESPAGNOL LV1"),
    ("030602", "ESPAGNOL LV2"),
    ("030603", "ESPAGNOL LV3"),
    ("030901", "ITALIEN LV1"),
    ("030902", "ITALIEN LV2"),
    ("039701", "FRANCAIS LANGUE ETRANGERE 1"),
    ("040600", "HISTOIRE ET GEOGRAPHIE"),
    ("042100", "HISTOIRE-GEOGRAPHIE-EDUCATION CIVIQUE"),
    ("043300", "FRANCAIS  HIST.-GEO. EDUCATION CIVIQUE"),
    ("050700", "SCIENCES ECONOMIQUES ET SOCIALES"),
    ("061300", "MATHEMATIQUES"),
    ("061700", "MATHS SCIENCES"),
    ("062300", "PHYSIQUE-CHIMIE"),
    ("062400", "SCIENCES PHYSIQUES"),
    ("062900", "SCIENCES DE LA VIE ET DE LA TERRE"),
    ("065700", "PHYSIQUE"),
    ("068300", "AIDE INDIVIDUALISEE EN MATHEMATIQUES"),
    ("070800", "TECHNOLOGIE"),
    ("070900", "TECHNOLOGIE GENERALE"),
    ("081300", "EDUCATION MUSICALE"),
    ("090100", "ARTS PLASTIQUES"),
    ("100100", "EDUCATION PHYSIQUE ET SPORTIVE"),
    ("103800", "ATELIER D'EDUCATION PHYSIQUE ET SPORTIVE"),
    ("104100", "EDUC. PHYSIQUE ET SPORTIVE DE COMPLEMENT"),
    ("113100", "SCIENCES NUMERIQUES ET TECHNOLOGIE"),
    ("113200", "ENSEIGNEMENT SCIENTIFIQUE"),
    ("113300", "HIST.GEO.GEOPOLITIQUE & SC.POLITIQUES"),
    ("113400", "HUMANITES, LITTERATURE ET PHILOSOPHIE"),
    ("113500", "NUMERIQUE ET SCIENCES INFORMATIQUES"),
    ("113600", "LANGUES LITT. CULT. ETRANG. ANGLAIS"),
    ("230700", "ELECTROTECHNIQUE"),
    ("231200", "ELECTRICITE"),
    ("240500", "INFORMATIQUE"),
    ("275700", "HISTOIRE DES ARTS"),
    ("278300", "ARTS APPLIQUES ET CULTURES ARTISTIQUES"),
    ("312800", "PREVENTION-SANTE-ENVIRONNEMENT"),
    ("343000", "SERVICE ET COMMERCIALISATION"),
    ("345000", "GESTION DE LA RELATION COMMERCIALE"),
    ("346000", "NEGOCIATION VENTE"),
    ("380400", "ECONOMIE ET GESTION"),
    ("381000", "ECONOMIE ET DROIT"),
    ("400300", "CUISINE (TECHNOLOGIE, TRAVAUX PRATIQUES)"),
    ("413700", "COMMUNICATION & GESTION RELATION CLIENT"),
    ("434600", "SYSTÈME D'INFORMATION ET DE GESTION"),
)
SUBJECT_LABELS: dict[str, str] = dict(SUBJECTS)

# Weekly hours of one class or group in a subject; drives how many teachers a school needs.
SUBJECT_HOURS: dict[str, float] = {
    "020700": 4.5,
    "061300": 4.0,
    "042100": 3.0,
    "030201": 3.0,
    "030101": 3.0,
    "030102": 2.5,
    "030602": 2.5,
    "030902": 2.5,
    "062900": 1.5,
    "062300": 1.5,
    "070800": 1.5,
    "081300": 1.0,
    "090100": 1.0,
    "100100": 3.0,
    "020100": 2.0,
    "010300": 4.0,
    "050700": 1.5,
    "113100": 1.5,
    "113200": 2.0,
    "113300": 4.0,
    "113400": 4.0,
    "113500": 4.0,
    "113600": 4.0,
    "043300": 4.5,
    "061700": 4.0,
    "312800": 1.0,
    "278300": 1.0,
    "380400": 1.0,
    "346000": 6.0,
    "231200": 6.0,
    "008400": 0.5,
}


@dataclass(frozen=True, slots=True)
class Discipline:
    """A discipline de poste (`ENTPersonFonctions` fields 3-4) and its category."""

    code: str
    label: str
    category: str  # ENTAuxEnsCategoDiscipline, `code$label`


DISCIPLINES: dict[str, Discipline] = {
    d.code: d
    for d in (
        Discipline("L0100", "PHILOSOPHIE", "01$PHILOSOPHIE"),
        Discipline("L0201", "LETTRES CLASSIQUES", "02$LETTRES"),
        Discipline("L0202", "LETTRES MODERNES", "02$LETTRES"),
        Discipline("L0421", "ALLEMAND", "04$LANGUES VIVANTES"),
        Discipline("L0422", "ANGLAIS", "04$LANGUES VIVANTES"),
        Discipline("L0426", "ESPAGNOL", "04$LANGUES VIVANTES"),
        Discipline("L0429", "ITALIEN", "04$LANGUES VIVANTES"),
        Discipline("L1000", "HISTOIRE GEOGRAPHIE", "10$HISTOIRE - GEOGRAPHIE"),
        Discipline(
            "L1100", "SCIENCES ECONOMIQUES ET SOCIALES", "11$SCIENCES ECONOMIQUES ET SOCIALES"
        ),
        Discipline("L1300", "MATHEMATIQUES", "13$MATHEMATIQUES"),
        Discipline("L1400", "TECHNOLOGIE", "14$TECHNOLOGIE"),
        Discipline("L1500", "SCIENCES PHYSIQUES ET CHIMIQUES", "15$PHYSIQUE - CHIMIE"),
        Discipline("L1600", "SCIENCES DE LA VIE ET DE LA TERRE", "16$BIOLOGIE - GEOLOGIE"),
        Discipline("L1700", "EDUCATION MUSICALE", "17$EDUCATION MUSICALE"),
        Discipline("L1800", "ARTS PLASTIQUES", "18$ARTS PLASTIQUES"),
        Discipline("L1900", "EDUCATION PHYSIQUE ET SPORTIVE", "19$EDUCATION PHYSIQUE ET SPORTIVE"),
        Discipline("P0210", "LETTRES HISTOIRE GEOGRAPHIE", "02$LETTRES"),
        Discipline("P0222", "LETTRES ANGLAIS", "04$LANGUES VIVANTES"),
        Discipline("P1315", "MATH.SCIENCES PHYSIQUES", "13$MATHEMATIQUES"),
        Discipline("P5200", "GENIE ELECTRIQUE OPTION ELECTROTECHNIQUE", "52$GENIE ELECTRIQUE"),
        Discipline("P6500", "ENSEIGNEMENTS ARTISTIQUES ET ARTS APPLIQ", "65$ARTS APPLIQUES"),
        Discipline("P7200", "BIOTECHNOLOGIES SANTE-ENVIRONNEMENT(E F", "72$BIOTECHNOLOGIES"),
        Discipline("P8011", "ECO-GEST OPTION COMM ET ORG", "80$ECONOMIE ET GESTION"),
        Discipline("P8013", "ECO-GEST OPTION COMMERCE ET VENTE", "80$ECONOMIE ET GESTION"),
    )
}

# Subject code -> discipline code. Vocational schools override a few (an English teacher in a
# lycée professionnel is a "LETTRES ANGLAIS" PLP).
_SUBJECT_DISCIPLINE: dict[str, str] = {
    "020700": "L0202",
    "020100": "L0201",
    "061300": "L1300",
    "042100": "L1000",
    "030201": "L0422",
    "030101": "L0421",
    "030102": "L0421",
    "030602": "L0426",
    "030902": "L0429",
    "062900": "L1600",
    "062300": "L1500",
    "070800": "L1400",
    "081300": "L1700",
    "090100": "L1800",
    "100100": "L1900",
    "010300": "L0100",
    "050700": "L1100",
    "113100": "L1500",
    "113200": "L1600",
    "113300": "L1000",
    "113400": "L0100",
    "113500": "L1300",
    "113600": "L0422",
    "043300": "P0210",
    "061700": "P1315",
    "312800": "P7200",
    "278300": "P6500",
    "380400": "P8011",
    "346000": "P8013",
    "231200": "P5200",
}
_VOCATIONAL_DISCIPLINE = {"030201": "P0222"}


def discipline_for(subject: str, vocational: bool) -> Discipline:
    """The discipline de poste of the teachers who teach ``subject``."""
    if vocational and subject in _VOCATIONAL_DISCIPLINE:
        return DISCIPLINES[_VOCATIONAL_DISCIPLINE[subject]]
    return DISCIPLINES[_SUBJECT_DISCIPLINE[subject]]


# ---------------------------------------------------------------------------------------------
# MEF (MefEducNat): code, label, parent, statistical MEF.
@dataclass(frozen=True, slots=True)
class Mef:
    code: str
    label: str
    stat: str


MEFS: dict[str, Mef] = {
    m.code: m
    for m in (
        Mef("10010012110", "6EME", "21110010012"),
        Mef("10110001110", "5EME", "21120010001"),
        Mef("10210001110", "4EME", "21150010001"),
        Mef("10310019110", "3EME", "21160010019"),
        Mef("20010018110", "2NDE GENERALE ET TECHNOLOGIQUE", "22111410018"),
        Mef("20112001110", "1ERE GENERALE", "22121210001"),
        Mef("20212001110", "TERMINALE GENERALE", "22131210001"),
        Mef("24731202310", "2NDPRO METIERS DU COMMERCE ET DE LA VENTE", "23810031202"),
        Mef("24731202320", "1ERPRO METIERS DU COMMERCE ET DE LA VENTE", "23820031202"),
        Mef("24731202330", "TLEPRO METIERS DU COMMERCE ET DE LA VENTE", "23830031202"),
        Mef("24725506310", "2NDPRO MET. ELECTRICITE ENVIRONNEMENTS", "23810025506"),
        Mef("24725506320", "1ERPRO MET. ELECTRICITE ENVIRONNEMENTS", "23820025506"),
        Mef("24725506330", "TLEPRO MET. ELECTRICITE ENVIRONNEMENTS", "23830025506"),
    )
}


# ---------------------------------------------------------------------------------------------
# 2D levels and the options that turn into groups.
@dataclass(frozen=True, slots=True)
class Option:
    """A choice pupils of one level make, taught in groups spanning ``block`` classes.

    Each pupil picks ``picks`` distinct tags by weight; with ``none_weight`` > 0 a pupil may
    pick nothing (single pick only). A group exists for every (block of classes, tag) that has
    at least one pupil.
    """

    name: str
    block: int
    picks: int
    choices: tuple[tuple[str, str, float], ...]  # (tag, subject code, weight)
    none_weight: float = 0.0


@dataclass(frozen=True, slots=True)
class Level2D:
    key: str
    mef: str
    niv: str  # ENTEleveNivFormation
    filiere: str  # ENTEleveFiliere
    class_prefix: str
    lettered: bool  # 6A, 6B... rather than 2NDE1, 2NDE2...
    birth_offset: int  # rentrée year minus usual birth year
    capacity: int
    core: tuple[str, ...]
    options: tuple[Option, ...] = ()

    @property
    def vocational(self) -> bool:
        return self.filiere == "BAC PRO"


_LV2 = Option("LV2", 2, 1, (("ESP", "030602", 0.6), ("ALL", "030102", 0.3), ("ITA", "030902", 0.1)))
_LATIN = Option("LATIN", 2, 1, (("LAT", "020100", 1.0),), none_weight=4.0)
_BILANGUE = Option("BILANGUE", 2, 1, (("BIL", "030101", 1.0),), none_weight=9.0)
_SPECIALITES = (
    ("SPE-MATH", "061300", 0.70),
    ("SPE-PC", "062300", 0.45),
    ("SPE-SVT", "062900", 0.40),
    ("SPE-SES", "050700", 0.40),
    ("SPE-HGGSP", "113300", 0.35),
    ("SPE-LLCER", "113600", 0.25),
    ("SPE-HLP", "113400", 0.20),
    ("SPE-NSI", "113500", 0.15),
)
_CLG_CORE = (
    "020700",
    "061300",
    "042100",
    "030201",
    "062900",
    "062300",
    "070800",
    "081300",
    "090100",
    "100100",
)
_LYCEE_2NDE_CORE = (
    "020700",
    "061300",
    "042100",
    "030201",
    "062900",
    "062300",
    "050700",
    "113100",
    "100100",
)
_PRO_CORE = ("043300", "061700", "030201", "100100", "312800", "278300", "380400")
_PRO_COM = Option("ATELIER", 1, 1, (("GR1", "346000", 1.0), ("GR2", "346000", 1.0)))
_PRO_ELEC = Option("ATELIER", 1, 1, (("GR1", "231200", 1.0), ("GR2", "231200", 1.0)))

LEVELS_2D: dict[str, Level2D] = {
    lv.key: lv
    for lv in (
        Level2D("6EME", "10010012110", "6EME", "6EME", "6", True, 11, 28, _CLG_CORE, (_BILANGUE,)),
        Level2D(
            "5EME", "10110001110", "5EME", "5EME", "5", True, 12, 28, _CLG_CORE, (_LV2, _LATIN)
        ),
        Level2D(
            "4EME", "10210001110", "4EME", "4EME", "4", True, 13, 28, _CLG_CORE, (_LV2, _LATIN)
        ),
        Level2D(
            "3EME", "10310019110", "3EME", "3EME", "3", True, 14, 28, _CLG_CORE, (_LV2, _LATIN)
        ),
        Level2D(
            "2NDE",
            "20010018110",
            "2NDE GENERALE ET TECHNOLOGIQUE",
            "2NDE GENERALE ET TECHNOLOGIQUE",
            "2NDE",
            False,
            15,
            33,
            _LYCEE_2NDE_CORE,
            (_LV2,),
        ),
        Level2D(
            "1G",
            "20112001110",
            "1ERE GENERALE",
            "1ERE GENERALE",
            "1G",
            False,
            16,
            33,
            ("020700", "042100", "030201", "113200", "100100"),
            (_LV2, Option("SPECIALITES", 3, 3, _SPECIALITES)),
        ),
        Level2D(
            "TG",
            "20212001110",
            "TERMINALE GENERALE",
            "TERMINALE GENERALE",
            "TG",
            False,
            17,
            33,
            ("010300", "042100", "030201", "113200", "100100"),
            (_LV2, Option("SPECIALITES", 3, 2, _SPECIALITES)),
        ),
        Level2D(
            "2COM",
            "24731202310",
            "2NDE PRO",
            "BAC PRO",
            "2COM",
            False,
            15,
            24,
            _PRO_CORE,
            (_PRO_COM,),
        ),
        Level2D(
            "1COM",
            "24731202320",
            "1ERE PRO",
            "BAC PRO",
            "1COM",
            False,
            16,
            24,
            _PRO_CORE,
            (_PRO_COM,),
        ),
        Level2D(
            "TCOM",
            "24731202330",
            "TLE PRO",
            "BAC PRO",
            "TCOM",
            False,
            17,
            24,
            _PRO_CORE,
            (_PRO_COM,),
        ),
        Level2D(
            "2ELEC",
            "24725506310",
            "2NDE PRO",
            "BAC PRO",
            "2ELEC",
            False,
            15,
            24,
            _PRO_CORE,
            (_PRO_ELEC,),
        ),
        Level2D(
            "1ELEC",
            "24725506320",
            "1ERE PRO",
            "BAC PRO",
            "1ELEC",
            False,
            16,
            24,
            _PRO_CORE,
            (_PRO_ELEC,),
        ),
        Level2D(
            "TELEC",
            "24725506330",
            "TLE PRO",
            "BAC PRO",
            "TELEC",
            False,
            17,
            24,
            _PRO_CORE,
            (_PRO_ELEC,),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Kind2D:
    key: str
    sigle: str  # first field of ENTStructureNomCourant
    name_prefix: str
    type_label: str
    type_code: str
    levels: tuple[str, ...]
    level_weights: tuple[float, ...]
    boarding: float  # share of boarders


KINDS_2D: dict[str, Kind2D] = {
    k.key: k
    for k in (
        Kind2D(
            "CLG",
            "CLG",
            "CLG",
            "COLLEGE",
            "340",
            ("6EME", "5EME", "4EME", "3EME"),
            (1.0, 1.0, 1.0, 1.0),
            0.01,
        ),
        Kind2D(
            "LGT",
            "LGT",
            "LYCEE",
            "LYCEE ENSEIGNT GENERAL ET TECHNOLOGIQUE",
            "300",
            ("2NDE", "1G", "TG"),
            (1.15, 1.0, 0.95),
            0.05,
        ),
        Kind2D(
            "LPO",
            "LPO",
            "LYCEE POLYVALENT",
            "LYCEE POLYVALENT",
            "306",
            ("2NDE", "1G", "TG", "2COM", "1COM", "TCOM"),
            (1.1, 1.0, 0.9, 0.4, 0.35, 0.3),
            0.05,
        ),
        Kind2D(
            "LP",
            "LP",
            "LP",
            "LYCEE PROFESSIONNEL",
            "320",
            ("2COM", "1COM", "TCOM", "2ELEC", "1ELEC", "TELEC"),
            (1.1, 1.0, 0.9, 1.1, 1.0, 0.9),
            0.08,
        ),
    )
}


# Non-teaching staff of a 2D school: (function, label, discipline code, discipline label,
# pupils per person, minimum). The chef d'établissement is listed first.
@dataclass(frozen=True, slots=True)
class Function:
    code: str
    label: str
    discipline: str
    discipline_label: str
    per_pupils: int
    minimum: int


NON_TEACHING_2D: tuple[Function, ...] = (
    Function("DIR", "DIRECTION", "D0010", "DIRECTION CHEF D'ETABLISSEMENT", 0, 1),
    Function("DIR", "DIRECTION", "D0011", "DIRECTION ADJOINT AU CHEF ETABLISSEMENT", 350, 0),
    Function("EDU", "EDUCATION", "E0030", "EDUCATION  (CE ,CPE)", 450, 1),
    Function("DOC", "DOCUMENTATION", "L0080", "DOCUMENTATION", 0, 1),
    Function("ADF", "PERSONNELS ADMINISTRATIFS", "-", "SANS OBJET", 300, 1),
    Function(
        "AED", "ASSISTANT D'EDUCATION", "S0054", "ENCADRE. SUR. DES ELEVES (HORS INTERNAT)", 120, 1
    ),
)


# ---------------------------------------------------------------------------------------------
# 1D (Annexe 1): levels, cycles, school kinds.
@dataclass(frozen=True, slots=True)
class Level1D:
    key: str
    code: str
    label: str
    cycle: str
    birth_offset: int


LEVELS_1D: dict[str, Level1D] = {
    lv.key: lv
    for lv in (
        Level1D("TPS", "1110", "Toute petite section", "1$CYCLE I", 2),
        Level1D("PS", "1111", "Petite section", "1$CYCLE I", 3),
        Level1D("MS", "1112", "Moyenne section", "1$CYCLE I", 4),
        Level1D("GS", "1113", "Grande section", "1$CYCLE I", 5),
        Level1D("CP", "1121", "CP", "2$CYCLE II", 6),
        Level1D("CE1", "1122", "CE1", "2$CYCLE II", 7),
        Level1D("CE2", "1123", "CE2", "2$CYCLE II", 8),
        Level1D("CM1", "1124", "CM1", "3$CYCLE III", 9),
        Level1D("CM2", "1125", "CM2", "3$CYCLE III", 10),
    )
}


@dataclass(frozen=True, slots=True)
class Kind1D:
    key: str
    sigle: str  # E.M / E.E / E.P, completed by .PU or .PR
    type_label: str
    levels: tuple[str, ...]
    weight: float  # relative size
    capacity: int


KINDS_1D: dict[str, Kind1D] = {
    k.key: k
    for k in (
        Kind1D("EM", "E.M", "ECOLE MATERNELLE", ("PS", "MS", "GS"), 0.7, 27),
        Kind1D(
            "EE", "E.E", "ECOLE DE NIVEAU ELEMENTAIRE", ("CP", "CE1", "CE2", "CM1", "CM2"), 1.3, 25
        ),
        Kind1D(
            "EP",
            "E.P",
            "ECOLE DE NIVEAU ELEMENTAIRE",
            ("PS", "MS", "GS", "CP", "CE1", "CE2", "CM1", "CM2"),
            1.0,
            25,
        ),
    )
}

# ---------------------------------------------------------------------------------------------
# People and places.
REGIMES: tuple[tuple[str, float], ...] = (
    ("DEMI-PENSIONNAIRE DANS L'ETABLISSEMENT", 0.60),
    ("EXTERNE LIBRE", 0.30),
    ("DEMI-PENSIONNAIRE AU TICKET", 0.05),
    ("EXTERNE SURVEILLE", 0.02),
)
BOARDER = "INTERNE DANS L'ETABLISSEMENT"

# Contact-only persons added to some families: relation code and weight (AAF.md §6.1).
CONTACT_RELATIONS: tuple[tuple[str, float], ...] = (
    ("39", 0.60),  # autre membre de la famille
    ("37", 0.15),  # fratrie
    ("38", 0.15),  # ascendant
    ("90", 0.10),  # autre lien
)

EPONYMS: tuple[str, ...] = (
    "JEAN MOULIN",
    "VICTOR HUGO",
    "JULES FERRY",
    "PABLO PICASSO",
    "MARIE CURIE",
    "LOUISE MICHEL",
    "SIMONE VEIL",
    "JEAN JAURES",
    "ALBERT CAMUS",
    "JACQUES PREVERT",
    "GEORGE SAND",
    "ANTOINE DE SAINT-EXUPERY",
    "JEAN DE LA FONTAINE",
    "COLETTE",
    "PIERRE MENDES FRANCE",
    "LOUIS PASTEUR",
    "JULES VERNE",
    "EMILE ZOLA",
    "GUSTAVE EIFFEL",
    "ARISTIDE BRIAND",
    "CONDORCET",
    "LEONARD DE VINCI",
    "PAUL ELUARD",
    "ROBERT DOISNEAU",
    "OLYMPE DE GOUGES",
    "LUCIE AUBRAC",
    "GERMAINE TILLION",
    "CHARLES PEGUY",
    "MOLIERE",
    "RENE CASSIN",
    "JEANNE D'ARC",
    "ELSA TRIOLET",
    "LES TILLEULS",
    "LES CHARMILLES",
    "LE PETIT PRINCE",
    "LES PETITS PRES",
    "DU CENTRE",
    "DES LILAS",
)
PRIVATE_EPONYMS: tuple[str, ...] = (
    "SAINT-JOSEPH",
    "SAINTE-MARIE",
    "NOTRE-DAME",
    "JEANNE D'ARC",
    "SAINT-EXUPERY",
    "LA SALLE",
    "SAINT-VINCENT",
    "IMMACULEE CONCEPTION",
)
STREETS: tuple[str, ...] = (
    "RUE VICTOR HUGO",
    "AVENUE JEAN JAURES",
    "RUE DE LA REPUBLIQUE",
    "RUE PASTEUR",
    "ALLEE DES TILLEULS",
    "CHEMIN DES VIGNES",
    "PLACE DE LA MAIRIE",
    "RUE DU MOULIN",
    "RUE DE LA GARE",
    "BOULEVARD GAMBETTA",
    "RUE DES ECOLES",
    "IMPASSE DES LILAS",
    "RUE DU GENERAL DE GAULLE",
    "AVENUE DE LA LIBERATION",
    "RUE JEAN MOULIN",
    "RUE DES ROSES",
    "RUE D'ALSACE",
    "RUE DE L'EGLISE",
    "GRANDE RUE",
    "RUE DU CHATEAU",
    "ROUTE DE PARIS",
    "RUE DES PRES",
    "RUE ANATOLE FRANCE",
    "RUE DU STADE",
    "AVENUE FOCH",
    "RUE DES ACACIAS",
    "ALLEE DES CHENES",
    "RUE DE LA FONTAINE",
    "QUAI DE LA MARNE",
    "RUE SAINT-PIERRE",
)
RESIDENCES: tuple[str, ...] = (
    "RESIDENCE LES PINS",
    "RESIDENCE DU PARC",
    "LES JARDINS DE L'ORANGERIE",
    "BATIMENT B",
    "RESIDENCE LE CLOS",
    "TOUR EUROPE",
)
