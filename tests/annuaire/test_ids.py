"""Hub ids: the per-scope fast path gives the ids ``hub_id`` gives."""

from __future__ import annotations

import uuid

import pytest

from annuaire.schema import EntityKind
from annuaire.sync import hub_id
from annuaire.sync._ids import ScopeIds


@pytest.mark.parametrize("scope", ["aaf:099:2d", "aaf:T99:1d", "é|scope"])
def test_scope_ids_match_hub_id(scope: str) -> None:
    ids = ScopeIds(scope)
    for kind in EntityKind:
        for key in ["1000003", "4001$6A", "1000003|class|4001$6A|pupil|", "", "é$ü"]:
            expected = hub_id(scope, kind, key)
            assert uuid.UUID(hex=ids.hex(kind.value, key)) == expected
            assert ids.reference(kind.value, key) == expected.hex  # cached
            assert ids.reference(kind.value, key) == expected.hex
            assert expected.version == 5


def test_reference_cache_stays_bounded() -> None:
    ids = ScopeIds("aaf:099:2d")
    for n in range(ScopeIds._CACHE_LIMIT + 10):
        ids.reference("person", str(n))
    assert len(ids._cache) <= ScopeIds._CACHE_LIMIT
    assert ids.reference("person", "5") == hub_id("aaf:099:2d", EntityKind.PERSON, "5").hex


def test_a_list_of_ids_is_written_in_the_canonical_dashed_form() -> None:
    from annuaire.sync._applier import _dashed

    ids = ScopeIds("aaf:099:2d")
    for key in ["1", "4001$6A", "é$ü", "x" * 300]:
        expected = hub_id("aaf:099:2d", EntityKind.CLASS, key)
        assert _dashed(ids.reference("class", key)) == str(expected)
    assert _dashed("0" * 32) == str(uuid.UUID(int=0))
