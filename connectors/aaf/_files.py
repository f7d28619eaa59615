"""AAF file sets: find the XML chunks of a delivery, group them into exports, check the chunks.

An *export* is what one académie delivered at once for one degree: the chunks of the six
categories sharing a name prefix, a mode (Complet/Delta) and a date, in one folder (or one
archive folder). See the README for the grouping, ordering and completeness rules.

Archives are read in place: ``.zip`` members through ``zipfile``; ``.tgz``/``.tar.gz`` (and
``.tar``, ``.tar.bz2``, ``.tar.xz``) members through one shared decompressing stream per archive
that seeks to each member's offset, so reading members in archive order decompresses the
archive once.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import io
import lzma
import re
import tarfile
import weakref
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from annuaire.errors import BadInput
from annuaire.schema.uai import is_valid_uai

from ._names import CATEGORIES, CATEGORY_BY_VALUE, EXPECTED_CATEGORIES
from ._xml import HEADER_NAMES, ROOT_TAG, UNREADABLE, parse_header_comment

__all__ = ["MAX_MEMBER_BYTES", "AafExport", "AafFile", "plan", "reading_order"]

Mode = Literal["complet", "delta"]
Degree = Literal["1d", "2d"]

_PEEK = 1 << 16
_CATEGORY_TOKENS = {token.lower(): token for token in CATEGORIES}
_MODES: dict[str, Mode] = {"complet": "complet", "delta": "delta"}
_CATEGORY_VALUE = re.compile(rb'<attr\s+name\s*=\s*"categorie\w*"\s*>\s*<value>\s*(\w+)\s*</value>')
_VOCABULARY_1D = re.compile(
    rb'name\s*=\s*"(?:ENTPersonNom|ENTPersonPrenom|ENTPersonCivilite|ENTPersonMail|ENTEcole\w+'
    rb'|ENTStructureAdresse|ENTStructureVille|ENTPersonClasses|ENTEleveNiveau|ENTPersRelEleve\w+)"'
)
#: What ``tarfile`` may read for one member's headers (its 512-byte blocks, a long name, pax
#: attributes, a sparse map): a few KB in any real archive.
TAR_HEADERS_LIMIT = 1 << 20
#: Default of what one archive member may hold once decompressed (``plan``'s
#: ``max_member_bytes``; the import's ``AIGUILLAGE_AAF_MAX_MEMBER_MB``). The largest académies'
#: chunks are tens of MB; a zip or tar bomb's members are gigabytes.
MAX_MEMBER_BYTES = 512 << 20
_TAR_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass
class AafFile:
    """One XML chunk of an export."""

    #: Display name; an archive member is ``archive.zip!member.xml``.
    path: str
    #: File-name token of the category: EtabEducNat, MatiereEducNat, MefEducNat, Eleve,
    #: PersRelEleve or PersEducNat.
    category: str
    #: ``_NNNN`` chunk number, None when the name has none (``_Eleve_.xml``, ``_Eleve_2.xml``).
    chunk: int | None
    #: Opens a fresh binary stream on the file's bytes (the caller closes it).
    opener: Callable[[], BinaryIO] = field(repr=False)
    #: The AAF header comments found at plan time (``_xml.HEADER_NAMES``: versionAF,
    #: versionSDET, degre, codeAcademieExport, dateGenerationExport); other items are left out.
    header: dict[str, str] = field(default_factory=dict)


@dataclass
class AafExport:
    """The files of one delivery, in reading order, and what is known about its completeness.

    ``gaps`` lists what makes the file set doubtful: a missing chunk (``Eleve: chunk 0000
    missing (have 0001)``), a chunk given twice, a mode no file name states.
    ``missing_categories`` lists, for a Complet, the expected categories with no file at all.

    Rule for removals: a Complet is authoritative only when :attr:`complete` is true. Otherwise
    import it as partial, never inferring a removal; a caller that wants finer grain may infer
    removals for the records of :attr:`whole_categories` only. Removals of a category absent
    from the delivery must never be inferred. A Delta never implies removals beyond its
    deleteRequests.
    """

    prefix: str
    mode: Mode
    date: str | None
    files: list[AafFile]
    degree: Degree
    academie: str | None = None
    version_af: str | None = None
    version_sdet: str | None = None
    gaps: list[str] = field(default_factory=list)
    missing_categories: list[str] = field(default_factory=list)
    #: Folder (or archive folder) the files were found in.
    location: str = ""
    #: The school a per-school delivery is about: the UAI its file prefix names
    #: (``ENT_0691670R_Complet_...``, AAF.md §2), else None (an académie-wide delivery).
    uai: str | None = None
    #: The export's date: its file names' when they spell a real ``YYYYMMDD`` date, else the
    #: headers' ``dateGenerationExport``, else None (a name such as ``Delta_201300408``, AAF.md
    #: §1.6, is kept in :attr:`date` but orders nothing).
    issued: dt.date | None = None

    @property
    def complete(self) -> bool:
        """No gap and, for a Complet, every expected category present."""
        return not self.gaps and not self.missing_categories

    @property
    def categories(self) -> list[str]:
        present = {f.category for f in self.files}
        return [c for c in CATEGORIES if c in present]

    @property
    def whole_categories(self) -> list[str]:
        """Present categories whose chunk sequence has no gap (mode known)."""
        if any(g.startswith("mode ") for g in self.gaps):
            return []
        doubtful = {g.split(":", 1)[0] for g in self.gaps}
        return [c for c in self.categories if c not in doubtful]


# -- naming ----------------------------------------------------------------------------------


@dataclass
class _Name:
    prefix: str
    mode: Mode | None
    date: str | None
    category: str | None
    chunk: int | None


def _parse_name(filename: str) -> _Name:
    stem = filename[:-4] if filename.lower().endswith(".xml") else filename
    parts = stem.split("_")
    index = None
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].lower() in _CATEGORY_TOKENS:
            index = i
            break
    if index is None:
        return _Name(stem, None, None, None, None)
    category = _CATEGORY_TOKENS[parts[index].lower()]
    rest = parts[index + 1 :]
    chunk = int(rest[0]) if len(rest) == 1 and len(rest[0]) == 4 and rest[0].isdigit() else None
    before = parts[:index]
    mode: Mode | None = None
    date: str | None = None
    for i in range(len(before) - 1, -1, -1):
        if before[i].lower() in _MODES:
            mode = _MODES[before[i].lower()]
            after = before[i + 1 :]
            if after and after[0].isdigit():
                date = after[0]
            before = before[:i]
            break
    else:
        if before and before[-1].isdigit() and len(before[-1]) in (8, 9):
            date = before.pop()
    return _Name("_".join(before), mode, date, category, chunk)


def _mode_from_path(folders: Iterable[str], archive: str | None) -> Mode | None:
    """A folder named ``complet``/``delta``, else an archive name holding the token."""
    for part in reversed(list(folders)):
        if part.lower() in _MODES:
            return _MODES[part.lower()]
    if archive is not None:
        tokens = re.split(r"[_.\-]", archive.lower())
        for token in ("delta", "complet"):
            if token in tokens:
                return _MODES[token]
    return None


# -- peeking ---------------------------------------------------------------------------------


@dataclass
class _Peek:
    is_aaf: bool
    header: dict[str, str]
    category: str | None
    degree: Degree | None


def _comments(head: bytes) -> Iterator[bytes]:
    """The bodies of the complete comments of ``head``, in one pass: a search for the end of
    each opener (``<!--(.*?)-->``) would scan the rest of the head once per opener."""
    start = head.find(b"<!--")
    while start != -1:
        end = head.find(b"-->", start + 4)
        if end == -1:
            return
        yield head[start + 4 : end]
        start = head.find(b"<!--", end + 3)


def _peek(head: bytes) -> _Peek:
    if ROOT_TAG.encode() not in head:
        return _Peek(False, {}, None, None)
    header: dict[str, str] = {}
    for comment in _comments(head):
        items = parse_header_comment(comment.decode("latin-1"))
        header.update((k, v) for k, v in items.items() if k in HEADER_NAMES)
    found = _CATEGORY_VALUE.search(head)
    category = CATEGORY_BY_VALUE.get(found.group(1).decode("ascii")) if found else None
    degree: Degree | None = None
    declared = header.get("degre", "").upper()
    sdet = header.get("versionSDET", "")
    if declared in ("1D", "2D"):
        degree = "1d" if declared == "1D" else "2d"
    elif "Annexe 1 " in sdet or sdet.endswith("Annexe 1"):
        degree = "1d"
    elif "Annexe 4" in sdet:
        degree = "2d"
    elif _VOCABULARY_1D.search(head):
        degree = "1d"
    return _Peek(True, header, category, degree)


# -- sources ---------------------------------------------------------------------------------


@dataclass
class _Found:
    display: str
    #: Folder (or ``archive!folder``) the file was found in: exports never span two.
    location: str
    #: Folders above the file (inside the archive too), for the mode fallback.
    folders: tuple[str, ...]
    archive: str | None
    name: str
    opener: Callable[[], BinaryIO]
    #: What the file's first 64 KB show (the bytes themselves are not kept: an archive may
    #: hold thousands of members).
    peek: _Peek


def _file_opener(path: Path) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        return path.open("rb")

    return opener


def _zip_opener(path: Path, member: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    # By its entry, not its name: an archive may hold two members of one name.
    def opener() -> BinaryIO:
        archive = zipfile.ZipFile(path)
        stream = archive.open(member)
        archive.close()  # the member keeps the shared file open until it is closed
        return stream  # type: ignore[return-value]

    return opener


def _open_compressed(path: Path) -> BinaryIO:
    name = path.name.lower()
    if name.endswith((".tgz", ".gz")):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if name.endswith((".bz2", ".tbz2")):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if name.endswith((".xz", ".txz")):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


class _TarArchive:
    """One shared seekable (decompressing) stream over a tar archive, for all its members."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream: BinaryIO | None = None
        self._finalizer: weakref.finalize | None = None

    def stream(self) -> BinaryIO:
        if self._stream is None or self._stream.closed:
            self._stream = _open_compressed(self.path)
            self._finalizer = weakref.finalize(self, self._stream.close)
        return self._stream

    def opener(self, offset: int, size: int) -> Callable[[], BinaryIO]:
        def opener() -> BinaryIO:
            return _TarMember(self, offset, size)  # type: ignore[return-value]

        return opener


class _TarMember(io.RawIOBase):
    """A read-only view of ``size`` bytes at ``offset`` of the archive's shared stream."""

    def __init__(self, archive: _TarArchive, offset: int, size: int) -> None:
        self._archive = archive
        self._position = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        remaining = self._end - self._position
        if remaining <= 0:
            return b""
        if size < 0 or size > remaining:
            size = remaining
        stream = self._archive.stream()
        if stream.tell() != self._position:
            stream.seek(self._position)  # forward: decompress and skip; backward: rewind
        data = stream.read(size)
        self._position += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _shown(text: str) -> str:
    """``text`` as it can be printed and stored: bytes of a file name that are not UTF-8
    (decoded as lone surrogates) are written ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_ARCHIVE_ERRORS = (*UNREADABLE, tarfile.TarError)


def _walk(path: Path, limit: int) -> Iterable[_Found]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            # A link is followed even when it leads nowhere: a chunk that cannot be opened is
            # bad input (below), never passed over as if the delivery did not hold it.
            if child.is_file() or child.is_symlink():
                yield from _walk_file(child, limit)
    elif path.is_file():
        yield from _walk_file(path, limit)
    else:
        raise FileNotFoundError(path)


def _walk_file(path: Path, limit: int) -> Iterable[_Found]:
    lowered = path.name.lower()
    if lowered.endswith(".xml"):
        try:
            with path.open("rb") as stream:
                head = stream.read(_PEEK)
        except OSError as error:  # a dangling link, a file the import's user may not read
            raise BadInput(
                f"cannot be read ({error.strerror or error}): fix the file or its permissions "
                "and import again; nothing was applied",
                file=_shown(str(path)),
            ) from None
        yield _Found(
            _shown(str(path)),
            _shown(str(path.parent)),
            path.parent.parts,
            None,
            path.name,
            _file_opener(path),
            _peek(head),
        )
    elif lowered.endswith((".zip", *_TAR_SUFFIXES)):
        # Listed whole before anything is read: a corrupt or truncated archive is bad input,
        # whichever member it breaks in.
        try:
            found = list(
                _walk_zip(path, limit) if lowered.endswith(".zip") else _walk_tar(path, limit)
            )
        except _ARCHIVE_ERRORS as error:
            raise BadInput(f"the archive cannot be read: {error}", file=_shown(str(path))) from None
        yield from found


def _oversized(display: str, size: int, limit: int) -> BadInput:
    return BadInput(
        f"{size / (1 << 20):.0f} MB once decompressed, more than the {limit >> 20} MB an archive "
        "member may hold (AIGUILLAGE_AAF_MAX_MEMBER_MB): a decompression bomb, or a delivery "
        "larger than this setting allows; nothing was read or applied",
        file=display,
    )


def _walk_zip(path: Path, limit: int) -> Iterable[_Found]:
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            member = PurePosixPath(info.filename)
            if info.is_dir() or not member.name.lower().endswith(".xml"):
                continue
            display = _shown(f"{path}!{info.filename}")
            # The size the archive declares is all its reader gives: a member inflating to more
            # fails its CRC check.
            if info.file_size > limit:
                raise _oversized(display, info.file_size, limit)
            try:
                with archive.open(info) as stream:
                    head = stream.read(_PEEK)
            except _ARCHIVE_ERRORS as error:  # a member read whole by the peek: its CRC
                raise BadInput(f"cannot be read: {error}", file=display) from None
            yield _Found(
                display,
                _shown(f"{path}!{member.parent}"),
                (*path.parent.parts, *member.parent.parts),
                path.name,
                member.name,
                _zip_opener(path, info),
                _peek(head),
            )


class _TarListing(io.RawIOBase):
    """The decompressed stream ``tarfile`` lists an archive from, with a budget on what it reads
    for one member's headers: ``tarfile`` reads a GNU long name or pax attributes whole, and a
    sparse map number by number, before the member is listed, however large their header
    claims them to be. Member data is skipped by seeking, which spends nothing."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        #: Bytes read since the listing last moved to the next member.
        self.spent = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size < 0 or self.spent + size > TAR_HEADERS_LIMIT:
            raise tarfile.ReadError(
                # Worded without "long": the word is also a surname, which logs must not hold.
                f"a member with headers of more than {TAR_HEADERS_LIMIT >> 20} MB (member name, "
                "pax attributes or sparse map), which no delivery holds"
            )
        data = self._stream.read(size)
        self.spent += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        self._stream.close()
        super().close()


def _walk_tar(path: Path, limit: int) -> Iterable[_Found]:
    shared = _TarArchive(path)
    listing = _TarListing(_open_compressed(path))
    try:
        with tarfile.open(fileobj=listing, mode="r:") as archive:
            for info in archive:
                # Before the listing moves past it (decompressing it whole), whatever it holds.
                if info.size > limit:
                    raise _oversized(_shown(f"{path}!{info.name}"), info.size, limit)
                found = _tar_member(path, archive, info, shared)
                listing.spent = 0  # what the next member's headers may read starts here
                if found is not None:
                    yield found
    except ValueError as error:  # a header that tarfile's parsing of numbers chokes on
        raise tarfile.ReadError(f"a member header cannot be read ({error})") from None
    finally:
        listing.close()


def _tar_member(
    path: Path, archive: tarfile.TarFile, info: tarfile.TarInfo, shared: _TarArchive
) -> _Found | None:
    member = PurePosixPath(info.name)
    if not info.isfile() or not member.name.lower().endswith(".xml"):
        return None
    if info.issparse():
        # Its holes are recorded, not stored: read as the plain bytes after its header (how
        # members are read, see ``_TarArchive``), it would run into the members after it.
        raise BadInput(
            "a sparse member (GNU tar --sparse: holes recorded, not stored), which no delivery "
            "is; make the archive without --sparse",
            file=_shown(f"{path}!{info.name}"),
        )
    stream = archive.extractfile(info)
    if stream is None:
        return None
    head = stream.read(_PEEK)
    return _Found(
        _shown(f"{path}!{info.name}"),
        _shown(f"{path}!{member.parent}"),
        (*path.parent.parts, *member.parent.parts),
        path.name,
        member.name,
        shared.opener(info.offset_data, info.size),
        _peek(head),
    )


# -- planning --------------------------------------------------------------------------------


@dataclass
class _Planned:
    found: _Found
    name: _Name
    mode: Mode | None
    category: str
    degree: Degree
    header: dict[str, str]


def _chunk_gaps(category: str, files: list[AafFile]) -> list[str]:
    gaps: list[str] = []
    numbered: dict[int, list[str]] = {}
    for f in files:
        if f.chunk is not None:
            numbered.setdefault(f.chunk, []).append(f.path)
    for chunk, paths in sorted(numbered.items()):
        if len(paths) > 1:
            gaps.append(f"{category}: chunk {chunk:04d} given {len(paths)} times")
    if not numbered:
        return gaps
    have = sorted(numbered)
    missing = [n for n in range(have[-1]) if n not in numbered]
    if missing:
        have_text = ", ".join(_runs_text(_runs(have)))
        for low, high in _runs(missing):
            which = f"chunk {low:04d}" if low == high else f"chunks {low:04d}-{high:04d}"
            gaps.append(f"{category}: {which} missing (have {have_text})")
    return gaps


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _runs_text(runs: list[tuple[int, int]]) -> list[str]:
    return [f"{a:04d}" if a == b else f"{a:04d}-{b:04d}" for a, b in runs]


def _canonical_prefixes(prefixes: set[str]) -> dict[str, str]:
    """``clean-FULL_X`` joins ``FULL_X`` when both occur: a decorated copy of the same export."""
    mapping = {}
    for prefix in prefixes:
        target = prefix
        for other in prefixes:
            if other and other != prefix and len(other) < len(target):
                for separator in ("-", "_", "."):
                    if prefix.endswith(separator + other):
                        target = other
        mapping[prefix] = target
    return mapping


def reading_order(f: AafFile) -> tuple[int, int, int, str]:
    return (
        CATEGORIES.index(f.category),
        0 if f.chunk is not None else 1,
        f.chunk or 0,
        f.path,
    )


def plan(
    paths: Sequence[Path | str], *, max_member_bytes: int = MAX_MEMBER_BYTES
) -> list[AafExport]:
    """Find the AAF files under ``paths`` and group them into exports, in import order.

    ``paths`` may hold folders (searched recursively), ``.xml`` files, ``.zip`` and
    ``.tgz``/``.tar.gz`` archives. XML files whose first 64 KB show no ``ficAlimMENESR`` root
    are ignored (other XML), unless their name is an AAF chunk's (a category token such as
    ``_Eleve_``): such a file empty, truncated or garbled is bad input, never skipped (a
    Complet without it would look whole and make its people leave). A corrupt archive is bad
    input too, and so is an archive member larger than ``max_member_bytes`` once
    decompressed (a tar's members, whatever their name: listing one decompresses it; a zip's
    XML members). Exports come in date order (:attr:`AafExport.issued`; a Complet before a Delta of
    the same date; exports without a date first), then by location.
    """
    planned: list[_Planned] = []
    for path in paths:
        for found in _walk(Path(path), max_member_bytes):
            peek = found.peek
            name = _parse_name(found.name)
            if not peek.is_aaf:
                if name.category is not None:
                    raise BadInput(
                        f"named like an AAF {name.category} file, but its first 64 KB hold no "
                        f"<{ROOT_TAG}> root element: empty, truncated or not AAF XML",
                        file=found.display,
                    )
                continue
            category = name.category or peek.category
            if category is None:
                continue  # no name token and no record: nothing to read
            mode = name.mode or _mode_from_path(found.folders, found.archive)
            planned.append(_Planned(found, name, mode, category, peek.degree or "2d", peek.header))

    groups: dict[tuple[str, Mode | None, str | None, Degree], list[_Planned]] = {}
    for item in planned:
        key = (item.found.location, item.mode, item.name.date, item.degree)
        groups.setdefault(key, []).append(item)

    exports: list[AafExport] = []
    for (location, mode, date, degree), items in groups.items():
        canonical = _canonical_prefixes({i.name.prefix for i in items})
        by_prefix: dict[str, list[_Planned]] = {}
        for item in items:
            by_prefix.setdefault(canonical[item.name.prefix], []).append(item)
        for prefix, members in by_prefix.items():
            exports.append(_export(location, prefix, mode, date, degree, members))

    # By date: a Delta older than a Complet of the same job is applied before it, not after.
    exports.sort(key=lambda e: (e.issued or dt.date.min, e.mode != "complet", e.location, e.prefix))
    return exports


def _export(
    location: str,
    prefix: str,
    mode: Mode | None,
    date: str | None,
    degree: Degree,
    members: list[_Planned],
) -> AafExport:
    files = sorted(
        (
            AafFile(m.found.display, m.category, m.name.chunk, m.found.opener, m.header)
            for m in members
        ),
        key=reading_order,
    )
    headers = [f.header for f in files]
    versions = sorted(h["versionAF"] for h in headers if h.get("versionAF"))
    academies: dict[str, list[str]] = {}
    for f in files:
        if f.header.get("codeAcademieExport"):
            academies.setdefault(f.header["codeAcademieExport"], []).append(f.path)
    if len(academies) > 1:  # one scope per académie: mixing two would blend their people
        named = "; ".join(f"{code} in {paths[0]}" for code, paths in sorted(academies.items()))
        raise BadInput(
            f"the files of one export ({prefix} {mode or ''} {date or ''} in {location}) name "
            f"different académies (codeAcademieExport): {named}"
        )
    gaps: list[str] = []
    if mode is None:
        gaps.append("mode not stated by the file names or folders (Complet/Delta); read as complet")
    for category in CATEGORIES:
        gaps.extend(_chunk_gaps(category, [f for f in files if f.category == category]))
    effective: Mode = mode or "complet"
    missing: list[str] = []
    if effective == "complet":
        present = {f.category for f in files}
        missing = [c for c in EXPECTED_CATEGORIES[degree] if c not in present]
    generated = next(
        (h["dateGenerationExport"] for h in headers if h.get("dateGenerationExport")), None
    )
    if generated and len(generated) == 10:
        generated = generated[6:] + generated[3:5] + generated[:2]  # dd/MM/yyyy
    date = date or generated
    return AafExport(
        prefix=prefix,
        mode=effective,
        date=date,
        files=files,
        degree=degree,
        academie=next(
            (h["codeAcademieExport"] for h in headers if h.get("codeAcademieExport")), None
        ),
        version_af=versions[-1] if versions else None,
        version_sdet=next((h["versionSDET"] for h in headers if h.get("versionSDET")), None),
        gaps=gaps,
        missing_categories=missing,
        location=location,
        uai=_prefix_uai(prefix),
        issued=_day(date) or _day(generated),
    )


def _day(text: str | None) -> dt.date | None:
    """The date ``text`` spells as ``YYYYMMDD``, else None."""
    if text is None or len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _prefix_uai(prefix: str) -> str | None:
    """The last token of ``prefix`` that is a UAI (seven digits and their key letter)."""
    return next((t for t in reversed(re.split(r"[_.\-]", prefix)) if is_valid_uai(t)), None)
