"""The processing activities ("traitements") the hub runs under, declared in one TOML file.

The file holds what the art. 30 register needs and the hub cannot infer: the common page of the
CNIL model (``[organisation]``, ``[dpo]``), the flow-log retention and one ``[[activities]]``
table per fiche. Every data flow the hub brokers belongs to one activity through its
:class:`FlowKind`. ``example.toml`` beside this module is a complete, commented example::

    [organisation]                # the common page of the CNIL model
    name = "..."                  # required; address, email required; phone optional
    [dpo]
    name = "..."                  # required; organisation, email required; phone optional
    accounts = ["dpo@..."]        # guichet-agent e-mails allowed on the DPO endpoints (may be [])
    [flow_log]
    retention_months = 12         # 6..12 (CNIL délibération 2021-122); default 12
    [[activities]]
    id = "alimentation-ent"       # ^[a-z0-9][a-z0-9-]{0,63}$, unique, not "organisation"
    name, responsible, data_subject_rights = "..."
    register_kind = "controller"  # controller | processor (then `processor` is required)
    status = "active"             # draft | active | retired; default active
    created, updated = 2026-09-01 # TOML dates, updated >= created
    flows = ["api-client"]        # FlowKind values, at least one
    controller = { name, kind, uai?, address, email, phone? }   # kind: ControllerKind
    joint_controllers = [...]     # same shape; default []
    processor = { name, contract }                               # optional
    sub_processors = [{ name, service, location, contract, authorised_on }]   # default []
    purposes = ["main purpose", "sub-purpose"]                   # at least one
    legal_basis = { article = "6(1)(e)", reference = "..." }
    data_subjects = ["pupils"]    # DataSubject values, at least one
    data_categories = ["identity.name"]   # DataCategory values, at least one
    sensitive_data = false        # art. 9 data; when true, sensitive_data_note is required
    recipients = [{ category, name, country, contract? }]   # at least one; ISO 3166-1 alpha-2
    transfers_outside_eu = [{ recipient, country, safeguard, documentation }]   # default []
    retention = [{ data_category, period, deletion_trigger }]   # exactly the declared categories
    security_measures = { checklist = ["access_control"], details = "..." }
    dpia = { required = true, reference = "...", done_on = 2026-06-30, next_review = 2027-06-30 }

Rules across fields: ids are unique (and no id is another one + ``-flux``, the name of its flows
file in the CSV export); among the activities that are not retired, each of
``import``, ``api-educonnect``, ``api-guichet-agent`` and ``registre`` is claimed by exactly one,
``api-client`` by at least one, ``api-operator`` by at most one (a retired fiche stays in the
register with its history but no flow runs under it); retention rules cover every declared data
category and no other; a transfer outside the EU names a country outside the EU/EEA; the
activity claiming ``registre`` declares the ``connection`` category; a required DPIA has a
reference and its dates.

:func:`load_registre` reads and validates the file; every problem, whatever its kind (missing
file, TOML syntax, a field, a rule), raises :class:`RegistreConfigError`, one line per problem,
each naming the file and the field path (``activities[2] (id "x") → legal_basis.article``).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from annuaire.errors import ConfigurationError
from annuaire.schema.uai import UAI_PATTERN

from .vocabulary import (
    EU_EEA,
    ActivityStatus,
    ControllerKind,
    DataCategory,
    DataSubject,
    FlowKind,
    LegalBasis,
    RegisterKind,
    SecurityMeasure,
)

__all__ = [
    "EXAMPLE_FILE",
    "Activity",
    "ActivityFields",
    "Dpia",
    "Dpo",
    "DpoContact",
    "FlowLogPolicy",
    "LegalBasisRef",
    "Organisation",
    "Party",
    "Processor",
    "Recipient",
    "RegistreConfig",
    "RegistreConfigError",
    "RetentionRule",
    "SecurityMeasures",
    "SubProcessor",
    "Transfer",
    "load_registre",
]

EXAMPLE_FILE = Path(__file__).with_name("example.toml")


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^@\s]+@[^@\s]+\.\w+$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Uai = Annotated[str, StringConstraints(pattern=UAI_PATTERN)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]

_FROZEN = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)


class _Problems(ValueError):
    """Several problems found by one validator, each at a field path relative to the model.

    Pydantic keeps the exception in the error's context, so :func:`load_registre` can report
    each problem at its own path instead of the model's.
    """

    def __init__(self, problems: Sequence[tuple[tuple[str | int, ...], str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{_path(loc)}: {msg}" for loc, msg in self.problems))


def _check(problems: list[tuple[tuple[str | int, ...], str]]) -> None:
    if problems:
        raise _Problems(problems)


# --- the common page ------------------------------------------------------------------------


class Organisation(BaseModel):
    """The organisation that keeps the register (common page of the CNIL model)."""

    model_config = _FROZEN

    name: Text = Field(description="Name of the organisation keeping the register.")
    address: Text = Field(description="Postal address.")
    email: Email = Field(description="Contact e-mail.")
    phone: Text | None = Field(default=None, description="Contact phone number.")


class DpoContact(BaseModel):
    """The data protection officer, as shown in the register."""

    model_config = _FROZEN

    name: Text = Field(description="Name of the DPO (person or service).")
    organisation: Text = Field(description="Organisation or company of the DPO.")
    email: Email = Field(description="Contact e-mail of the DPO.")
    phone: Text | None = Field(default=None, description="Contact phone number of the DPO.")


class Dpo(DpoContact):
    """The DPO with the accounts allowed on the DPO endpoints (access configuration)."""

    accounts: list[Email] = Field(
        default_factory=list,
        description="Guichet-agent e-mails allowed on the DPO endpoints (compared lower-case).",
    )

    @field_validator("accounts")
    @classmethod
    def _lower_case(cls, accounts: list[str]) -> list[str]:
        return [account.lower() for account in accounts]


class FlowLogPolicy(BaseModel):
    """Retention of the flow log."""

    model_config = _FROZEN

    retention_months: int = Field(
        default=12,
        ge=6,
        le=12,
        description="How long flow-log entries are kept (CNIL délibération 2021-122: 6 to 12).",
    )


# --- the parts of a fiche -------------------------------------------------------------------


class Party(BaseModel):
    """A controller or joint controller."""

    model_config = _FROZEN

    name: Text = Field(description="Name of the controller.")
    kind: ControllerKind = Field(description="What kind of controller it is.")
    uai: Uai | None = Field(default=None, description="UAI of the school (chef d'établissement).")
    address: Text = Field(description="Postal address.")
    email: Email = Field(description="Contact e-mail.")
    phone: Text | None = Field(default=None, description="Contact phone number.")
    dpo: DpoContact | None = Field(
        default=None,
        description="The controller's DPO (art. 30(1)(a); for a processor's record, art. "
        "30(2)(a)), e.g. the académie's DPD for a chef d'établissement or a recteur.",
    )


class Processor(BaseModel):
    """The processor acting for the controller (art. 28), with its contract."""

    model_config = _FROZEN

    name: Text = Field(description="Processor acting on the controller's instructions (art. 28).")
    contract: Text = Field(description="Reference of the art. 28 contract or convention.")


class SubProcessor(BaseModel):
    """A sub-processor (hosting, support...) authorised by the controllers (art. 28(2))."""

    model_config = _FROZEN

    name: Text = Field(description="Name of the sub-processor.")
    service: Text = Field(description="What it does (hosting, support, monitoring...).")
    location: Country = Field(description="Country where it processes the data (ISO 3166-1).")
    contract: Text = Field(description="Reference of the contract binding it.")
    authorised_on: date = Field(description="Date of the controllers' authorisation (art. 28(2)).")


class LegalBasisRef(BaseModel):
    """The legal basis of the processing (art. 6) and the text it rests on."""

    model_config = _FROZEN

    article: LegalBasis = Field(description="GDPR art. 6(1) point.")
    reference: Text = Field(description="The text the processing rests on.")


class Recipient(BaseModel):
    """A category of recipients of the data."""

    model_config = _FROZEN

    category: Text = Field(description="Category of recipient (internal service, ENT vendor...).")
    name: Text = Field(description="Name of the recipient or of the group of recipients.")
    country: Country = Field(description="Country of the recipient (ISO 3166-1 alpha-2).")
    contract: Text | None = Field(default=None, description="Reference of the contract, if any.")


class Transfer(BaseModel):
    """A transfer to a third country (outside the EU/EEA) and its safeguard."""

    model_config = _FROZEN

    recipient: Text = Field(description="Recipient of the transfer.")
    country: Country = Field(description="Third country (ISO 3166-1 alpha-2, outside the EU/EEA).")
    safeguard: Text = Field(description="Safeguard: adequacy decision, SCC, BCR...")
    documentation: Text = Field(description="Where the safeguard is documented.")

    @field_validator("country")
    @classmethod
    def _outside_eu(cls, country: str) -> str:
        if country in EU_EEA:
            raise ValueError(f"{country} is in the EU/EEA: a flow there is not a transfer")
        return country


class RetentionRule(BaseModel):
    """How long one data category is kept, and what ends it."""

    model_config = _FROZEN

    data_category: DataCategory = Field(description="The data category the rule applies to.")
    period: Text = Field(description="How long the data are kept, or the criterion used.")
    deletion_trigger: Text = Field(description="What starts the deletion.")


class SecurityMeasures(BaseModel):
    """Security measures (art. 32): the CNIL checklist and a description."""

    model_config = _FROZEN

    checklist: list[SecurityMeasure] = Field(
        min_length=1, description="Measures of the CNIL checklist that are in place."
    )
    details: Text = Field(description="General description of the measures (art. 32(1)).")


class Dpia(BaseModel):
    """Data protection impact assessment (art. 35)."""

    model_config = _FROZEN

    required: bool = Field(description="Whether a DPIA is required for this activity.")
    reference: Text | None = Field(default=None, description="Reference of the DPIA document.")
    done_on: date | None = Field(default=None, description="Date the DPIA was completed.")
    next_review: date | None = Field(default=None, description="Date of its next review.")

    @model_validator(mode="after")
    def _complete_when_required(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.required:
            for name in ("reference", "done_on", "next_review"):
                if getattr(self, name) is None:
                    problems.append(((name,), "required when the DPIA is required"))
        if self.done_on and self.next_review and self.next_review <= self.done_on:
            problems.append((("next_review",), f"must come after done_on ({self.done_on})"))
        _check(problems)
        return self


# --- the fiche ------------------------------------------------------------------------------


class ActivityFields(BaseModel):
    """The fields of a fiche as declared. :class:`Activity` adds the rules and the digest."""

    model_config = _FROZEN

    id: Slug = Field(description="Stable identifier of the activity (slug).")
    name: Text = Field(description="Name of the processing activity.")
    register_kind: RegisterKind = Field(description="Controller's (30(1)) or processor's (30(2)).")
    status: ActivityStatus = Field(default=ActivityStatus.ACTIVE, description="Fiche status.")
    created: date = Field(description="Date the fiche was created.")
    updated: date = Field(description="Date of the last update of the fiche.")
    responsible: Text = Field(description="Person or service in charge of the fiche.")
    flows: list[FlowKind] = Field(min_length=1, description="Flow kinds run under this activity.")
    controller: Party = Field(description="The controller.")
    joint_controllers: list[Party] = Field(default_factory=list, description="Joint controllers.")
    processor: Processor | None = Field(default=None, description="The processor, if any.")
    sub_processors: list[SubProcessor] = Field(
        default_factory=list, description="Sub-processors authorised by the controllers."
    )
    purposes: list[Text] = Field(min_length=1, description="Main purpose, then sub-purposes.")
    legal_basis: LegalBasisRef = Field(description="Legal basis (art. 6) and its text.")
    data_subjects: list[DataSubject] = Field(
        min_length=1, description="Categories of data subjects."
    )
    data_categories: list[DataCategory] = Field(
        min_length=1, description="Categories of personal data processed."
    )
    sensitive_data: bool = Field(default=False, description="Whether art. 9 data are processed.")
    sensitive_data_note: Text | None = Field(
        default=None, description="Which sensitive data and why (required when there are some)."
    )
    recipients: list[Recipient] = Field(min_length=1, description="Categories of recipients.")
    transfers_outside_eu: list[Transfer] = Field(
        default_factory=list, description="Transfers to third countries."
    )
    retention: list[RetentionRule] = Field(
        min_length=1, description="Retention period of each declared data category."
    )
    security_measures: SecurityMeasures = Field(description="Security measures (art. 32).")
    dpia: Dpia = Field(description="Data protection impact assessment.")
    data_subject_rights: Text = Field(description="How the rights of art. 15 to 21 are exercised.")


class Activity(ActivityFields):
    """One processing activity, validated: the source of one fiche of the register."""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        # The CSV export writes organisation.csv beside the <id>.csv of each activity.
        if value == "organisation":
            raise ValueError("'organisation' is reserved (name of the common page)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.updated < self.created:
            problems.append((("updated",), f"{self.updated} is before created ({self.created})"))
        for name in ("flows", "data_categories", "data_subjects"):
            values: list[str] = getattr(self, name)
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                problems.append(((name,), f"listed twice: {', '.join(twice)}"))
        if self.register_kind is RegisterKind.PROCESSOR and self.processor is None:
            problems.append((("processor",), "required in a processor's record (art. 30(2))"))
        if self.sensitive_data and self.sensitive_data_note is None:
            problems.append((("sensitive_data_note",), "required when sensitive_data is true"))
        covered = [rule.data_category for rule in self.retention]
        for missing in (c for c in self.data_categories if c not in covered):
            problems.append((("retention",), f"no rule for the declared category '{missing}'"))
        for i, category in enumerate(covered):
            if category not in self.data_categories:
                problems.append(
                    (("retention", i, "data_category"), f"'{category}' is not in data_categories")
                )
            elif covered.index(category) != i:
                problems.append((("retention", i, "data_category"), f"'{category}' ruled twice"))
        if FlowKind.REGISTRE in self.flows and DataCategory.CONNECTION not in self.data_categories:
            problems.append(
                (("data_categories",), "the activity claiming 'registre' must declare 'connection'")
            )
        _check(problems)
        return self

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the fiche: changes with any field."""
        fields = self.model_dump(mode="json")
        # A controller that names no DPO is dumped as before ``dpo`` existed: the fiches that
        # do not use it keep their digest, so no deployment records a version that changed
        # nothing.
        for party in [fields["controller"], *fields["joint_controllers"]]:
            if party["dpo"] is None:
                del party["dpo"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class RegistreConfig(BaseModel):
    """The whole file: the common page, the flow-log policy and the activities."""

    model_config = _FROZEN

    organisation: Organisation
    dpo: Dpo
    flow_log: FlowLogPolicy = Field(default_factory=FlowLogPolicy)
    activities: list[Activity] = Field(min_length=1)

    @model_validator(mode="after")
    def _claims(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        first: dict[str, int] = {}
        for i, activity in enumerate(self.activities):
            if activity.id in first:
                problems.append(
                    (
                        ("activities", i, "id"),
                        f"'{activity.id}' is already the id of activities[{first[activity.id]}]",
                    )
                )
            first.setdefault(activity.id, i)
        for i, activity in enumerate(self.activities):
            # <id>-flux.csv holds the flows of <id> in the CSV export.
            if activity.id.endswith("-flux") and activity.id.removesuffix("-flux") in first:
                problems.append(
                    (
                        ("activities", i, "id"),
                        f"'{activity.id}' would clash with the flows file "
                        f"of '{activity.id.removesuffix('-flux')}' in the CSV export",
                    )
                )
        claims: dict[FlowKind, list[int]] = {kind: [] for kind in FlowKind}
        for i, activity in enumerate(self.activities):
            if activity.status is not ActivityStatus.RETIRED:
                for kind in activity.flows:
                    claims[kind].append(i)
        for kind, claimants in claims.items():
            if not claimants and kind is not FlowKind.API_OPERATOR:
                problems.append(
                    (("activities",), f"no activity in force (active or draft) claims '{kind}'")
                )
            if len(claimants) > 1 and kind is not FlowKind.API_CLIENT:
                ids = ", ".join(f"'{self.activities[i].id}'" for i in claimants)
                for i in claimants[1:]:
                    problems.append(
                        (
                            ("activities", i, "flows"),
                            f"'{kind}' is claimed by {ids}: only one activity in force may "
                            "claim it (retire the others)",
                        )
                    )
        _check(problems)
        return self

    def activity(self, activity_id: str) -> Activity:
        """The activity with this id, or :class:`RegistreConfigError`."""
        for activity in self.activities:
            if activity.id == activity_id:
                return activity
        declared = ", ".join(a.id for a in self.activities)
        raise RegistreConfigError(
            f"no activity '{activity_id}' in the register; declared: {declared}"
        )

    def activity_for(self, kind: FlowKind) -> Activity | None:
        """The one non-retired activity claiming ``kind`` (None: ``api-operator`` unclaimed).

        ``api-client`` may be claimed by several activities: use :meth:`client_activities`.
        """
        if kind is FlowKind.API_CLIENT:
            raise ValueError("several activities may claim 'api-client': use client_activities()")
        for activity in self.activities:
            if kind in activity.flows and activity.status is not ActivityStatus.RETIRED:
                return activity
        return None

    def client_activities(self) -> list[Activity]:
        """The non-retired activities claiming ``api-client``, in file order."""
        return [
            a
            for a in self.activities
            if FlowKind.API_CLIENT in a.flows and a.status is not ActivityStatus.RETIRED
        ]


# --- loading --------------------------------------------------------------------------------


class RegistreConfigError(ConfigurationError):
    """The register file is missing or invalid; ``problems`` holds one line per problem."""

    def __init__(
        self, message: str, *, path: Path | None = None, problems: Sequence[str] = ()
    ) -> None:
        self.path = path
        self.problems = list(problems) or [message]
        super().__init__(message)


def load_registre(path: Path) -> RegistreConfig:
    """Read and validate the register file; any problem raises :class:`RegistreConfigError`."""
    where = f"registre file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistreConfigError(f"{where}: not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistreConfigError(f"{where}: cannot be read ({exc})", path=path) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistreConfigError(f"{where}: TOML syntax error: {exc}", path=path) from None
    try:
        return RegistreConfig.model_validate(data)
    except ValidationError as exc:
        problems = _describe(exc, data)
        lines = [f"{where}: {problem}" for problem in problems]
        raise RegistreConfigError("\n".join(lines), path=path, problems=problems) from None


def _describe(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _Problems):
            problems += [_at(data, loc + sub, msg) for sub, msg in cause.problems]
            continue
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if error["type"] != "missing" and isinstance(value, str | int | float | date):
            message += f", got {value!r}"
        problems.append(_at(data, loc, message))
    return problems


def _at(data: dict[str, Any], loc: tuple[str | int, ...], message: str) -> str:
    """``activities[2] (id "x") → field.path: message``."""
    if len(loc) >= 2 and loc[0] == "activities" and isinstance(loc[1], int):
        head = f"activities[{loc[1]}]"
        activities = data.get("activities")
        if isinstance(activities, list) and loc[1] < len(activities):
            raw = activities[loc[1]]
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                head += f' (id "{raw["id"]}")'
        rest = loc[2:]
        return f"{head} → {_path(rest)}: {message}" if rest else f"{head}: {message}"
    return f"{_path(loc) or '(file)'}: {message}"


def _path(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
