"""Who is calling and what they may see.

:mod:`annuaire.auth.principal` turns a request into a :class:`Principal`;
:mod:`annuaire.auth.access` holds the access rules, applied by the query layer to every read
(lists, single objects, the feed, the bulk export), never by hand in a route. Token validation
plugs in here: routes only ever see a ``Principal``.
"""

from __future__ import annotations

from .access import AccessRules, Visibility
from .principal import Principal, PrincipalKind, current_principal

__all__ = ["AccessRules", "Principal", "PrincipalKind", "Visibility", "current_principal"]
