"""Value parsers: `$` composites and dates (property tests), O/N, relation codes, legal flag."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annuaire.schema import Relation
from connectors.aaf import (
    BadValue,
    legal_flag,
    parse_bool,
    parse_date,
    parse_dollar,
    parse_flag01,
    parse_relation,
    rank_semantics,
    version_number,
)

fields = st.text(alphabet=st.characters(blacklist_characters="$"), max_size=12)
field_lists = st.lists(fields, min_size=1, max_size=8)


@given(field_lists)
def test_dollar_round_trip_keeps_empty_fields(parts: list[str]) -> None:
    assert parse_dollar("$".join(parts), len(parts), "A") == parts


@given(field_lists, st.integers(min_value=1, max_value=9))
def test_dollar_wrong_count_is_detected(parts: list[str], expected: int) -> None:
    value = "$".join(parts)
    if expected == len(parts):
        assert parse_dollar(value, expected, "A") == parts
    else:
        with pytest.raises(BadValue) as caught:
            parse_dollar(value, expected, "ENTPersonFonctions")
        assert caught.value.attribute == "ENTPersonFonctions"
        assert caught.value.value == value
        assert f"got {len(parts)}" in caught.value.expected


@given(field_lists, st.integers(min_value=1, max_value=5), st.none() | st.integers(1, 9))
def test_dollar_ranges(parts: list[str], low: int, high: int | None) -> None:
    value = "$".join(parts)
    inside = len(parts) >= low and (high is None or len(parts) <= high)
    if inside:
        assert parse_dollar(value, (low, high)) == parts
    else:
        with pytest.raises(BadValue):
            parse_dollar(value, (low, high))


def test_dollar_examples_from_the_format() -> None:
    assert parse_dollar("E.E.PU$$AUDEUX", 3) == ["E.E.PU", "", "AUDEUX"]
    assert parse_dollar("ADRESSE$$$", 4) == ["ADRESSE", "", "", ""]
    assert parse_dollar("3A-3B LAT$$3A$3B", (3, None)) == ["3A-3B LAT", "", "3A", "3B"]
    with pytest.raises(BadValue, match="got 2"):
        parse_dollar("42$1TES 2", 3, "ENTAuxEnsClassesMatieres")


@given(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_date_round_trip(day: dt.date) -> None:
    assert parse_date(f"{day.day:02d}/{day.month:02d}/{day.year:04d}") == day


@given(st.integers(1, 31), st.integers(1, 12), st.integers(1900, 2100))
def test_impossible_dates_are_refused(d: int, m: int, y: int) -> None:
    text = f"{d:02d}/{m:02d}/{y}"
    try:
        expected = dt.date(y, m, d)
    except ValueError:
        with pytest.raises(BadValue, match="existing date"):
            parse_date(text, "ENTPersonDateNaissance")
    else:
        assert parse_date(text) == expected


@given(st.text(max_size=12))
def test_date_parser_never_raises_anything_but_bad_value(text: str) -> None:
    try:
        result = parse_date(text)
    except BadValue:
        return
    assert text == result.strftime("%d/%m/") + f"{result.year:04d}"


@pytest.mark.parametrize("text", ["2002-07-24", "24/7/2002", "24/07/02", "", "３１/01/2000"])
def test_other_date_syntaxes_are_refused(text: str) -> None:
    with pytest.raises(BadValue):
        parse_date(text)


def test_booleans_and_flags() -> None:
    assert (parse_bool("O"), parse_bool("o"), parse_bool("N"), parse_bool("n")) == (
        True,
        True,
        False,
        False,
    )
    assert (parse_flag01("1"), parse_flag01("0")) == (True, False)
    for bad in ("Y", "", "oui"):
        with pytest.raises(BadValue):
            parse_bool(bad)
    with pytest.raises(BadValue):
        parse_flag01("2")


@pytest.mark.parametrize(
    ("old", "new", "relation"),
    [
        ("1", "20", Relation.FATHER),
        ("2", "10", Relation.MOTHER),
        ("3", "50", Relation.TUTOR),
        ("4", "39", Relation.OTHER_RELATIVE),
        ("5", "51", Relation.SOCIAL_SERVICES),
        ("6", "90", Relation.OTHER),
        ("7", "70", Relation.PUPIL_SELF),
    ],
)
def test_old_and_new_relation_codes(old: str, new: str, relation: Relation) -> None:
    assert parse_relation(old) is relation
    assert parse_relation(new) is relation


def test_new_only_and_unknown_relation_codes() -> None:
    assert parse_relation("41") is Relation.EDUCATOR
    assert parse_relation("38") is Relation.OTHER_RELATIVE
    with pytest.raises(BadValue):
        parse_relation("99")


def test_legal_field_meaning_depends_on_the_version() -> None:
    assert version_number("AAF-VE1301") == 1301
    assert version_number("garbage") is None
    # VE13xx: field 3 is a rank, 1 and 2 are both legal representatives.
    assert rank_semantics("AAF-VE1301") is True
    assert legal_flag("2", rank_semantics("AAF-VE1301")) is True
    # >= VE17xx: a flag; 2 is at most "person in charge".
    assert rank_semantics("AAF-VE1806") is False
    assert legal_flag("2", rank_semantics("AAF-VE2407")) is False
    assert legal_flag("1", False) is True
    assert legal_flag("0", True) is False
    # No version comment: the relation code's nomenclature decides.
    assert rank_semantics(None, "1") is True
    assert rank_semantics(None, "10") is False
    with pytest.raises(BadValue):
        legal_flag("3", True)
