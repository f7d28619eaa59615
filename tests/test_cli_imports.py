"""What ``aiguillage --help`` loads: the command's module imports the store, the schema, the sync
engine, Alembic and the API inside the commands that use them, so that the help and the light
commands start in a fraction of the second the whole hub takes to import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

#: Modules no help needs (each costs tens to hundreds of milliseconds to import).
HEAVY = (
    "alembic",
    "annuaire.registre.flowlog",
    "annuaire.schema",
    "annuaire.settings",
    "annuaire.store",
    "annuaire.sync",
    "fastapi",
    "sqlalchemy",
    "sqlmodel",
    "uvicorn",
)

_PROBE = """
import json, sys
from typer.testing import CliRunner
from annuaire.cli import app
args = json.loads(sys.argv[1])
if args:
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "Usage" in done.output, done.output
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


@pytest.mark.parametrize(
    "args", [[], ["--help"], ["registre", "--help"], ["import", "aaf", "--help"]]
)
def test_the_help_imports_no_database_nor_api_module(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], done.stdout
