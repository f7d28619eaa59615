"""The art. 30 register as one document, and its JSON, CSV and HTML renderings.

:func:`build_register` joins the declared activities (:class:`RegistreConfig`) with what the hub
recorded: the versions of each fiche and the flows observed in the flow log, aggregated per
recipient. The result, :class:`Register`, is what ``aiguillage registre export`` and the DPO's
API endpoint produce. Its JSON Schema is published as ``specs/schema/registre.json``: the JSON
rendering is the stable, machine-readable form; CSV (one file per fiche, for a French
spreadsheet) and HTML (one printable document) are for people and may change wording.

Persons never appear in the register: observed flows name client ids and import sources, and
count people by kind. Times are UTC (a naive datetime is taken as UTC).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from annuaire.schema import as_utc

from . import _wording
from .activities import (
    ActivityFields,
    DpoContact,
    Organisation,
    RegistreConfig,
    RegistreConfigError,
)
from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

__all__ = [
    "FICHE_HEADINGS",
    "REGISTER_FORMAT",
    "ActivitySheet",
    "ActivityVersion",
    "ClientContract",
    "FlowLogSummary",
    "ObservedFlow",
    "PublicSigningKey",
    "Register",
    "SignedCheckpoint",
    "build_register",
    "register_json_schema",
    "render_csv",
    "render_html",
    "render_json",
]

REGISTER_FORMAT: Literal["aiguillage-registre/1"] = "aiguillage-registre/1"
FICHE_HEADINGS = _wording.FICHE_HEADINGS


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
Count = Annotated[int, Field(ge=0)]

_FROZEN = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)


class ObservedFlow(BaseModel):
    """Flows of one kind and operation to one recipient, aggregated over the flow log."""

    model_config = _FROZEN

    activity_version: int = Field(
        ge=0,
        description="Version of the activity's fiche the flows ran under (see `history`); the "
        "flows are judged against what that version declared.",
    )
    flow: FlowKind = Field(description="Flow kind, as claimed by the activity.")
    operation: Operation = Field(description="What the flows did with the data.")
    recipient_kind: RecipientKind = Field(description="Kind of recipient or reader.")
    recipient: str | None = Field(
        description="Client id for clients, the import source (`aaf`...) for imports; null for "
        "people, who are counted by kind, never listed."
    )
    recipient_name: str | None = Field(description="Name of the client, when there is one.")
    entries: Count = Field(description="Number of flow-log entries aggregated here.")
    persons: Count = Field(description="Sum over the entries of the persons each concerned.")
    failures: Count = Field(description="Entries among them whose outcome was not a success.")
    data_categories: list[DataCategory] = Field(
        description="Data categories the flows carried (never values)."
    )
    undeclared_categories: list[DataCategory] = Field(
        default_factory=list,
        description="Those of `data_categories` that the version of the fiche the flows ran "
        "under (`activity_version`) did not declare: the fiche must declare them, or such flows "
        "must stop. Empty when the flows kept to their fiche.",
    )
    structures: list[str] = Field(description="UAIs of the schools concerned.")
    first_at: UtcDatetime = Field(description="Time of the first flow (UTC).")
    last_at: UtcDatetime = Field(description="Time of the last flow (UTC).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last_at < self.first_at:
            raise ValueError(f"last_at ({self.last_at}) is before first_at ({self.first_at})")
        return self


class ActivityVersion(BaseModel):
    """A version of a fiche as recorded by the hub when it first ran under it."""

    model_config = _FROZEN

    version: int = Field(ge=1, description="Version number, from 1.")
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the canonical JSON of the fiche."
    )
    recorded_at: UtcDatetime = Field(description="When the hub recorded this version (UTC).")


class PublicSigningKey(BaseModel):
    """An Ed25519 public key of the flow log, as a JWK (RFC 8037)."""

    model_config = _FROZEN

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    kid: str = Field(description="Key id, as checkpoints name it (`key_id`).")
    x: str = Field(description="The public key, base64url without padding.")


class SignedCheckpoint(BaseModel):
    """The last signed checkpoint, for anyone holding the hub's public key to check."""

    model_config = _FROZEN

    message: str = Field(
        description="The exact text the signature covers (UTF-8): the JSON object, keys sorted, "
        "no spaces, of the checkpoint's `id`, `first_seq`, `last_seq`, `head_hash` (the chained "
        "HMAC of entry `last_seq`), `previous_signature` (of the checkpoint before it; empty for "
        "the first), `key_id` and `signed_at` (UTC, with a Z)."
    )
    signature: str = Field(description="Ed25519 signature of `message`, base64url, no padding.")
    public_key: PublicSigningKey = Field(
        description="The key `message` names; compare it with the hub's published public key "
        "before trusting it."
    )


class FlowLogSummary(BaseModel):
    """State of the flow log when the register was produced."""

    model_config = _FROZEN

    retention_months: int = Field(ge=1, description="Retention of flow-log entries, in months.")
    entries: Count = Field(description="Entries currently kept.")
    oldest_at: UtcDatetime | None = Field(description="Time of the oldest entry kept.")
    newest_at: UtcDatetime | None = Field(description="Time of the newest entry.")
    last_checkpoint_seq: int | None = Field(
        description="Last sequence number sealed by a signed checkpoint."
    )
    last_checkpoint_at: UtcDatetime | None = Field(description="When that checkpoint was signed.")
    purged_entries: Count = Field(description="Entries purged so far under the retention rule.")
    last_purge_at: UtcDatetime | None = Field(description="Time of the last purge.")
    verified: bool | None = Field(
        description="Whether the chain and checkpoints verified for this export; null when not "
        "verified."
    )
    verification_message: str | None = Field(description="Outcome of the verification.")
    last_checkpoint: SignedCheckpoint | None = Field(
        default=None,
        description="The last signed checkpoint, verifiable with the public key alone; kept "
        "from one export to the next (off the hub), they show that what was sealed was not "
        "rewritten since. Null before the first checkpoint.",
    )


class ClientContract(BaseModel):
    """An ENT client's contract under an activity: a recipient (art. 30(1)(d)) and what it
    may read, listed from the day it is made, whether the client has read anything or not."""

    model_config = _FROZEN

    client_id: str = Field(description="Client id, as observed flows name it.")
    name: str = Field(description="Who the client is (vendor, product).")
    issuer: str | None = Field(
        description="The configured issuer whose tokens carry the contract; null for a client "
        "of the hub's own token endpoint."
    )
    structures: list[str] = Field(description="UAIs of the schools the contract covers.")
    scopes: list[str] = Field(description="Scopes the contract grants.")
    data_categories: list[DataCategory] = Field(
        description="Data categories those scopes open: what the client may read."
    )
    created_at: UtcDatetime = Field(description="When the contract was registered (UTC).")
    revoked_at: UtcDatetime | None = Field(
        description="When it was revoked (UTC): nothing is served under it since; null while "
        "in force."
    )


class ActivitySheet(ActivityFields):
    """One fiche of the register: the activity as declared, its versions, the ENT clients under
    contract and the observed flows."""

    version: int = Field(ge=1, description="Current version: the highest recorded, 1 if none.")
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the fiche as declared now; a digest absent from `history` means "
        "the hub has not run under this version yet.",
    )
    history: list[ActivityVersion] = Field(description="Recorded versions, oldest first.")
    observed_flows: list[ObservedFlow] = Field(
        description="Flows run under this activity over the flow log's retention period."
    )
    client_contracts: list[ClientContract] = Field(
        default_factory=list,
        description="The ENT clients whose contract names this activity, revoked ones "
        "included, oldest first: the recipients it declares by name, with what each may "
        "read, whether or not it has read anything yet (its flows are in `observed_flows`).",
    )


class Register(BaseModel):
    """The record of processing activities (GDPR art. 30), as produced by the hub."""

    model_config = _FROZEN

    format: Literal["aiguillage-registre/1"] = Field(
        default=REGISTER_FORMAT, description="Format and version of this document."
    )
    generated_at: UtcDatetime = Field(description="When the register was produced (UTC).")
    organisation: Organisation = Field(description="The organisation keeping the register.")
    dpo: DpoContact = Field(description="The data protection officer.")
    flow_log: FlowLogSummary = Field(description="State of the flow log.")
    activities: list[ActivitySheet] = Field(description="One fiche per processing activity.")


def build_register(
    config: RegistreConfig,
    *,
    flows: Mapping[str, Sequence[ObservedFlow]],
    versions: Mapping[str, Sequence[ActivityVersion]],
    flow_log: FlowLogSummary,
    now: datetime,
    declared: Mapping[tuple[str, int], Collection[DataCategory]] | None = None,
    contracts: Mapping[str, Sequence[ClientContract]] | None = None,
) -> Register:
    """The register for ``config``; ``flows``, ``versions`` and ``contracts`` (the ENT clients'
    contracts, whichever have read something) are keyed by activity id.

    A flow is judged against the data categories its fiche declared in the version it ran
    under: ``declared`` maps (activity id, version) to them, as recorded; a version it does not
    hold is judged against the fiche as declared now.

    Flows or versions of an activity absent from the file raise :class:`RegistreConfigError`:
    a fiche that flows ran under must stay in the file (``status = "retired"``).
    """
    in_file = {activity.id for activity in config.activities}
    unknown = sorted((set(flows) | set(versions)) - in_file)
    if unknown:
        raise RegistreConfigError(
            f"the hub recorded flows or versions under activities absent from the register file: "
            f'{", ".join(unknown)}; keep their fiches with status = "retired"'
        )
    recorded = declared or {}
    sheets = []
    for activity in config.activities:
        history = sorted(versions.get(activity.id, ()), key=lambda v: v.version)
        now_declared = frozenset(activity.data_categories)
        observed = sorted(
            (
                flow.model_copy(
                    update={
                        "undeclared_categories": _undeclared(
                            flow, recorded.get((activity.id, flow.activity_version), now_declared)
                        )
                    }
                )
                for flow in flows.get(activity.id, ())
            ),
            key=lambda f: (
                f.flow,
                f.operation,
                f.recipient_kind,
                f.recipient or "",
                f.activity_version,
                f.first_at,
            ),
        )
        sheets.append(
            ActivitySheet.model_validate(
                {
                    **dict(activity),
                    "version": history[-1].version if history else 1,
                    "digest": activity.digest,
                    "history": history,
                    "observed_flows": observed,
                    "client_contracts": sorted(
                        (contracts or {}).get(activity.id, ()),
                        key=lambda c: (c.created_at, c.client_id),
                    ),
                }
            )
        )
    return Register(
        generated_at=now,
        organisation=config.organisation,
        dpo=DpoContact.model_validate(config.dpo.model_dump(exclude={"accounts"})),
        flow_log=flow_log,
        activities=sheets,
    )


def _undeclared(flow: ObservedFlow, declared: Collection[DataCategory]) -> list[DataCategory]:
    return [category for category in flow.data_categories if category not in declared]


def register_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Register`, as published in ``specs/schema/registre.json``.

    Serialization mode: a rendered register always carries every field, defaults included.
    """
    schema = Register.model_json_schema(mode="serialization")
    schema["title"] = "Register"
    schema["$id"] = "https://aiguillage.invalid/specs/schema/registre.json"
    return schema


# --- renderings -----------------------------------------------------------------------------


def render_json(register: Register) -> bytes:
    """The register as JSON (UTF-8, indented by 2, UTC times with a ``Z``)."""
    document = register.model_dump(mode="python")
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z) + b"\n"


def render_csv(register: Register, directory: Path) -> list[Path]:
    """Write ``organisation.csv``, then ``<id>.csv`` and ``<id>-flux.csv`` per activity.

    UTF-8 with a BOM and ``;`` as delimiter, as a French spreadsheet expects; cells holding
    several values join them with `` | ``. A cell a spreadsheet would read as a formula (it
    starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: a phone number in
    ``+33`` format, a name from the register file) is written after a ``'``, which shows it as
    text. Returns the paths written, in that order.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = [_write_csv(directory / "organisation.csv", _wording.common_table(register))]
    for sheet in register.activities:
        rows = [["Rubrique", "Valeur"]] + [
            [heading, _wording.JOIN.join(values)] for heading, values in _wording.fiche(sheet)
        ]
        written.append(_write_csv(directory / f"{sheet.id}.csv", rows))
        flux = [list(_wording.FLOW_COLUMNS)] + [_wording.flow_row(f) for f in sheet.observed_flows]
        written.append(_write_csv(directory / f"{sheet.id}-flux.csv", flux))
    return written


#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _as_text(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out, delimiter=";").writerows([_as_text(c) for c in row] for row in rows)
    return path


def render_html(register: Register) -> str:
    """One self-contained, printable HTML5 document: the common page, then one fiche per page."""
    return _template().render(
        register=register,
        generated_at=_wording.when(register.generated_at),
        common=_wording.common_rows(register),
        fiches=[(sheet, _wording.fiche(sheet)) for sheet in register.activities],
        activity_columns=_wording.ACTIVITY_COLUMNS,
        activity_row=_wording.activity_row,
        flow_columns=_wording.FLOW_COLUMNS,
        flow_row=_wording.flow_row,
    )


@cache
def _template() -> Any:
    environment = Environment(
        loader=PackageLoader("annuaire.registre", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("register.html.j2")
