"""``aiguillage registre``: check the register, verify and seal the flow log, export the art. 30
register, answer an access request, apply retention, make keys.

Exit codes as the rest of the command: 0 done, 1 refused (a broken chain for ``verify``), 2 bad
input or configuration. Reading the log (``export``, ``person``) is itself logged; an export's
entry commits once its output is written aside, before it is renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from annuaire.errors import AiguillageError, BadInput, Refused

# The store, the log and the register are imported by the commands that use them: ``aiguillage
# --help`` and the other commands do not load them (annuaire.cli).
if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from .register import Register
    from .runtime import Registre

__all__ = ["registre_app"]

registre_app = typer.Typer(
    help="RGPD: the register of processing activities and the flow log.", no_args_is_help=True
)
console = Console(markup=False, emoji=False)  # values printed as they are (see annuaire.cli)
errors = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)
_JSON = orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _opened() -> tuple[Engine, Registre]:
    from annuaire.cli import open_store
    from annuaire.settings import get_settings

    from .runtime import open_registre

    engine = open_store()
    return engine, open_registre(get_settings(), engine)


def _fail(exc: AiguillageError) -> typer.Exit:
    from annuaire.cli import fail

    return fail(exc)


def _log_access(
    connection: Connection,
    registre: Registre,
    target: str,
    payload: bytes,
    persons: Collection[uuid.UUID] = (),
) -> None:
    """The entry of an operator's reading of the log, in ``connection``'s transaction."""
    from .flowlog import FlowRecord
    from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

    registre.log.append(
        connection,
        FlowRecord(
            flow=FlowKind.REGISTRE,
            operation=Operation.LOG_ACCESS,
            activity=registre.activity_id(FlowKind.REGISTRE),
            actor_kind=RecipientKind.DPO,
            actor="aiguillage registre",
            target=target,
            categories={DataCategory.CONNECTION, *([DataCategory.IDENTIFIERS] if persons else [])},
            subjects=persons,
            payload_digest=hashlib.sha256(payload).hexdigest(),
        ),
    )


@registre_app.command("check")
def check() -> None:
    """Validate the register file and list its activities (no database needed)."""
    from annuaire.settings import get_settings

    from .runtime import register_file, registre_config

    settings = get_settings()
    try:
        config = registre_config(settings)
    except AiguillageError as exc:
        raise _fail(exc) from exc
    table = Table("activity", "name", "status", "flows", "data categories")
    for activity in config.activities:
        table.add_row(
            activity.id,
            activity.name,
            activity.status.value,
            " ".join(activity.flows),
            " ".join(activity.data_categories),
        )
    console.print(f"register file {register_file(settings)}: valid", highlight=False)
    console.print(table)


@registre_app.command("verify")
def verify() -> None:
    """Check every entry, subject list, checkpoint and the head; exit 1 and say where the chain
    breaks if it does."""
    from annuaire.store.engine import read_snapshot

    from .verify import verify_log

    try:
        engine, registre = _opened()
        with read_snapshot(engine) as connection:  # the log as of one instant
            report = verify_log(connection, registre.keys)
    except AiguillageError as exc:
        raise _fail(exc) from exc
    console.print(report.summary(), highlight=False)
    for problem in report.breaks[1:20]:
        console.print(f"  also: {problem}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@registre_app.command("checkpoint")
def checkpoint() -> None:
    """Seal the entries written since the last checkpoint (run it hourly from cron)."""
    from annuaire.store.engine import write_transaction

    try:
        engine, registre = _opened()
        with write_transaction(engine) as connection:
            sealed = registre.log.checkpoint(connection)
    except AiguillageError as exc:
        raise _fail(exc) from exc
    console.print(f"checkpoint {sealed} signed" if sealed else "nothing new to seal")


@registre_app.command("export")
def export(
    format: Annotated[
        Literal["json", "csv", "html"], typer.Option("--format", help="json, csv or html.")
    ] = "json",
    output: Annotated[
        Path | None,
        typer.Option(help="File (json, html) or folder (csv, required); default: stdout."),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Verify the flow log first and say so in the register.")
    ] = False,
) -> None:
    """The art. 30 register: one fiche per activity with its history and observed flows."""
    from annuaire.store.engine import read_snapshot, write_transaction

    from .register import render_html, render_json
    from .verify import verify_log

    if format == "csv" and output is None:
        raise _fail(BadInput("--format csv writes one file per fiche: give --output FOLDER"))
    try:
        engine, registre = _opened()
        # Verified and read as of one instant: requests appending meanwhile are no false alarm.
        with read_snapshot(engine) as connection:
            verification = verify_log(connection, registre.keys) if verify else None
            document = registre.register(connection, verification=verification)
        body = render_json(document)
        text = None if format == "csv" else body if format == "json" else render_html(document)
        # Written aside first: a folder or file that cannot be written fails the export before
        # its access entry commits; the entry commits before the register takes its place.
        staged = None if output is None else _staged(document, text, output)
        try:
            with write_transaction(engine) as connection:
                _log_access(connection, registre, f"registre export {format}", body)
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
    except AiguillageError as exc:
        raise _fail(exc) from exc
    if staged is None:
        assert isinstance(text, bytes | str)
        typer.echo(text.decode() if isinstance(text, bytes) else text)
        return
    written = staged.publish()
    what = f"{written} files" if format == "csv" else "register"
    console.print(f"{what} written to {output}", highlight=False)


class _Staged:
    """Files written under temporary names in their destination's folder, to be renamed into
    place (``publish``) or removed (``discard``)."""

    def __init__(self, moves: list[tuple[Path, Path]], scratch: Path | None = None) -> None:
        self.moves = moves
        self.scratch = scratch

    def publish(self) -> int:
        for temporary, final in self.moves:
            temporary.replace(final)
        self._clean()
        return len(self.moves)

    def discard(self) -> None:
        for temporary, _final in self.moves:
            temporary.unlink(missing_ok=True)
        self._clean()

    def _clean(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _staged(document: Register, text: bytes | str | None, output: Path) -> _Staged:
    """The rendering written next to ``output`` (a folder for CSV, else a file), or BadInput
    naming what cannot be written."""
    from .register import render_csv

    try:
        if text is None:
            if output.exists() and not output.is_dir():
                raise BadInput(f"--output {output}: not a folder (CSV writes one file per fiche)")
            output.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=output, prefix=".registre-export-"))
            try:
                written = render_csv(document, scratch)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            return _Staged([(path, output / path.name) for path in written], scratch)
        if output.is_dir():
            raise BadInput(f"--output {output}: a folder, not a file")
        if not output.parent.is_dir():
            raise BadInput(f"--output {output}: the folder {output.parent} does not exist")
        fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(text if isinstance(text, bytes) else text.encode())
        return _Staged([(Path(name), output)])
    except OSError as exc:
        raise BadInput(f"--output {output}: {exc.strerror or exc}") from None


@registre_app.command("person")
def person(
    reference: Annotated[
        str,
        typer.Argument(
            help="Hub id, or a typed external id (aaf:ENTPersonJointure:1234; the join key also "
            "finds a person purged from the store while the log names them)."
        ),
    ],
    format: Annotated[
        Literal["table", "json"], typer.Option("--format", help="table or json.")
    ] = "table",
) -> None:
    """Who received this person's data and when (GDPR art. 15(1)(c))."""
    from annuaire.store.engine import read_snapshot, write_transaction

    from .person import resolve_person

    try:
        engine, registre = _opened()
        # Read as of one instant, then the access entry in a short write transaction of its
        # own: reading a person's flows takes seconds on a large log, and imports and API
        # writers would wait for the write lock all that time.
        with read_snapshot(engine) as connection:
            person_id = resolve_person(connection, reference, registre.keys)
            report = registre.person_report(connection, person_id)
        body = orjson.dumps(report.model_dump(mode="json"), option=_JSON)
        with write_transaction(engine) as connection:
            _log_access(connection, registre, "registre person", body, {person_id})
    except AiguillageError as exc:
        raise _fail(exc) from exc
    if format == "json":
        typer.echo(body.decode())
        return
    since = f" since {report.log_since:%Y-%m-%d %H:%M} UTC" if report.log_since else ", empty"
    console.print(
        f"person {report.person_id} (pseudonym {report.pseudonym}): {len(report.flows)} flows "
        f"in the log{since} (kept {report.log_retention_months} months)",
        highlight=False,
    )
    table = Table("recipient", "kind", "flows", "first (UTC)", "last (UTC)", "data categories")
    for recipient in report.recipients:
        table.add_row(
            recipient.recipient_name or recipient.recipient or "",
            recipient.recipient_kind.value,
            str(recipient.flows),
            recipient.first_at.strftime("%Y-%m-%d %H:%M"),
            recipient.last_at.strftime("%Y-%m-%d %H:%M"),
            " ".join(recipient.data_categories),
        )
    console.print(table)


@registre_app.command("purge")
def purge(
    months: Annotated[
        int | None,
        typer.Option(min=6, max=12, help="Retention in months (default: the register's)."),
    ] = None,
) -> None:
    """Delete flow-log entries older than the retention; what remains still verifies."""
    from annuaire.store.engine import write_transaction

    from .purge import purge_log
    from .vocabulary import FlowKind

    try:
        engine, registre = _opened()
        declared = registre.config.flow_log.retention_months
        if months is not None and months < declared:
            raise BadInput(
                f"--months {months}: the register declares that the flow log is kept "
                f"{declared} months; purging sooner would delete entries it says are kept"
            )
        retention = months or declared
        with write_transaction(engine) as connection:
            result = purge_log(
                connection,
                registre.log,
                activity=registre.activity_id(FlowKind.REGISTRE),
                retention_months=retention,
                operator="aiguillage registre purge",
            )
    except AiguillageError as exc:
        raise _fail(exc) from exc
    console.print(
        f"retention {retention} months (cutoff {result.cutoff:%Y-%m-%d %H:%M} UTC): "
        f"{result.entries} entries purged, naming a person {result.subjects} times in all (a "
        f"person named by several entries counts once per entry); the log now starts after "
        f"entry {result.up_to_seq}",
        highlight=False,
    )


@registre_app.command("keys")
def keys(
    path: Annotated[Path, typer.Argument(help="The key file (registre_key_file).")],
    rotate: Annotated[
        bool,
        typer.Option(
            help="Put a new chain and signing key first; keep the old ones to verify what they "
            "sealed (the old signing keys without their private part)."
        ),
    ] = False,
) -> None:
    """Create the flow log's key file (or rotate its chain and signing keys)."""
    from .keys import generate_key_file

    if path.exists() != rotate:
        problem = "does not exist" if rotate else "exists already (use --rotate)"
        raise _fail(Refused(f"{path} {problem}"))
    try:
        generate_key_file(path, rotate=rotate)
    except FileExistsError:
        raise _fail(Refused(f"{path} exists already (use --rotate)")) from None
    except OSError as exc:
        raise _fail(BadInput(f"{path}: {exc.strerror or exc}")) from None
    except AiguillageError as exc:
        raise _fail(exc) from exc
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    console.print(f"{'rotated' if rotate else 'created'} {path} ({when} UTC)", highlight=False)
    if rotate:
        console.print(
            "restart every hub process that writes to the flow log now: an entry written with "
            "the retired keys from now on does not verify",
            highlight=False,
        )


@registre_app.command("public-keys")
def public_keys() -> None:
    """Print the flow log's public signing keys (a JWK set, newest first): what a third party
    needs to check the checkpoint of an export (``flow_log.last_checkpoint``), and nothing that
    signs or chains. Hand it to the DPO when the keys are created or rotated."""
    from annuaire.encoding import b64url_encode
    from annuaire.settings import get_settings

    from .keys import load_keys

    try:
        registre_keys = load_keys(get_settings())
    except AiguillageError as exc:
        raise _fail(exc) from exc
    document = {
        "keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url_encode(key.public_bytes_raw())}
            for kid, key in registre_keys.verify_keys.items()
        ]
    }
    typer.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
