"""The calling principal of an API request.

Until token issuers are configured, the API knows one principal: the *operator*, who sees
everything. It is granted only outside production (``environment`` = development or test, the
embedded demo and the test suite); in production every request without a validated token is
refused with a 401, so the API fails closed rather than open.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fastapi import Request

from annuaire.settings import Settings

__all__ = ["Principal", "PrincipalKind", "Unauthenticated", "current_principal"]


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    CLIENT = "client"
    GUARDIAN = "guardian"
    PUPIL = "pupil"
    STAFF = "staff"


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    #: Stable, pseudonymous identifier of the caller (client id, hub person id...).
    subject: str
    #: OAuth scopes granted (``roster-core.readonly``...); empty for people.
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def operator(cls) -> Principal:
        return cls(PrincipalKind.OPERATOR, "operator")

    @property
    def unrestricted(self) -> bool:
        return self.kind is PrincipalKind.OPERATOR


class Unauthenticated(Exception):
    """No acceptable credentials: the API answers 401."""


async def current_principal(request: Request) -> Principal:
    settings: Settings = request.app.state.settings
    if settings.environment != "production":
        return Principal.operator()
    raise Unauthenticated(
        "this deployment runs in production and no token issuer is configured: "
        "every request is refused"
    )
