"""The raw layer: safe parsing, encodings, entities, and the tolerant record model."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from aaf_support import Attr, document, fastest, request, write

from annuaire.errors import BadInput
from annuaire.schema import SourceWarning
from connectors.aaf import AafReader, RawRecord, plan
from connectors.aaf._xml import RawFile, parse_header_comment


def read_raw(data: bytes, name: str = "test.xml") -> tuple[list[RawRecord], list[SourceWarning]]:
    records: list[RawRecord] = []
    warnings: list[SourceWarning] = []
    for item in RawFile(io.BytesIO(data), name):
        (records if isinstance(item, RawRecord) else warnings).append(item)  # type: ignore[arg-type]
    return records, warnings


def pupil(ident: str = "1", *attrs: Attr) -> str:
    return request("Eleve", ident, [("ENTPersonJointure", ident), *attrs])


# -- hostile input -------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE ficAlimMENESR [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<ficAlimMENESR>
<addRequest><operationalAttributes><attr name="categoriePersonne"><value>Eleve</value></attr>
</operationalAttributes><identifier><id>1</id></identifier>
<attributes><attr name="sn"><value>&lol3;</value></attr></attributes></addRequest>
</ficAlimMENESR>
"""


def _xxe(system: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE ficAlimMENESR [ <!ENTITY xxe SYSTEM "{system}"> ]>\n'
        '<ficAlimMENESR><addRequest><operationalAttributes><attr name="categoriePersonne">'
        "<value>Eleve</value></attr></operationalAttributes><identifier><id>1</id></identifier>"
        '<attributes><attr name="sn"><value>&xxe;</value></attr></attributes></addRequest>'
        "</ficAlimMENESR>\n"
    ).encode()


@pytest.mark.parametrize(
    "data",
    [
        BILLION_LAUGHS,
        _xxe("file:///etc/passwd"),
        _xxe("http://127.0.0.1:9/evil.dtd"),
        b'<?xml version="1.0"?>\n<!DOCTYPE ficAlimMENESR [ <!ENTITY % p SYSTEM '
        b'"http://127.0.0.1:9/p.dtd"> %p; ]>\n<ficAlimMENESR></ficAlimMENESR>\n',
        # the internal subset after a comment, and an empty file's worth of prolog
        b'<!-- <x> -->\n<!DOCTYPE ficAlimMENESR [ <!ENTITY a "b"> ]>\n<ficAlimMENESR/>\n',
    ],
    ids=["billion-laughs", "xxe-file", "xxe-http", "parameter-entity", "after-comment"],
)
def test_entity_declarations_are_refused(data: bytes) -> None:
    with pytest.raises(BadInput, match="internal subset") as caught:
        read_raw(data, "hostile.xml")
    assert caught.value.file == "hostile.xml"


def test_internal_subset_after_a_long_comment_is_refused() -> None:
    data = (
        b"<?xml version='1.0'?>\n<!-- " + b"<a> " * 40000 + b"-->\n"
        b'<!DOCTYPE ficAlimMENESR [ <!ENTITY a "b"> ]>\n<ficAlimMENESR/>\n'
    )
    with pytest.raises(BadInput, match="internal subset"):
        read_raw(data)


@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE ficAlimMENESR SYSTEM "<a" [ <!ENTITY a "b"> ]>',
        b'<!DOCTYPE ficAlimMENESR SYSTEM "x.dtd" >\n<!DOCTYPE again [ <!ENTITY a "b"> ]>',
        b"<!DOCTYPE ficAlimMENESR ANYTHING>",
    ],
)
def test_doctypes_other_than_an_external_id_are_refused(doctype: bytes) -> None:
    with pytest.raises(BadInput, match="DOCTYPE"):
        read_raw(doctype + b"\n<ficAlimMENESR></ficAlimMENESR>\n")


def test_public_doctype_and_byte_order_mark_are_accepted() -> None:
    text = document(
        [pupil("1", ("sn", "A"))],
        doctype="<!DOCTYPE ficAlimMENESR PUBLIC \"-//MEN//AAF\" 'ficAlimMENESR.dtd'>",
    )
    records, _ = read_raw(b"\xef\xbb\xbf" + text.encode())
    assert [r.id for r in records] == ["1"]


def test_standard_doctype_is_accepted_and_never_fetched(tmp_path: Path) -> None:
    # A SYSTEM id that would hang or fail if anything tried to fetch it.
    text = document(
        [pupil("1", ("sn", "A"))],
        doctype='<!DOCTYPE ficAlimMENESR SYSTEM "http://127.0.0.1:9/ficAlimMENESR.dtd">',
    )
    records, _ = read_raw(text.encode())
    assert [r.id for r in records] == ["1"]


def test_undefined_entity_is_refused_with_its_line() -> None:
    text = document([pupil("1", ("sn", "A&nosuchthing;B"))])
    line = text.splitlines().index('<attr name="sn"><value>A&nosuchthing;B</value></attr>') + 1
    with pytest.raises(BadInput, match="nosuchthing") as caught:
        read_raw(text.encode())
    assert caught.value.line == line


@pytest.mark.parametrize("name", ["x" * 80, "é-ö", "a.b:c_d"])
def test_any_other_named_entity_is_refused(name: str) -> None:
    with pytest.raises(BadInput, match="undefined entity"):
        read_raw(document([pupil("1", ("sn", f"&{name};"))]).encode())


def test_utf16_is_refused() -> None:
    with pytest.raises(BadInput, match="UTF-16"):
        read_raw(document([]).replace("UTF-8", "UTF-16").encode("utf-16"))


# -- encodings and entities ------------------------------------------------------------------


def test_html_named_entities_are_decoded_once_reported() -> None:
    text = document(
        [
            pupil(
                "1", ("sn", "All&eacute;e &amp; C&oelig;ur"), ("givenName", "&Eacute;lo&iuml;se")
            ),
            pupil("2", ("sn", "D&apos;Artagnan &lt;3&gt; &#233;t&#xE9;")),
        ]
    )
    records, warnings = read_raw(text.encode())
    assert records[0].attrs["sn"] == ["Allée & Cœur"]
    assert records[0].attrs["givenName"] == ["Éloïse"]
    assert records[1].attrs["sn"] == ["D'Artagnan <3> été"]
    assert [w.code for w in warnings] == ["html-entities"]


def test_entity_cut_by_a_chunk_boundary_is_decoded() -> None:
    filler = "x" * (65536 - 300)
    text = document([pupil("1", ("ENTEleveRegime", filler), ("sn", "&eacute;" * 40))])
    records, _ = read_raw(text.encode())
    assert records[0].attrs["sn"] == ["é" * 40]


def _sections_document() -> bytes:
    """Entities outside and inside CDATA sections and comments (where an ``&`` is text)."""
    return (
        document(
            [
                pupil(
                    "1",
                    ("sn", "All&eacute;e<![CDATA[ &eacute; & &nbspx; ]]>fin"),
                    ("givenName", "<!-- &undefined; -->&Eacute;lo&iuml;se"),
                ),
                pupil("2", ("sn", "<![CDATA[<b>&amp;</b>]]>&amp;&oelig;")),
            ]
        )
        .replace("<addRequest>", "<!-- &nbsp; a comment between requests --><addRequest>", 1)
        .encode()
    )


def test_cdata_and_comments_keep_their_ampersands_as_text() -> None:
    """XML reads an ``&`` in a CDATA section or a comment as text: nothing there is decoded, and
    an undefined name there is no error."""
    records, warnings = read_raw(_sections_document())
    assert records[0].attrs["sn"] == ["Allée &eacute; & &nbspx; fin"]
    assert records[0].attrs["givenName"] == ["Éloïse"]
    assert records[1].attrs["sn"] == ["<b>&amp;</b>&œ"]
    assert [w.code for w in warnings] == ["html-entities"]


def test_sections_cut_by_chunk_boundaries_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wherever a chunk ends (in an opener, a terminator or a reference), the records are those
    read in one piece."""
    from connectors.aaf import _xml

    data = _sections_document()
    whole = [record.attrs for record in read_raw(data)[0]]
    for size in range(8, 48):
        monkeypatch.setattr(_xml, "_CHUNK", size)
        assert [record.attrs for record in read_raw(data)[0]] == whole, size


def test_an_undefined_entity_after_a_comment_is_still_refused() -> None:
    text = document([pupil("1", ("sn", "<!-- &nbsp; -->DUP&undefined;"))])
    with pytest.raises(BadInput, match=r"undefined entity &undefined;"):
        read_raw(text.encode())


def test_a_long_undefined_entity_cut_by_a_chunk_boundary_is_refused() -> None:
    """However far before the boundary its ``&`` is: kept whole for the next chunk, the
    reference is seen and refused (lxml, given a SYSTEM DOCTYPE, would keep it unresolved and
    cut the value short)."""
    filler = "x" * (65536 - 600)
    text = document([pupil("1", ("ENTEleveRegime", filler), ("sn", "DUP&" + "a" * 400 + ";"))])
    amp = text.encode().index(b"&")
    assert amp < 65536 < amp + 400  # the reference straddles the first chunk's end
    with pytest.raises(BadInput, match=r"undefined entity &a{40}…;"):
        read_raw(text.encode())


def test_an_ampersand_never_ended_is_refused_without_holding_the_rest() -> None:
    """Kept for the next chunk while no ``;`` comes, the unended reference would otherwise grow
    to the whole file."""
    text = document([pupil("1", ("sn", "A&" + "b" * 300_000))])
    with pytest.raises(BadInput, match="followed by more than 64 KB without its ';'"):
        read_raw(text.encode())


@pytest.mark.parametrize("encoding", ["UTF-7", "UTF-16", "EBCDIC-CP-BE", "x-unknown"])
def test_an_encoding_aaf_files_do_not_use_is_refused(encoding: str) -> None:
    """UTF-7 would carry a DOCTYPE and entities past the byte-level checks of the prolog."""
    hidden = b"+ADwAIQ-DOCTYPE x +AFsAPAAh-ENTITY a +ACI-b+ACIAPgBd-+AD4-"
    data = f'<?xml version="1.0" encoding="{encoding}"?>\n'.encode() + hidden
    with pytest.raises(BadInput, match=r"encoding .* is not accepted") as caught:
        read_raw(data + document([pupil("1")], encoding=None).encode())
    assert caught.value.line == 1


@pytest.mark.parametrize("encoding", ["windows-1252", "US-ASCII", "latin1"])
def test_other_spellings_of_the_accepted_encodings_are_read(encoding: str) -> None:
    records, _ = read_raw(document([pupil("1", ("sn", "DUPONT"))], encoding=encoding).encode())
    assert records[0].attrs["sn"] == ["DUPONT"]


@pytest.mark.parametrize(
    "value",
    ["DUPONT<!-- a comment -->-MARTIN", "DUPONT<?pi data?>-MARTIN", "<!-- c -->DUPONT-MARTIN"],
)
def test_a_comment_or_processing_instruction_inside_a_value_keeps_the_text_around_it(
    value: str,
) -> None:
    records, _ = read_raw(document([pupil("1", ("sn", value))]).encode())
    assert records[0].attrs["sn"] == ["DUPONT-MARTIN"]


def test_a_value_holding_only_a_comment_is_empty() -> None:
    records, _ = read_raw(document([pupil("1", ("sn", "<!-- c -->"), ("givenName", "A"))]).encode())
    assert "sn" not in records[0].attrs or records[0].attrs["sn"] == []
    assert records[0].attrs["givenName"] == ["A"]


@pytest.mark.parametrize(
    "flood",
    [
        "<!---->" * 1_300_000,  # after the last request: never dropped by a request's end
        "<?pi?>" * 1_500_000,
    ],
)
def test_content_flooding_the_parser_between_requests_is_refused(flood: str) -> None:
    from connectors.aaf._xml import REQUEST_LIMIT

    text = document([pupil("1"), pupil("2")]).replace(
        "</ficAlimMENESR>", flood + "</ficAlimMENESR>"
    )
    assert len(text) > REQUEST_LIMIT
    with pytest.raises(BadInput, match="MB without the end of a request"):
        read_raw(text.encode())


def test_an_oversized_request_is_refused() -> None:
    from connectors.aaf._xml import REQUEST_LIMIT

    values = [f"V{i:07d}" for i in range(REQUEST_LIMIT // 20)]
    text = document([pupil("1"), pupil("2", ("ENTEleveGroupes", values))])
    with pytest.raises(BadInput, match="MB without the end of a request") as caught:
        read_raw(text.encode(), "big.xml")
    assert caught.value.file == "big.xml"


def test_requests_adding_up_to_more_than_the_limit_are_read() -> None:
    """The bound is per request, not per file."""
    from connectors.aaf._xml import REQUEST_LIMIT

    filler = "x" * 100_000
    count = REQUEST_LIMIT // 100_000 + 20
    text = document([pupil(str(i), ("ENTEleveRegime", filler)) for i in range(count)])
    assert len(text) > REQUEST_LIMIT
    records, _ = read_raw(text.encode())
    assert len(records) == count


@pytest.mark.parametrize("encoding", ["ISO-8859-15", "iso-8859-15"])
def test_latin9_bytes_follow_the_declaration(encoding: str) -> None:
    text = document([pupil("1", ("sn", "€Œœ"), ("givenName", "Zoë"))], encoding=encoding)
    data = text.encode("iso-8859-15")
    assert b"\xa4\xbc\xbd" in data  # € Œ œ in Latin-9 (¤ ¼ ½ in Latin-1)
    records, _ = read_raw(data)
    assert records[0].attrs["sn"] == ["€Œœ"]
    assert records[0].attrs["givenName"] == ["Zoë"]


def test_latin1_declaration_is_honoured() -> None:
    text = document([pupil("1", ("sn", "¤é"))], encoding="ISO-8859-1")
    records, _ = read_raw(text.encode("iso-8859-1"))
    assert records[0].attrs["sn"] == ["¤é"]


def test_no_declaration_means_utf8_and_crlf_is_fine() -> None:
    text = document([pupil("1", ("sn", "Kù"))], encoding=None).replace("\n", "\r\n")
    records, _ = read_raw(text.encode())
    assert records[0].attrs["sn"] == ["Kù"]
    assert records[0].line == 4  # the <addRequest> line: 3 prolog/header lines before it


def test_bytes_invalid_in_the_declared_encoding_are_refused_with_the_line() -> None:
    text = document([pupil("1", ("sn", "MARKER"))])
    data = text.encode().replace(b"MARKER", b"caf\xe9")  # Latin-1 byte in a UTF-8 file
    line = text.splitlines().index('<attr name="sn"><value>MARKER</value></attr>') + 1
    with pytest.raises(BadInput) as caught:
        read_raw(data, "latin1-in-utf8.xml")
    assert caught.value.file == "latin1-in-utf8.xml"
    assert caught.value.line == line


# -- structure -------------------------------------------------------------------------------


def test_truncated_file_is_refused() -> None:
    text = document([pupil("1", ("sn", "A")), pupil("2", ("sn", "B"))])
    with pytest.raises(BadInput):
        read_raw(text.rsplit("</ficAlimMENESR>", 1)[0].encode())


def test_empty_root_gives_no_record_and_an_empty_file_is_refused() -> None:
    assert read_raw(document([]).encode()) == ([], [])
    with pytest.raises(BadInput):
        read_raw(b"")


def test_other_root_is_refused() -> None:
    with pytest.raises(BadInput, match="root"):
        read_raw(b'<?xml version="1.0"?><EDT_STS><x/></EDT_STS>')


def test_unexpected_element_between_requests_is_refused() -> None:
    text = document([pupil("1", ("sn", "A")), "<yo/>", pupil("2", ("sn", "B"))])
    with pytest.raises(BadInput, match="<yo>"):
        read_raw(text.encode())


def test_modification_without_operation_is_refused() -> None:
    text = document([request("PersEducNat", "9", [("sn", "A")], op="modify")])
    text = text.replace(' operation="replace"', "", 1)
    with pytest.raises(BadInput, match="operation") as caught:
        read_raw(text.encode())
    assert caught.value.record_id == "9"


def test_attr_without_a_name_is_refused() -> None:
    text = document([pupil("1", ("sn", "A"), ("givenName", "B"))])
    text = text.replace('<attr name="givenName">', "<attr>\n  ")
    with pytest.raises(BadInput, match="without a name") as caught:
        read_raw(text.encode())
    assert caught.value.record_id == "1"


def test_request_without_identifier_is_refused() -> None:
    text = document([pupil("1", ("sn", "A")).replace("<identifier><id>1</id></identifier>", "")])
    with pytest.raises(BadInput, match="identifier"):
        read_raw(text.encode())


def test_record_of_another_category_than_the_file_is_refused() -> None:
    data = document([pupil("1", ("sn", "A"))]).encode()
    with pytest.raises(BadInput, match="Eleve record in a PersEducNat file"):
        list(RawFile(io.BytesIO(data), "x.xml", "PersEducNat"))


# -- record model ----------------------------------------------------------------------------


def test_tolerant_record_model() -> None:
    text = document(
        [
            pupil(
                "1",
                ("ENTElevePere", None),  # attr without value
                ("ENTPersonAutresPrenoms", [""]),  # first empty...
                ("ENTEleveMere", [""]),
                ("ENTPersonAutresPrenoms", ["Enzo", "Charles", "Enzo"]),  # ...then filled, dup
                ("ENTEleveClasses", ["1$A", "1$B", "1$A"]),
            )
        ]
    )
    (record,), warnings = read_raw(text.encode())
    assert warnings == []
    assert record.attrs["ENTElevePere"] == []
    assert record.attrs["ENTEleveMere"] == []
    assert record.attrs["ENTPersonAutresPrenoms"] == ["Enzo", "Charles"]
    assert record.attrs["ENTEleveClasses"] == ["1$A", "1$B"]


def test_modifications_read_like_attributes_and_1d_names_are_folded() -> None:
    text = document(
        [
            request(
                "PersRelEleve",
                "7",
                [
                    ("ENTPersonJointure", "7"),
                    ("ENTPersonNom", "NOM"),
                    ("ENTPersonPrenom", "Prénom"),
                    ("ENTPersonCivilite", "Mme"),
                    ("ENTPersonMail", "a@b.fr"),
                    ("ENTPersonTelPerso", "01"),
                    ("ENTPersRelEleveTelMobile", "06"),
                    ("ENTPersRelEleveTelPro", "02"),
                    ("ENTPersRelEleveEleve", ["1", "2"]),
                ],
                op="modify",
            )
        ]
    )
    (record,), _ = read_raw(text.encode())
    assert record.op == "modify"
    assert record.attrs == {
        "ENTPersonJointure": ["7"],
        "sn": ["NOM"],
        "givenName": ["Prénom"],
        "personalTitle": ["Mme"],
        "mail": ["a@b.fr"],
        "homePhone": ["01"],
        "mobile": ["06"],
        "telephoneNumber": ["02"],
        "ENTAuxPersRelEleveEleve": ["1", "2"],
    }


def test_unknown_attributes_are_kept_counted_and_reported_once_per_file() -> None:
    text = document(
        [
            pupil("1", ("ESCOFancy", "x"), ("ESCOOther", "y")),
            pupil("2", ("ESCOFancy", "z")),
        ]
    )
    raw = RawFile(io.BytesIO(text.encode()), "f.xml")
    items = list(raw)
    records = [i for i in items if isinstance(i, RawRecord)]
    warnings = [i for i in items if isinstance(i, SourceWarning)]
    assert [r.attrs["ESCOFancy"] for r in records] == [["x"], ["z"]]
    assert raw.unknown_attributes == {"ESCOFancy": 2, "ESCOOther": 1}
    assert sorted(w.code for w in warnings) == ["unknown-attribute"] * 2
    assert all(w.provenance is not None and w.provenance.record_id == "1" for w in warnings)


def test_id_and_join_key_mismatch_is_reported_and_the_id_wins() -> None:
    text = document([request("Eleve", "1321230", [("ENTPersonJointure", "14357")])])
    (record,), warnings = read_raw(text.encode())
    assert record.id == "1321230"
    assert [w.code for w in warnings] == ["id-mismatch"]


def test_header_comments_are_captured() -> None:
    header = {
        "versionAF": "AAF-VE2407",
        "versionSDET": "Annexe 4bis version 6.4",
        "codeAcademieExport": "13",
        "degre": "2D",
        "dateGenerationExport": "16/09/2024",
    }
    raw = RawFile(io.BytesIO(document([pupil("1")], header=header).encode()), "h.xml")
    list(raw)
    assert raw.header == header
    empty = RawFile(io.BytesIO(document([], header=header).encode()), "e.xml")
    assert list(empty) == []
    assert empty.header == header


def test_a_hostile_header_comment_costs_what_a_real_one_of_its_size_costs() -> None:
    # A run of word characters without '=' made the header pattern retry every suffix of the
    # run: a 16 KB comment took seconds, the 8 MB a file may hold before its first request
    # days. The cost is compared with that of a real header of the same size.
    real = " ".join(f'item{i}="value {i}"' for i in range(1000))
    hostile = "a" * len(real)
    assert parse_header_comment(hostile) == {}
    baseline = fastest(lambda: parse_header_comment(real))
    assert fastest(lambda: parse_header_comment(hostile)) < 20 * baseline


def test_delete_request_carries_only_its_id(tmp_path: Path) -> None:
    path = write(tmp_path / "d.xml", document([request("PersEducNat", "370009", op="delete")]))
    (record,), _ = read_raw(path.read_bytes())
    assert (record.op, record.id, record.category, record.attrs) == (
        "delete",
        "370009",
        "PersEducNat",
        {},
    )


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, _xxe("file:///etc/passwd"), _xxe("http://127.0.0.1:9/evil.dtd")],
    ids=["billion-laughs", "xxe-file", "xxe-http"],
)
def test_hostile_files_of_a_delivery_fail_the_export(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "ENT_Complet_20240916_Eleve_0000.xml"
    path.write_bytes(data)
    (export,) = plan([tmp_path])
    with pytest.raises(BadInput, match="internal subset") as caught:
        list(AafReader(export).stream())
    assert caught.value.file == str(path)
    assert "root:" not in str(caught.value)  # nothing of /etc/passwd leaks into the message


def test_known_attributes_that_no_mapping_reads_are_skipped() -> None:
    text = document(
        [
            pupil(
                "1",
                ("ENTEleveEnseignements", "ANGLAIS LV1"),
                ("ENTEleveCodeEnseignements", "030201"),
            )
        ]
    )
    records, warnings = read_raw(text.encode())
    assert "ENTEleveEnseignements" not in records[0].attrs  # the labels: skipped
    assert records[0].attrs["ENTEleveCodeEnseignements"] == ["030201"]  # the codes: mapped
    assert warnings == []  # known, so not reported as unknown


def test_no_mapping_reads_an_attribute_the_parser_skips() -> None:
    """``UNMAPPED`` must name only known attributes that no module of the connector reads: a
    mapping that starts to read one must take it out of the set."""
    from pathlib import Path

    import connectors.aaf
    from connectors.aaf._names import CANONICAL, UNMAPPED

    assert UNMAPPED.issubset(CANONICAL.values())
    folder = Path(connectors.aaf.__file__).parent
    for module in folder.glob("*.py"):
        if module.name == "_names.py":
            continue
        source = module.read_text(encoding="utf-8")
        named = {name for name in UNMAPPED if f'"{name}"' in source or f"'{name}'" in source}
        assert named == set(), f"{module.name} reads {sorted(named)}, which the parser skips"
