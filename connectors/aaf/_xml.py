"""Safe, streaming parse of one ``ficAlimMENESR`` XML stream into raw records.

Contract:

* lxml ``iterparse`` on ``end`` events of the three request elements; each element is cleared
  and its preceding siblings dropped, so memory stays flat whatever the file size.
* No DTD loading, no network, no entity expansion. A DOCTYPE with an internal subset (the only
  place an entity can be declared: billion laughs, XXE), or of any shape but an external
  identifier, is rejected before lxml sees a byte (the prolog is read token by token).
  The standard ``<!DOCTYPE ficAlimMENESR SYSTEM "ficAlimMENESR.dtd">`` is accepted, never fetched.
* HTML 4 named entities (``&eacute;``, undefined in XML) are rewritten to numeric references
  on the byte stream, chunk by chunk (AAF.md §1.5); a ``html-entities`` warning says so once per
  file. Any other undefined named entity is rejected: lxml would otherwise keep it unresolved
  and silently truncate the value. Inside a CDATA section or a comment an ``&`` is text, as
  XML reads it: nothing there is rewritten or rejected.
* Every syntax error becomes :class:`annuaire.errors.BadInput` naming the file, line and column.
* Record model (AAF.md §1.6, §11 item 5): an ``attr`` without ``value`` is empty; empty (or
  blank) values are dropped; an attribute given twice is merged; duplicate values are removed,
  order kept; ``modifications`` read like ``attributes``; an ``attr`` without a name or a
  ``modification`` without ``operation`` is rejected. Attributes are stored under their
  canonical (2D) name, see ``_names``. Inside a request only ``attr``/``modification``/
  ``value``/``id`` elements are read: comments and unexpected elements there are ignored
  (unexpected elements between requests are rejected).
"""

from __future__ import annotations

import codecs
import functools
import lzma
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.entities import name2codepoint
from typing import Any, BinaryIO

from lxml import etree

from annuaire.errors import BadInput
from annuaire.schema import Provenance, RecordOp, SourceWarning

from ._names import CANONICAL, CATEGORY_BY_VALUE, REQUEST_OPS, UNMAPPED

__all__ = ["RawFile", "RawRecord", "parse_header_comment"]

ROOT_TAG = "ficAlimMENESR"
_REQUEST_TAGS = tuple(REQUEST_OPS)
_JOIN_KEYS = {
    "EtabEducNat": "ENTStructureJointure",
    "MatiereEducNat": "ENTMatJointure",
    "MefEducNat": "ENTMefJointure",
    "Eleve": "ENTPersonJointure",
    "PersRelEleve": "ENTPersonJointure",
    "PersEducNat": "ENTPersonJointure",
}

#: The header comments of an AAF file (AAF.md §1.4): what planning keeps of a file's header.
HEADER_NAMES = frozenset(
    {"versionAF", "versionSDET", "codeAcademieExport", "degre", "dateGenerationExport"}
)
_CHUNK = 1 << 16
_PROLOG_LIMIT = 1 << 20
#: Bytes read past the end of the last request (or the start of the file) before the next
#: request must end: what lxml holds at once is bounded by it, whatever the file holds (one
#: huge request, a flood of comments or stray elements). The largest requests seen in real
#: exports are a few kilobytes.
REQUEST_LIMIT = 8 << 20
#: Encodings an AAF file may declare (Python codec names): AAF.md §1.4 and what real files use.
_ENCODINGS = frozenset({"utf-8", "iso8859-1", "iso8859-15", "cp1252", "ascii"})
_DECLARED_ENCODING = re.compile(rb"""<\?xml\s[^>]*?encoding\s*=\s*["']([^"']*)["']""")
# What may follow an ``&`` in a named reference not yet ended by its ``;``.
_OPEN_REFERENCE = re.compile(rb"[^;&<>\s\"']*")

# Where an ``&`` is text, not a reference: from an opener to its terminator.
_SECTION_END = {b"<![CDATA[": b"]]>", b"<!--": b"-->"}

# Named references other than the five XML ones; numeric references never match.
_NAMED_REF = re.compile(rb"&(?!#|(?:amp|lt|gt|quot|apos);)([^;&<>\s\"']+);")
_HTML_REFS: dict[bytes, bytes] = {
    name.encode("ascii"): b"&#%d;" % codepoint
    for name, codepoint in name2codepoint.items()
    if name not in ("amp", "lt", "gt", "quot", "apos")
}
# The prolog, read token by token: blanks, the XML declaration, comments and PIs, and at most
# an external-id-only DOCTYPE; the first thing that is none of these must be the root's start.
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_LITERAL = rb"(?:\"[^\"]*\"|'[^']*')"
_SAFE_DOCTYPE = re.compile(
    rb"<!DOCTYPE\s+[^\s\[>]+(?:\s+SYSTEM\s+"
    + _LITERAL
    + rb"|\s+PUBLIC\s+"
    + _LITERAL
    + rb"\s+"
    + _LITERAL
    + rb")?\s*>"
)
#: What reading a file, or an archive member, raises when its bytes cannot be had.
UNREADABLE = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)
_ROOT_START = re.compile(rb"<[A-Za-z_:]")
_POSITION_SUFFIX = re.compile(r", line \d+, column \d+$")
# Starts at the beginning of a word only: tried from inside a run of word characters that no
# '=' follows, it would retry every suffix of the run (quadratic in the comment's length).
_HEADER_ITEM = re.compile(r'(?<!\w)(\w+)\s*=\s*"([^"]*)"')


@dataclass(slots=True)
class RawRecord:
    """One request of an AAF file, values as sent (canonical attribute names), but for the known
    attributes that no mapping reads (``_names.UNMAPPED``)."""

    op: RecordOp
    category: str
    #: ``identifier/id``: the record's key. It equals the join key attribute
    #: (``ENTPersonJointure``...) except in broken files, where a warning says so; the id wins
    #: because a deleteRequest carries nothing else.
    id: str
    line: int
    attrs: dict[str, list[str]] = field(default_factory=dict)


def parse_header_comment(text: str) -> dict[str, str]:
    """``versionAF="AAF-VE1301"`` (the body of a header comment) to ``{"versionAF": ...}``."""
    return dict(_HEADER_ITEM.findall(text))


def _next_opener(data: bytes, start: int) -> tuple[bytes | None, int]:
    """The first opener of a CDATA section or a comment in ``data`` from ``start``, and where;
    (None, -1) if there is none. ``bytes.find`` looks for the ``!``, rare in an export (its
    header's comments): a search for ``<!`` stops at every tag, 60 times slower."""
    at = data.find(b"!", start + 1)
    while at != -1:
        if data[at - 1] == 0x3C:  # "<"
            for opener in _SECTION_END:
                if data.startswith(opener, at - 1):
                    return opener, at - 1
        at = data.find(b"!", at + 1)
    return None, -1


def _held_back(data: bytes, awaited: bytes | None) -> int:
    """How many bytes at the end of ``data`` may begin what the stream looks for next: the
    terminator ``awaited`` inside a section, else an opener of one."""
    tokens = (awaited,) if awaited is not None else tuple(_SECTION_END)
    for length in range(max(map(len, tokens)) - 1, 0, -1):
        tail = data[-length:]
        if any(token.startswith(tail) for token in tokens):
            return length
    return 0


class _SafeStream:
    """A read-only byte stream that vets the prolog and rewrites HTML named entities."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._raw = raw
        self._name = name
        self._carry = b""
        self._eof = False
        self._lines = 0
        self._prolog_checked = False
        #: The terminator of the CDATA section or comment the stream is in, if any.
        self._section_end: bytes | None = None
        self.html_entities = 0
        #: Bytes given to the parser, and their count when the last request ended (``RawFile``
        #: moves it): ``REQUEST_LIMIT`` bounds the difference.
        self.delivered = 0
        self.request_ended = 0

    def read(self, size: int = -1) -> bytes:
        # lxml copes with reads longer than requested; whole processed chunks avoid re-slicing.
        if self.delivered - self.request_ended > REQUEST_LIMIT:
            raise BadInput(
                f"more than {REQUEST_LIMIT >> 20} MB without the end of a request (an oversized "
                "request, or content that is not one between requests)",
                file=self._name,
                line=self._lines + 1,
            )
        while not self._eof:
            out = self._next_chunk()
            if out:
                self.delivered += len(out)
                return out
        return b""

    def _next_chunk(self) -> bytes:
        try:
            chunk = self._raw.read(_CHUNK)
        except UNREADABLE as error:
            # A corrupt or truncated archive member (bad CRC, cut compressed stream).
            raise BadInput(f"cannot be read: {error}", file=self._name) from None
        if not chunk:
            self._eof = True
            data, self._carry = self._carry, b""
        else:
            data = self._carry + chunk if self._carry else chunk
            self._carry = b""
        if not self._prolog_checked:
            if not self._prolog_ends(data):
                if len(data) > _PROLOG_LIMIT:
                    raise BadInput("no root element in the first megabyte", file=self._name)
                self._carry = data
                return b""
            self._prolog_checked = True
        if not self._eof:
            # Keep a reference cut by the chunk boundary, however long, for the next round.
            amp = data.rfind(b"&")
            if amp != -1 and _OPEN_REFERENCE.fullmatch(data, amp + 1) is not None:
                data, self._carry = data[:amp], data[amp:]
                if len(self._carry) > _CHUNK:  # no reference is that long: never held whole
                    raise BadInput(
                        "an '&' followed by more than 64 KB without its ';'",
                        file=self._name,
                        line=self._lines + data.count(b"\n") + 1,
                    )
        data = self._rewritten(data)
        self._lines += data.count(b"\n")
        return data

    def _rewritten(self, data: bytes) -> bytes:
        """``data`` with the named references outside CDATA sections and comments rewritten.
        Not at the end of the stream, a possible start of an opener or of the terminator awaited
        (``<![CD``, ``]]``) is held back with ``_carry``: read with what follows it."""
        parts: list[bytes] = []
        start, size = 0, len(data)
        while start < size:
            awaited = self._section_end
            if awaited is not None:
                end = data.find(awaited, start)
                stop = size if end == -1 else end + len(awaited)
                parts.append(data[start:stop])
                if end != -1:
                    self._section_end = None
                start = stop
                continue
            opener, at = _next_opener(data, start)
            stop = size if opener is None else at
            text = data[start:stop]
            if b"&" in text:
                text = _NAMED_REF.sub(
                    functools.partial(self._replace, data=data, offset=start), text
                )
            parts.append(text)
            if opener is not None:
                parts.append(opener)
                self._section_end = _SECTION_END[opener]
                stop = at + len(opener)
            start = stop
        rewritten = b"".join(parts)
        if not self._eof:
            held = _held_back(rewritten, self._section_end)
            if held:
                rewritten, self._carry = rewritten[:-held], rewritten[-held:] + self._carry
        return rewritten

    def _replace(self, match: re.Match[bytes], data: bytes, offset: int) -> bytes:
        replacement = _HTML_REFS.get(match.group(1))
        if replacement is None:
            line = self._lines + data.count(b"\n", 0, offset + match.start()) + 1
            name = match.group(1).decode("latin-1")
            if len(name) > 40:
                name = name[:40] + "…"
            raise BadInput(
                f"undefined entity &{name}; (only XML, numeric and HTML 4 entities are read)",
                file=self._name,
                line=line,
            )
        self.html_entities += 1
        return replacement

    def _prolog_ends(self, data: bytes) -> bool:
        """True once the root start is reached safely; False: more bytes are needed.

        Raises on anything that may declare an entity: a DOCTYPE with an internal subset (or of
        any other shape than ``<!DOCTYPE name SYSTEM "…">``/``PUBLIC "…" "…"``).
        """
        if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:2] in (b"\x00<", b"<\x00"):
            raise BadInput("UTF-16/UTF-32 input is not supported", file=self._name, line=1)
        position = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        declared = _DECLARED_ENCODING.match(data, position)
        if declared is not None:
            self._check_encoding(declared.group(1).decode("ascii", "replace"))
        while True:
            item = _PROLOG_ITEM.match(data, position)
            if item is not None:
                position = item.end()
                continue
            if data.startswith(b"<!DOCTYPE", position):
                doctype = _SAFE_DOCTYPE.match(data, position)
                if doctype is not None:
                    position = doctype.end()
                    continue
                rest = data[position:]
                if b"[" in rest.split(b">", 1)[0] or b"<!ENTITY" in rest:
                    raise BadInput(
                        "DOCTYPE with an internal subset (entity declarations) is refused",
                        file=self._name,
                        line=data.count(b"\n", 0, position) + 1,
                    )
                if b">" in rest or self._eof:
                    raise BadInput(
                        "unsupported DOCTYPE (only an external identifier is accepted)",
                        file=self._name,
                        line=data.count(b"\n", 0, position) + 1,
                    )
                return False
            if _ROOT_START.match(data, position) is not None:
                return True
            # At the end of input, let the parser word it (empty document, text before the root).
            return self._eof

    def _check_encoding(self, name: str) -> None:
        """Refuse an encoding other than those of AAF files: UTF-7, UTF-16 or EBCDIC would
        hide a DOCTYPE or an entity from the byte-level checks above."""
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            codec = None
        if codec not in _ENCODINGS:
            raise BadInput(
                f"encoding {name!r} is not accepted (UTF-8, ISO-8859-1, ISO-8859-15 or "
                "windows-1252)",
                file=self._name,
                line=1,
            )


class RawFile:
    """Iterate the requests of one AAF stream: :class:`RawRecord` items and warnings.

    ``header`` holds the header comments (``versionAF``, ``versionSDET``, ``degre``...) once the
    first record has been read (or the file has ended). ``unknown_attributes`` counts every
    occurrence of an attribute absent from the AAF vocabulary; the first occurrence of each name
    in the file also yields an ``unknown-attribute`` warning.
    """

    def __init__(self, stream: BinaryIO, name: str, category: str | None = None) -> None:
        self.name = name
        self.category = category
        self.header: dict[str, str] = {}
        self.unknown_attributes: Counter[str] = Counter()
        self._stream = stream

    def __iter__(self) -> Iterator[RawRecord | SourceWarning]:
        safe = _SafeStream(self._stream, self.name)
        events: Any = etree.iterparse(
            safe,
            events=("end",),
            tag=_REQUEST_TAGS,
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
        )
        root: Any = None
        previous: Any = None
        entities_reported = False
        try:
            for _, element in events:
                if root is None:
                    root = self._check_root(element)
                record, warnings = self._record(element)
                if warnings:
                    yield from warnings
                if not entities_reported and safe.html_entities:
                    entities_reported = True
                    yield self._entities_warning()
                yield record
                safe.request_ended = safe.delivered
                element.clear()
                # Drop what precedes: the previous request (held, so the same proxy comes
                # back and needs no check), comments, and anything else, which is refused.
                first = root[0]
                while first is not element:
                    if first is not previous:
                        tag = first.tag
                        if isinstance(tag, str) and tag not in REQUEST_OPS:
                            raise self._bad(f"unexpected element <{tag}>", first)
                    del root[0]
                    first = root[0]
                previous = element
            root = events.root
        except etree.XMLSyntaxError as error:
            line, column = error.position if error.position else (error.lineno, None)
            # lxml ends its message with the position it also gives apart: said once.
            message = _POSITION_SUFFIX.sub("", error.msg or str(error))
            raise BadInput(message, file=self.name, line=line, column=column) from None
        self._check_end(root)
        if not entities_reported and safe.html_entities:
            yield self._entities_warning()

    # -- checks -------------------------------------------------------------------------------

    def _bad(self, message: str, element: Any, record_id: str | None = None) -> BadInput:
        return BadInput(message, file=self.name, line=element.sourceline, record_id=record_id)

    def _check_root(self, element: Any) -> Any:
        root = element.getparent()
        if root is None or root.tag != ROOT_TAG or root.getparent() is not None:
            raise self._bad(f"<{element.tag}> is not a child of the <{ROOT_TAG}> root", element)
        dtd = root.getroottree().docinfo.internalDTD  # defence in depth, see _SafeStream
        if dtd is not None and (
            any(True for _ in dtd.iterentities()) or any(True for _ in dtd.iterelements())
        ):
            raise self._bad("DOCTYPE with an internal subset is refused", root)
        self._read_header(root)
        return root

    def _check_end(self, root: Any) -> None:
        if root is None:
            raise BadInput("empty document", file=self.name)
        if root.tag != ROOT_TAG:
            raise self._bad(f"not an AAF file: the root element is <{root.tag}>", root)
        if not self.header:
            self._read_header(root)
        for child in root:
            if isinstance(child.tag, str) and child.tag not in REQUEST_OPS:
                raise self._bad(f"unexpected element <{child.tag}>", child)

    def _read_header(self, root: Any) -> None:
        for child in root:
            if child.tag is etree.Comment:
                self.header.update(parse_header_comment(child.text or ""))
            elif isinstance(child.tag, str):
                break

    def _entities_warning(self) -> SourceWarning:
        return SourceWarning(
            "html-entities",
            "HTML named entities (&eacute; ...) were decoded; they are not valid XML",
            Provenance(self.name),
        )

    # -- one request --------------------------------------------------------------------------

    def _record(self, element: Any) -> tuple[RawRecord, list[SourceWarning]]:
        # One flat pass over attr/modification/value in document order: the hot loop of the
        # connector, kept to a C-level iterator and a few C calls per node. An attr (or
        # modification) is the only node with a name; the values that follow belong to it.
        op: Any = REQUEST_OPS[element.tag]
        attrs: dict[str, list[str]] = {}
        operational: list[str] = []
        unknown: list[str] | None = None
        current: list[str] = operational
        canonical_of = CANONICAL.get
        unmapped = UNMAPPED
        for node in element.iter("attr", "modification", "value"):
            name = node.get("name")
            if name is None:
                text = node.text
                if len(node):
                    if node.tag != "value":  # an attr or modification without a name
                        raise self._bad(
                            f"<{node.tag}> without a name", node, element.findtext(".//id")
                        )
                    # A comment or processing instruction inside the value: the text around it.
                    text = "".join(node.itertext())
                if text and not text.isspace() and text not in current:  # merged, de-duplicated
                    current.append(text)
                continue
            canonical = canonical_of(name)
            if canonical is None:
                if name.startswith("categorie"):
                    current = operational
                    continue
                canonical = name
                if unknown is None:
                    unknown = []
                unknown.append(name)
            elif canonical in unmapped:
                current = []  # its values are read into a list that is dropped
                continue
            known = attrs.get(canonical)
            if known is None:
                known = attrs[canonical] = []
            current = known

        # identifier/id by position first: findtext() parses its path on every call.
        identifier = element[1] if len(element) > 1 else None
        if identifier is not None and identifier.tag == "identifier" and len(identifier):
            ident = identifier[0].text
        else:
            ident = element.findtext("identifier/id")
        if not ident:
            raise self._bad(f"<{element.tag}> without identifier/id", element)
        category = CATEGORY_BY_VALUE.get(operational[0] if operational else "")
        if category is None:
            found = operational[0] if operational else None
            raise self._bad(f"unknown or missing category {found!r}", element, ident)
        if self.category is not None and category != self.category:
            raise self._bad(f"a {category} record in a {self.category} file", element, ident)
        if op == "modify":
            for modification in element.iter("modification"):
                if modification.get("operation") != "replace":
                    raise self._bad(
                        f'<modification name="{modification.get("name")}"> needs'
                        f' operation="replace" (found {modification.get("operation")!r})',
                        modification,
                        ident,
                    )
        if not attrs and op != "delete":
            body = "modifications" if op == "modify" else "attributes"
            if element.find(body) is None:
                raise self._bad(f"<{element.tag}> without <{body}>", element, ident)

        line: int = element.sourceline
        warnings: list[SourceWarning] = []
        join = attrs.get(_JOIN_KEYS[category])
        if join and join[0] != ident:
            warnings.append(
                SourceWarning(
                    "id-mismatch",
                    f"identifier/id {ident!r} differs from {_JOIN_KEYS[category]} {join[0]!r};"
                    " the id is the record's key (a deleteRequest only carries the id), so"
                    " references by the join key will not resolve",
                    Provenance(self.name, line, ident),
                )
            )
        if unknown:
            for name in unknown:
                if name not in self.unknown_attributes:
                    warnings.append(
                        SourceWarning(
                            "unknown-attribute",
                            f"attribute {name} is not in the AAF vocabulary; kept, not mapped",
                            Provenance(self.name, line, ident),
                        )
                    )
                self.unknown_attributes[name] += 1
        return RawRecord(op, category, ident, line, attrs), warnings
