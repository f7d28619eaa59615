"""File sets: grouping into exports, order, archives, chunk gaps, completeness."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from aaf_support import aaf_samples, document, fastest, request, write

from annuaire.errors import BadInput
from annuaire.schema import EntityKind, NeutralRecord
from connectors.aaf import AafExport, AafReader, RawRecord, iter_raw, plan
from tests._personal_data_guard import record_output


def _pupil(ident: str) -> str:
    return request("Eleve", ident, [("ENTPersonJointure", ident), ("sn", f"N{ident}")])


def _staff(ident: str) -> str:
    return request("PersEducNat", ident, [("ENTPersonJointure", ident), ("sn", f"S{ident}")])


def _chunk(folder: Path, name: str, *requests: str, header: dict[str, str] | None = None) -> Path:
    return write(folder / name, document(list(requests), header=header))


def test_chunk_gaps_are_reported(tmp_path: Path) -> None:
    for n in (1, 3):
        _chunk(tmp_path, f"ENT_Complet_20240916_Eleve_{n:04d}.xml", _pupil(str(n)))
    for n in (0, 1, 3):
        _chunk(tmp_path, f"ENT_Complet_20240916_PersEducNat_{n:04d}.xml", _staff(str(n)))
    (export,) = plan([tmp_path])
    assert export.gaps == [
        "Eleve: chunk 0000 missing (have 0001, 0003)",
        "Eleve: chunk 0002 missing (have 0001, 0003)",
        "PersEducNat: chunk 0002 missing (have 0000-0001, 0003)",
    ]
    assert not export.complete
    assert [(f.category, f.chunk) for f in export.files] == [
        ("Eleve", 1),
        ("Eleve", 3),
        ("PersEducNat", 0),
        ("PersEducNat", 1),
        ("PersEducNat", 3),
    ]


def test_sample_gaps_and_missing_categories() -> None:
    (men,) = plan([aaf_samples("men-2013-complet")])
    assert men.gaps == ["Eleve: chunk 0000 missing (have 0001)"]
    assert men.missing_categories == []
    assert not men.complete
    assert "Eleve" not in men.whole_categories and "PersRelEleve" in men.whole_categories
    (chunk,) = plan([aaf_samples("men-2013-full-chunk")])
    assert chunk.gaps == ["PersEducNat: chunks 0000-0009 missing (have 0010)"]
    (besancon,) = plan([aaf_samples("besancon-1d")])
    assert besancon.degree == "1d"
    assert besancon.gaps == []
    assert besancon.missing_categories == ["Eleve", "PersRelEleve"]
    assert not besancon.complete  # removals of pupils and guardians must never be inferred
    assert besancon.whole_categories == ["EtabEducNat", "PersEducNat"]


def test_complete_set_and_1d_expectations(tmp_path: Path) -> None:
    header = {"versionAF": "AAF-VE2003", "versionSDET": "Annexe 1 version 6.3"}
    for category, body in (
        ("EtabEducNat", request("EtabEducNat", "1", [("ENTStructureJointure", "1")])),
        ("Eleve", _pupil("2")),
        ("PersRelEleve", request("PersRelEleve", "3", [("ENTPersonJointure", "3")])),
        ("PersEducNat", _staff("4")),
    ):
        _chunk(tmp_path, f"ENT1D_Complet_20200516_{category}_0000.xml", body, header=header)
    (export,) = plan([tmp_path])
    assert (export.degree, export.mode, export.date, export.prefix) == (
        "1d",
        "complet",
        "20200516",
        "ENT1D",
    )
    assert export.complete  # no Matière/MEF files in 1D
    assert export.version_af == "AAF-VE2003"
    assert export.version_sdet == "Annexe 1 version 6.3"


def test_files_without_chunk_number_and_category_from_content(tmp_path: Path) -> None:
    folder = tmp_path / "complet"
    _chunk(folder, "_Eleve_.xml", _pupil("1"))
    _chunk(folder, "_Eleve_2.xml", _pupil("2"))
    _chunk(folder, "personnels_sans_date.xml", _staff("3"))
    write(folder / "ficAlimMENESR.dtd", "<!ELEMENT ficAlimMENESR ANY>")
    write(folder / "importDirectories.json", '["test"]')
    write(folder / "other.xml", "<EDT_STS/>")
    exports = plan([tmp_path])
    by_prefix = {e.prefix: e for e in exports}
    assert set(by_prefix) == {"", "personnels_sans_date"}
    pupils = by_prefix[""]
    assert [(f.category, f.chunk) for f in pupils.files] == [("Eleve", None), ("Eleve", None)]
    assert pupils.mode == "complet"  # from the folder name
    assert pupils.gaps == []
    staff = by_prefix["personnels_sans_date"]
    assert [(f.category, f.chunk) for f in staff.files] == [("PersEducNat", None)]


def test_mode_not_stated_anywhere_is_a_gap(tmp_path: Path) -> None:
    _chunk(tmp_path / "x", "file_Eleve_test.xml", _pupil("1"))
    (export,) = plan([tmp_path])
    assert export.mode == "complet"
    assert export.gaps and export.gaps[0].startswith("mode not stated")
    assert not export.complete and export.whole_categories == []


def test_exports_are_ordered_by_date_a_complet_first_on_its_date(tmp_path: Path) -> None:
    """A Delta older than a Complet of the same job comes before it: applied after it, the
    Delta would take back what the newer Complet says (people it lists would leave)."""
    _chunk(tmp_path, "ENT_Delta_20240920_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, "ENT_Delta_20240916_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, "ENT_Complet_20240918_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, "ENT_Complet_20240916_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, "ENT_Complet_20240101_Eleve_0000.xml", _pupil("1"))
    exports = plan([tmp_path])
    assert [(e.mode, e.date) for e in exports] == [
        ("complet", "20240101"),
        ("complet", "20240916"),
        ("delta", "20240916"),
        ("complet", "20240918"),
        ("delta", "20240920"),
    ]
    assert exports[0].missing_categories and exports[2].missing_categories == []


@pytest.mark.parametrize(
    "content",
    [b"", b"<?xml version", b"\x00\x01garbage", "<x/>".encode("utf-16")],
    ids=["empty", "cut-before-the-root", "garbage", "utf-16"],
)
def test_an_unreadable_file_named_like_a_chunk_is_bad_input(tmp_path: Path, content: bytes) -> None:
    """Skipped, it would leave a Complet looking whole: its pupils would leave."""
    _chunk(tmp_path, "ENT_Complet_20240916_Eleve_0000.xml", _pupil("1"))
    (tmp_path / "ENT_Complet_20240916_Eleve_0001.xml").write_bytes(content)
    with pytest.raises(BadInput, match="named like an AAF Eleve file") as caught:
        plan([tmp_path])
    assert caught.value.file == str(tmp_path / "ENT_Complet_20240916_Eleve_0001.xml")


@pytest.mark.parametrize("mode", ["Complet", "Delta"])
def test_a_chunk_that_cannot_be_opened_is_bad_input(tmp_path: Path, mode: str) -> None:
    """A chunk left as a dangling link (a drop folder's rotated symlink; the same path as a file
    the import's user may not read) is not passed over: a Complet without its last chunk looks
    whole (its people would leave), a Delta would be applied without its records."""
    _chunk(tmp_path, f"ENT_{mode}_20240916_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, f"ENT_{mode}_20240916_PersEducNat_0000.xml", _staff("1"))
    gone = tmp_path / f"ENT_{mode}_20240916_PersEducNat_0001.xml"
    gone.symlink_to(tmp_path / "rotated-away.xml")
    with pytest.raises(BadInput, match="cannot be read") as caught:
        plan([tmp_path])
    assert caught.value.file == str(gone)


def test_other_xml_files_are_still_ignored(tmp_path: Path) -> None:
    _chunk(tmp_path, "ENT_Complet_20240916_Eleve_0000.xml", _pupil("1"))
    write(tmp_path / "manifest.xml", "<manifest/>")
    (export,) = plan([tmp_path])
    assert [Path(f.path).name for f in export.files] == ["ENT_Complet_20240916_Eleve_0000.xml"]


def test_files_of_one_export_naming_two_academies_are_bad_input(tmp_path: Path) -> None:
    _chunk(tmp_path, "ENT_Complet_20240916_Eleve_0000.xml", _pupil("1"), header=_ACADEMIE("13"))
    _chunk(tmp_path, "ENT_Complet_20240916_Eleve_0001.xml", _pupil("2"), header=_ACADEMIE("99"))
    with pytest.raises(BadInput, match=r"different académies .*13 in .*_0000.xml; 99 in"):
        plan([tmp_path])


def _ACADEMIE(code: str) -> dict[str, str]:
    return {"versionAF": "AAF-VE2407", "codeAcademieExport": code}


def test_decorated_prefix_joins_its_export() -> None:
    (export,) = plan([aaf_samples("men-2013-complet")])
    assert export.prefix == "FULL_ENTTSSERVICES"
    assert sum(f.category == "PersRelEleve" for f in export.files) == 40
    assert export.files[0].category == "EtabEducNat"  # dependency order
    assert [f.category for f in export.files][-2:] == ["PersEducNat", "PersEducNat"]


def test_per_school_exports_stay_apart(tmp_path: Path) -> None:
    _chunk(tmp_path, "ENT_0691670R_Complet_20120504_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path, "ENT_0691671S_Complet_20120504_Eleve_0000.xml", _pupil("2"))
    assert sorted(e.prefix for e in plan([tmp_path])) == ["ENT_0691670R", "ENT_0691671S"]
    # Each names its school. A UAI's key letter is checked: 0691671T is not one.
    _chunk(tmp_path, "ENT_0691671T_Complet_20120504_Eleve_0000.xml", _pupil("3"))
    _chunk(tmp_path, "EnvOLE_ENT2DVA_0940072T_Complet_20180830_Eleve_0000.xml", _pupil("4"))
    _chunk(tmp_path, "ENT_SANDBOX_Complet_20180830_Eleve_0000.xml", _pupil("5"))
    assert {e.prefix: e.uai for e in plan([tmp_path])} == {
        "ENT_0691670R": "0691670R",
        "ENT_0691671S": "0691671S",
        "ENT_0691671T": None,
        "EnvOLE_ENT2DVA_0940072T": "0940072T",
        "ENT_SANDBOX": None,
    }


def test_one_export_per_folder() -> None:
    exports = plan([aaf_samples("eole-delta-cases", "eleves")])
    assert [(e.mode, len(e.files)) for e in exports] == [("complet", 1)] * 2 + [("delta", 1)] * 4


def test_header_date_and_academie_are_used(tmp_path: Path) -> None:
    header = {
        "versionAF": "AAF-VE2407",
        "codeAcademieExport": "13",
        "degre": "2D",
        "dateGenerationExport": "16/09/2024",
    }
    _chunk(tmp_path, "ENT_Complet_Eleve_0000.xml", _pupil("1"), header=header)
    (export,) = plan([tmp_path])
    assert (export.academie, export.date, export.degree) == ("13", "20240916", "2d")


def test_a_name_whose_date_is_not_one_dates_the_export_by_its_header(tmp_path: Path) -> None:
    """``Delta_201300408`` (nine digits, a real MEN file name) and an impossible day are kept
    as the export's label, but order nothing: the header's date does, else none."""
    header = {"dateGenerationExport": "08/04/2013"}
    _chunk(tmp_path / "a", "FULL_Delta_201300408_Eleve_0000.xml", _pupil("1"), header=header)
    _chunk(tmp_path / "b", "FULL_Delta_201300409_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path / "c", "FULL_Complet_20130231_Eleve_0000.xml", _pupil("1"))
    _chunk(tmp_path / "d", "FULL_Delta_20130405_Eleve_0000.xml", _pupil("1"))
    exports = plan([tmp_path])
    assert [(e.date, e.issued) for e in exports] == [
        ("20130231", None),  # undated first, a Complet before a Delta
        ("201300409", None),
        ("20130405", dt.date(2013, 4, 5)),
        ("201300408", dt.date(2013, 4, 8)),  # by its header: after the 5th, not before it
    ]


def _set(folder: Path) -> list[Path]:
    return [
        _chunk(folder, "ENT_Complet_20240916_Eleve_0000.xml", _pupil("1")),
        _chunk(folder, "ENT_Complet_20240916_Eleve_0001.xml", _pupil("2")),
        _chunk(folder, "ENT_Complet_20240916_PersEducNat_0000.xml", _staff("3")),
        write(folder / "ficAlimMENESR.dtd", "<!ELEMENT ficAlimMENESR ANY>"),
    ]


def _people(export_paths: list[Path]) -> list[str]:
    (export,) = plan(export_paths)
    return [
        r.key
        for r in AafReader(export).stream()
        if isinstance(r, NeutralRecord) and r.kind is EntityKind.PERSON
    ]


def test_zip_members_are_read_in_place(tmp_path: Path) -> None:
    files = _set(tmp_path / "src")
    archive = tmp_path / "ENT2D.20240916.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files:
            z.write(f, f"export/{f.name}")
    (export,) = plan([archive])
    assert export.files[0].path == f"{archive}!export/ENT_Complet_20240916_Eleve_0000.xml"
    assert _people([archive]) == ["1", "2", "3"]


@pytest.mark.parametrize("suffix", [".tgz", ".tar.gz", ".tar"])
def test_tar_members_are_read_in_place(tmp_path: Path, suffix: str) -> None:
    files = _set(tmp_path / "src")
    archive = tmp_path / f"delivery{suffix}"
    with tarfile.open(archive, "w:gz" if suffix != ".tar" else "w") as t:
        for f in reversed(files):  # members out of reading order: the stream seeks back
            t.add(f, f"x/{f.name}")
    (export,) = plan([archive])
    assert [f.path.rsplit("!", 1)[1] for f in export.files] == [
        "x/ENT_Complet_20240916_Eleve_0000.xml",
        "x/ENT_Complet_20240916_Eleve_0001.xml",
        "x/ENT_Complet_20240916_PersEducNat_0000.xml",
    ]
    assert _people([archive]) == ["1", "2", "3"]
    # A member can be opened again, and read in pieces.
    again = [r.id for r in iter_raw(export.files[0]) if isinstance(r, RawRecord)]
    assert again == ["1"]


def test_archive_name_gives_the_mode(tmp_path: Path) -> None:
    _chunk(tmp_path / "src", "_Eleve_.xml", _pupil("1"))
    archive = tmp_path / "ENT2DVA.20240917_Delta.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / "src" / "_Eleve_.xml", "_Eleve_.xml")
    (export,) = plan([archive])
    assert export.mode == "delta" and export.gaps == []


@pytest.mark.parametrize("name", ["broken.zip", "broken.tgz", "broken.tar.gz"])
def test_an_archive_that_is_not_one_is_bad_input(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"x\n")
    with pytest.raises(BadInput, match="the archive cannot be read") as caught:
        plan([tmp_path / name])
    assert caught.value.file == str(tmp_path / name)


def test_a_truncated_tgz_is_bad_input(tmp_path: Path) -> None:
    files = _set(tmp_path / "src")
    archive = tmp_path / "delivery.tgz"
    with tarfile.open(archive, "w:gz") as t:
        for f in files:
            t.add(f, f.name)
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BadInput) as caught:
        _people([cut])  # listing it or reading its members, never a traceback
    assert str(cut) in str(caught.value)


def test_a_zip_member_with_a_bad_checksum_is_bad_input(tmp_path: Path) -> None:
    files = _set(tmp_path / "src")
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w") as z:  # stored: the member's bytes are in the clear
        for f in files:
            z.write(f, f.name)
    data = archive.read_bytes()
    at = data.index(b"<value>N2</value>")
    archive.write_bytes(data[:at] + b"<value>X2</value>" + data[at + 17 :])
    with pytest.raises(BadInput, match="cannot be read: Bad CRC-32") as caught:
        _people([archive])
    assert caught.value.file == f"{archive}!ENT_Complet_20240916_Eleve_0001.xml"


def test_a_zip_member_corrupt_past_what_planning_peeks_is_bad_input(tmp_path: Path) -> None:
    big = [_pupil(str(n)) for n in range(10, 2000)]
    _chunk(tmp_path / "src", "ENT_Complet_20240916_Eleve_0000.xml", *big, _pupil("LAST"))
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(
            tmp_path / "src" / "ENT_Complet_20240916_Eleve_0000.xml",
            "ENT_Complet_20240916_Eleve_0000.xml",
        )
    data = archive.read_bytes()
    at = data.index(b"<value>NLAST</value>")
    assert at > 1 << 16
    archive.write_bytes(data[:at] + b"<value>XLAST</value>" + data[at + 20 :])
    with pytest.raises(BadInput, match="cannot be read: Bad CRC-32") as caught:
        _people([archive])
    assert caught.value.file == f"{archive}!ENT_Complet_20240916_Eleve_0000.xml"


def test_two_zip_members_of_one_name_are_both_read(tmp_path: Path) -> None:
    files = _set(tmp_path / "src")
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        for f in files:
            z.write(f, f.name)
        z.writestr("ENT_Complet_20240916_Eleve_0000.xml", document([_pupil("9")]))
    (export,) = plan([archive])
    assert any("given 2 times" in gap for gap in export.gaps)
    assert sorted(_people_of(export)) == ["1", "2", "3", "9"]


def _people_of(export: AafExport) -> list[str]:
    return [
        r.key
        for r in AafReader(export).stream()
        if isinstance(r, NeutralRecord) and r.kind is EntityKind.PERSON
    ]


def test_file_names_that_are_not_utf8_are_shown_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    raw = bytes(folder) + b"/ENT_SANDBOX\xe9_Complet_20240916_Eleve_0000.xml"
    with open(raw, "w", encoding="utf-8") as stream:
        stream.write(document([_pupil("1")]))
    (export,) = plan([folder])
    (file,) = export.files
    assert file.path == f"{folder}/ENT_SANDBOX\\xe9_Complet_20240916_Eleve_0000.xml"
    file.path.encode("utf-8")  # printable and storable
    assert _people_of(export) == ["1"]  # and still read from its real name


# The peak of this process's own memory: VmHWM, since getrusage's ru_maxrss keeps the peak of
# the process that ran exec (a fork of the test session).
_PEAK_RSS = """
import re, sys
from pathlib import Path
from connectors.aaf import plan
from annuaire.errors import BadInput
try:
    plan([sys.argv[1]])
except BadInput as error:
    print(error, file=sys.stderr)
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def _planning_peak_kb(archive: Path) -> tuple[int, str]:
    """The peak memory of a process planning ``archive``, and the bad input it reported."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(archive)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[3],
    )
    record_output("plan() peak RSS probe stderr (tests/connectors/aaf)", done.stderr)
    assert done.returncode == 0, done.stderr
    return int(done.stdout), done.stderr


def _members_with_full_heads(path: Path, count: int) -> Path:
    """An archive of ``count`` chunks, each with 64 KB of blanks after its root's start tag."""
    body = b"<ficAlimMENESR>" + b" " * 65_000 + b"</ficAlimMENESR>\n"
    names = [f"ENT_Complet_20260101_Eleve_{n:04d}.xml" for n in range(count)]
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in names:
                archive.writestr(name, body)
    else:
        with tarfile.open(path, "w:gz") as archive:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = len(body)
                archive.addfile(info, io.BytesIO(body))
    return path


def _tar_header_bomb(path: Path, kind: str) -> Path:
    """A .tgz of a few KB whose first member's headers claim 48 MB: a GNU long name, pax
    attributes, or a GNU sparse map (pax 1.0) of millions of entries."""
    big = 48 << 20
    member = tarfile.TarInfo("ENT_Complet_20260101_Eleve_0000.xml")
    member.size = 0
    with gzip.open(path, "wb") as out:
        if kind == "sparse map":
            attributes = b"".join(
                b"%d %s\n" % (len(item) + 4, item)
                for item in (b"GNU.sparse.major=1", b"GNU.sparse.minor=0", b"GNU.sparse.realsize=1")
            )
            pax = tarfile.TarInfo("./PaxHeaders/x")
            pax.type, pax.size = tarfile.XHDTYPE, len(attributes)
            out.write(pax.tobuf(tarfile.USTAR_FORMAT) + attributes.ljust(512, b"\0"))
            member.size = big
            out.write(member.tobuf(tarfile.USTAR_FORMAT))
            out.write(b"%d\n" % big)
            for _ in range(big >> 20):
                out.write(b"0\n" * (1 << 19))
        else:
            header = tarfile.TarInfo("././@LongLink")
            header.type = tarfile.GNUTYPE_LONGNAME if kind == "long name" else tarfile.XHDTYPE
            header.size = big
            out.write(header.tobuf(tarfile.GNU_FORMAT))
            for _ in range(big >> 20):
                out.write(b"a" * (1 << 20))
            out.write(member.tobuf(tarfile.GNU_FORMAT))
        out.write(b"\0" * 1024)
    return path


@pytest.mark.parametrize("kind", ["long name", "pax attributes", "sparse map"])
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_tar_member_headers_claiming_megabytes_are_bad_input_not_read(
    tmp_path: Path, kind: str
) -> None:
    # tarfile reads a member's long name and pax attributes whole, and its sparse map number
    # by number, before the member is listed: a .tgz of 50 KB took 100 MB and more.
    few = _members_with_full_heads(tmp_path / "few.tgz", 1)
    bomb = _tar_header_bomb(tmp_path / "bomb.tgz", kind)
    peak, error = _planning_peak_kb(bomb)
    assert (peak - _planning_peak_kb(few)[0]) / 1024 < 16
    assert str(bomb) in error
    assert "headers of more than 1 MB" in error


def _archive_of(path: Path, members: dict[str, bytes]) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, body in members.items():
                archive.writestr(name, body)
    else:
        with tarfile.open(path, "w:gz") as archive:
            for name, body in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(body)
                archive.addfile(info, io.BytesIO(body))
    return path


@pytest.mark.parametrize("suffix", [".zip", ".tgz"])
def test_an_archive_member_over_the_size_limit_is_bad_input_before_it_is_read(
    tmp_path: Path, suffix: str
) -> None:
    name = "ENT_Complet_20260101_Eleve_0000.xml"
    chunk = document([_pupil(str(n)) for n in range(400)]).encode()
    archive = _archive_of(tmp_path / f"d{suffix}", {name: chunk})
    assert [len(e.files) for e in plan([archive], max_member_bytes=len(chunk))] == [1]
    with pytest.raises(BadInput) as caught:
        plan([archive], max_member_bytes=len(chunk) - 1)
    assert caught.value.file == f"{archive}!{name}"
    assert "AIGUILLAGE_AAF_MAX_MEMBER_MB" in str(caught.value)


def test_any_tar_member_over_the_size_limit_is_bad_input(tmp_path: Path) -> None:
    # Listing a tar decompresses each member to reach the next: whatever its name, a member
    # over the limit stops the listing.
    chunk = document([_pupil("1")]).encode()
    members = {"notes.bin": b"\0" * (2 << 20), "ENT_Complet_20260101_Eleve_0000.xml": chunk}
    archive = _archive_of(tmp_path / "d.tgz", members)
    with pytest.raises(BadInput) as caught:
        plan([archive], max_member_bytes=1 << 20)
    assert caught.value.file == f"{archive}!notes.bin"


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write a sparse member")
def test_a_sparse_tar_member_is_bad_input_naming_it(tmp_path: Path) -> None:
    # A member whose holes the archive records (GNU tar --sparse) is read from its stored
    # bytes only: read as plain data it ran into the members after it, garbage to the parser.
    folder = tmp_path / "export"
    chunk = _chunk(folder, "ENT_Complet_20260101_Eleve_0000.xml", _pupil("1"))
    with chunk.open("r+b") as stream:  # a hole of 1 MB inside the file, before its last byte
        data = stream.read()
        stream.seek(0)
        stream.write(data[:-1])
        stream.seek(len(data) + (1 << 20))
        stream.write(data[-1:])
    archive = tmp_path / "export.tgz"
    subprocess.run(
        ["tar", "--sparse", "-czf", str(archive), "-C", str(folder), chunk.name], check=True
    )
    with tarfile.open(archive) as opened:
        assert [m.issparse() for m in opened] == [True]  # what the test is about
    with pytest.raises(BadInput) as caught:
        plan([archive])
    assert caught.value.file == f"{archive}!{chunk.name}"
    assert "sparse member" in caught.value.message


def test_planning_keeps_the_aaf_header_comments_only(tmp_path: Path) -> None:
    items = {"versionAF": "AAF-VE2407", "degre": "2D"} | {f"k{n}": "" for n in range(2_000)}
    path = _chunk(tmp_path, "ENT_Complet_20260101_Eleve_0000.xml", _pupil("1"), header=items)
    assert [e.files[0].header for e in plan([path])] == [{"versionAF": "AAF-VE2407", "degre": "2D"}]


@pytest.mark.parametrize("suffix", [".zip", ".tgz"])
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_planning_an_archive_of_many_chunks_holds_little_per_chunk(
    tmp_path: Path, suffix: str
) -> None:
    # Planning reads each chunk's first 64 KB: it used to keep them all, so an archive of a few
    # MB whose members are 64 KB of blanks each (1,500 here) took 100 MB (a GB for 15,000).
    few = _members_with_full_heads(tmp_path / f"few{suffix}", 15)
    many = _members_with_full_heads(tmp_path / f"many{suffix}", 1_500)
    growth_mb = (_planning_peak_kb(many)[0] - _planning_peak_kb(few)[0]) / 1024
    assert growth_mb < 30


def test_unclosed_comments_in_a_chunk_head_cost_what_a_real_head_costs(tmp_path: Path) -> None:
    # Planning reads the header comments of each file's first 64 KB: comment openers without
    # their end made each opener scan the rest of the head, seconds per file (an archive of
    # thousands of such members held a job for hours). The cost is compared with that of a
    # real chunk of the same size.
    real = _chunk(tmp_path / "real", "ENT_Complet_20260101_Eleve_0000.xml", *[_pupil("1")] * 150)
    size = real.stat().st_size
    hostile = tmp_path / "hostile" / "ENT_Complet_20260101_Eleve_0000.xml"
    hostile.parent.mkdir()
    hostile.write_bytes(b"<ficAlimMENESR>" + b"<!--" * (size // 4) + b"</ficAlimMENESR>")
    assert [e.files[0].header for e in plan([hostile])] == [{}]
    baseline = fastest(lambda: plan([real]))
    assert fastest(lambda: plan([hostile])) < 20 * baseline


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        plan([tmp_path / "nope"])
