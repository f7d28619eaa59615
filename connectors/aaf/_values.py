"""Value parsers of the AAF format (AAF.md §3, §6): `$` composites, dates, O/N, relation codes.

Every parser raises :class:`BadValue` (a ``ValueError``) on a malformed value; the mapping layer
turns that into a ``bad-value`` :class:`~annuaire.schema.SourceWarning` and keeps the record.
They are plain functions over ``str`` so that property tests can target them directly.
"""

from __future__ import annotations

import datetime as dt
import functools

from annuaire.schema import Relation

__all__ = [
    "BadValue",
    "legal_flag",
    "parse_bool",
    "parse_date",
    "parse_dollar",
    "parse_flag01",
    "parse_relation",
    "rank_semantics",
    "ranks_for",
    "version_number",
]


class BadValue(ValueError):
    """A value that does not have the syntax its attribute requires."""

    def __init__(self, value: str, expected: str, attribute: str | None = None) -> None:
        self.value = value
        self.expected = expected
        self.attribute = attribute
        where = f"{attribute}: " if attribute else ""
        super().__init__(f"{where}{value!r}: expected {expected}")


def _describe(expected: int | tuple[int, int | None]) -> str:
    if isinstance(expected, int):
        return f"{expected} `$`-separated field{'s' if expected > 1 else ''}"
    low, high = expected
    if high is None:
        return f"at least {low} `$`-separated fields"
    if low == high:
        return _describe(low)
    return f"{low} to {high} `$`-separated fields"


def parse_dollar(
    value: str, expected_fields: int | tuple[int, int | None], attribute: str | None = None
) -> list[str]:
    """Split a `$` composite keeping empty fields, and check the field count.

    ``expected_fields`` is an exact count or a ``(min, max)`` range (``max=None``: unbounded).
    ``"E.E.PU$$AUDEUX"`` gives ``["E.E.PU", "", "AUDEUX"]``; a `$` is never escaped (AAF.md §3.2).
    """
    fields = value.split("$")
    n = len(fields)
    if isinstance(expected_fields, int):
        if n == expected_fields:
            return fields
    else:
        low, high = expected_fields
        if n >= low and (high is None or n <= high):
            return fields
    raise BadValue(value, f"{_describe(expected_fields)}, got {n}", attribute)


def parse_date(value: str, attribute: str | None = None) -> dt.date:
    """``dd/MM/yyyy`` to a date; impossible dates (31/02/2010) and other syntaxes raise."""
    try:
        return _date(value)
    except ValueError:
        pass
    if _date_shaped(value):
        raise BadValue(value, "an existing date (dd/MM/yyyy)", attribute)
    raise BadValue(value, "a date dd/MM/yyyy", attribute)


def _date_shaped(value: str) -> bool:
    return (
        len(value) == 10
        and value.isascii()
        and value[2] == "/"
        and value[5] == "/"
        and value[:2].isdigit()
        and value[3:5].isdigit()
        and value[6:].isdigit()
    )


@functools.lru_cache(maxsize=1 << 16)  # birth dates repeat: a century is 36,525 days
def _date(value: str) -> dt.date:
    if _date_shaped(value):
        return dt.date(int(value[6:]), int(value[3:5]), int(value[:2]))
    raise ValueError(value)


_BOOLS = {"O": True, "o": True, "N": False, "n": False}


def parse_bool(value: str, attribute: str | None = None) -> bool:
    """``O`` (oui) / ``N`` (non), either case."""
    try:
        return _BOOLS[value]
    except KeyError:
        raise BadValue(value, "O or N", attribute) from None


_FLAGS01 = {"0": False, "1": True}


def parse_flag01(value: str, attribute: str | None = None) -> bool:
    """The ``0``/``1`` flags of ``ENTElevePersRelEleve`` (financial, contact, payment)."""
    try:
        return _FLAGS01[value]
    except KeyError:
        raise BadValue(value, "0 or 1", attribute) from None


#: Old (≤ 2016) and new (≥ 2017) codes of N_LIEN_ELEVE_RESPONSABLE, AAF.md §6.1.
#: Note the swap: old 1 = father, new 10 = mother.
RELATIONS: dict[str, Relation] = {
    "1": Relation.FATHER,
    "20": Relation.FATHER,
    "2": Relation.MOTHER,
    "10": Relation.MOTHER,
    "3": Relation.TUTOR,
    "50": Relation.TUTOR,
    "4": Relation.OTHER_RELATIVE,
    "39": Relation.OTHER_RELATIVE,
    "37": Relation.OTHER_RELATIVE,  # fratrie
    "38": Relation.OTHER_RELATIVE,  # ascendant
    "5": Relation.SOCIAL_SERVICES,
    "51": Relation.SOCIAL_SERVICES,
    "42": Relation.SOCIAL_SERVICES,  # assistant familial: foster carer placed by the ASE
    "41": Relation.EDUCATOR,
    "6": Relation.OTHER,
    "90": Relation.OTHER,
    "43": Relation.OTHER,  # garde d'enfant
    "7": Relation.PUPIL_SELF,
    "70": Relation.PUPIL_SELF,
}

#: Codes that only exist in the ≥ 2017 nomenclature.
NEW_RELATION_CODES = frozenset(code for code in RELATIONS if len(code) == 2)


def parse_relation(code: str, attribute: str | None = None) -> Relation:
    """A relation code, old or new set, to the neutral :class:`Relation` vocabulary."""
    try:
        return RELATIONS[code]
    except KeyError:
        raise BadValue(code, "a relation code (1-7 or 10-90, AAF.md §6.1)", attribute) from None


def version_number(version_af: str | None) -> int | None:
    """``AAF-VE1301`` to ``1301`` (yymm); None when absent or not of that form."""
    if not version_af:
        return None
    digits = version_af.rpartition("VE")[2]
    if not digits.isdigit() or not digits.isascii() or len(digits) != 4:
        return None
    return int(digits)


def rank_semantics(version_af: str | None, relation_code: str | None = None) -> bool:
    """Whether field 3 of ``ENTElevePersRelEleve`` is a rank (1, 2) rather than a flag.

    AAF.md §6.2: VE13xx (and anything before VE17xx) sends the *rank* of the legal
    representative, so ``1`` and ``2`` both mean "legal"; from VE17xx on it is a flag and
    ``2`` is at most "person in charge". Without a version comment the relation code decides:
    a code of the ≥ 2017 nomenclature (10-90) means the ≥ 2017 semantics.
    """
    return ranks_for(version_number(version_af), relation_code)


def ranks_for(version: int | None, relation_code: str | None) -> bool:
    """:func:`rank_semantics` with the version already parsed (``yymm`` or None)."""
    if version is not None:
        return version < 1700
    return relation_code not in NEW_RELATION_CODES


def legal_flag(value: str, ranks: bool, attribute: str | None = None) -> bool:
    """Field 3 of ``ENTElevePersRelEleve``: legal representative or not (see rank_semantics)."""
    if value == "1":
        return True
    if value == "0":
        return False
    if value == "2":
        return ranks
    raise BadValue(value, "0, 1 or 2", attribute)
