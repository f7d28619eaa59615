"""Example requests that work on whatever the database holds, printed by ``aiguillage serve``."""

from __future__ import annotations

import shlex

from sqlalchemy import Engine, select

from annuaire.schema import SchoolClass, Structure

__all__ = ["example_requests"]


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
