"""Mapping into neutral records: sample facts, 1D/2D vocabularies, links, ops, the contract."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aaf_support import aaf_samples, document, request, write

from annuaire.schema import TABLES, EntityKind, NeutralRecord, Ref, SourceWarning
from connectors.aaf import AafExport, AafReader, RawRecord, iter_raw, plan

P = EntityKind.PERSON
S = EntityKind.STRUCTURE


class Read:
    """Everything one export yields, indexed."""

    def __init__(self, export: AafExport, **options: Any) -> None:
        self.reader = AafReader(export, **options)
        self.items = list(self.reader.stream())
        self.records = [i for i in self.items if isinstance(i, NeutralRecord)]
        self.warnings = [i for i in self.items if isinstance(i, SourceWarning)]
        self.by_key = {(r.kind, r.key): r for r in self.records}

    def get(self, kind: EntityKind, key: str) -> NeutralRecord:
        return self.by_key[(kind, key)]

    def owned(self, owner: str, kind: EntityKind) -> list[NeutralRecord]:
        return [r for r in self.records if r.kind is kind and r.owner == Ref(P, owner)]

    def codes(self) -> Counter[str]:
        return Counter(w.code for w in self.warnings)


def read_folder(*parts: str, **options: Any) -> Read:
    (export,) = plan([aaf_samples(*parts)])
    return Read(export, **options)


@pytest.fixture(scope="module")
def men() -> Read:
    return read_folder("men-2013-complet")


# -- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folder",
    ["men-2013-complet", "besancon-1d", "eole-mini", "duplicates", "entcore-2024-positions"],
)
def test_records_fit_the_tables_and_keys_are_unique(folder: str) -> None:
    for export in plan([aaf_samples(folder)]):
        read = Read(export)
        keys = Counter((r.kind, r.key) for r in read.records)
        assert [k for k, n in keys.items() if n > 1] == []
        for record in read.records:
            columns = set(TABLES[record.kind].model_fields)
            assert set(record.data) | set(record.refs) <= columns, record
            assert record.provenance is not None and record.provenance.line
            # A Complet's requests are adds; an incomplete one (these sets are partial on
            # purpose) derives its classes and groups as ``ensure`` (never rewriting).
            derived = record.kind in (EntityKind.CLASS, EntityKind.GROUP) and record.owner is None
            assert record.op == ("ensure" if derived and not export.complete else "add"), record
        assert read.reader.stats.records == len(read.records)


def test_men_2013_pupil(men: Read) -> None:
    pupil = men.get(P, "2605692")
    assert pupil.data["usage_name"] == "Long" and pupil.data["birth_name"] == "AZOT"
    assert pupil.data["first_name"] == "Kù"
    assert pupil.data["other_first_names"] == ["Jetsmao", "Xzuzcosvo", "Pykewi"]
    assert str(pupil.data["birth_date"]) == "1995-09-14"
    assert pupil.structures == ("0059951P",)
    assert set(pupil.external_ids) == {
        ("aaf:ENTPersonJointure", "2605692"),
        ("siecle:ELEVE_ID", "837982"),
    }
    assert pupil.provenance is not None and pupil.provenance.line == 5
    assert pupil.provenance.file.endswith("_Eleve_0001.xml")

    enrollments = {r.key: r for r in men.owned("2605692", EntityKind.ENROLLMENT)}
    assert set(enrollments) == {
        "2605692|class|52006$RUS1TERM|pupil|",
        "2605692|group|52006$206|pupil|",
    }
    in_class = enrollments["2605692|class|52006$RUS1TERM|pupil|"]
    assert in_class.refs["class_id"] == Ref(EntityKind.CLASS, "52006$RUS1TERM")
    assert in_class.refs["structure_id"] == Ref(S, "52006")
    assert in_class.data["role"] == "pupil"
    (role,) = men.owned("2605692", EntityKind.ROLE)
    assert (role.data["role"], role.refs["structure_id"]) == ("pupil", Ref(S, "52006"))

    links = {r.refs["guardian_id"].key: r for r in men.owned("2605692", EntityKind.GUARDIANSHIP)}  # type: ignore[union-attr]
    assert set(links) == {"2867253", "2867254"}
    mother, father = links["2867253"], links["2867254"]
    # `2867253$2$1$1$0$0` and `2867254$1$0$2$0$0`, VE1301: old codes, field 3 is a rank.
    assert mother.data == {
        "relation": "mother",
        "relation_code": "2",
        "legal": True,
        "financial": True,
        "contact": False,
        "payment": False,
        "residence": None,
    }
    assert (father.data["relation"], father.data["legal"], father.data["financial"]) == (
        "father",
        True,
        False,
    )
    assert father.owner == Ref(P, "2605692") and father.structures == ("0059951P",)
    # The guardian PERSON gets the structures of their pupils.
    assert men.get(P, "2867253").structures == ("0059951P",)


def test_men_2013_teacher(men: Read) -> None:
    teacher = "2397013"
    enrollments = {
        (r.data["role"], r.refs["class_id"] or r.refs["group_id"], r.data["subject_code"])
        for r in men.owned(teacher, EntityKind.ENROLLMENT)
    }
    c, g = EntityKind.CLASS, EntityKind.GROUP
    assert enrollments == {
        ("teacher", Ref(c, "50222$T CAP"), "151800"),
        ("teacher", Ref(c, "50222$T CAP"), "202100"),
        ("teacher", Ref(c, "50222$T CAP"), "003500"),
        ("teacher", Ref(c, "50222$2 CAP"), "151800"),
        ("teacher", Ref(c, "50222$2 CAP"), "202100"),
        ("teacher", Ref(g, "50222$SECOURIS"), "312800"),
        ("head_teacher", Ref(c, "50222$2 CAP"), None),
        # The older links name the same codes in 52007, which no link with a subject names
        # (the anonymised sample moved the subject links to 50222): a fallback each.
        ("teacher", Ref(c, "52007$T CAP"), None),
        ("teacher", Ref(c, "52007$2 CAP"), None),
        ("teacher", Ref(g, "52007$SECOURIS"), None),
    }
    roles = {
        (r.data["role"], r.refs["structure_id"].key, r.data["discipline_code"])  # type: ignore[union-attr]
        for r in men.owned(teacher, EntityKind.ROLE)
    }
    assert roles == {
        ("teacher", "50222", "P4100"),
        ("teacher", "50222", "P2500"),
        ("teacher", "52007", None),  # ENTPersonStructRattach, not covered by a function
    }
    assert men.get(P, teacher).structures == ("0059952R",)  # 50222 is not in the export


def test_men_2013_structures_and_nomenclatures(men: Read) -> None:
    structure = men.get(S, "52006")
    assert structure.data["uai"] == "0059951P"
    assert structure.data["name"] == "Z.REMP-DE GAP-AIX_MARS."
    assert structure.data["academie_name"] == "AIX-MARSEILLE"
    assert set(structure.external_ids) == {
        ("aaf:ENTStructureJointure", "52006"),
        ("uai", "0059951P"),
    }
    assert men.get(EntityKind.SUBJECT, "030201").data["label"] == "ANGLAIS LV1"
    mef = men.get(EntityKind.LEVEL, "mef:10310019110")
    assert (mef.data["kind"], mef.data["code"]) == ("mef", "10310019110")
    # ENTStructureClasses is empty in 2013: classes of the export's structures are derived
    # from the pupils (self-owned, with their MEF), those of absent structures are not.
    derived = men.get(EntityKind.CLASS, "52006$RUS1TERM")
    assert derived.owner is None and "24133610210" in derived.data["level_codes"]
    assert (EntityKind.CLASS, "50222$T CAP") not in men.by_key
    # 310 structures named by functions are absent from the export: one warning each.
    assert men.codes() == {"dangling-reference": 310}


def test_besancon_1d_staff_and_schools() -> None:
    read = read_folder("besancon-1d")
    school = read.get(S, "11")
    assert school.data | {} == school.data
    assert (school.data["uai"], school.data["name"], school.data["kind"]) == (
        "0250131G",
        "E.E.PU AUDEUX",
        "ecole",
    )
    assert (school.data["city"], school.data["postal_code"], school.data["sector"]) == (
        "AUDEUX",
        "25170",
        "PU",
    )
    assert school.data["degree"] == "1d"
    person = read.get(P, "5282")  # ENTPersonNom / ENTPersonPrenom / ENTPersonCivilite
    assert (person.data["usage_name"], person.data["first_name"], person.data["civility"]) == (
        "NOM268AD6",
        "NOM445DEE",
        "M.",
    )
    assert person.data["other_first_names"] == ["NOM445DEE"]  # attr given twice, first empty
    assert person.data["email"] == "user964593@ac-besancon.fr"
    (role,) = read.owned("5282", EntityKind.ROLE)
    assert (role.data["role"], role.data["function_code"], role.data["discipline_code"]) == (
        "teacher",
        "ENS",
        "G0000",
    )
    roles = Counter(r.data["role"] for r in read.records if r.kind is EntityKind.ROLE)
    assert set(roles) == {"teacher", "director"}
    director = read.owned("19474", EntityKind.ROLE)
    assert ("director", "270") in {(r.data["role"], r.refs["structure_id"].key) for r in director}  # type: ignore[union-attr]
    # Every record sends ENTEnsFonctionDir: the directors are exactly whom it lists (25 more
    # people have the DIRECTION speciality), one per school but for one school.
    (export,) = plan([aaf_samples("besancon-1d")])
    staff = [
        r
        for f in export.files
        if f.category == "PersEducNat"
        for r in iter_raw(f)
        if isinstance(r, RawRecord)
    ]
    assert all("ENTEnsFonctionDir" in r.attrs for r in staff)
    listed = {(r.id, school) for r in staff for school in r.attrs["ENTEnsFonctionDir"]}
    directors = [
        (r.owner.key, r.refs["structure_id"].key)  # type: ignore[union-attr]
        for r in read.records
        if r.kind is EntityKind.ROLE and r.data["role"] == "director" and r.owner is not None
    ]
    assert len(listed) == 154 and sorted(directors) == sorted(listed)
    per_school = Counter(school for _, school in directors)
    assert sum(1 for n in per_school.values() if n > 1) == 1
    assert read.warnings == []


def test_entcore_2020_dangling_references_become_warnings() -> None:
    read = read_folder("entcore-2020")
    messages = [w.message for w in read.warnings if w.code == "dangling-reference"]
    assert any("'1000'" in m for m in messages) and any("'3000'" in m for m in messages)
    # No PersRelEleve file: a partial Complet keeps the pupil's links (the guardians may be
    # stored); the sync engine reports those whose guardian the store does not hold.
    assert not any("dropped" in m for m in messages)
    kept = [r for r in read.records if r.kind is EntityKind.GUARDIANSHIP]
    # The fixture also names the pupil's own id, as their mother: no link, a warning.
    assert {r.refs["guardian_id"] for r in kept} == {Ref(P, "3000000")}
    (self_link,) = [w for w in read.warnings if "ENTElevePersRelEleve" in w.message]
    assert "'2000000'" in self_link.message and "link skipped" in self_link.message
    assert all(r.owner == Ref(P, "2000000") for r in kept)
    for link in kept:
        assert link.provenance is not None and link.provenance.record_id == "2000000"
        assert link.provenance.file.endswith("ENT_Complet_20200101_Eleve_0000.xml")
        assert link.provenance.line == 4
    (enrollment,) = read.owned("2000000", EntityKind.ENROLLMENT)
    assert enrollment.refs["class_id"] == Ref(EntityKind.CLASS, "3000$1AQUA")
    assert str(enrollment.data["start_date"]) == "2020-08-18"
    pupil = read.get(P, "2000000")
    assert ("ine", "100000000AA") in pupil.external_ids
    assert pupil.data["address_lines"] == ["1 rue de Test"]
    assert pupil.structures == ()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("eleves/addRequest/delta", {("person", "1447044", "add"), ("guardianship", "add")}),
        ("eleves/modifyRequest_CasNormal/delta", {("person", "22949", "modify")}),
        ("eleves/modifyRequest_CasAnormal/delta", {("person", "22949", "modify")}),
        ("eleves/deleteRequest/delta", {("person", "1321230", "delete")}),
        ("etab/delta", {("structure", "0", "add")}),
        ("personnels/delta/deleteRequest/delta", {("person", "370009", "delete")}),
        ("personnels/delta/modifyRequest/delta", {("person", "370009", "modify")}),
        ("responsables/delta/modifyRequest/delta", {("person", "1444147", "modify")}),
    ],
)
def test_eole_delta_cases_ops(case: str, expected: set[tuple[str, ...]]) -> None:
    read = read_folder("eole-delta-cases", *case.split("/"))
    owners = {(r.kind.value, r.key, r.op) for r in read.records if r.owner is None}
    links = {(r.kind.value, r.op) for r in read.records if r.kind is EntityKind.GUARDIANSHIP}
    assert expected <= owners | links
    ops = {r.op for r in read.records}
    assert len(ops) == 1  # a modify carries all its owned records as modify, etc.
    for record in read.records:
        if record.op == "delete":
            assert record.data == {} and record.refs == {}


def test_delta_keeps_guardianships_whose_guardian_is_elsewhere() -> None:
    read = read_folder("eole-delta-cases", "eleves", "addRequest", "delta")
    links = read.owned("1447044", EntityKind.GUARDIANSHIP)
    assert len(links) == 2 and all(link.op == "add" for link in links)
    assert not any("dropped" in w.message for w in read.warnings)


def test_delete_of_the_complet_record_uses_the_identifier() -> None:
    complet = read_folder("eole-delta-cases", "eleves", "deleteRequest", "complet")
    delta = read_folder("eole-delta-cases", "eleves", "deleteRequest", "delta")
    (deleted,) = delta.records
    assert (P, deleted.key) in complet.by_key
    assert complet.codes()["id-mismatch"] == 1


def test_known_structures_resolve_a_delta() -> None:
    read = read_folder(
        "eole-delta-cases", "eleves", "addRequest", "delta", known_structures={"2091": "0211234X"}
    )
    assert read.get(P, "1447044").structures == ("0211234X",)
    assert read.codes()["dangling-reference"] == 0


# -- fixtures: a whole 1D export, 2D links, versions --------------------------------------


def _one_d_export(folder: Path) -> AafExport:
    header = {"versionAF": "AAF-VE2003", "versionSDET": "Annexe 1 version 6.3"}
    etab = [
        request(
            "EtabEducNat",
            "490",
            [
                ("ENTStructureJointure", "490"),
                ("ENTStructureUAI", "0251234A"),
                ("ENTStructureNomCourant", "E.P.PU$LES ECUREUILS$BADEVEL"),
                ("ENTStructureTypeStruct", "ECOLE DE NIVEAU ELEMENTAIRE"),
                ("ENTEcoleSecteur", "PU"),
                ("ENTStructureAdresse", "9 rue de la Mairie"),
                ("ENTStructureCodePostal", "25170"),
                ("ENTStructureVille", "BADEVEL"),
                ("ENTStructureTelephone", "+33 3 81 00 00 00"),
                ("ENTServAcCodeAcademie", "003"),
            ],
        ),
    ]
    pupils = [
        request(
            "Eleve",
            ident,
            [
                ("ENTPersonJointure", ident),
                ("ENTPersonNom", "NOM"),
                ("ENTPersonPrenom", first),
                ("ENTPersonCivilite", "M"),
                ("ENTPersonDateNaissance", "31/02/2015"),
                ("ENTPersonStructRattach", "490"),
                ("ENTPersonClasses", f"490$11$ORDINAIRE$73183$CE1-CE2 Mme {teacher}"),
                ("ENTPersonGroupes", "490$40$REGROUPEMENT$73547$Chorale"),
                ("ENTEleveNiveau", level),
                ("ENTEleveCycle", "2$CYCLE II"),
                ("ENTEleveDateEntreeClasses", "490$05/09/2019$73183"),
                ("ENTEleveAutoriteParentale", ["3079279$20", "3079280$10"]),
            ],
        )
        for ident, first, teacher, level in (
            ("101", "Léa", "X", "1122$CE1"),
            ("102", "Tom", "X", "1123$CE2"),
        )
    ]
    relatives = [
        request(
            "PersRelEleve",
            "3079279",
            [
                ("ENTPersonJointure", "3079279"),
                ("ENTPersonNom", "NOM"),
                ("ENTPersonTelPerso", "+33 3 00"),
                ("ENTPersRelEleveTelMobile", "+33 6 00"),
                ("ENTPersonAdresse", "$$5 AVENUE JEAN JAURES$"),
                ("ENTPersRelEleveEleve", "101"),
            ],
        ),
    ]
    staff = [
        request(
            "PersEducNat",
            "9",
            [
                ("ENTPersonJointure", "9"),
                ("ENTPersonNom", "DIR"),
                ("ENTPersonFonctions", "490$ENS$ENSEIGNEMENT$D0000$DIRECTION"),
                ("ENTEnsFonctionDir", "490"),
                ("ENTPersonCategorieEnseignant", "O"),
            ],
        ),
        # The DIRECTION speciality without being listed in ENTEnsFonctionDir: not a director.
        request(
            "PersEducNat",
            "10",
            [
                ("ENTPersonJointure", "10"),
                ("ENTPersonNom", "ADJ"),
                ("ENTPersonFonctions", "490$ENS$ENSEIGNEMENT$D0000$DIRECTION"),
                ("ENTEnsFonctionDir", None),
                ("ENTPersonCategorieEnseignant", "O"),
            ],
        ),
        # A record without the attribute (older files): the speciality says it.
        request(
            "PersEducNat",
            "11",
            [
                ("ENTPersonJointure", "11"),
                ("ENTPersonNom", "OLD"),
                ("ENTPersonFonctions", "491$ENS$ENSEIGNEMENT$D0000$DIRECTION"),
                ("ENTPersonCategorieEnseignant", "O"),
            ],
        ),
    ]
    for category, requests in (
        ("EtabEducNat", etab),
        ("Eleve", pupils),
        ("PersRelEleve", relatives),
        ("PersEducNat", staff),
    ):
        write(
            folder / f"ENT1D_Complet_20200516_{category}_0000.xml",
            document(requests, header=header),
        )
    (export,) = plan([folder])
    return export


def test_a_1d_export(tmp_path: Path) -> None:
    export = _one_d_export(tmp_path)
    assert (export.degree, export.complete) == ("1d", True)
    read = Read(export)
    school = read.get(S, "490")
    assert (school.data["name"], school.data["street"], school.data["phone"]) == (
        "LES ECUREUILS",
        "9 rue de la Mairie",
        "+33 3 81 00 00 00",
    )
    assert school.data["academie"] == "003"

    classes = [r for r in read.records if r.kind is EntityKind.CLASS]
    assert len(classes) == 1  # once per export, whatever the number of pupils
    (klass,) = classes
    assert (klass.key, klass.data["code"], klass.data["label"]) == (
        "490$73183",
        "73183",
        "CE1-CE2 Mme X",
    )
    assert klass.data["level_codes"] == ["1122", "1123"]
    assert klass.refs["structure_id"] == Ref(S, "490") and klass.structures == ("0251234A",)
    assert klass.owner is None  # derived from many records: owns itself
    group = read.get(EntityKind.GROUP, "490$73547")
    assert group.data["label"] == "Chorale"
    levels = {r.key: r.data for r in read.records if r.kind is EntityKind.LEVEL}
    assert set(levels) == {"1d-level:1122", "1d-level:1123", "1d-cycle:2"}
    assert levels["1d-cycle:2"]["kind"] == "1d_cycle" and levels["1d-level:1122"]["label"] == "CE1"

    enrollment = read.get(EntityKind.ENROLLMENT, "101|class|490$73183|pupil|")
    assert str(enrollment.data["start_date"]) == "2019-09-05"
    pupil = read.get(P, "101")
    assert pupil.data["civility"] == "M." and pupil.data["birth_date"] is None
    assert pupil.structures == ("0251234A",)
    # A person's value is not quoted (warnings reach API clients); a code is.
    assert not [w for w in read.warnings if "31/02/2015" in w.message]
    bad_date = next(w for w in read.warnings if w.message.startswith("ENTPersonDateNaissance"))
    assert bad_date.code == "bad-value" and "shaped '**/**/****'" in bad_date.message
    assert bad_date.provenance is not None and bad_date.provenance.record_id == "101"

    links = {r.key: r.data for r in read.records if r.kind is EntityKind.GUARDIANSHIP}
    assert links["3079279|101"]["relation"] == "father"  # 20, new code
    assert links["3079279|101"]["legal"] is True
    # 3079280 (`$10`, mother) is not a PersRelEleve record of this Complet: dropped, warned.
    assert set(links) == {"3079279|101", "3079279|102"}
    assert sum("3079280" in w.message and "dropped" in w.message for w in read.warnings) == 2
    guardian = read.get(P, "3079279")
    assert guardian.structures == ("0251234A",)
    assert (guardian.data["phone_home"], guardian.data["phone_mobile"]) == ("+33 3 00", "+33 6 00")
    assert guardian.data["address_lines"] == ["5 AVENUE JEAN JAURES"]
    # ENTPersRelEleveEleve lists 101 only, while 102 names this person too.
    assert read.codes()["link-mismatch"] == 1

    def roles_of(key: str) -> set[tuple[Any, Any, str]]:
        return {
            (r.data["role"], r.data["function_code"], r.refs["structure_id"].key)  # type: ignore[union-attr]
            for r in read.owned(key, EntityKind.ROLE)
        }

    # 1D directors: ENTEnsFonctionDir; the DIRECTION speciality only where it is absent.
    assert roles_of("9") == {("teacher", "ENS", "490"), ("director", None, "490")}
    assert roles_of("10") == {("teacher", "ENS", "490")}
    assert roles_of("11") == {("teacher", "ENS", "491"), ("director", None, "491")}


def test_2d_structure_classes_and_groups(tmp_path: Path) -> None:
    write(
        tmp_path / "ENT_Complet_20240916_EtabEducNat_0000.xml",
        document(
            [
                request(
                    "EtabEducNat",
                    "4931",
                    [
                        ("ENTStructureJointure", "4931"),
                        ("ENTStructureUAI", "0940072T"),
                        ("ENTStructureNomCourant", "CLG$CLG INTEGRATION$PARIS"),
                        ("ENTStructureTypeStruct", "COLLEGE"),
                        ("ENTEtablissementContrat", "PU"),
                        (
                            "ENTStructureClasses",
                            ["3A$3EME$10310019110", "3B$$10310019110$10310019111"],
                        ),
                        ("ENTStructureGroupes", ["3A-3B LAT$$3A$3B", "BAD"]),
                    ],
                )
            ]
        ),
    )
    write(
        tmp_path / "ENT_Complet_20240916_Eleve_0000.xml",
        document(
            [
                request(
                    "Eleve",
                    "1",
                    [
                        ("ENTPersonJointure", "1"),
                        ("ENTPersonStructRattach", "4931"),
                        ("ENTEleveClasses", "4931$3A"),
                        ("ENTEleveGroupes", "4931$3A-3B LAT"),
                        ("ENTEleveMEF", "10310019110"),
                        (
                            "ENTElevePersRelEleve",
                            ["8$10$1$1$0$1", "9$20$0$2$1$0", "10$99$1$1$0$0", "x$1"],
                        ),
                        ("ENTEleveAdresseRel", "8"),
                    ],
                ),
                request("Eleve", "2", [("ENTPersonJointure", "2"), ("ENTEleveClasses", "4931$3C")]),
            ]
        ),
    )
    write(
        tmp_path / "ENT_Complet_20240916_PersRelEleve_0000.xml",
        document(
            [request("PersRelEleve", key, [("ENTPersonJointure", key)]) for key in ("8", "9", "10")]
        ),
    )
    (export,) = plan([tmp_path])
    read = Read(export)
    structure = read.get(S, "4931")
    assert (structure.data["name"], structure.data["kind"], structure.data["sector"]) == (
        "CLG INTEGRATION",
        "college",
        "PU",
    )
    klass = read.get(EntityKind.CLASS, "4931$3B")
    assert (klass.data["label"], klass.data["level_codes"]) == (
        None,
        ["10310019110", "10310019111"],
    )
    assert klass.owner == Ref(S, "4931")  # a delta modify of the structure replaces it
    group = read.get(EntityKind.GROUP, "4931$3A-3B LAT")
    assert group.refs["class_ids"] == [
        Ref(EntityKind.CLASS, "4931$3A"),
        Ref(EntityKind.CLASS, "4931$3B"),
    ]
    # 3A is declared: not derived again; 3C is not: derived, owning itself.
    assert read.get(EntityKind.CLASS, "4931$3A").owner == Ref(S, "4931")
    assert read.get(EntityKind.CLASS, "4931$3C").owner is None
    assert read.reader.stats.derived_classes == 1

    links = {r.refs["guardian_id"].key: r.data for r in read.owned("1", EntityKind.GUARDIANSHIP)}  # type: ignore[union-attr]
    # VE2407: field 3 is a flag, `2` is not a legal representative.
    assert (links["8"]["relation"], links["8"]["legal"], links["8"]["payment"]) == (
        "mother",
        True,
        True,
    )
    assert (links["9"]["relation"], links["9"]["legal"], links["9"]["contact"]) == (
        "father",
        False,
        True,
    )
    assert links["10"]["relation"] == "unknown" and links["10"]["relation_code"] == "99"
    assert (links["8"]["residence"], links["9"]["residence"]) == (True, False)
    bad = [w for w in read.warnings if w.code == "bad-value"]
    assert {w.message.split(":")[0] for w in bad} == {"ENTStructureGroupes", "ENTElevePersRelEleve"}
    assert any("'x$1'" in w.message for w in bad) and any("'99'" in w.message for w in bad)


def _one_pupil_delta(
    folder: Path, attrs: list[tuple[str, Any]], header: dict[str, str]
) -> AafExport:
    """A Delta of one Eleve record (pupil ``1``) with ``attrs`` besides its join key."""
    write(
        folder / "ENT_Delta_20240916_Eleve_0000.xml",
        document([request("Eleve", "1", [("ENTPersonJointure", "1"), *attrs])], header=header),
    )
    (export,) = plan([folder])
    return export


def test_class_dates_are_the_classes_of_the_pupil(tmp_path: Path) -> None:
    """``ENTEleveDateEntreeClasses``/``…SortieClasses`` date the pupil's classes: a group with
    a class's code gets none, and a date of a class the pupil is not in is reported."""
    export = _one_pupil_delta(
        tmp_path,
        [
            ("ENTEleveClasses", "43$3A"),
            ("ENTEleveGroupes", "43$3A"),
            ("ENTEleveDateEntreeClasses", "43$01/09/2024$3A"),
            ("ENTEleveDateSortieClasses", "43$15/10/2024$3C"),
        ],
        {"versionAF": "AAF-VE2407"},
    )
    read = Read(export, known_structures={"43": "0430000B"})
    dates = {
        r.key: (str(r.data["start_date"]), r.data["end_date"])
        for r in read.owned("1", EntityKind.ENROLLMENT)
    }
    assert dates == {
        "1|class|43$3A|pupil|": ("2024-09-01", None),
        "1|group|43$3A|pupil|": ("None", None),
    }
    (reported,) = [w for w in read.warnings if "ENTEleveDateSortieClasses" in w.message]
    assert "43$…$3C" in reported.message and "date ignored" in reported.message


@pytest.mark.parametrize(
    ("version", "legal_of_rank_2"),
    [("AAF-VE1301", True), ("AAF-VE1401", True), ("AAF-VE1806", False), (None, True)],
)
def test_legal_field_by_version(tmp_path: Path, version: str | None, legal_of_rank_2: bool) -> None:
    header = {"versionAF": version} if version else {"other": "x"}
    export = _one_pupil_delta(
        tmp_path, [("ENTElevePersRelEleve", ["8$2$1$1$0$0", "9$1$0$2$0$0"])], header
    )
    links = {r.key: r.data for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    assert links["8|1"]["legal"] is True
    assert links["9|1"]["legal"] is legal_of_rank_2


def test_rank_2_is_settled_by_the_parental_authority_the_record_sends() -> None:
    """duplicates (VE1711), pupil 1: ``ENTElevePersRelEleve`` = ``2$1$0$2$0$0`` (field 3 is
    ``2``, which the ≥ VE17xx flag reading takes for "not legal"), and the same record's
    ``ENTEleveAutoriteParentale`` = ``2``: person 2 holds parental authority, as the file says."""
    read = read_folder("duplicates")
    link = read.get(EntityKind.GUARDIANSHIP, "2|1").data
    assert (link["relation_code"], link["legal"]) == ("1", True)
    assert (link["financial"], link["contact"], link["payment"]) == (False, False, False)


def test_a_relation_code_the_older_parent_attributes_contradict_is_reported() -> None:
    """duplicates, pupil 1: relation code ``1`` (father) for person 2, whom the same record's
    ``ENTEleveMere`` names as the mother. The code is kept (``ENTElevePersRelEleve`` is
    authoritative, AAF.md §6.3) and the contradiction is reported, not passed over."""
    read = read_folder("duplicates")
    link = read.get(EntityKind.GUARDIANSHIP, "2|1").data
    assert (link["relation"], link["relation_code"]) == ("father", "1")
    (warning,) = [w for w in read.warnings if w.code == "link-mismatch"]
    assert warning.provenance is not None and warning.provenance.record_id == "1"
    assert "ENTEleveMere names 2" in warning.message and "father" in warning.message


def test_men_2013_parent_attributes_agree_with_the_relation_codes(men: Read) -> None:
    """In men-2013-complet the 369 ENTElevePere and 459 ENTEleveMere agree with codes 1 and 2."""
    assert men.codes()["link-mismatch"] == 0


@pytest.mark.parametrize(
    ("authority", "legal_of_2"),
    [(None, False), (["9"], True), (["8"], False), (["8", "9"], True)],
)
def test_rank_2_under_flag_semantics_reads_the_parental_authority(
    tmp_path: Path, authority: list[str] | None, legal_of_2: bool
) -> None:
    """From VE17xx field 3 is a flag and ``2`` is ambiguous (AAF.md §6.2); a record that also
    sends ``ENTEleveAutoriteParentale`` says who holds parental authority. ``0`` and ``1``
    stay as sent."""
    attrs: list[tuple[str, Any]] = [("ENTElevePersRelEleve", ["8$10$1$1$0$0", "9$20$0$2$0$0"])]
    if authority is not None:
        attrs.append(("ENTEleveAutoriteParentale", authority))
    export = _one_pupil_delta(tmp_path, attrs, {"versionAF": "AAF-VE1806"})
    links = {r.key: r.data for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    assert links["8|1"]["legal"] is True
    assert links["9|1"]["legal"] is legal_of_2


def test_legacy_2d_parental_authority_is_a_fallback(tmp_path: Path) -> None:
    export = _one_pupil_delta(
        tmp_path,
        [("ENTElevePere", "7"), ("ENTEleveAutoriteParentale", ["7", "8"])],
        {"versionAF": "AAF-VE1301"},
    )
    links = {r.key: r.data for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    assert (links["7|1"]["relation"], links["7|1"]["legal"]) == ("father", True)
    assert (links["8|1"]["relation"], links["8|1"]["relation_code"]) == ("unknown", None)


def test_legacy_2d_links_give_every_person_they_name(tmp_path: Path) -> None:
    """Without ``ENTElevePersRelEleve`` the older attributes name the pupil's persons (AAF.md
    §6.3): a father without parental authority, the other parents, and the non-parent persons
    with the flag their quality gives; ``legal`` is membership of ENTEleveAutoriteParentale."""
    export = _one_pupil_delta(
        tmp_path,
        [
            ("ENTElevePere", "7"),
            ("ENTEleveMere", "8"),
            ("ENTEleveParents", ["7", "8", "6"]),
            ("ENTEleveAutoriteParentale", "8"),
            ("ENTElevePersRelEleve1", "9"),
            ("ENTEleveQualitePersRelEleve1", "CONTACT"),
            ("ENTElevePersRelEleve2", "10"),
            ("ENTEleveQualitePersRelEleve2", "FINANCIER"),
        ],
        {"versionAF": "AAF-VE1301"},
    )
    links = {r.key: r.data for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    flags = ("relation", "legal", "financial", "contact", "payment")
    assert {key: tuple(data[f] for f in flags) for key, data in links.items()} == {
        "7|1": ("father", False, None, None, None),
        "8|1": ("mother", True, None, None, None),
        "6|1": ("unknown", False, None, None, None),
        "9|1": ("unknown", False, None, True, None),
        "10|1": ("unknown", False, True, None, None),
    }
    assert all(data["relation_code"] is None for data in links.values())


def test_legacy_2d_links_without_parental_authority_leave_legal_unknown(tmp_path: Path) -> None:
    export = _one_pupil_delta(
        tmp_path,
        [("ENTEleveMere", "8"), ("ENTElevePersRelEleve1", "9")],
        {"versionAF": "AAF-VE1301"},
    )
    links = {r.key: r.data for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    assert {key: (d["relation"], d["legal"]) for key, d in links.items()} == {
        "8|1": ("mother", None),
        "9|1": ("unknown", None),
    }


def test_legacy_2d_links_yield_to_the_main_link(tmp_path: Path) -> None:
    """When both forms are sent, ``ENTElevePersRelEleve`` alone counts (AAF.md §6.3)."""
    export = _one_pupil_delta(
        tmp_path,
        [
            ("ENTElevePersRelEleve", "8$2$1$1$0$0"),
            ("ENTEleveMere", "8"),
            ("ENTElevePersRelEleve1", "9"),
            ("ENTEleveQualitePersRelEleve1", "CONTACT"),
        ],
        {"versionAF": "AAF-VE1301"},
    )
    links = {r.key for r in Read(export).records if r.kind is EntityKind.GUARDIANSHIP}
    assert links == {"8|1"}


def test_staff_sts_id_is_an_external_id(tmp_path: Path) -> None:
    """``ENTPersonSTSId`` (AAF.md §4.4) is kept, typed by its attribute."""
    write(
        tmp_path / "ENT_Delta_20250916_PersEducNat_0000.xml",
        document(
            [
                request(
                    "PersEducNat",
                    "5",
                    [
                        ("ENTPersonJointure", "5"),
                        ("ENTPersonStructRattach", "42"),
                        ("ENTPersonSTSId", "69881"),
                    ],
                ),
                request("PersEducNat", "6", [("ENTPersonJointure", "6")]),
            ]
        ),
    )
    (export,) = plan([tmp_path])
    read = Read(export, known_structures={"42": "0420000A"})
    assert set(read.get(P, "5").external_ids) == {
        ("aaf:ENTPersonJointure", "5"),
        ("aaf:ENTPersonSTSId", "69881"),
    }
    assert read.get(P, "6").external_ids == (("aaf:ENTPersonJointure", "6"),)
    assert read.reader.stats.unknown_attributes == Counter()


def test_staff_links_and_fallbacks(tmp_path: Path) -> None:
    write(
        tmp_path / "ENT_Delta_20240916_PersEducNat_0000.xml",
        document(
            [
                request(
                    "PersEducNat",
                    "5",
                    [
                        ("ENTPersonJointure", "5"),
                        ("ENTPersonStructRattach", "42"),
                        (
                            "ENTAuxEnsClasses",
                            ["42$1A", "42$1B"],
                        ),  # no ClassesMatieres: the fallback
                        # The older links count for the groups no link with a subject names.
                        ("ENTAuxEnsGroupes", ["42$G1", "42$G2"]),
                        ("ENTAuxEnsGroupesMatieres", "42$G2$030201"),
                        ("ENTAuxEnsClassesPrincipal", "42$1A"),
                        (
                            "ENTPersonFonctions",
                            [
                                "42$DOC$DOCUMENTATION$L8011$DOCUMENTATION",
                                "43$ADF$PERSONNELS ADMINISTRATIFS$-$SANS OBJET",
                                "44$DIR$DIRECTION$-$SANS OBJET",
                                "4$ENS",
                            ],
                        ),
                        ("ENTEnsFonctionDir", "44"),
                    ],
                ),
            ],
            header={"versionAF": "AAF-VE2407"},
        ),
    )
    (export,) = plan([tmp_path])
    read = Read(export, known_structures={"42": "0420000A", "43": "0430000B"})
    enrollments = {r.key for r in read.owned("5", EntityKind.ENROLLMENT)}
    assert enrollments == {
        "5|class|42$1A|teacher|",
        "5|class|42$1B|teacher|",
        "5|group|42$G1|teacher|",
        "5|group|42$G2|teacher|030201",
        "5|class|42$1A|head_teacher|",
    }
    roles = {
        (
            r.data["role"],
            r.refs["structure_id"].key,  # type: ignore[union-attr]
            r.data["function_code"],
            r.data["discipline_code"],
        )
        for r in read.owned("5", EntityKind.ROLE)
    }
    # DOC makes a teacher (AAF.md §7.4), but where they hold an administrative function (ADF)
    # they are staff: a profile per structure and function.
    assert roles == {
        ("teacher", "42", "DOC", "L8011"),
        ("staff", "43", "ADF", None),
        ("head", "44", "DIR", None),
    }
    assert read.get(P, "5").structures == ("0420000A", "0430000B")
    bad = [w for w in read.warnings if w.code == "bad-value"]
    assert len(bad) == 1 and "'4$ENS'" in bad[0].message and "ENTPersonFonctions" in bad[0].message
    assert bad[0].provenance is not None and bad[0].provenance.record_id == "5"
    assert read.codes()["dangling-reference"] == 1  # 44


def test_unknown_attributes_are_counted_by_the_reader(tmp_path: Path) -> None:
    write(
        tmp_path / "ENT_Delta_20240916_PersRelEleve_0000.xml",
        document(
            [
                request("PersRelEleve", "1", [("ENTPersonJointure", "1"), ("ESCOThing", "x")]),
                request("PersRelEleve", "2", [("ENTPersonJointure", "2"), ("ESCOThing", "y")]),
            ]
        ),
    )
    (export,) = plan([tmp_path])
    read = Read(export)
    assert read.reader.stats.unknown_attributes == {"ESCOThing": 2}
    assert read.reader.stats.warnings == {"unknown-attribute": 1}
    assert read.reader.stats.requests == {("PersRelEleve", "add"): 2}
    assert len(read.records) == 2


def _nomenclature_codes_export(
    folder: Path, mode: str, *, without: tuple[str, ...] = (), chunks: dict[str, int] | None = None
) -> AafExport:
    """A 2D export whose classes and persons name subject and MEF codes, some absent from its
    nomenclatures; ``without`` leaves categories out, ``chunks`` numbers a category's only
    file (anything but 0 makes a gap)."""
    stamp = f"ENT_{mode}_20240916"
    files = {
        "EtabEducNat": [
            request(
                "EtabEducNat",
                "4931",
                [
                    ("ENTStructureJointure", "4931"),
                    ("ENTStructureUAI", "0940072T"),
                    (
                        "ENTStructureClasses",
                        ["3A$3EME A$10310019110", "3B$3EME B$10310019177$10310019199"],
                    ),
                ],
            )
        ],
        "MatiereEducNat": [request("MatEducNat", "030201", [("ENTLibelleMatiere", "ANGLAIS")])],
        "MefEducNat": [request("MefEducNat", "10310019110", [("ENTLibelleMef", "3EME")])],
        "Eleve": [
            request(
                "Eleve",
                ident,
                [
                    ("ENTPersonJointure", ident),
                    ("ENTPersonStructRattach", "4931"),
                    ("ENTEleveMEF", mef),
                    ("ENTEleveCodeEnseignements", ["030201", "999999"]),
                ],
            )
            for ident, mef in (("1", "10310019199"), ("2", "10310019110"))
        ],
        "PersRelEleve": [request("PersRelEleve", "8", [("ENTPersonJointure", "8")])],
        "PersEducNat": [
            request(
                "PersEducNat",
                "5",
                [
                    ("ENTPersonJointure", "5"),
                    ("ENTPersonStructRattach", "4931"),
                    ("ENTAuxEnsClassesMatieres", ["4931$3A$030201", "4931$3B$888888"]),
                ],
            )
        ],
    }
    for category, requests in files.items():
        if category not in without:
            chunk = (chunks or {}).get(category, 0)
            write(folder / f"{stamp}_{category}_{chunk:04d}.xml", document(requests))
    (export,) = plan([folder])
    return export


def _absent_codes(read: Read) -> dict[str, str]:
    """Code -> message of the nomenclature codes reported as absent."""
    found = {}
    for warning in read.warnings:
        if warning.code == "dangling-reference" and warning.message.startswith("code "):
            code = warning.message.split("'")[1]
            assert code not in found, f"{code} reported twice"
            found[code] = warning.message
    return found


def test_codes_absent_from_the_nomenclatures_are_reported_once_and_kept(tmp_path: Path) -> None:
    read = Read(_nomenclature_codes_export(tmp_path, "Complet"))
    absent = _absent_codes(read)
    # 999999 is named by two pupils; 10310019199 by a class, then by a pupil: once each, naming
    # the first record (a class's MEFs are checked once the MefEducNat file, read after the
    # EtabEducNat file, is known).
    assert sorted(absent) == ["10310019177", "10310019199", "888888", "999999"]
    assert (
        "(first named by Eleve record 1) is not in this export's MatiereEducNat"
        in (absent["999999"])
    )
    assert (
        "(first named by EtabEducNat record 4931) is not in this export's MefEducNat"
        in (absent["10310019199"])
    )
    assert "(first named by EtabEducNat record 4931)" in absent["10310019177"]
    assert "(first named by PersEducNat record 5)" in absent["888888"]
    (role,) = read.owned("1", EntityKind.ROLE)
    assert role.data["level_code"] == "10310019199"
    assert role.data["subject_codes"] == ["030201", "999999"]
    (klass,) = [r for r in read.records if r.key.endswith("$3B")]
    assert klass.data["level_codes"] == ["10310019177", "10310019199"]
    # A delta's nomenclature files are full lists (AAF.md §8.1): its codes are checked alike.
    delta = Read(_nomenclature_codes_export(tmp_path / "delta", "Delta"))
    assert _absent_codes(delta) == absent
    # Without a nomenclature's file, or with a chunk of it missing, its codes are not checked
    # (the store may hold them); the other nomenclature's still are.
    without = Read(
        _nomenclature_codes_export(tmp_path / "without", "Delta", without=("MatiereEducNat",))
    )
    assert sorted(_absent_codes(without)) == ["10310019177", "10310019199"]
    gap = _nomenclature_codes_export(tmp_path / "gap", "Complet", chunks={"MefEducNat": 1})
    assert not gap.complete
    assert sorted(_absent_codes(Read(gap))) == ["888888", "999999"]
