"""Example requests that work on whatever the database holds, printed by ``aiguillage serve``."""

from __future__ import annotations

import shlex

from sqlalchemy import Engine, select

from annuaire.auth.devtokens import DevTokenKind, mint_dev_token
from annuaire.schema import Guardianship, SchoolClass, Structure
from annuaire.settings import Settings

__all__ = ["dev_token_request", "example_requests"]


def example_requests(engine: Engine, base_url: str) -> list[str]:
    """Three curl commands: a structure, the pupils of one of its classes, an NDJSON export."""
    structure, klass = Structure.__table__, SchoolClass.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        uai = connection.execute(
            select(structure.c.uai)
            .where(structure.c.uai.is_not(None))
            .order_by((structure.c.kind == "college").desc(), structure.c.uai)
            .limit(1)
        ).scalar()
        class_id = connection.execute(
            select(klass.c.id)
            .where(klass.c.structure_id.in_(select(structure.c.id).where(structure.c.uai == uai)))
            .order_by(klass.c.code)
            .limit(1)
        ).scalar()
    base = base_url.rstrip("/")
    structures = f"{base}/v1/structures?uai={uai}" if uai else f"{base}/v1/structures?limit=3"
    pupils = f"{base}/v1/persons?role=pupil&fields=id,usage_name,first_name,roles&limit=5"
    if class_id is not None:
        pupils += f"&class={class_id}"
    export = f"{base}/v1/classes?fields=id,code,label" + (f"&structure={uai}" if uai else "")
    return [
        f"curl -s {shlex.quote(structures)}",
        f"curl -s {shlex.quote(pupils)}",
        f"curl -s -H 'Accept: application/x-ndjson' {shlex.quote(export)}",
    ]


def dev_token_request(engine: Engine, settings: Settings, base_url: str) -> str | None:
    """A request as a guardian, with a dev token (development with dev tokens on only)."""
    if settings.environment != "development" or not settings.dev_tokens:
        return None
    table = Guardianship.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        guardian = connection.execute(
            select(table.c.guardian_id).where(table.c.legal.is_(True)).order_by(table.c.id).limit(1)
        ).scalar()
    if guardian is None:
        return None
    # Long enough for a demo session; the validator refuses tokens older than a day.
    token = mint_dev_token(
        engine, settings, DevTokenKind.GUARDIAN, str(guardian), lifetime_s=8 * 3600
    )
    url = f"{base_url.rstrip('/')}/v1/persons?fields=id,usage_name,first_name,roles"
    return f"curl -s -H 'Authorization: Bearer {token}' {shlex.quote(url)}"
