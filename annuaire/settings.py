"""One settings class for the whole hub.

Values come, by decreasing priority, from: arguments given in code, ``AIGUILLAGE_*`` environment
variables, a ``.env`` file, and a TOML config file (``AIGUILLAGE_CONFIG`` or ``aiguillage.toml``
in the working directory). Nothing else in the project reads the environment.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "DEV_ISSUER_PREFIX",
    "HUB_ISSUER_NAME",
    "IssuerSettings",
    "Settings",
    "check_issuer_names",
    "get_settings",
    "normalise_database_url",
    "reserved_issuer_name",
]

DEFAULT_DATABASE_URL = "sqlite:///aiguillage.db"
#: The names the hub gives its own issuers: its token endpoint, and the development issuers
#: (``dev-educonnect``...). A client's contract is bound to the name of the issuer whose
#: tokens carry it (``hub`` for the hub's own clients), so no configured issuer may take one.
HUB_ISSUER_NAME = "hub"
DEV_ISSUER_PREFIX = "dev-"


def normalise_database_url(url: str) -> str:
    """Accept the spellings operators paste (``postgres://``...) and drive them with psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:") or url.startswith("postgresql+psycopg://"):
        return url
    raise ValueError(
        f"unsupported database URL scheme in {url.split('://')[0]!r}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


class IssuerSettings(BaseModel):
    """A token issuer the API trusts (declared in the TOML file as ``[[token_issuers]]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    #: The exact ``iss`` of its tokens (compared as strings: no normalisation).
    issuer: str = Field(min_length=1)
    #: Where its public keys are: an https (or loopback http) URL, or a JSON file.
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    #: ``aud`` values accepted (a token must carry at least one).
    audiences: list[str] = Field(min_length=1)
    #: Signature algorithms accepted from this issuer (asymmetric only).
    algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"], min_length=1)
    #: How to read its claims into a principal.
    profile: Literal["educonnect", "guichet_agent", "client_credentials"]
    #: How long fetched keys are trusted without a successful refresh.
    jwks_ttl_s: int = Field(default=900, ge=10, le=86_400)
    #: ``educonnect`` profile: accept the legacy ``FrEduVecteur`` when a token has no ``{AAF}``
    #: identity. Off unless a customer requires it: it names a guardian by first and last
    #: names, which homonyms and spelling make fragile (IDENTITY.md §2.6).
    fredu_vecteur: bool = False

    @model_validator(mode="after")
    def _one_key_source(self) -> IssuerSettings:
        if (self.jwks_uri is None) == (self.jwks_file is None):
            raise ValueError(f"issuer {self.name!r}: give exactly one of jwks_uri and jwks_file")
        if self.fredu_vecteur and self.profile != "educonnect":
            raise ValueError(
                f"issuer {self.name!r}: fredu_vecteur is an educonnect profile's option"
            )
        forbidden = [a for a in self.algorithms if a.upper().startswith(("HS", "NONE"))]
        if forbidden or not self.algorithms:
            raise ValueError(f"issuer {self.name!r}: algorithms {forbidden} are never accepted")
        return self


def reserved_issuer_name(name: str) -> bool:
    """Whether ``name`` is one the hub gives its own issuers."""
    return name == HUB_ISSUER_NAME or name.startswith(DEV_ISSUER_PREFIX)


def check_issuer_names(issuers: Sequence[IssuerSettings]) -> None:
    """ValueError when two configured issuers share a name, or one takes a name of the hub's
    own issuers: the contracts of one issuer's clients would be carried by the other's tokens."""
    seen: set[str] = set()
    for issuer in issuers:
        if reserved_issuer_name(issuer.name):
            raise ValueError(
                f"token issuer name {issuer.name!r} is reserved (the hub names its own issuers "
                f"{HUB_ISSUER_NAME!r} and {DEV_ISSUER_PREFIX}...): choose another name"
            )
        if issuer.name in seen:
            raise ValueError(
                f"two token issuers are named {issuer.name!r}: each issuer needs its own name"
            )
        seen.add(issuer.name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIGUILLAGE_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLite file (embedded default) or PostgreSQL URL (production).",
    )
    database_echo: bool = False
    #: Records applied per database round trip inside an import transaction.
    batch_size: int = Field(default=2000, ge=1, le=50_000)
    #: Share of a scope an import may mark as leaving before it is refused.
    mass_removal_threshold: float = Field(default=0.10, gt=0, le=1)
    #: Days an entity stays ``tobedeleted`` before ``aiguillage purge`` removes it.
    purge_delay_days: int = Field(default=90, ge=0, le=3650)
    #: Seconds a SQLite writer waits for another writer before failing.
    sqlite_busy_timeout_s: float = Field(default=60.0, gt=0)
    #: SQLite page cache per connection (MB), for the database and for the import's stage.
    sqlite_cache_mb: int = Field(default=64, ge=2, le=4096)
    #: What one member of a .zip or .tgz delivery may hold once decompressed (MB); more is bad
    #: input (a decompression bomb). Real AAF chunks are tens of MB.
    aaf_max_member_mb: int = Field(default=512, ge=1, le=1 << 20)
    #: Warnings kept verbatim in an import run report (all are counted).
    warnings_kept: int = Field(default=200, ge=0)

    #: ``aiguillage serve``: bind address, port, uvicorn worker processes, access log.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    api_access_log: bool = True
    #: Addresses whose ``X-Forwarded-Proto`` and ``X-Forwarded-For`` the API believes (a
    #: reverse proxy's; comma-separated, ``*`` for any): the scheme and client address of a
    #: request behind it, hence ``https://`` in the ``Link`` of a page. None: uvicorn's default,
    #: its ``FORWARDED_ALLOW_IPS`` or else 127.0.0.1 and ::1 (a proxy on the same host).
    api_forwarded_allow_ips: str | None = None
    #: Database connections per API worker; also the number of requests a worker runs at once
    #: (its thread pool is capped to it, so a request never waits for, nor opens, a connection).
    api_db_pool_size: int = Field(default=16, ge=1, le=200)

    #: Token issuers the API trusts (EduConnect broker, guichet agent, other authorisation
    #: servers); the hub's own token endpoint is always trusted when it has a signing key.
    token_issuers: list[IssuerSettings] = Field(default_factory=list)
    #: ``aud`` of the tokens the hub mints, and accepted from any issuer that lists it.
    api_audience: str = "urn:aiguillage:api"
    #: ``iss`` of the tokens minted by ``POST /oauth/token``.
    token_issuer_url: str = "urn:aiguillage:hub"
    #: Public URL of ``POST /oauth/token`` as clients reach it (``https://hub.example.fr/oauth/
    #: token``): a ``private_key_jwt`` assertion may name it in ``aud``, besides
    #: ``token_issuer_url``. Never taken from a request, whose Host header the caller writes.
    token_endpoint_url: str | None = None
    #: Clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (RFC 7519 "small leeway").
    token_leeway_s: int = Field(default=60, ge=0, le=60)
    #: Lifetime of the access tokens the hub mints.
    access_token_lifetime_s: int = Field(default=600, ge=60, le=3600)
    #: The hub's private ES256 signing key (a JWK file). In development it is created on
    #: first use; in production the token endpoint is off until one is configured.
    signing_key_file: Path | None = None
    #: Accept tokens from ``aiguillage dev-token`` (development environment only).
    dev_tokens: bool = False
    dev_key_file: Path = Path(".aiguillage/dev-key.json")

    #: The register of processing activities (TOML, see annuaire.registre.activities). Outside
    #: production the bundled example is used when none is given.
    registre_file: Path | None = None
    #: The flow log's keys (chain HMAC, pseudonyms, checkpoint signatures; see
    #: annuaire.registre.keys). Created on first use outside production.
    registre_key_file: Path = Path(".aiguillage/registre-keys.json")
    #: A signed checkpoint seals the chain every this many entries (and on demand).
    registre_checkpoint_every: int = Field(default=1000, ge=1, le=1_000_000)
    #: ... and at the first entry written this many seconds after the last checkpoint.
    registre_checkpoint_interval_s: int = Field(default=3600, ge=1, le=86_400)

    @field_validator("database_url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("token_issuers")
    @classmethod
    def _issuer_names(cls, value: list[IssuerSettings]) -> list[IssuerSettings]:
        check_issuer_names(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("AIGUILLAGE_CONFIG", "aiguillage.toml"))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
        return (init_settings, env_settings, dotenv_settings, toml, file_secret_settings)

    @property
    def api_open_access(self) -> bool:
        """Requests without a token see everything: outside production, and only while no
        token issuer is configured (the demo, the tests)."""
        return self.environment != "production" and not self.token_issuers

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
