"""Write ``ficAlimMENESR`` files: VE2407 header comments, records, chunking every N records.

Files are written with plain buffered string writes (no DOM), LF line ends, UTF-8:

    <?xml version="1.0" encoding="UTF-8"?>
    <!DOCTYPE ficAlimMENESR SYSTEM "ficAlimMENESR.dtd">
    <ficAlimMENESR>
    <!-- versionAF="AAF-VE2407" -->
    …
    <addRequest>…</addRequest>
    </ficAlimMENESR>

A category with no record still gets its ``_0000`` file (an empty root), so a delivery always
has every expected category.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CATEGORIES",
    "Category",
    "ChunkedWriter",
    "add_request",
    "delete_request",
    "header",
    "modify_request",
]

_SDET = {"2D": "Annexe 4bis version 6.4", "1D": "Annexe 1 version 6.3"}


@dataclass(frozen=True, slots=True)
class Category:
    token: str  # file-name token
    attr: str  # operational attribute name
    value: str  # operational attribute value


CATEGORIES: dict[str, Category] = {
    c.token: c
    for c in (
        Category("EtabEducNat", "categorieStructure", "EtabEducNat"),
        Category("MatiereEducNat", "categorieMatiere", "MatEducNat"),
        Category("MefEducNat", "categorieMef", "MefEducNat"),
        Category("Eleve", "categoriePersonne", "Eleve"),
        Category("PersRelEleve", "categoriePersonne", "PersRelEleve"),
        Category("PersEducNat", "categoriePersonne", "PersEducNat"),
    )
}


def header(degree: str, academie_code: str, date: datetime.date) -> str:
    """Prolog, root and the VE2407 header comments (académie code without leading zeros)."""
    code = academie_code.lstrip("0") or "0"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE ficAlimMENESR SYSTEM "ficAlimMENESR.dtd">\n'
        "<ficAlimMENESR>\n"
        '<!-- versionAF="AAF-VE2407" -->\n'
        f'<!-- versionSDET="{_SDET[degree]}" -->\n'
        f'<!-- codeAcademieExport="{code}" -->\n'
        f'<!-- degre="{degree}" -->\n'
        f'<!-- dateGenerationExport="{date:%d/%m/%Y}" -->\n'
        "\n"
    )


def _operational(category: Category, ident: str) -> str:
    return (
        f'<operationalAttributes><attr name="{category.attr}"><value>{category.value}'
        "</value></attr></operationalAttributes>\n"
        f"<identifier><id>{ident}</id></identifier>\n"
    )


def add_request(category: Category, ident: str, body: str) -> str:
    return (
        f"<addRequest>\n{_operational(category, ident)}"
        f"<attributes>\n{body}</attributes>\n</addRequest>\n\n"
    )


def modify_request(category: Category, ident: str, body: str) -> str:
    """The whole record again, every attribute as a ``replace`` modification."""
    modifications = (
        body.replace('<attr name="', '<modification name="')
        .replace('"><value', '" operation="replace"><value')
        .replace("</attr>\n", "</modification>\n")
    )
    return (
        f"<modifyRequest>\n{_operational(category, ident)}"
        f"<modifications>\n{modifications}</modifications>\n</modifyRequest>\n\n"
    )


def delete_request(category: Category, ident: str) -> str:
    return f"<deleteRequest>\n{_operational(category, ident)}</deleteRequest>\n\n"


class ChunkedWriter:
    """Writes one category as ``<prefix>_<Category>_NNNN.xml`` files of ``chunk_size`` records."""

    def __init__(self, folder: Path, prefix: str, head: str, chunk_size: int) -> None:
        self.folder = folder
        self.prefix = prefix
        self.head = head
        self.chunk_size = chunk_size

    def write(self, category: Category, requests: Iterable[str]) -> list[Path]:
        paths: list[Path] = []
        stream = None
        in_chunk = 0
        try:
            for request in requests:
                if stream is None or in_chunk == self.chunk_size:
                    if stream is not None:
                        stream.write("</ficAlimMENESR>\n")
                        stream.close()
                    path = self.folder / f"{self.prefix}_{category.token}_{len(paths):04d}.xml"
                    paths.append(path)
                    stream = path.open("w", encoding="utf-8", newline="\n", buffering=1 << 20)
                    stream.write(self.head)
                    in_chunk = 0
                stream.write(request)
                in_chunk += 1
            if stream is None:
                path = self.folder / f"{self.prefix}_{category.token}_0000.xml"
                paths.append(path)
                stream = path.open("w", encoding="utf-8", newline="\n")
                stream.write(self.head)
            stream.write("</ficAlimMENESR>\n")
        finally:
            if stream is not None:
                stream.close()
        return paths
