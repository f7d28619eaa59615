"""The AAF vocabulary: categories, the known attributes, and 1D names folded onto 2D ones.

The raw reader stores every attribute under its *canonical* name: the 2D name when 1D and 2D
spell the same thing differently (AAF.md §5: ``ENTPersonNom`` is ``sn``, ``ENTStructureVille``
is ``l``...). An attribute absent from :data:`CANONICAL` is unknown: it is kept under its own
name, counted and reported, never fatal (AAF.md §10.2).
"""

from __future__ import annotations

__all__ = [
    "CANONICAL",
    "CATEGORIES",
    "CATEGORY_BY_VALUE",
    "EXPECTED_CATEGORIES",
    "REQUEST_OPS",
    "UNMAPPED",
]

#: File-name tokens of the six categories, in dependency order (AAF.md §11 item 10).
CATEGORIES: tuple[str, ...] = (
    "EtabEducNat",
    "MatiereEducNat",
    "MefEducNat",
    "Eleve",
    "PersRelEleve",
    "PersEducNat",
)

#: Operational attribute value -> category token (the subject value is ``MatEducNat``).
CATEGORY_BY_VALUE: dict[str, str] = {
    "EtabEducNat": "EtabEducNat",
    "MatEducNat": "MatiereEducNat",
    "MatiereEducNat": "MatiereEducNat",
    "MefEducNat": "MefEducNat",
    "Eleve": "Eleve",
    "PersRelEleve": "PersRelEleve",
    "PersEducNat": "PersEducNat",
}

#: Categories a Complet must hold to be authoritative (no Matière/MEF files in 1D).
EXPECTED_CATEGORIES: dict[str, tuple[str, ...]] = {
    "2d": CATEGORIES,
    "1d": ("EtabEducNat", "Eleve", "PersRelEleve", "PersEducNat"),
}

REQUEST_OPS: dict[str, str] = {
    "addRequest": "add",
    "modifyRequest": "modify",
    "deleteRequest": "delete",
}

#: 1D (Annexe 1) spellings -> the 2D (Annexe 4bis) attribute they stand for.
_ALIASES: dict[str, str] = {
    # persons
    "ENTPersonNom": "sn",
    "ENTPersonPrenom": "givenName",
    "ENTPersonCivilite": "personalTitle",
    "ENTPersonMail": "mail",
    "ENTPersonTelPerso": "homePhone",
    "ENTPersRelEleveTelMobile": "mobile",
    "ENTPersRelEleveTelPro": "telephoneNumber",
    "ENTPersRelEleveEleve": "ENTAuxPersRelEleveEleve",
    # structures
    "ENTEcoleMinistereTutelle": "ENTEtablissementMinistereTutelle",
    "ENTEcoleCodeMinistereTutelle": "ENTEtablissementCodeMinistereTutelle",
    "ENTEcoleSecteur": "ENTEtablissementContrat",
    "ENTStructureAdresse": "street",
    "ENTStructureBoitePostale": "postOfficeBox",
    "ENTStructureCodePostal": "postalCode",
    "ENTStructureVille": "l",
    "ENTStructureTelephone": "telephoneNumber",
    "ENTStructureFax": "facsimileTelephoneNumber",
    "ENTStructureEmail": "ENTStructureMailSI",
}

#: Every attribute of AAF.md §4-5 (and the SDET LDAP extras of §9.2) under its own name.
_KNOWN: tuple[str, ...] = (
    # operational / join keys
    "ENTPersonJointure",
    "ENTStructureJointure",
    "ENTMatJointure",
    "ENTMefJointure",
    # EtabEducNat
    "ENTStructureUAI",
    "ENTEtablissementUAI",
    "ENTStructureSIREN",
    "ENTStructureNomCourant",
    "ENTStructureTypeStruct",
    "ENTStructureCodeTypeStruct",
    "ENTEtablissementMinistereTutelle",
    "ENTEtablissementCodeMinistereTutelle",
    "ENTEtablissementContrat",
    "postOfficeBox",
    "street",
    "postalCode",
    "l",
    "telephoneNumber",
    "facsimileTelephoneNumber",
    "ENTStructureMailSI",
    "ENTEtablissementStructRattachFctl",
    "ENTEtablissementStructRattachAdmin",
    "ENTEtablissementBassin",
    "ENTServAcAcademie",
    "ENTServAcCodeAcademie",
    "ENTStructureClasses",
    "ENTStructureGroupes",
    "ENTEcoleCirconscription",
    "ENTEcoleCommune",
    "ENTEcoleRPI",
    # persons, shared
    "ENTPersonDateNaissance",
    "ENTPersonNomPatro",
    "sn",
    "givenName",
    "ENTPersonAutresPrenoms",
    "personalTitle",
    "mail",
    "homePhone",
    "mobile",
    "ENTPersonMobileSMS",
    "ENTPersonAdresse",
    "ENTPersonCodePostal",
    "ENTPersonVille",
    "ENTPersonPays",
    "ENTPersonAdresseDiffusion",
    "ENTPersonStructRattach",
    # Eleve
    "ENTEleveINE",
    "ENTEleveStructRattachId",
    "ENTEleveStructureRattachIdMEN",
    "ENTElevePersRelEleve",
    "ENTEleveParents",
    "ENTElevePere",
    "ENTEleveMere",
    "ENTEleveAutoriteParentale",
    "ENTElevePersRelEleve1",
    "ENTElevePersRelEleve2",
    "ENTEleveQualitePersRelEleve1",
    "ENTEleveQualitePersRelEleve2",
    "ENTEleveAdresseRel",
    "ENTEleveBoursier",
    "ENTEleveTransport",
    "ENTEleveRegime",
    "ENTEleveStatutEleve",
    "ENTEleveMEF",
    "ENTEleveLibelleMEF",
    "ENTEleveNivFormation",
    "ENTEleveFiliere",
    "ENTEleveEnseignements",
    "ENTEleveCodeEnseignements",
    "ENTEleveClasses",
    "ENTEleveGroupes",
    "ENTEleveDateEntreeClasses",
    "ENTEleveDateSortieClasses",
    "ENTEleveDateEntreeStructRattach",
    "ENTEleveDateSortieStructRattach",
    "ENTEleveEnseignementsEtablissementsAccueil",
    "ENTEleveMajeur",
    "ENTEleveMajeurAnticipe",
    "ENTEleveDelegClasse",
    # Eleve, 1D
    "ENTPersonClasses",
    "ENTPersonGroupes",
    "ENTEleveNiveau",
    "ENTEleveCycle",
    "ENTEleveTypeClasse",
    "ENTEleveRestaurantScolaire",
    "ENTEleveGarderieMatin",
    "ENTEleveGarderieSoir",
    "ENTEleveEtudesSurveillees",
    # PersRelEleve
    "ENTAuxPersRelEleveEleve",
    # PersEducNat
    "ENTPersonFonctions",
    "ENTAuxEnsCategoDiscipline",
    "ENTAuxEnsDisciplinesPoste",
    "ENTAuxEnsMEF",
    "ENTAuxEnsMatiereEnseignEtab",
    "ENTAuxEnsClasses",
    "ENTAuxEnsGroupes",
    "ENTAuxEnsClassesMatieres",
    "ENTAuxEnsGroupesMatieres",
    "ENTAuxEnsClassesPrincipal",
    "ENTEnsFonctionDir",
    "ENTEnsSpecialites",
    "PersEducNatPresenceDevantEleves",
    "ENTPersonCategorieEnseignant",
    "ENTPersonSTSId",
    "ENTPersonStructRattachDate",
    "ENTAuxEnsCategoDisciplineDate",
    "ENTAuxEnsMEFDate",
    "ENTAuxEnsClassesMatieresDate",
    "ENTAuxEnsGroupesMatieresDate",
    "ENTAuxEnsClassesPrincipalDate",
    "ENTPersonFonctionsDate",
    "ENTPersonCategorieEnseignantDate",
    "ENTEnsFonctionDirDate",
    # MatiereEducNat, MefEducNat
    "ENTLibelleMatiere",
    "ENTMatiereRattach",
    "ENTLibelleMef",
    "ENTMEFRattach",
    "ENTMEFSTAT11",
    "ENTNivFormation",
    "ENTFiliere",
)

#: Attribute name as written -> canonical name; a name missing here is unknown.
CANONICAL: dict[str, str] = {name: name for name in _KNOWN} | _ALIASES

#: Known attributes that no mapping reads (README.md, "Known but not mapped"): the parser reads
#: past their values. A pupil's option labels and schooling labels are a quarter of an Eleve
#: file's values, which would otherwise cross the parsing worker's pipe only to be dropped.
#: A test fails when a mapping names one of them.
# One line per category: EtabEducNat, persons, Eleve, PersEducNat, MefEducNat.
_UNMAPPED_NAMES = """
    ENTEtablissementCodeMinistereTutelle postOfficeBox facsimileTelephoneNumber
        ENTEtablissementStructRattachAdmin ENTEtablissementBassin ENTEcoleCirconscription
        ENTEcoleCommune ENTEcoleRPI
    ENTPersonAdresseDiffusion
    ENTEleveStructureRattachIdMEN ENTEleveBoursier ENTEleveTransport ENTEleveRegime
        ENTEleveStatutEleve ENTEleveLibelleMEF ENTEleveNivFormation ENTEleveFiliere
        ENTEleveEnseignements
        ENTEleveEnseignementsEtablissementsAccueil ENTEleveMajeur ENTEleveMajeurAnticipe
        ENTEleveDelegClasse ENTEleveTypeClasse ENTEleveRestaurantScolaire ENTEleveGarderieMatin
        ENTEleveGarderieSoir ENTEleveEtudesSurveillees
    ENTAuxEnsCategoDiscipline ENTAuxEnsDisciplinesPoste ENTAuxEnsMEF
        ENTAuxEnsMatiereEnseignEtab ENTEnsSpecialites ENTPersonStructRattachDate
        ENTAuxEnsCategoDisciplineDate ENTAuxEnsMEFDate ENTAuxEnsClassesMatieresDate
        ENTAuxEnsGroupesMatieresDate ENTAuxEnsClassesPrincipalDate ENTPersonFonctionsDate
        ENTPersonCategorieEnseignantDate ENTEnsFonctionDirDate
    ENTNivFormation ENTFiliere
"""
UNMAPPED: frozenset[str] = frozenset(_UNMAPPED_NAMES.split())
