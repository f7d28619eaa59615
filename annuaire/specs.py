"""Everything under specs/ that is generated from the code, as one set of files.

``aiguillage spec write`` writes them; tests fail when the committed files drift. Hand-written
files of specs/ (VERSIONING.md, README.md) are not in this set.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["generated_spec_files"]


def generated_spec_files() -> dict[Path, str]:
    """Relative path under specs/ -> content: openapi.json, the JSON Schemas and SCHEMA.md."""
    from annuaire.api.main import contract_app
    from annuaire.api.openapi import openapi_text
    from annuaire.registre.register import register_json_schema
    from annuaire.schema.spec import render_files

    files = render_files()
    files[Path("schema") / "registre.json"] = (
        json.dumps(register_json_schema(), indent=2, ensure_ascii=False) + "\n"
    )
    files[Path("openapi.json")] = openapi_text(contract_app())
    return files
