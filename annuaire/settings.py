"""One settings class for the whole hub.

Values come, by decreasing priority, from: arguments given in code, ``AIGUILLAGE_*`` environment
variables, a ``.env`` file, and a TOML config file (``AIGUILLAGE_CONFIG`` or ``aiguillage.toml``
in the working directory). Nothing else in the project reads the environment.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "get_settings", "normalise_database_url"]

DEFAULT_DATABASE_URL = "sqlite:///aiguillage.db"


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
    #: Warnings kept verbatim in an import run report (all are counted).
    warnings_kept: int = Field(default=200, ge=0)

    #: ``aiguillage serve``: bind address, port, uvicorn worker processes, access log.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    api_access_log: bool = True

    @field_validator("database_url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_database_url(value)

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
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
