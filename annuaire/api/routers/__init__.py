"""One router per resource; ``ROUTERS`` lists them in the order the documentation shows them."""

from __future__ import annotations

from . import (
    changes,
    classes,
    enrollments,
    groups,
    guardianships,
    nomenclatures,
    persons,
    registre,
    roles,
    runs,
    structures,
)

__all__ = ["ROUTERS"]

ROUTERS = [
    structures.router,
    persons.router,
    roles.router,
    classes.router,
    groups.router,
    enrollments.router,
    guardianships.router,
    nomenclatures.subjects,
    nomenclatures.levels,
    runs.router,
    changes.router,
    registre.router,
]
