"""The migration that masks the personal values the import runs recorded before imports stopped
quoting them: as an import masks them now, and only those; on both backends."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import insert, select

from annuaire.schema import ImportRun
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import current_revision, head_revision, upgrade
from connectors.aaf._context import masked

BEFORE = "d67d30807886"
RUNS = ImportRun.__table__  # type: ignore[attr-defined]
ELEVE = "ENT_0990001A_Complet_20260915_Eleve_0000.xml"


def _bad_value(attribute: str, value: str, file: str, outcome: str) -> dict[str, object]:
    return {
        "code": "bad-value",
        "message": f"{attribute}: {value!r} is not valid, expected {outcome}; kept as given",
        "file": file,
        "line": 12,
        "record_id": "1000337",
    }


def test_recorded_personal_values_are_masked_and_nothing_else(empty_database_url: str) -> None:
    engine = make_engine(Settings(database_url=empty_database_url, environment="test"))
    try:
        upgrade(engine, BEFORE)
        birth = _bad_value("ENTPersonDateNaissance", "31/02/2015", ELEVE, "a date dd/mm/yyyy")
        address = "o'brien@@example.fr"  # a quote: repr writes it between double quotes
        mail = _bad_value("mail", address, "Delta_PersRelEleve_0001.xml", "e-mail")
        unnamed = _bad_value("sn", "Dupont", "export.xml", "a name")  # no category: masked too
        # Not a person's own data: a code, a structure's phone, another kind of warning.
        code = _bad_value("ENTEleveCodeEnseignements", "03X201", ELEVE, "6 digits")
        phone = _bad_value(
            "telephoneNumber", "01 23", "ENT_Complet_20260915_EtabEducNat_0000.xml", "a phone"
        )
        other = {"code": "dangling-reference", "message": "structure join key '4931' ..."}
        warnings = [birth, mail, unnamed, code, phone, other]
        run_id = uuid.uuid4()
        with engine.begin() as connection:
            connection.execute(
                insert(RUNS),
                {
                    "id": run_id,
                    "scope": "aaf:099:2d",
                    "source": "aaf",
                    "mode": "complet",
                    "files": [ELEVE],
                    "started_at": dt.datetime(2026, 9, 15, tzinfo=dt.UTC),
                    "outcome": "applied",
                    "counts": {},
                    "warning_count": len(warnings),
                    "warnings": warnings,
                },
            )
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            stored = connection.execute(select(RUNS.c.warnings)).scalar_one()
        assert stored[3:] == [code, phone, other]
        expected = [
            f"ENTPersonDateNaissance: {masked('31/02/2015')} is not valid, expected a date "
            "dd/mm/yyyy; kept as given",
            f"mail: {masked(address)} is not valid, expected e-mail; kept as given",
            f"sn: {masked('Dupont')} is not valid, expected a name; kept as given",
        ]
        assert [w["message"] for w in stored[:3]] == expected
        assert all(
            {k: v for k, v in w.items() if k != "message"}
            == {k: v for k, v in before.items() if k != "message"}
            for w, before in zip(stored[:3], warnings[:3], strict=True)
        )
        text = str(stored)
        assert "31/02/2015" not in text and "brien" not in text and "Dupont" not in text
    finally:
        engine.dispose()
