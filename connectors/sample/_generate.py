"""Public entry points: write a Complet académie, or the Delta from one state to the next.

Both functions are deterministic: same arguments, same bytes. ``generate_academie`` writes a
manifest (``.sample-manifest.json``, never ``*.xml``) next to the files; ``generate_delta``
replays it — base generation, then each earlier delta — to rebuild the previous state in memory,
evolves it, and writes the records that differ as add/modify/delete requests.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from annuaire.errors import BadInput

from ._build import build_state
from ._delta import apply_delta
from ._model import AcademieState
from ._render import Renderer
from ._xml import (
    CATEGORIES,
    ChunkedWriter,
    add_request,
    delete_request,
    header,
    modify_request,
)

__all__ = [
    "COUNT_KEYS",
    "DEFAULT_DATE",
    "MANIFEST_NAME",
    "Degree",
    "GenerationSummary",
    "generate_academie",
    "generate_delta",
]

Degree = Literal["1d", "2d", "both"]
DEFAULT_DATE = datetime.date(2026, 9, 15)
MANIFEST_NAME = ".sample-manifest.json"
COUNT_KEYS = (
    "structures",
    "subjects",
    "mefs",
    "pupils",
    "guardians",
    "staff",
    "teachers",
    "classes",
    "groups",
)
_DEGREES: dict[str, tuple[str, ...]] = {"2d": ("2D",), "1d": ("1D",), "both": ("2D", "1D")}
_PREFIX = {"2D": "ENT", "1D": "ENT1D"}
_CATEGORY_KEY = {
    "EtabEducNat": "structures",
    "MatiereEducNat": "subjects",
    "MefEducNat": "mefs",
    "Eleve": "pupils",
    "PersRelEleve": "guardians",
    "PersEducNat": "staff",
}
_MANIFEST_FORMAT = 1
R = TypeVar("R")


@dataclass(frozen=True)
class GenerationSummary:
    """What a call wrote.

    ``counts`` describes the state the files lead to (for a Delta: the state after it), summed
    over degrees; ``by_degree`` splits it ("2D", "1D"). For a Delta, ``adds``, ``modifies`` and
    ``deletes`` count the requests written per category key (structures and nomenclatures are
    re-sent in full as addRequests, as real deltas do). ``complet_files`` lists the Complet of
    the new state when ``also_complet`` was given.
    """

    kind: Literal["Complet", "Delta"]
    out: Path
    date: datetime.date
    degrees: tuple[str, ...]
    files: tuple[Path, ...]
    counts: Mapping[str, int]
    by_degree: Mapping[str, Mapping[str, int]]
    adds: Mapping[str, int] = field(default_factory=dict)
    modifies: Mapping[str, int] = field(default_factory=dict)
    deletes: Mapping[str, int] = field(default_factory=dict)
    complet_files: tuple[Path, ...] = ()


def generate_academie(
    out: Path | str,
    *,
    pupils: int,
    seed: int,
    degree: Degree = "2d",
    academie: str = "SANDBOX",
    academie_code: str = "099",
    chunk_size: int = 5000,
    date: datetime.date | None = None,
) -> GenerationSummary:
    """Write the Complet export of a synthetic académie into ``out`` (created if needed).

    ``pupils`` is the total number of pupils; with ``degree="both"`` it is split evenly between
    2D and 1D (2D gets the odd one). ``date`` (default 2026-09-15) names the files, fills
    ``dateGenerationExport`` and fixes the school year. ``out`` must hold no ``*.xml`` file.
    """
    degrees = _check_degree(degree)
    if not isinstance(pupils, int) or pupils < len(degrees):
        raise ValueError(f"pupils must be an integer >= {len(degrees)} for degree={degree!r}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError("chunk_size must be a positive integer")
    if not re.fullmatch(r"[0-9]{1,3}", academie_code):
        raise ValueError("academie_code is 1 to 3 digits, e.g. '099'")
    if not academie.strip():
        raise ValueError("academie must not be empty")
    when = date or DEFAULT_DATE
    folder = _empty_folder(out)
    state = build_state(
        pupils=pupils,
        seed=seed,
        degrees=degrees,
        academie=academie,
        academie_code=academie_code,
        date=when,
    )
    files = _write_complet(state, folder, chunk_size)
    manifest: dict[str, Any] = {
        "format": _MANIFEST_FORMAT,
        "generator": "connectors.sample",
        "kind": "Complet",
        "base": {
            "pupils": pupils,
            "seed": seed,
            "degree": degree,
            "academie": academie,
            "academie_code": academie_code,
            "chunk_size": chunk_size,
            "date": when.isoformat(),
        },
        "deltas": [],
    }
    _write_manifest(folder, manifest)
    counts, by_degree = _counts(state)
    return GenerationSummary("Complet", folder, when, degrees, tuple(files), counts, by_degree)


def generate_delta(
    previous: Path | str,
    out: Path | str,
    *,
    seed: int,
    rate: float = 0.01,
    date: datetime.date | None = None,
    also_complet: Path | str | None = None,
) -> GenerationSummary:
    """Write into ``out`` the Delta from the state in ``previous`` to an evolved state.

    ``previous`` is a folder written by :func:`generate_academie` or by this function (its
    manifest is replayed, the XML is not read). About ``rate`` of the pupils, responsables and
    staff are added, modified and deleted. ``date`` defaults to the day after the previous
    state. With ``also_complet``, the Complet of the new state is written there too, so that
    "import Complet A, apply Delta A→B" can be compared with "import Complet B".
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be between 0 and 1")
    source = Path(previous)
    manifest = _read_manifest(source)
    before = _replay(manifest)
    when = date or before.date + datetime.timedelta(days=1)
    if when < before.date:
        raise ValueError(f"the delta date {when} is before the previous state ({before.date})")
    folder = _empty_folder(out)
    if folder.resolve() == source.resolve():
        raise ValueError("out must differ from previous")
    complet_folder = None if also_complet is None else _empty_folder(also_complet)
    after = apply_delta(before, seed=seed, rate=rate, date=when)
    chunk_size = int(manifest["base"]["chunk_size"])

    files: list[Path] = []
    tally = _Tally()
    for degree in after.degrees:
        files += _write_delta(before, after, degree, folder, chunk_size, tally)
    history = {
        **manifest,
        "kind": "Delta",
        "deltas": [*manifest["deltas"], {"seed": seed, "rate": rate, "date": when.isoformat()}],
    }
    _write_manifest(folder, history)
    complet_files: list[Path] = []
    if complet_folder is not None:
        complet_files = _write_complet(after, complet_folder, chunk_size)
        _write_manifest(complet_folder, {**history, "kind": "Complet"})
    counts, by_degree = _counts(after)
    return GenerationSummary(
        "Delta",
        folder,
        when,
        tuple(after.degrees),
        tuple(files),
        counts,
        by_degree,
        tally.adds,
        tally.modifies,
        tally.deletes,
        tuple(complet_files),
    )


# -- helpers ----------------------------------------------------------------------------------
def _check_degree(degree: str) -> tuple[str, ...]:
    if degree not in _DEGREES:
        raise ValueError(f"degree must be one of {sorted(_DEGREES)}, got {degree!r}")
    return _DEGREES[degree]


def _empty_folder(path: Path | str) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.xml")):
        raise FileExistsError(f"{folder} already holds AAF files; use an empty folder")
    return folder


def _prefix(state: AcademieState, degree: str, kind: str) -> str:
    name = re.sub(r"[^A-Z0-9-]", "-", state.academie.upper())
    return f"{_PREFIX[degree]}_{name}_{kind}_{state.date:%Y%m%d}"


def _write_complet(state: AcademieState, folder: Path, chunk_size: int) -> list[Path]:
    files: list[Path] = []
    for degree, data in state.degrees.items():
        renderer = Renderer(state, data)
        writer = ChunkedWriter(
            folder,
            _prefix(state, degree, "Complet"),
            header(degree, state.academie_code, state.date),
            chunk_size,
        )
        sources: list[tuple[str, Callable[[], Iterator[tuple[str, str]]]]] = [
            ("EtabEducNat", renderer.all_structures)
        ]
        if degree == "2D":
            sources += [("MatiereEducNat", renderer.subjects), ("MefEducNat", renderer.mefs)]
        sources += [
            ("Eleve", renderer.all_pupils),
            ("PersRelEleve", renderer.all_guardians),
            ("PersEducNat", renderer.all_staff),
        ]
        for token, records in sources:
            category = CATEGORIES[token]
            files += writer.write(
                category, (add_request(category, ident, body) for ident, body in records())
            )
    return files


def _zeros() -> dict[str, int]:
    return dict.fromkeys(_CATEGORY_KEY.values(), 0)


@dataclass
class _Tally:
    """Requests written per summary key."""

    adds: dict[str, int] = field(default_factory=_zeros)
    modifies: dict[str, int] = field(default_factory=_zeros)
    deletes: dict[str, int] = field(default_factory=_zeros)


def _resend(token: str, records: Iterator[tuple[str, str]], tally: _Tally) -> Iterator[str]:
    """Full copies as addRequests (structures and nomenclatures in a delta)."""
    category = CATEGORIES[token]
    for ident, body in records:
        tally.adds[_CATEGORY_KEY[token]] += 1
        yield add_request(category, ident, body)


def _diff(
    token: str,
    before: Mapping[int, R],
    after: Mapping[int, R],
    render_before: Callable[[R], str],
    render_after: Callable[[R], str],
    unchanged: Callable[[R, R], bool],
    tally: _Tally,
) -> Iterator[str]:
    """Adds and modifies in the order of ``after``, then deletes.

    ``unchanged`` is a cheap sufficient test (same record objects, same derived inputs);
    otherwise both renderings are compared, so a modify is written only if the text differs.
    """
    category = CATEGORIES[token]
    key = _CATEGORY_KEY[token]
    for ident, record in after.items():
        previous = before.get(ident)
        if previous is None:
            tally.adds[key] += 1
            yield add_request(category, str(ident), render_after(record))
        elif not unchanged(previous, record):
            body = render_after(record)
            if body != render_before(previous):
                tally.modifies[key] += 1
                yield modify_request(category, str(ident), body)
    for ident in before:
        if ident not in after:
            tally.deletes[key] += 1
            yield delete_request(category, str(ident))


def _write_delta(
    before: AcademieState,
    after: AcademieState,
    degree: str,
    folder: Path,
    chunk_size: int,
    tally: _Tally,
) -> list[Path]:
    old, new = before.degrees[degree], after.degrees[degree]
    old_render, new_render = Renderer(before, old), Renderer(after, new)
    old_children, new_children = old_render.children(), new_render.children()
    writer = ChunkedWriter(
        folder,
        _prefix(after, degree, "Delta"),
        header(degree, after.academie_code, after.date),
        chunk_size,
    )
    files = writer.write(
        CATEGORIES["EtabEducNat"], _resend("EtabEducNat", new_render.all_structures(), tally)
    )
    if degree == "2D":
        for token, records in (
            ("MatiereEducNat", new_render.subjects()),
            ("MefEducNat", new_render.mefs()),
        ):
            files += writer.write(CATEGORIES[token], _resend(token, records, tally))
    files += writer.write(
        CATEGORIES["Eleve"],
        _diff(
            "Eleve",
            old.pupils,
            new.pupils,
            old_render.pupil,
            new_render.pupil,
            lambda a, b: (
                a is b and old.guardians.get(a.residence) is new.guardians.get(b.residence)
            ),
            tally,
        ),
    )
    files += writer.write(
        CATEGORIES["PersRelEleve"],
        _diff(
            "PersRelEleve",
            old.guardians,
            new.guardians,
            old_render.guardian,
            new_render.guardian,
            lambda a, b: a is b and old_children.get(a.id) == new_children.get(b.id),
            tally,
        ),
    )
    files += writer.write(
        CATEGORIES["PersEducNat"],
        _diff(
            "PersEducNat",
            old.staff,
            new.staff,
            old_render.staff,
            new_render.staff,
            lambda a, b: a is b,
            tally,
        ),
    )
    return files


def _counts(state: AcademieState) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    by_degree: dict[str, dict[str, int]] = {}
    for degree, data in state.degrees.items():
        renderer = Renderer(state, data)
        by_degree[degree] = {
            "structures": len(data.structures),
            "subjects": sum(1 for _ in renderer.subjects()) if degree == "2D" else 0,
            "mefs": sum(1 for _ in renderer.mefs()) if degree == "2D" else 0,
            "pupils": len(data.pupils),
            "guardians": len(data.guardians),
            "staff": len(data.staff),
            "teachers": sum(1 for s in data.staff.values() if s.teacher),
            "classes": sum(len(s.classes) for s in data.structures.values()),
            "groups": sum(len(s.groups) for s in data.structures.values()),
        }
    counts = {key: sum(d[key] for d in by_degree.values()) for key in COUNT_KEYS}
    return counts, by_degree


def _write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BadInput(
            "no generator manifest: not a folder written by generate_academie/generate_delta",
            file=str(path),
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        base = manifest["base"]
        if manifest.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {manifest.get('format')!r}")
        _check_degree(base["degree"])
        datetime.date.fromisoformat(base["date"])
        # What a replay reads: all of it, with the types it needs, checked before any is used.
        for key in ("pupils", "seed", "chunk_size"):
            if type(base[key]) is not int:
                raise ValueError(f"base {key} is not an integer: {base[key]!r}")
        for key in ("academie", "academie_code"):
            if not isinstance(base[key], str):
                raise ValueError(f"base {key} is not text: {base[key]!r}")
        if not re.fullmatch(r"[0-9]{1,3}", base["academie_code"]):
            raise ValueError(f"base academie_code is not 1 to 3 digits: {base['academie_code']!r}")
        for step in manifest["deltas"]:
            datetime.date.fromisoformat(step["date"])
            if type(step["seed"]) is not int or not isinstance(step["rate"], int | float):
                raise ValueError(f"delta step without an integer seed and a rate: {step!r}")
    except KeyError as error:
        raise BadInput(f"unreadable generator manifest: no {error}", file=str(path)) from error
    except (ValueError, TypeError) as error:
        raise BadInput(f"unreadable generator manifest: {error}", file=str(path)) from error
    return dict(manifest)


def _replay(manifest: Mapping[str, Any]) -> AcademieState:
    base = manifest["base"]
    state = build_state(
        pupils=int(base["pupils"]),
        seed=int(base["seed"]),
        degrees=_DEGREES[base["degree"]],
        academie=str(base["academie"]),
        academie_code=str(base["academie_code"]),
        date=datetime.date.fromisoformat(base["date"]),
    )
    for step in manifest["deltas"]:
        state = apply_delta(
            state,
            seed=int(step["seed"]),
            rate=float(step["rate"]),
            date=datetime.date.fromisoformat(step["date"]),
        )
    return state
