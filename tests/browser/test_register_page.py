"""The HTML register as a DPO sees it: opened in Debian's Chromium (playwright-core, Node).

The register is exported by the real command from a real flow log (an import and API reads),
then rendered by the browser: one sheet per activity with every heading of the CNIL fiche, the
observed flows in their table, a page break before each sheet when printed, nothing fetched
from outside the file, no script error, and a PDF when printed. Needs /usr/bin/chromium and
``npm ci --prefix tests/browser`` (CI installs both; elsewhere the test says what is missing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from annuaire.api import create_app
from annuaire.cli import app
from annuaire.importing import import_aaf
from annuaire.registre import EXAMPLE_FILE, load_registre
from annuaire.registre.register import FICHE_HEADINGS
from connectors.sample import generate_academie
from tests.conftest import IN_CI, Store

HERE = Path(__file__).parent
SCRIPT = HERE / "register_page.mjs"
CHROMIUM = Path("/usr/bin/chromium")


def _browser_or_skip() -> None:
    missing = [
        what
        for what, there in (
            ("Debian's chromium (/usr/bin/chromium)", CHROMIUM.exists()),
            ("node", shutil.which("node") is not None),
            ("playwright-core (npm ci --prefix tests/browser)", (HERE / "node_modules").exists()),
        )
        if not there
    ]
    if missing:
        message = "no browser to render the register: missing " + ", ".join(missing)
        if IN_CI:
            pytest.fail(message + " (CI=true: .ci/run installs them)")
        pytest.skip(message)


def _render(page: Path, screenshot: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(SCRIPT), str(page), str(screenshot)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_html_register_reads_and_prints_in_a_browser(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if store.backend != "sqlite":
        pytest.skip("the page does not depend on the backend (SQLite is enough)")
    _browser_or_skip()
    academie = tmp_path / "aaf"
    generate_academie(academie, pupils=30, seed=5)
    import_aaf(store.engine, store.settings, [academie])
    with TestClient(create_app(store.settings)) as client:
        assert client.get("/v1/persons", params={"limit": 10}).status_code == 200
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", store.settings.database_url)
    from annuaire.settings import get_settings

    get_settings.cache_clear()
    page = tmp_path / "registre.html"
    try:
        exported = CliRunner().invoke(
            app, ["registre", "export", "--format", "html", "--output", str(page), "--verify"]
        )
    finally:
        get_settings.cache_clear()
    assert exported.exit_code == 0, exported.output

    seen = _render(page, tmp_path / "registre.png")

    activities = load_registre(EXAMPLE_FILE).activities
    assert seen["lang"] == "fr" and seen["problems"] == [] and seen["outside"] == []
    assert [s["id"] for s in seen["sheets"]] == [f"activity-{a.id}" for a in activities]
    for sheet in seen["sheets"]:
        assert set(FICHE_HEADINGS) <= set(sheet["headings"]), sheet["id"]
        assert "Flux observés" in sheet["headings"] and sheet["height"] > 0
        assert sheet["scripts"] == 0
    flows = {s["id"]: s["flows"] for s in seen["sheets"]}
    # The import and the operator's reads were observed under their activities.
    assert flows["activity-import-annuaire"] >= 1 and flows["activity-journalisation-flux"] >= 1
    assert set(seen["printedBreakBefore"]) == {"page"}
    assert seen["pdfBytes"] > 10_000
