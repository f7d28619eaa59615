"""The synthetic académie generator writes well-formed, self-consistent, deterministic AAF sets."""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from typer.testing import CliRunner

from annuaire.cli import app
from annuaire.errors import BadInput
from connectors.sample import (
    MANIFEST_NAME,
    GenerationSummary,
    generate_academie,
    generate_delta,
    is_valid_uai,
    uai_check_letter,
)

FILE_NAME = re.compile(
    r"^(?P<prefix>ENT|ENT1D)_SANDBOX_(?P<kind>Complet|Delta)_(?P<date>\d{8})_"
    r"(?P<category>[A-Za-z]+)_(?P<chunk>\d{4})\.xml$"
)
DEGREE_OF_PREFIX = {"ENT": "2D", "ENT1D": "1D"}
SUMMARY_KEY = {
    "EtabEducNat": "structures",
    "MatiereEducNat": "subjects",
    "MefEducNat": "mefs",
    "Eleve": "pupils",
    "PersRelEleve": "guardians",
    "PersEducNat": "staff",
}
JOIN_KEY = {
    "EtabEducNat": "ENTStructureJointure",
    "MatiereEducNat": "ENTMatJointure",
    "MefEducNat": "ENTMefJointure",
    "Eleve": "ENTPersonJointure",
    "PersRelEleve": "ENTPersonJointure",
    "PersEducNat": "ENTPersonJointure",
}

LEVEL_CODES_1D = {
    "TPS": "1110",
    "PS": "1111",
    "MS": "1112",
    "GS": "1113",
    "CP": "1121",
    "CE1": "1122",
    "CE2": "1123",
    "CM1": "1124",
    "CM2": "1125",
}
LONG_LABELS_1D = {
    "TPS": "Toute petite section",
    "PS": "Petite section",
    "MS": "Moyenne section",
    "GS": "Grande section",
}

Attrs = dict[str, list[str]]


class Record:
    def __init__(self, op: str, category: str, ident: str, attrs: Attrs) -> None:
        self.op = op
        self.category = category
        self.ident = ident
        self.attrs = attrs

    def one(self, name: str) -> str:
        values = self.attrs[name]
        assert len(values) <= 1, (name, values)
        return values[0] if values else ""


def read_records(path: Path) -> list[Record]:
    """Records of one file, parsed safely; empty ``<value/>`` are dropped."""
    records = []
    for _, element in etree.iterparse(
        str(path),
        events=("end",),
        tag=("addRequest", "modifyRequest", "deleteRequest"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
    ):
        attrs: Attrs = {}
        for attr in element.iterfind("attributes/attr"):
            assert attr.get("name") not in attrs
            attrs[attr.get("name")] = [v.text for v in attr.iterfind("value") if v.text]
        for modification in element.iterfind("modifications/modification"):
            assert modification.get("operation") == "replace"
            values = [v.text for v in modification.iterfind("value") if v.text]
            attrs[modification.get("name")] = values
        category = element.findtext("operationalAttributes/attr/value")
        ident = element.findtext("identifier/id")
        records.append(Record(element.tag, category, ident, attrs))
        element.clear()
    return records


def files_by_category(folder: Path) -> dict[tuple[str, str], list[Path]]:
    """(degree, category) -> files in chunk order."""
    found: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(folder.glob("*.xml")):
        match = FILE_NAME.match(path.name)
        assert match, path.name
        found[(DEGREE_OF_PREFIX[match["prefix"]], match["category"])].append(path)
    return found


@functools.cache
def load(folder: Path) -> dict[str, dict[str, list[Record]]]:
    """degree -> category -> records (cached: generated folders are not written again)."""
    loaded: dict[str, dict[str, list[Record]]] = defaultdict(dict)
    for (degree, category), paths in files_by_category(folder).items():
        loaded[degree][category] = [r for p in paths for r in read_records(p)]
    return loaded


def by_id(records: list[Record]) -> dict[str, Record]:
    table = {r.ident: r for r in records}
    assert len(table) == len(records), "duplicate identifiers"
    return table


@pytest.fixture(scope="module")
def academie(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Path]:
    out = tmp_path_factory.mktemp("academie")
    # 1700 pupils per degree: a collège, a lycée and a lycée professionnel; 13 écoles.
    summary = generate_academie(out, pupils=3400, seed=7, degree="both", chunk_size=1000)
    return summary, out


@pytest.fixture(scope="module")
def delta(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[GenerationSummary, Path, Path, Path]:
    base = tmp_path_factory.mktemp("base")
    generate_academie(base, pupils=1200, seed=3, degree="both")
    out = tmp_path_factory.mktemp("delta")
    after = tmp_path_factory.mktemp("after")
    summary = generate_delta(base, out, seed=11, rate=0.05, also_complet=after)
    return summary, base, out, after


# -- UAI ------------------------------------------------------------------------------------------
def test_uai_check_letter_matches_real_uais() -> None:
    assert uai_check_letter("0940072") == "T"
    assert uai_check_letter("0250131") == "G"
    assert is_valid_uai("0250156J")
    assert not is_valid_uai("0250156K")
    assert not is_valid_uai("250156J")
    with pytest.raises(ValueError):
        uai_check_letter("12345")


# -- Complet --------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def write(folder: str, seed: int) -> dict[str, bytes]:
        generate_academie(tmp_path / folder, pupils=300, seed=seed, degree="both", chunk_size=100)
        return {p.name: p.read_bytes() for p in sorted((tmp_path / folder).iterdir())}

    first, second, other = write("a", 5), write("b", 5), write("c", 6)
    assert first == second
    assert first.keys() == other.keys()
    assert first != other


def test_files_are_well_formed_with_ve2407_header(
    academie: tuple[GenerationSummary, Path],
) -> None:
    summary, out = academie
    assert sorted(summary.files) == sorted(out.glob("*.xml"))
    for path in summary.files:
        text = path.read_text(encoding="utf-8")
        degree = "1D" if path.name.startswith("ENT1D_") else "2D"
        sdet = "Annexe 1 version 6.3" if degree == "1D" else "Annexe 4bis version 6.4"
        assert text.startswith(
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE ficAlimMENESR SYSTEM "ficAlimMENESR.dtd">\n'
            "<ficAlimMENESR>\n"
            '<!-- versionAF="AAF-VE2407" -->\n'
            f'<!-- versionSDET="{sdet}" -->\n'
            '<!-- codeAcademieExport="99" -->\n'
            f'<!-- degre="{degree}" -->\n'
            '<!-- dateGenerationExport="15/09/2026" -->\n'
        )
        assert text.endswith("</ficAlimMENESR>\n")
        read_records(path)  # parses
    assert (out / MANIFEST_NAME).is_file()


def test_apostrophes_are_escaped_and_read_back(academie: tuple[GenerationSummary, Path]) -> None:
    _, out = academie
    path = next(out.glob("ENT_SANDBOX_Complet_*_EtabEducNat_0000.xml"))
    assert "MINISTERE DE L&apos;EDUCATION NATIONALE" in path.read_text(encoding="utf-8")
    record = read_records(path)[0]
    assert record.one("ENTEtablissementMinistereTutelle") == "MINISTERE DE L'EDUCATION NATIONALE"


def test_summary_counts_match_the_files(academie: tuple[GenerationSummary, Path]) -> None:
    summary, out = academie
    sets = load(out)
    assert set(sets) == {"2D", "1D"}
    assert set(sets["1D"]) == {"EtabEducNat", "Eleve", "PersRelEleve", "PersEducNat"}
    for degree, categories in sets.items():
        for category, records in categories.items():
            assert all(r.op == "addRequest" for r in records)
            assert summary.by_degree[degree][SUMMARY_KEY[category]] == len(records)
        staff = categories["PersEducNat"]
        teachers = [r for r in staff if r.one("ENTPersonCategorieEnseignant") == "O"]
        assert summary.by_degree[degree]["teachers"] == len(teachers)
    assert summary.counts["pupils"] == 3400
    assert summary.by_degree["2D"]["pupils"] == summary.by_degree["1D"]["pupils"] == 1700
    structures = sets["2D"]["EtabEducNat"]
    assert summary.by_degree["2D"]["classes"] == sum(
        len(s.attrs["ENTStructureClasses"]) for s in structures
    )
    assert summary.by_degree["2D"]["groups"] == sum(
        len(s.attrs["ENTStructureGroupes"]) for s in structures
    )


def test_identifiers_equal_join_keys_and_never_collide(
    academie: tuple[GenerationSummary, Path],
) -> None:
    _, out = academie
    seen: Counter[str] = Counter()
    for categories in load(out).values():
        for category, records in categories.items():
            for record in records:
                assert record.one(JOIN_KEY[category]) == record.ident
                if category not in ("MatiereEducNat", "MefEducNat"):
                    seen[record.ident] += 1
    assert max(seen.values()) == 1


def test_structures_have_valid_uai_and_typed_names(
    academie: tuple[GenerationSummary, Path],
) -> None:
    _, out = academie
    sets = load(out)
    for categories in sets.values():
        for structure in categories["EtabEducNat"]:
            assert is_valid_uai(structure.one("ENTStructureUAI"))
            assert len(structure.one("ENTStructureNomCourant").split("$")) == 3
    types = [s.one("ENTStructureCodeTypeStruct") for s in sets["2D"]["EtabEducNat"]]
    assert types == ["340", "300", "320"]
    prefixes = {s.one("ENTStructureNomCourant").split("$")[0] for s in sets["1D"]["EtabEducNat"]}
    assert prefixes <= {"IEN", "E.M.PU", "E.E.PU", "E.P.PU", "E.M.PR", "E.E.PR", "E.P.PR"}


def test_2d_references_resolve(academie: tuple[GenerationSummary, Path]) -> None:
    _, out = academie
    sets = load(out)["2D"]
    structures = by_id(sets["EtabEducNat"])
    subjects = by_id(sets["MatiereEducNat"])
    mefs = by_id(sets["MefEducNat"])
    pupils = by_id(sets["Eleve"])
    guardians = by_id(sets["PersRelEleve"])
    classes: dict[str, dict[str, str]] = {}  # structure -> class -> MEF
    groups: dict[str, dict[str, list[str]]] = {}  # structure -> group -> classes
    for jointure, record in structures.items():
        classes[jointure] = {}
        for value in record.attrs["ENTStructureClasses"]:
            code, _, mef = value.split("$")
            assert mef in mefs
            classes[jointure][code] = mef
        groups[jointure] = {}
        for value in record.attrs["ENTStructureGroupes"]:
            code, _, *members = value.split("$")
            assert members and all(m in classes[jointure] for m in members)
            groups[jointure][code] = members

    reverse: dict[str, set[str]] = defaultdict(set)
    for pupil in pupils.values():
        home = pupil.one("ENTPersonStructRattach")
        ((structure, class_code),) = [v.split("$") for v in pupil.attrs["ENTEleveClasses"]]
        assert structure == home
        assert classes[home][class_code] == pupil.one("ENTEleveMEF")
        for value in pupil.attrs["ENTEleveGroupes"]:
            structure, group = value.split("$")
            assert structure == home and class_code in groups[home][group]
        codes = pupil.attrs["ENTEleveCodeEnseignements"]
        assert len(codes) == len(pupil.attrs["ENTEleveEnseignements"])
        for code, label in zip(codes, pupil.attrs["ENTEleveEnseignements"], strict=True):
            assert subjects[code].one("ENTLibelleMatiere") == label
        links = [v.split("$") for v in pupil.attrs["ENTElevePersRelEleve"]]
        assert 1 <= len(links) <= 3 and all(len(link) == 6 for link in links)
        for guardian_id, relation, *flags in links:
            assert guardian_id in guardians
            assert relation in {"10", "20", "50", "37", "38", "39", "90"}
            assert all(f in "01" for f in flags)
            reverse[guardian_id].add(pupil.ident)
        assert any(link[3] == "1" for link in links), "every pupil has a legal responsable"
        residence = guardians[pupil.one("ENTEleveAdresseRel")]
        assert pupil.one("ENTEleveAdresseRel") in {link[0] for link in links}
        assert pupil.one("ENTPersonAdresse") == residence.one("ENTPersonAdresse")
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", pupil.one("ENTPersonDateNaissance"))
        assert len(pupil.one("ENTEleveINE")) == 11
    for guardian in guardians.values():
        assert set(guardian.attrs["ENTAuxPersRelEleveEleve"]) == reverse[guardian.ident]
        assert len(guardian.one("ENTPersonAdresse").split("$")) == 4
        mail = guardian.one("mail")
        assert not mail or mail.endswith(".invalid")
    # Families: one, two or three responsables (the third contact only); siblings share them.
    shapes = Counter(len(p.attrs["ENTElevePersRelEleve"]) for p in pupils.values())
    assert set(shapes) == {1, 2, 3} and shapes[2] > shapes[1] > shapes[3]
    contacts = [v for p in pupils.values() for v in p.attrs["ENTElevePersRelEleve"]]
    assert any(v.endswith("$0$0$1$0") for v in contacts)
    assert any(len(children) > 1 for children in reverse.values())
    assert 1.6 < len(guardians) / len(pupils) < 2.0

    head_teachers: Counter[tuple[str, str]] = Counter()
    for member in sets["PersEducNat"]:
        for value in member.attrs["ENTPersonFonctions"]:
            fields = value.split("$")
            assert len(fields) == 5 and fields[0] in structures
        for value in member.attrs["ENTAuxEnsClassesMatieres"]:
            structure, class_code, subject = value.split("$")
            assert class_code in classes[structure] and subject in subjects
        for value in member.attrs["ENTAuxEnsGroupesMatieres"]:
            structure, group, subject = value.split("$")
            assert group in groups[structure] and subject in subjects
        for value in member.attrs["ENTAuxEnsClassesPrincipal"]:
            structure, class_code = value.split("$")
            assert f"{structure}${class_code}" in member.attrs["ENTAuxEnsClasses"]
            head_teachers[(structure, class_code)] += 1
        for jointure in member.attrs["ENTEnsFonctionDir"]:
            assert jointure in structures
        assert member.one("mail") == "" or member.one("mail").endswith("@ac-sandbox.invalid")
    all_classes = {(s, c) for s, codes in classes.items() for c in codes}
    assert set(head_teachers) == all_classes and set(head_teachers.values()) == {1}


def test_1d_references_resolve(academie: tuple[GenerationSummary, Path]) -> None:
    _, out = academie
    sets = load(out)["1D"]
    structures = by_id(sets["EtabEducNat"])
    guardians = by_id(sets["PersRelEleve"])
    class_labels: dict[str, tuple[str, str]] = {}
    reverse: dict[str, set[str]] = defaultdict(set)
    for pupil in by_id(sets["Eleve"]).values():
        home = pupil.one("ENTPersonStructRattach")
        assert home in structures
        structure, type_code, type_label, class_id, label = pupil.one("ENTPersonClasses").split("$")
        assert (structure, type_code, type_label) == (home, "11", "ORDINAIRE")
        assert class_labels.setdefault(class_id, (home, label)) == (home, label)
        assert pupil.one("ENTEleveDateEntreeClasses").split("$")[2] == class_id
        code, level = pupil.one("ENTEleveNiveau").split("$")
        assert LEVEL_CODES_1D[level] == code
        levels_in_label = label.split(" ")[0].split("-")
        assert label.startswith(LONG_LABELS_1D.get(level, "?")) or level in levels_in_label
        assert pupil.one("ENTEleveCycle") in {"1$CYCLE I", "2$CYCLE II", "3$CYCLE III"}
        for value in pupil.attrs["ENTEleveAutoriteParentale"]:
            guardian_id, relation = value.split("$")
            assert guardian_id in guardians and relation in {"10", "20", "50"}
            reverse[guardian_id].add(pupil.ident)
    for guardian in guardians.values():
        assert set(guardian.attrs["ENTPersRelEleveEleve"]) == reverse[guardian.ident]
    directed = set()
    for member in sets["PersEducNat"]:
        for value in member.attrs["ENTPersonFonctions"]:
            assert value.split("$")[0] in structures
        directed.update(member.attrs["ENTEnsFonctionDir"])
    schools = {
        s.ident
        for s in structures.values()
        if not s.one("ENTStructureNomCourant").startswith("IEN$")
    }
    assert directed == schools


def test_chunks_are_contiguous_and_full(tmp_path: Path) -> None:
    summary = generate_academie(tmp_path, pupils=400, seed=1, chunk_size=50)
    for (_, category), paths in files_by_category(tmp_path).items():
        numbers = [int(FILE_NAME.match(p.name)["chunk"]) for p in paths]  # type: ignore[index]
        assert numbers == list(range(len(paths)))
        sizes = [len(read_records(p)) for p in paths]
        assert all(size == 50 for size in sizes[:-1]) and 1 <= sizes[-1] <= 50
        assert sum(sizes) == summary.counts[SUMMARY_KEY[category]]
    assert len(files_by_category(tmp_path)[("2D", "Eleve")]) == 8


def test_refuses_a_folder_with_aaf_files_and_bad_arguments(tmp_path: Path) -> None:
    generate_academie(tmp_path, pupils=50, seed=1)
    with pytest.raises(FileExistsError):
        generate_academie(tmp_path, pupils=50, seed=1)
    with pytest.raises(ValueError):
        generate_academie(tmp_path / "x", pupils=1, seed=1, degree="both")
    with pytest.raises(ValueError):
        generate_academie(tmp_path / "y", pupils=10, seed=1, degree="3d")  # type: ignore[arg-type]


# -- Delta ----------------------------------------------------------------------------------------
def test_delta_requests_are_full_records_or_bare_deletes(
    delta: tuple[GenerationSummary, Path, Path, Path],
) -> None:
    summary, base, out, after = delta
    assert summary.kind == "Delta" and summary.date == datetime.date(2026, 9, 16)
    assert all("_Delta_20260916_" in p.name for p in summary.files)
    before_sets, after_sets = load(base), load(after)
    for degree, categories in load(out).items():
        for category, records in categories.items():
            old = by_id(before_sets[degree][category])
            new = by_id(after_sets[degree][category])
            for record in records:
                if record.op == "deleteRequest":
                    assert record.attrs == {}
                    assert record.ident in old and record.ident not in new
                elif record.op == "modifyRequest":
                    assert record.ident in old and record.ident in new
                    assert record.attrs == new[record.ident].attrs  # the whole record again
                    assert record.attrs != old[record.ident].attrs
                else:
                    assert record.attrs == new[record.ident].attrs


def test_complet_a_plus_delta_equals_complet_b(
    delta: tuple[GenerationSummary, Path, Path, Path],
) -> None:
    _, base, out, after = delta
    state = {
        (degree, category): {r.ident: r.attrs for r in records}
        for degree, categories in load(base).items()
        for category, records in categories.items()
    }
    for degree, categories in load(out).items():
        for category, records in categories.items():
            table = state[(degree, category)]
            for record in records:
                if record.op == "deleteRequest":
                    del table[record.ident]
                else:
                    table[record.ident] = record.attrs
    expected = {
        (degree, category): {r.ident: r.attrs for r in records}
        for degree, categories in load(after).items()
        for category, records in categories.items()
    }
    assert state == expected


def test_delta_counts_are_near_the_rate(delta: tuple[GenerationSummary, Path, Path, Path]) -> None:
    summary, base, out, _ = delta
    ops: Counter[tuple[str, str]] = Counter()
    for categories in load(out).values():
        for category, records in categories.items():
            for record in records:
                ops[(SUMMARY_KEY[category], record.op)] += 1
    for key in ("pupils", "guardians", "staff", "structures"):
        assert ops[(key, "addRequest")] == summary.adds[key]
        assert ops[(key, "modifyRequest")] == summary.modifies[key]
        assert ops[(key, "deleteRequest")] == summary.deletes[key]
    before = load(base)
    for key, category in (
        ("pupils", "Eleve"),
        ("guardians", "PersRelEleve"),
        ("staff", "PersEducNat"),
    ):
        population = sum(len(d[category]) for d in before.values())
        expected = 0.05 * population
        for counts in (summary.adds, summary.deletes, summary.modifies):
            assert 0.5 * expected <= counts[key] <= 2.5 * expected, (key, counts[key], expected)
    pupils = sum(len(d["Eleve"]) for d in before.values())
    assert (
        summary.adds["pupils"]
        == summary.deletes["pupils"]
        == sum(round(len(d["Eleve"]) * 0.05) for d in before.values())
    )
    assert summary.counts["pupils"] == pupils
    # Structures and nomenclatures are re-sent in full, as real deltas do.
    assert summary.adds["structures"] == summary.counts["structures"]
    assert summary.deletes["structures"] == summary.modifies["structures"] == 0


def test_delta_is_deterministic_and_chains(
    delta: tuple[GenerationSummary, Path, Path, Path], tmp_path: Path
) -> None:
    _, base, out, after = delta
    again = generate_delta(base, tmp_path / "again", seed=11, rate=0.05)
    assert {p.name: p.read_bytes() for p in again.files} == {
        p.name: p.read_bytes() for p in sorted(out.glob("*.xml"))
    }
    # A delta folder and an "after" Complet both describe the same state B.
    from_delta = generate_delta(out, tmp_path / "d2", seed=12, rate=0.02)
    from_after = generate_delta(after, tmp_path / "d3", seed=12, rate=0.02)
    assert from_delta.date == datetime.date(2026, 9, 17)
    assert [p.read_bytes() for p in from_delta.files] == [p.read_bytes() for p in from_after.files]


def test_delta_needs_a_generated_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        generate_delta(tmp_path, tmp_path / "out", seed=1)
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInput):
        generate_delta(tmp_path, tmp_path / "out", seed=1)


def test_the_command_says_what_a_delta_holds(tmp_path: Path) -> None:
    """``sample academie --delta-from`` prints the requests per kind, and that the structures
    and nomenclatures it counts as adds are the full copies every real delta carries."""
    runner = CliRunner()
    base, delta = tmp_path / "base", tmp_path / "delta"
    made = runner.invoke(app, ["sample", "academie", "--out", str(base), "--pupils", "200"])
    assert made.exit_code == 0, made.output
    result = runner.invoke(
        app, ["sample", "academie", "--out", str(delta), "--delta-from", str(base), "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    adds = re.search(r"adds: ([^\n]*?) modifies:", text)
    assert adds is not None and "structures" in adds[1] and "pupils" in adds[1], text
    assert "deletes:" in text
    assert "structures and nomenclatures are sent again in full as adds" in text


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m["base"].pop("seed"), "no 'seed'"),
        (lambda m: m["base"].update(pupils="many"), "base pupils is not an integer"),
        (lambda m: m["base"].update(academie_code="ABCD"), "academie_code is not 1 to 3"),
        (lambda m: m["deltas"].append({"date": "2026-09-16", "rate": 0.01}), "seed"),
    ],
)
def test_a_manifest_missing_what_a_replay_reads_is_bad_input(
    tmp_path: Path, change: Any, named: str
) -> None:
    base = tmp_path / "base"
    generate_academie(base, pupils=20, seed=1)
    manifest = json.loads((base / MANIFEST_NAME).read_text(encoding="utf-8"))
    change(manifest)
    (base / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BadInput, match=named):
        generate_delta(base, tmp_path / "out", seed=1)


def test_the_command_refuses_what_it_cannot_write_or_combine(tmp_path: Path) -> None:
    """Exit 2 with one line, never a traceback."""
    runner = CliRunner()
    (tmp_path / "file").write_text("x")
    cases = [
        (["--out", str(tmp_path / "file" / "sub"), "--pupils", "10"], "Not a directory"),
        (["--out", str(tmp_path / "x"), "--also-complet", str(tmp_path / "y")], "--delta-from"),
    ]
    base = tmp_path / "base"
    assert (
        runner.invoke(app, ["sample", "academie", "--out", str(base), "--pupils", "20"]).exit_code
        == 0
    )
    same = str(tmp_path / "d")
    cases.append((["--out", same, "--delta-from", str(base), "--also-complet", same], "another"))
    for arguments, said in cases:
        result = runner.invoke(app, ["sample", "academie", *arguments])
        assert result.exit_code == 2, result.output
        assert said in " ".join(result.output.split()), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
