"""``python -m annuaire`` is the ``aiguillage`` command."""

from annuaire.cli import app

app()
