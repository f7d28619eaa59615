"""Access rules: which rows and which fields of a resource a principal may read.

The query layer asks :meth:`AccessRules.visibility` once per request and combines its SQL
predicate with the caller's filters (``rule AND (filters)``), so a filter can only narrow what
the rule allows. A row outside the rule is indistinguishable from a row that does not exist:
single reads answer 404, lists and the feed leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, false

from .principal import Principal

__all__ = ["AccessRules", "Visibility"]


@dataclass(frozen=True)
class Visibility:
    #: SQL predicate on the resource's table, or None when every row is visible.
    rows: ColumnElement[bool] | None
    #: Fields the principal may read, or None for all of them.
    fields: frozenset[str] | None


_EVERYTHING = Visibility(rows=None, fields=None)


class AccessRules:
    """One place for the rules; resources are named as in the API (``persons``...)."""

    def visibility(self, principal: Principal, resource: str, table: Table) -> Visibility:
        if principal.unrestricted:
            return _EVERYTHING
        # Until token issuers and contracts exist, no other principal can be built; should one
        # appear, it sees nothing rather than everything.
        return Visibility(rows=false(), fields=frozenset({"id"}))
