"""The ``aiguillage`` command: database, imports, purge, runs, the change feed, the API, the
RGPD register (``registre``, in annuaire.registre.cli).

Exit codes: 0 done, 1 refused by a guard, 2 bad input or bad usage.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annuaire.errors import AiguillageError, BadInput, ConfigurationError, Refused
from annuaire.registre.cli import registre_app

# The store, the schema, the sync engine, Alembic and the settings are imported by the commands
# that use them: `aiguillage --help` or `sample` need none (tests/test_cli_imports.py).
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from annuaire.schema import SourceWarning
    from annuaire.sync import Interrupted

__all__ = ["app", "open_store"]

app = typer.Typer(
    name="aiguillage",
    help="Aiguillage: school identity and timetable hub (imports, neutral schema, feed).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(registre_app, name="registre")

# No markup nor emoji codes: what is printed quotes files, records and scopes as they are
# (``[/]`` in a value is no closing tag, ``aaf:X:1d`` no emoji); styled labels are ``said``'s.
console = Console(markup=False, emoji=False)
errors = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)  # messages whole


def said(label: str, message: str, style: str = "bold red") -> Text:
    """``label: message``, the label styled, the message as it is."""
    return Text.assemble((f"{label}:", style), " ", message)


EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


def open_store(*, require_current: bool = True, create: bool = False) -> Engine:
    """The engine of the configured database, checked to be at the latest migration.

    A SQLite store is created by ``db upgrade`` only (``create``): another command finding no
    file says so and creates none (sqlite3 would create an empty one, its folder, -wal and
    -shm, that the next command would take for a store at revision none)."""
    from sqlalchemy.exc import OperationalError

    from annuaire.settings import get_settings
    from annuaire.store import make_engine
    from annuaire.store import migrate as migrations

    settings = get_settings()
    if not create and (missing := _missing_sqlite_file(settings.database_url)) is not None:
        raise ConfigurationError(
            f"the database {missing} does not exist (revision none), the code expects "
            f"{migrations.head_revision()}: run `aiguillage db upgrade` first; nothing was read "
            "or written"
        )
    engine = make_engine(settings)
    try:
        current = migrations.current_revision(engine)
    except OperationalError as exc:  # the server down, a wrong URL, a SQLite folder missing
        database = engine.url.render_as_string(hide_password=True).split("@")[-1]
        if engine.dialect.name == "sqlite":
            database = engine.url.database or database
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise ConfigurationError(
            f"cannot open the database {database} ({reason}): check AIGUILLAGE_DATABASE_URL "
            "and that the database server runs; nothing was read or written"
        ) from exc
    if require_current:
        head = migrations.head_revision()
        if current != head:
            raise ConfigurationError(
                f"the database is at revision {current or 'none'}, the code expects {head}: "
                "run `aiguillage db upgrade` first"
            )
    return engine


def _missing_sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist (not for an in-memory database, nor a
    ``file:`` URI, whose mode decides)."""
    from sqlalchemy import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") or url.database.startswith("file:"):
        return None
    path = Path(url.database)
    return None if path.exists() else path


@contextlib.contextmanager
def _one_writer() -> Iterator[None]:
    """SQLite has one writer at a time: a job that waited the busy timeout for another one to
    end is refused, as PostgreSQL refuses a second run of a scope (not a traceback)."""
    from sqlalchemy.exc import OperationalError

    from annuaire.store.engine import WRITER_BUSY, writer_busy

    try:
        yield
    except OperationalError as exc:
        if not writer_busy(exc):
            raise
        raise Refused(WRITER_BUSY) from exc


def _label(exc: AiguillageError) -> str:
    return {Refused: "refused", BadInput: "bad input"}.get(type(exc), "error")


def _exit_code(exc: AiguillageError) -> int:
    return EXIT_REFUSED if isinstance(exc, Refused) else EXIT_BAD_INPUT


def fail(exc: AiguillageError, message: str | None = None) -> typer.Exit:
    """Print ``exc`` (or ``message``, what is said of it) and the exit that goes with it."""
    errors.print(said(_label(exc), message or str(exc)), highlight=False)
    return typer.Exit(_exit_code(exc))


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the schema of the configured database (SQLite or PostgreSQL); the only
    command that creates a SQLite store."""
    from annuaire.store import migrate as migrations

    try:
        engine = open_store(require_current=False, create=True)
    except AiguillageError as exc:
        raise fail(exc) from exc
    migrations.upgrade(engine, revision)
    console.print(f"database at revision {migrations.current_revision(engine)} ({engine.url!r})")


@db_app.command("current")
def db_current() -> None:
    """Print the revision of the configured database and the code's head revision."""
    from annuaire.store import migrate as migrations

    try:
        engine = open_store(require_current=False)
    except AiguillageError as exc:
        raise fail(exc) from exc
    console.print(
        f"database: {migrations.current_revision(engine) or 'empty'}; "
        f"code: {migrations.head_revision()}"
    )


@app.command("purge")
def purge(
    older_than_days: Annotated[
        int | None, typer.Option(min=0, help="Override the configured delay (days leaving).")
    ] = None,
    scope: Annotated[
        str | None, typer.Option(help="Only this scope (source:académie-or-UAI:degree).")
    ] = None,
) -> None:
    """Delete for good the entities that left their source longer ago than the delay."""
    from annuaire.settings import get_settings
    from annuaire.sync import purge as purge_store

    try:
        engine = open_store()
        if scope is not None:
            _known_scope(engine, scope)
        with _one_writer():
            purged = purge_store(engine, get_settings(), scope=scope, delay_days=older_than_days)
    except AiguillageError as exc:
        raise fail(exc) from exc
    total = sum(purged.values())
    detail = ", ".join(f"{n} {kind}" for kind, n in purged.items()) or "nothing to purge"
    console.print(f"purged {total} entities: {detail}")
    if purged.kept:
        kept = ", ".join(f"{n} {kind}" for kind, n in purged.kept.items())
        console.print(
            f"kept {sum(purged.kept.values())} due for purge that other rows still point to: "
            f"{kept} (purged once nothing points to them)"
        )


def _known_scope(engine: Engine, scope: str) -> None:
    """``BadInput`` unless an import ran on ``scope``: a mistyped scope would purge nothing and
    say "nothing to purge", as if that scope were clean."""
    from sqlalchemy import select

    from annuaire.schema import ImportRun

    table = ImportRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        known = list(connection.execute(select(table.c.scope).distinct()).scalars())
    if scope not in known:
        there = ", ".join(sorted(known)) or "none"
        raise BadInput(
            f"no import ever ran on scope {scope!r} (scopes in the store: {there}; see "
            "`aiguillage runs`)"
        )


@app.command("runs")
def runs(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """List the latest import runs with their outcome and counts, then why the runs that
    were not applied were not."""
    from sqlalchemy import select

    from annuaire.schema import ImportRun

    try:
        engine = open_store()
    except AiguillageError as exc:
        raise fail(exc) from exc
    table = Table(
        "started (UTC)",
        "scope",
        "mode",
        "export of",
        "outcome",
        "+new ~chg -left",
        "warn",
        "s",
        collapse_padding=True,
    )
    with engine.connect() as connection:
        rows = connection.execute(
            select(ImportRun.__table__)  # type: ignore[attr-defined]
            .order_by(ImportRun.started_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        ).all()
        # In 80 columns (a pipe, `make demo`) the other values wrap, and the padding between
        # cells is collapsed so that the table fits: a scope cut to `aaf:099:…` or a date to
        # `2026-09…` would say neither the degree nor the day.
        table.columns[1].min_width = max((len(row.scope) for row in rows), default=None)
        table.columns[3].min_width = len("2026-09-15")
        for row in rows:
            counts = (row.counts or {}).values()
            created = sum(c.get("created", 0) for c in counts)
            changed = sum(c.get("updated", 0) + c.get("returning", 0) for c in counts)
            left = sum(c.get("leaving", 0) for c in counts)
            table.add_row(
                row.started_at.strftime("%m-%d %H:%M:%S"),
                row.scope,
                row.mode,
                f"{row.export_date:%Y-%m-%d}" if row.export_date else "",
                row.outcome,
                f"+{created} ~{changed} -{left}",
                str(row.warning_count),
                f"{row.duration_s or 0:.1f}",
            )
    console.print(table)
    # Why a run was refused or failed: the morning's first question, too long for a cell.
    for row in rows:
        if row.outcome != "applied" and row.message:
            started = row.started_at.strftime("%m-%d %H:%M:%S")
            console.print(f"{started} {row.scope} {row.outcome}: {row.message}", soft_wrap=True)


@app.command("changes")
def changes(
    after: Annotated[int, typer.Option(help="Cursor: the last sequence already read.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    structure: Annotated[str | None, typer.Option(help="Only entries touching this UAI.")] = None,
) -> None:
    """Print a page of the change feed as JSON lines, then the next cursor on stderr.

    The hub ids of the persons it names are personal data shown to the operator: a page that
    names any person or what belongs to one is logged first (one flow entry per invocation,
    see :func:`_log_consultation`)."""
    from annuaire.store import changes_after, structures_list

    try:
        engine = open_store()
        with engine.connect() as connection:
            page = changes_after(connection, after, limit, structure=structure)
        lines = []
        for entry in page.entries:
            line = entry.model_dump(mode="json")
            line["structures"] = structures_list(entry.structures)  # as the API gives them
            lines.append(json.dumps(line, ensure_ascii=False))
        personal = [e for e in page.entries if e.entity_type in _PERSONAL_KINDS]
        if personal:
            _log_consultation(
                engine,
                "aiguillage changes",
                "\n".join(lines).encode(),
                persons=[e.entity_id for e in personal if e.entity_type == "person"],
                structures={u for e in personal for u in structures_list(e.structures)},
            )
    except AiguillageError as exc:
        raise fail(exc) from exc
    for text in lines:
        typer.echo(text)
    errors.print(f"next cursor: {page.next_cursor}")


#: Entities that are, or belong to, a person: their entries in the feed are personal data.
_PERSONAL_KINDS = frozenset({"person", "role", "enrollment", "guardianship"})


def _log_consultation(
    engine: Engine,
    command: str,
    payload: bytes,
    *,
    persons: list[uuid.UUID],
    structures: set[str],
) -> None:
    """The flow entry of an operator's reading of personal data through the CLI, committed
    before it is printed: a consultation (``read``) by the operator's command line, under the
    activity that claims the imports (the hub's own processing of the annuaire)."""
    from annuaire.registre.flowlog import FlowRecord
    from annuaire.registre.runtime import open_registre
    from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
    from annuaire.settings import get_settings
    from annuaire.store.engine import write_transaction

    registre = open_registre(get_settings(), engine)
    with write_transaction(engine) as connection:
        registre.log.append(
            connection,
            FlowRecord(
                flow=FlowKind.IMPORT,
                operation=Operation.READ,
                activity=registre.activity_id(FlowKind.IMPORT),
                actor_kind=RecipientKind.OPERATOR,
                actor=command,
                target=command,
                categories={DataCategory.IDENTIFIERS},
                structures=structures,
                subjects=persons,
                payload_digest=hashlib.sha256(payload).hexdigest(),
            ),
        )


spec_app = typer.Typer(help="The opposable contract under specs/.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")


@spec_app.command("write")
def spec_write(
    out: Annotated[Path, typer.Option(help="The specs folder.")] = Path("specs"),
    check: Annotated[bool, typer.Option(help="Only check that the files are up to date.")] = False,
) -> None:
    """Regenerate specs/ from the code (openapi.json, JSON Schemas, SCHEMA.md), or check it."""
    from annuaire.specs import generated_spec_files

    stale = []
    for relative, content in generated_spec_files().items():
        path = out / relative
        if path.exists() and path.read_text(encoding="utf-8") == content:
            continue
        stale.append(str(path))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
    if check and stale:
        errors.print(f"specs out of date (run `make spec`): {', '.join(stale)}")
        raise typer.Exit(1)
    console.print(f"{len(stale)} file(s) {'stale' if check else 'written'} under {out}")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [settings: api_host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [settings: api_port].")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="uvicorn worker processes [settings: api_workers].")
    ] = None,
) -> None:
    """Serve the /v1 API with uvicorn (OpenAPI at /v1/openapi.json, docs at /v1/docs)."""
    import uvicorn

    from annuaire.api.demo import dev_token_request, example_requests
    from annuaire.registre.runtime import open_registre
    from annuaire.settings import get_settings

    settings = get_settings()
    try:
        engine = open_store()  # refuse to start on a database that is not migrated
        # ... or without a valid register and the flow log's keys: nothing would be served.
        registre = open_registre(settings, engine)
    except AiguillageError as exc:
        raise fail(exc) from exc
    host = host or settings.api_host
    port = port or settings.api_port
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    console.print(f"serving {settings.database_url} on {base_url}/v1 (docs: {base_url}/v1/docs)")
    activities = ", ".join(a.id for a in registre.config.activities)
    console.print(f"register of processing activities: {activities}", highlight=False)
    if settings.api_open_access:
        errors.print(
            said(
                "open access",
                f"environment={settings.environment} and no token issuer configured: requests "
                "without a token see everything. Set AIGUILLAGE_ENVIRONMENT=production for any "
                "real data.",
                "bold yellow",
            ),
            highlight=False,
        )
    console.print("try:", highlight=False)
    for line in example_requests(engine, base_url):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    as_guardian = dev_token_request(engine, settings, base_url)
    if as_guardian:
        console.print("as a guardian (a dev token: they see themself and their children):")
        console.print(f"  {as_guardian}", highlight=False, soft_wrap=True)
    engine.dispose()
    uvicorn.run(
        "annuaire.api:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        access_log=settings.api_access_log,
        proxy_headers=True,
        forwarded_allow_ips=settings.api_forwarded_allow_ips,
        log_level="info",
        log_config=_serve_logging(),
    )


def _serve_logging() -> dict[str, Any]:
    """uvicorn's logging, plus the hub's own records (``aiguillage.*``: refused tokens, key
    refreshes, database outages) at INFO on the same stream: without a handler of their own only
    their warnings would reach stderr, through Python's last-resort handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["aiguillage"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


@app.command("conformance")
def conformance(
    base_url: Annotated[
        str, typer.Option(help="Root URL of the deployment (serving /health and /v1).")
    ],
    token: Annotated[
        str | None, typer.Option(help="Sent as `Authorization: Bearer` with every request.")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="OpenAPI JSON to check against [default: the installed code's]."),
    ] = None,
    max_examples: Annotated[
        int, typer.Option(min=1, help="Generated requests per operation, valid and invalid each.")
    ] = 25,
    mutate_command: Annotated[
        str | None,
        typer.Option(help="Shell command that changes the data (run during paging and feed)."),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Check a deployment against the /v1 contract. Exit 0 conforms, 1 does not, 2 bad usage."""
    from annuaire.conformance import load_spec, render_report, run_conformance

    if not re.match(r"https?://[^/?#\s]+", base_url):
        raise typer.BadParameter("an http:// or https:// URL", param_hint="--base-url")
    try:
        document, spec_name = load_spec(spec)
    except (OSError, ValueError) as exc:
        raise fail(BadInput(f"cannot read the spec: {exc}")) from exc
    result = run_conformance(
        base_url,
        token=token,
        spec=document,
        spec_name=spec_name,
        max_examples=max_examples,
        mutate_command=mutate_command,
    )
    render_report(result, console)
    if report is not None:
        try:
            result.write_json(report)
        except OSError as exc:  # the table above is printed already
            raise fail(BadInput(f"cannot write the report: {exc}")) from exc
    raise typer.Exit(0 if result.passed else 1)


sample_app = typer.Typer(help="Synthetic académies for demos, tests and editors' sandboxes.")
app.add_typer(sample_app, name="sample", no_args_is_help=True)


@sample_app.command("academie")
def sample_academie(
    out: Annotated[Path, typer.Option(help="Folder to write the AAF files into (must hold none).")],
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 1,
    pupils: Annotated[
        int, typer.Option(min=1, help="Pupils in all (ignored with --delta-from).")
    ] = 2000,
    degree: Annotated[str, typer.Option(help="1d, 2d or both.")] = "2d",
    delta_from: Annotated[
        Path | None, typer.Option(help="Write a delta against this earlier generated set.")
    ] = None,
    rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share changed by a delta.")] = 0.01,
    also_complet: Annotated[
        Path | None, typer.Option(help="With --delta-from: also write the new state as a complet.")
    ] = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Records per file.")] = 5000,
) -> None:
    """Write a realistic AAF complet set (or a delta against an earlier one)."""
    from connectors.sample import generate_academie, generate_delta

    if degree not in ("1d", "2d", "both"):
        raise typer.BadParameter("expected 1d, 2d or both", param_hint="--degree")
    if also_complet is not None and delta_from is None:
        raise typer.BadParameter("only with --delta-from", param_hint="--also-complet")
    if also_complet is not None and also_complet.resolve() == out.resolve():
        raise typer.BadParameter("must be another folder than --out", param_hint="--also-complet")
    try:
        if delta_from is not None:
            summary = generate_delta(
                delta_from, out, seed=seed, rate=rate, also_complet=also_complet
            )
        else:
            summary = generate_academie(
                out,
                pupils=pupils,
                seed=seed,
                degree=degree,  # type: ignore[arg-type]  # checked above
                chunk_size=chunk_size,
            )
    except (OSError, ValueError) as exc:  # --out a file, a folder that cannot be written...
        errors.print(said("error", str(exc)))
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    except AiguillageError as exc:
        raise fail(exc) from exc
    counts = ", ".join(f"{n} {k}" for k, n in summary.counts.items())
    console.print(f"{summary.kind}: {len(summary.files)} files in {out} ({counts})")
    if delta_from is not None:
        for label, figures in (
            ("adds", summary.adds),
            ("modifies", summary.modifies),
            ("deletes", summary.deletes),
        ):
            console.print(f"  {label}: " + ", ".join(f"{n} {k}" for k, n in figures.items() if n))
        console.print(
            "  (the structures and nomenclatures are sent again in full as adds, as the real "
            "deltas do; the import finds them unchanged)"
        )


import_app = typer.Typer(help="Import a source into the store (one run per export).")
app.add_typer(import_app, name="import", no_args_is_help=True)


@import_app.command("aaf")
def import_aaf(
    paths: Annotated[list[Path], typer.Argument(help="Folders, XML files, .zip or .tgz.")],
    academie: Annotated[
        str | None, typer.Option(help="Académie code of the scope (default: from the files).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Compute and print everything, apply nothing.")
    ] = False,
    partial: Annotated[
        bool, typer.Option(help="Import an incomplete complet: no removal is inferred.")
    ] = False,
    allow_mass_removal: Annotated[
        bool, typer.Option(help="Apply a run that makes more than the threshold leave.")
    ] = False,
    allow_older: Annotated[
        bool,
        typer.Option(help="Apply an export even if a later one was applied to its scope already."),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Write how the job ended and its runs as JSON here (also on failure)."),
    ] = None,
) -> None:
    """Import AAF exports (complet and delta, 1D and 2D).

    Exports are applied by date. One older than the last export applied to its scope is
    skipped if it was applied already, else refused: it would undo what the later ones changed.

    Exit 0 applied (or skipped), 1 refused, 2 bad input; 130 or 143 stopped by Ctrl-C or
    SIGTERM (at the next safe point: nothing of the export in progress applied; a second signal
    stops at once).
    """
    from annuaire.importing import ExportRun
    from annuaire.importing import import_aaf as run_import
    from annuaire.settings import get_settings
    from annuaire.sync import Interrupted, Stop

    if report is not None and not report.parent.is_dir():
        # Found now, not once the runs are applied (the report would then be lost).
        raise fail(BadInput(f"--report: the folder {report.parent} does not exist"))
    progress = _ImportProgress()
    runs: list[ExportRun] = []
    failure: AiguillageError | None = None
    interrupted: Interrupted | None = None
    try:
        for path in paths:
            if not path.exists():
                raise BadInput("does not exist", file=str(path))
        engine = open_store()
        with _one_writer(), Stop().on_signals() as stop, progress.live:
            run_import(  # fills ``runs`` as it goes, so a failure still shows earlier runs
                engine,
                get_settings(),
                paths,
                academie=academie,
                partial=partial,
                dry_run=dry_run,
                allow_mass_removal=allow_mass_removal,
                allow_older=allow_older,
                on_export=progress.export,
                on_item=progress.item,
                collect=runs,
                stop=stop,
            )
            progress.finish()
    except AiguillageError as exc:
        failure = exc
    except Interrupted as exc:
        interrupted = exc
    for run in runs:
        _print_run(run, progress.warnings.get(id(run.export), Counter()))
    if interrupted is not None:
        exit_code = 128 + interrupted.signum
    else:
        exit_code = 0 if failure is None else _exit_code(failure)
    # What stderr says of the failure (with what to do), in the report too.
    message = None if failure is None else _said_of(failure, runs)
    if report is not None:
        document = {
            "exit_code": exit_code,
            "error": _error_json(failure, interrupted, message),
            "runs": [
                _run_json(run, progress.warnings.get(id(run.export), Counter())) for run in runs
            ],
        }
        try:
            report.write_text(
                json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        except OSError as exc:  # what was applied is printed above and listed by `runs`
            errors.print(said("error", f"cannot write the report {report}: {exc}"))
            if failure is None and interrupted is None:
                raise typer.Exit(EXIT_BAD_INPUT) from exc
    if interrupted is not None:
        errors.print(
            said(
                str(interrupted),
                "nothing of the export being imported was applied (the runs above that say so "
                "were); running the command again is safe",
            )
        )
        _say_not_recorded(runs)
        raise typer.Exit(exit_code)
    if failure is not None:
        stop_job = fail(failure, message)
        _say_not_recorded(runs)
        raise stop_job


def _say_not_recorded(runs: list[Any]) -> None:
    """On stderr, the refused or failed runs that could not be recorded, and why."""
    for run in runs:
        if run.report is not None and run.report.not_recorded:
            errors.print(
                said(
                    "not recorded",
                    f"the {run.report.outcome.value} run of {_named(run)} "
                    f"({run.report.not_recorded}): `aiguillage runs` does not list it",
                    "bold yellow",
                ),
                highlight=False,
            )


def _named(run: Any) -> str:
    """An export run as its printed title names it: the export, then the scope and mode."""
    # The date tells apart the exports of a folder that keeps several nights' deliveries.
    export = f"{run.export.prefix} {run.export.mode} {run.export.date or ''}".rstrip()
    return f"{export} -> {run.scope.key} ({run.mode})"


def _said_of(failure: AiguillageError, runs: list[Any]) -> str:
    """The message of a job's failure, with what to do when the failure does not say it: an
    export found malformed while it was read (a refusal says how to override it)."""
    run = runs[-1] if runs else None
    if not isinstance(failure, BadInput) or run is None or run.report is None:
        return str(failure)
    if run.report.outcome.value != "failed":
        return str(failure)
    named = " ".join(filter(None, (run.export.prefix, run.export.mode, run.export.date)))
    applied = sum(1 for r in runs if r.report is not None and r.report.outcome.value == "applied")
    kept = f"; the {applied} export(s) applied before it stay applied" if applied else ""
    return (
        f"{failure}. Nothing of export {named} was applied{kept}: have the file delivered "
        "again (or corrected), then run the command again (what was applied is skipped or "
        "changes nothing)."
    )


def _error_json(
    failure: AiguillageError | None, interrupted: Interrupted | None, message: str | None
) -> dict[str, Any] | None:
    """What stopped the job, as printed on stderr (``message``, of a ``failure``; ``None`` when
    nothing did), with the file, line, column and record of bad input when they are known."""
    if interrupted is None and failure is None:
        return None
    where = failure if isinstance(failure, BadInput) else None
    return {
        "kind": "interrupted" if failure is None else _label(failure),
        "message": str(interrupted) if failure is None else message,
        "file": where.file if where else None,
        "line": where.line if where else None,
        "column": where.column if where else None,
        "record_id": where.record_id if where else None,
    }


class _ImportProgress:
    """One progress line per file: records read from it so far."""

    def __init__(self) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from annuaire.schema import SourceWarning

        # Bound once here: ``item`` sees every record of the import.
        self._warning: type[SourceWarning] = SourceWarning
        self.live = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("{task.description}", markup=False),
            TextColumn("{task.completed:>9,} records"),
            TimeElapsedColumn(),
            console=errors,
        )
        self.tasks: dict[str, Any] = {}
        #: Per export (by id): AAF category -> warnings read from its files.
        self.warnings: dict[int, Counter[str]] = {}
        self._category_of: dict[str, str] = {}
        self._export_warnings: Counter[str] = Counter()

    def export(self, export: Any, scope: Any, mode: str) -> None:
        self.finish()
        self.tasks = {}
        self._category_of = {f.path: f.category for f in export.files}
        self._export_warnings = self.warnings.setdefault(id(export), Counter())
        self.live.console.print(
            Text.assemble(
                (export.prefix, "bold"),
                f" {export.mode} {export.date or ''} -> scope {scope.key} "
                f"({mode}, {len(export.files)} files)",
            )
        )
        if mode != "complet":  # a refused Complet names its gaps in the refusal
            for gap in export.gaps:
                self.live.console.print(Text(f"  gap: {gap}", style="yellow"))

    def item(self, item: Any) -> None:
        provenance = getattr(item, "provenance", None)
        if isinstance(item, self._warning):
            category = self._category_of.get(provenance.file, "") if provenance else ""
            self._export_warnings[category or "(export)"] += 1
            return
        if provenance is None:
            return
        task = self.tasks.get(provenance.file)
        if task is None:
            self.finish()
            task = self.tasks[provenance.file] = self.live.add_task(
                Path(provenance.file).name, total=None
            )
        self.live.advance(task)

    def finish(self) -> None:
        for task in self.live.tasks:
            if not task.finished:
                self.live.update(task.id, total=task.completed)


def _print_run(run: Any, warnings_by_category: Counter[str]) -> None:
    report = run.report
    title = _named(run)
    if report is None:
        if run.skipped:
            console.print(f"{title}: skipped, {run.skipped}")
        elif run.not_computed:
            console.print(f"{title}: not computed in a dry run, {run.not_computed}")
        else:
            console.print(f"{title}: not applied")
        for note in run.notes:
            console.print(f"  note: {note}")
        return
    ended = report.outcome.value in ("refused", "failed")
    if ended:
        title += f": {report.outcome.value.upper()}, nothing applied"
    elif report.outcome.value == "dry_run":
        title += ": dry run, nothing applied"
    requests = Table(title=title, title_justify="left")
    for column in ("AAF category", "add", "modify", "delete", "warnings"):
        requests.add_column(column, justify="left" if column == "AAF category" else "right")
    categories = sorted({c for c, _ in run.stats.requests} | set(warnings_by_category))
    for category in categories:
        requests.add_row(
            category,
            *(f"{run.stats.requests[(category, op)]:,}" for op in ("add", "modify", "delete")),
            f"{warnings_by_category[category]:,}",
        )
    # A run refused before it read anything has no figures: empty tables would say nothing.
    console.print(requests if categories else title)
    entities = Table(title_justify="left")
    for column in ("entity", "created", "updated", "unchanged", "leaving", "returning"):
        entities.add_column(column, justify="left" if column == "entity" else "right")
    for kind, counts in report.counts_dict().items():
        if not any(counts.values()):
            continue
        entities.add_row(
            kind,
            *(
                f"{counts[c]:,}"
                for c in ("created", "updated", "unchanged", "leaving", "returning")
            ),
        )
    if entities.rows:
        console.print(entities)
    if ended and report.message:  # what was refused and why, under the figures if any
        console.print(f"  {report.outcome.value}: {report.message}", soft_wrap=True)
    if report.warning_count:
        codes = ", ".join(f"{n} {code}" for code, n in sorted(report.warning_codes.items()))
        console.print(f"  warnings: {report.warning_count} ({codes}); first ones:")
        for warning in report.warnings[:5]:
            console.print(f"    {warning}", highlight=False, soft_wrap=True)
    if run.stats.unknown_attributes:
        unknown = ", ".join(f"{n}×{name}" for name, n in run.stats.unknown_attributes.items())
        console.print(f"  unknown attributes kept: {unknown}")
    for note in run.notes:
        console.print(f"  note: {note}")
    console.print(f"  {report.duration_s:.1f} s")


def _not_run(run: Any) -> str:
    """The outcome of an export that was not run."""
    if run.skipped:
        return "skipped"
    return "not computed" if run.not_computed else "not applied"


def _run_json(run: Any, warnings_by_category: Counter[str]) -> dict[str, Any]:
    """What ``_print_run`` prints, as JSON."""
    report = run.report
    return {
        "export": {
            "prefix": run.export.prefix,
            "mode": run.export.mode,
            "date": run.export.date,
            "issued": run.export.issued.isoformat() if run.export.issued else None,
            "degree": run.export.degree,
            "version_af": run.export.version_af,
            "files": [f.path for f in run.export.files],
            "gaps": run.export.gaps,
            "missing_categories": run.export.missing_categories,
        },
        "scope": run.scope.key,
        "mode": run.mode,
        "run_id": str(report.run_id) if report else None,
        "outcome": report.outcome.value if report else _not_run(run),
        "message": report.message if report else run.skipped or run.not_computed,
        "duration_s": round(report.duration_s, 3) if report else None,
        "counts": report.counts_dict() if report else {},
        "requests": {f"{c}:{op}": n for (c, op), n in run.stats.requests.items()},
        # The table's warnings column: read from each category's files (the run's own come
        # on top, in warning_count).
        "warnings_by_category": dict(warnings_by_category),
        "unknown_attributes": dict(run.stats.unknown_attributes),
        "warning_count": report.warning_count if report else 0,
        "warning_codes": dict(sorted(report.warning_codes.items())) if report else {},
        "warnings": [_warning_json(w) for w in (report.warnings if report else [])],
        "notes": run.notes,
        "not_recorded": report.not_recorded if report else None,
    }


def _warning_json(warning: SourceWarning) -> dict[str, Any]:
    """A warning, its place as fields and as printed (``where``)."""
    place = warning.provenance
    return {
        "code": warning.code,
        "message": warning.message,
        "file": place.file if place else None,
        "line": place.line if place else None,
        "record_id": place.record_id if place else None,
        "where": place.where() if place else None,
    }


clients_app = typer.Typer(help="API clients of the token endpoint (machines under contract).")
app.add_typer(clients_app, name="clients", no_args_is_help=True)


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Option(help="Who the client is (vendor, product).")],
    structure: Annotated[
        list[str], typer.Option(help="UAI the contract covers (repeat the option).")
    ],
    scope: Annotated[list[str], typer.Option(help="Scope the contract grants (repeatable).")],
    activity: Annotated[
        str,
        typer.Option(
            help="Id of the processing activity of the register the contract runs under "
            "(it must claim the flow 'api-client' and declare the data the scopes open)."
        ),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(help="Public JWK file: the client uses private_key_jwt, no secret."),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            help="Name of a configured client-credentials issuer that authenticates this "
            "client and signs its tokens (the hub keeps no secret for it); with --client-id."
        ),
    ] = None,
    client_id: Annotated[
        str | None, typer.Option(help="The client's id at that issuer (with --issuer).")
    ] = None,
) -> None:
    """Register a client; prints its id and, once and only now, its secret."""
    from annuaire.auth.clients import create_client
    from annuaire.registre.runtime import registre_config
    from annuaire.settings import get_settings

    try:
        settings = get_settings()
        if issuer is not None and not any(
            i.name == issuer and i.profile == "client_credentials" for i in settings.token_issuers
        ):
            raise BadInput(
                f"no configured issuer {issuer!r} with the profile client_credentials "
                "(token_issuers in the settings)"
            )
        declared = registre_config(settings).activity(activity)
        jwk = None
        if public_key is not None:
            try:
                jwk = json.loads(public_key.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BadInput(f"cannot read the public key: {exc}", file=str(public_key)) from exc
        client, secret = create_client(
            open_store(),
            name,
            structure,
            scope,
            jwk,
            activity=declared,
            issuer=issuer,
            client_id=client_id,
        )
    except AiguillageError as exc:
        raise fail(exc) from exc
    typer.echo(f"client_id: {client.client_id}")
    if client.issuer is not None:
        console.print(f"its tokens come from issuer {client.issuer}", highlight=False)
    elif secret is None:
        kid = (client.public_jwk or {}).get("kid")
        console.print(f"authenticates with private_key_jwt (key id {kid})", highlight=False)
    else:
        typer.echo(f"client_secret: {secret}")
        errors.print("the secret is shown once: only its hash is kept. Store it now.")


@clients_app.command("list")
def clients_list() -> None:
    """List the clients with their contract (never their secrets)."""
    from annuaire.auth.clients import list_clients
    from annuaire.schema import ApiClientPublic

    try:
        engine = open_store()
    except AiguillageError as exc:
        raise fail(exc) from exc
    table = Table("client_id", "name", "auth", "structures", "scopes", "created (UTC)", "revoked")
    for client in map(ApiClientPublic.of, list_clients(engine)):
        table.add_row(
            client.client_id,
            client.name,
            client.auth_method.value,
            " ".join(client.structures),
            " ".join(client.scopes),
            client.created_at.strftime("%Y-%m-%d %H:%M"),
            client.revoked_at.strftime("%Y-%m-%d %H:%M") if client.revoked_at else "",
        )
    console.print(table)


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client to refuse from now on.")],
) -> None:
    """Revoke a client: its credentials and tokens are refused at once."""
    from annuaire.auth.clients import revoke_client

    try:
        client = revoke_client(open_store(), client_id)
    except AiguillageError as exc:
        raise fail(exc) from exc
    assert client.revoked_at is not None
    console.print(f"client {client.client_id} revoked at {client.revoked_at.isoformat()}")


@app.command("dev-token")
def dev_token(
    as_: Annotated[
        str,
        typer.Option(
            "--as",
            help="guardian:<person id>, pupil:<person id>, staff:<person id> or "
            "client:<client id>.",
        ),
    ],
    lifetime: Annotated[
        int | None, typer.Option(min=1, max=86_400, help="Seconds [settings: token lifetime].")
    ] = None,
) -> None:
    """Print a development bearer token for a person or a client (never in production)."""
    from annuaire.auth.devtokens import dev_issuer_url, mint_dev_token, parse_subject
    from annuaire.settings import get_settings

    settings = get_settings()
    if settings.environment == "production":
        errors.print(
            said(
                "refused",
                "development tokens are never minted in production (environment = production)",
            )
        )
        raise typer.Exit(EXIT_REFUSED)
    try:
        kind, subject = parse_subject(as_)
        token = mint_dev_token(open_store(), settings, kind, subject, lifetime_s=lifetime)
    except AiguillageError as exc:
        raise fail(exc) from exc
    typer.echo(token)
    if settings.environment != "development" or not settings.dev_tokens:
        errors.print(
            "note: the API accepts development tokens only with environment = development "
            "and AIGUILLAGE_DEV_TOKENS=true"
        )
    else:
        errors.print(f"issuer {dev_issuer_url(kind)}", highlight=False)
