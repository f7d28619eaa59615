"""Everything under specs/ that is generated from the code, as one set of files.

``aiguillage spec write`` writes them; tests fail when the committed files drift. Hand-written
files of specs/ (VERSIONING.md, README.md) are not in this set.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["generated_spec_files"]


def generated_spec_files() -> dict[Path, str]:
    """Relative path under specs/ -> content: openapi.json, the JSON Schemas and SCHEMA.md."""
    from annuaire.api import create_app
    from annuaire.api.openapi import openapi_text
    from annuaire.schema.spec import render_files
    from annuaire.settings import Settings

    files = render_files()
    # The contract does not depend on the database: an in-memory one keeps this side-effect free.
    app = create_app(Settings(database_url="sqlite://", environment="development"))
    files[Path("openapi.json")] = openapi_text(app)
    return files
