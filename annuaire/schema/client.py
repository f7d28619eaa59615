"""API clients (machines) of the hub's token endpoint, and the client assertions they used.

An :class:`ApiClient` is an ENT vendor or another service under contract: the structures
(UAIs) and the scopes the contract covers, and the one way it authenticates — a secret (only
its scrypt hash is stored) or a public key (``private_key_jwt``, RFC 7523). A revoked client
keeps its row (``revoked_at``) so that logs and flow records still name it.

:class:`ClientAssertionUse` remembers the ``jti`` of each accepted client assertion until it
expires, so that an assertion is accepted once, whichever API worker receives it.

These tables are not entities of the neutral schema: they are not in ``TABLES`` nor in the
published JSON Schemas. What the hub shows of a client is :class:`ApiClientPublic` (no secret).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from ._tracked import utcnow

__all__ = [
    "ApiClient",
    "ApiClientBase",
    "ApiClientPublic",
    "ClientAssertionUse",
    "ClientAuthMethod",
    "ClientScope",
]


class ClientScope(enum.StrEnum):
    """What a client may read (modelled on OneRoster's read-only scopes)."""

    ROSTER_CORE = "roster-core.readonly"
    ROSTER_DEMOGRAPHICS = "roster-demographics.readonly"
    TIMETABLE = "timetable.readonly"


class ClientAuthMethod(enum.StrEnum):
    """How a client authenticates at the token endpoint (RFC 8414 names)."""

    SECRET = "client_secret"
    PRIVATE_KEY_JWT = "private_key_jwt"
    #: Not at the hub: a configured issuer authenticates it and signs its tokens.
    EXTERNAL_ISSUER = "external_issuer"


class ApiClientBase(SQLModel):
    name: str = Field(max_length=255, description="Who the client is (vendor, product).")
    structures: list[str] = Field(
        default_factory=list, sa_type=JSON, description="UAIs the contract covers."
    )
    scopes: list[str] = Field(
        default_factory=list, sa_type=JSON, description="Scopes the contract grants."
    )
    activity: str | None = Field(
        default=None, max_length=128, description="RGPD processing activity of the contract."
    )
    issuer: str | None = Field(
        default=None,
        max_length=64,
        description="The configured issuer (its name) whose tokens carry this contract; none "
        "for a client of the hub's own token endpoint.",
    )
    created_at: dt.datetime = Field(default_factory=utcnow)
    revoked_at: dt.datetime | None = Field(default=None, description="Refused from then on.")


class ApiClient(ApiClientBase, table=True):
    __tablename__ = "api_client"

    client_id: str = Field(primary_key=True, max_length=64)
    #: ``scrypt$n=…,r=…,p=…$salt$hash`` (see annuaire.auth.clients), or None for key clients.
    secret_hash: str | None = Field(default=None, max_length=255)
    #: Public JWK verifying the client's assertions (private_key_jwt), or None.
    public_jwk: dict[str, Any] | None = Field(default=None, sa_type=JSON)

    @property
    def auth_method(self) -> ClientAuthMethod:
        if self.issuer is not None:
            return ClientAuthMethod.EXTERNAL_ISSUER
        if self.public_jwk is not None:
            return ClientAuthMethod.PRIVATE_KEY_JWT
        return ClientAuthMethod.SECRET

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ApiClientPublic(ApiClientBase):
    """An API client as operators see it: its contract, never its secret."""

    client_id: str
    auth_method: ClientAuthMethod
    key_id: str | None = Field(default=None, description="`kid` of its public key, if any.")

    @classmethod
    def of(cls, client: ApiClient) -> ApiClientPublic:
        return cls(
            client_id=client.client_id,
            name=client.name,
            structures=list(client.structures),
            scopes=list(client.scopes),
            activity=client.activity,
            issuer=client.issuer,
            created_at=client.created_at,
            revoked_at=client.revoked_at,
            auth_method=client.auth_method,
            key_id=(client.public_jwk or {}).get("kid"),
        )


class ClientAssertionUse(SQLModel, table=True):
    """A client assertion already accepted: its ``jti`` is refused until ``expires_at``."""

    __tablename__ = "client_assertion_use"

    client_id: str = Field(primary_key=True, max_length=64)
    jti: str = Field(primary_key=True, max_length=255)
    expires_at: dt.datetime = Field(index=True)
