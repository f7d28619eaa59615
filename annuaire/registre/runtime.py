"""The register as the running hub holds it: declarations, keys, flow log, fiche versions.

:func:`open_registre` is what every entry point calls first (``aiguillage serve``, the imports,
the ``registre`` commands): it validates the register file (a bad field stops the hub with a
message naming it), loads the keys, and records a new version of every fiche whose content
changed since the hub last ran, so that each flow entry names the exact fiche it ran under.

It also reads back what the register document needs from the database: the fiche versions,
the observed flows (aggregated per activity and fiche version, flow, operation and recipient;
persons are counted, never listed), what each version of a fiche declared and the state of
the flow log.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, null, select, true
from sqlalchemy.exc import IntegrityError

from annuaire.encoding import b64url_encode
from annuaire.errors import ConfigurationError
from annuaire.schema import ApiClient, FlowPurge, ProcessingActivity
from annuaire.settings import Settings
from annuaire.store.engine import write_transaction

from .activities import EXAMPLE_FILE, Activity, RegistreConfig, load_registre
from .flowlog import CHAIN, CHECKPOINT, ENTRY, FlowLog, checkpoint_message
from .keys import RegistreKeys, load_keys
from .person import PersonReport, person_report
from .register import (
    ActivityVersion,
    ClientContract,
    FlowLogSummary,
    ObservedFlow,
    PublicSigningKey,
    Register,
    SignedCheckpoint,
    build_register,
)
from .verify import Verification
from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

__all__ = [
    "Registre",
    "client_contracts",
    "client_names",
    "declared_categories",
    "open_registre",
    "register_file",
    "registre_config",
]

_VERSIONS = ProcessingActivity.__table__  # type: ignore[attr-defined]
_PURGES = FlowPurge.__table__  # type: ignore[attr-defined]
_CLIENTS = ApiClient.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Registre:
    config: RegistreConfig
    keys: RegistreKeys
    log: FlowLog

    def activity_id(self, kind: FlowKind) -> str:
        """The activity that flows of ``kind`` (not ``api-client``) run under."""
        activity = self.config.activity_for(kind)
        if activity is None:
            raise ConfigurationError(f"no activity of the register claims '{kind}'")
        return activity.id

    @functools.cached_property
    def client_activity_ids(self) -> frozenset[str]:
        """The activities an ENT client's contract may run under (asked on every request)."""
        return frozenset(self.client_activities)

    @functools.cached_property
    def client_activities(self) -> dict[str, Activity]:
        """Those activities by id, as the register declares them now."""
        return {a.id: a for a in self.config.client_activities()}

    def is_dpo(self, email: str | None) -> bool:
        return email is not None and email.lower() in self.config.dpo.accounts

    def person_report(self, connection: Connection, person_id: uuid.UUID) -> PersonReport:
        """Who received this person's data, as far back as the log's retention goes."""
        return person_report(
            connection,
            self.keys,
            person_id,
            retention_months=self.config.flow_log.retention_months,
            client_names=client_names(connection),
        )

    def register(
        self,
        connection: Connection,
        *,
        now: dt.datetime | None = None,
        verification: Verification | None = None,
    ) -> Register:
        """The art. 30 register as of now, with the flows the log holds."""
        return build_register(
            self.config,
            flows=observed_flows(connection),
            versions=activity_versions(connection),
            flow_log=_summary(connection, self.config, verification, self.keys),
            now=now or dt.datetime.now(dt.UTC),
            declared=declared_categories(connection),
            contracts=client_contracts(connection),
        )


def register_file(settings: Settings) -> Path:
    """The register file in force: the configured one, or the bundled example outside
    production."""
    if settings.registre_file is not None:
        return settings.registre_file
    if settings.environment == "production":
        raise ConfigurationError(
            "no register of processing activities: set registre_file (AIGUILLAGE_REGISTRE_FILE) "
            "to the TOML file describing them (the bundled example shows the format: "
            f"{EXAMPLE_FILE})"
        )
    return EXAMPLE_FILE


def registre_config(settings: Settings) -> RegistreConfig:
    config = load_registre(register_file(settings))
    if settings.api_open_access and config.activity_for(FlowKind.API_OPERATOR) is None:
        raise ConfigurationError(
            f"registre file {register_file(settings)}: the API serves unauthenticated requests "
            "(no token issuer, outside production), so one activity must claim 'api-operator'"
        )
    return config


def open_registre(
    settings: Settings, engine: Engine, *, now: dt.datetime | None = None
) -> Registre:
    """Validate the register, load the keys, record new fiche versions; the running registre."""
    config = registre_config(settings)
    keys = load_keys(settings)
    versions = _record_versions(engine, config, now or dt.datetime.now(dt.UTC))
    log = FlowLog(
        keys,
        versions,
        checkpoint_every=settings.registre_checkpoint_every,
        checkpoint_interval=dt.timedelta(seconds=settings.registre_checkpoint_interval_s),
    )
    return Registre(config, keys, log)


def _record_versions(engine: Engine, config: RegistreConfig, now: dt.datetime) -> dict[str, int]:
    """The current version of each fiche, recording a new one for any that changed.

    Read first: a job whose register did not change takes no write lock for it (on SQLite it
    would wait for another writer only to find nothing to write)."""
    with engine.connect() as connection:
        latest = _latest_versions(connection)
    if all(latest.get(a.id, (0, None))[1] == a.digest for a in config.activities):
        return {a.id: latest[a.id][0] for a in config.activities}
    for _attempt in range(3):
        try:
            with write_transaction(engine) as connection:
                return _versions_in(connection, config, now)
        except IntegrityError:
            continue  # another worker recorded the same version at the same time: read it
    raise ConfigurationError("could not record the versions of the register's fiches")


def _versions_in(
    connection: Connection, config: RegistreConfig, now: dt.datetime
) -> dict[str, int]:
    latest = _latest_versions(connection)
    versions: dict[str, int] = {}
    for activity in config.activities:
        version, digest = latest.get(activity.id, (0, None))
        if digest != activity.digest:
            version += 1
            connection.execute(
                insert(_VERSIONS),
                [
                    {
                        "activity_id": activity.id,
                        "version": version,
                        "digest": activity.digest,
                        "document": activity.model_dump(mode="json"),
                        "recorded_at": now,
                    }
                ],
            )
        versions[activity.id] = version
    return versions


def _latest_versions(connection: Connection) -> dict[str, tuple[int, str]]:
    """Activity id -> its latest recorded version and digest."""
    return {
        row.activity_id: (row.version, row.digest)
        for row in connection.execute(
            select(_VERSIONS.c.activity_id, _VERSIONS.c.version, _VERSIONS.c.digest).order_by(
                _VERSIONS.c.activity_id, _VERSIONS.c.version
            )
        )
    }


def activity_versions(connection: Connection) -> dict[str, list[ActivityVersion]]:
    history: dict[str, list[ActivityVersion]] = defaultdict(list)
    for row in connection.execute(
        select(
            _VERSIONS.c.activity_id,
            _VERSIONS.c.version,
            _VERSIONS.c.digest,
            _VERSIONS.c.recorded_at,
        ).order_by(_VERSIONS.c.activity_id, _VERSIONS.c.version)
    ):
        history[row.activity_id].append(
            ActivityVersion(version=row.version, digest=row.digest, recorded_at=row.recorded_at)
        )
    return dict(history)


def declared_categories(connection: Connection) -> dict[tuple[str, int], frozenset[DataCategory]]:
    """(activity id, version) -> the data categories that version of the fiche declared, as
    recorded when the hub first ran under it."""
    known = {category.value for category in DataCategory}
    declared = {}
    for row in connection.execute(
        select(_VERSIONS.c.activity_id, _VERSIONS.c.version, _VERSIONS.c.document)
    ):
        document = row.document if isinstance(row.document, dict) else {}
        categories = document.get("data_categories")
        declared[(row.activity_id, row.version)] = frozenset(
            DataCategory(c)
            for c in (categories if isinstance(categories, list) else [])
            if c in known
        )
    return declared


_PEOPLE = frozenset(
    k.value
    for k in (
        RecipientKind.GUARDIAN,
        RecipientKind.PUPIL,
        RecipientKind.STAFF,
        RecipientKind.OPERATOR,
        RecipientKind.DPO,
    )
)


def observed_flows(connection: Connection) -> dict[str, list[ObservedFlow]]:
    """Flows of the log aggregated per activity and version of its fiche, flow, operation and
    recipient.

    People are grouped by kind (their pseudonyms are left out of the key); clients and import
    jobs by their id. Categories and structures are the union over the group's entries. The
    database aggregates (three grouped passes over the log, whatever its size); only the
    groups come back.
    """
    recipient = case(
        (ENTRY.c.actor_kind.in_(_PEOPLE), null()),
        else_=func.coalesce(func.nullif(ENTRY.c.client_id, ""), func.nullif(ENTRY.c.actor, "")),
    ).label("recipient")
    key = (
        ENTRY.c.activity,
        ENTRY.c.activity_version,
        ENTRY.c.flow,
        ENTRY.c.operation,
        ENTRY.c.actor_kind,
        recipient,
    )
    totals = select(
        *key,
        func.count().label("entries"),
        func.sum(ENTRY.c.persons).label("persons"),
        func.sum(case((ENTRY.c.outcome == "success", 0), else_=1)).label("failures"),
        func.min(ENTRY.c.occurred_at).label("first_at"),
        func.max(ENTRY.c.occurred_at).label("last_at"),
    ).group_by(*key)
    categories = _members(connection, key, ENTRY.c.categories)
    structures = _members(connection, key, ENTRY.c.structures)
    names = client_names(connection)
    flows: dict[str, list[ObservedFlow]] = defaultdict(list)
    for row in connection.execute(totals):
        group = tuple(row[: len(key)])
        flows[row.activity].append(
            ObservedFlow(
                activity_version=row.activity_version,
                flow=FlowKind(row.flow),
                operation=Operation(row.operation),
                recipient_kind=RecipientKind(row.actor_kind),
                recipient=row.recipient,
                recipient_name=names.get(row.recipient) if row.recipient else None,
                entries=row.entries,
                persons=row.persons,
                failures=row.failures,
                data_categories=[DataCategory(c) for c in sorted(categories.get(group, ()))],
                structures=sorted(structures.get(group, ())),
                first_at=row.first_at,
                last_at=row.last_at,
            )
        )
    return dict(flows)


def _members(
    connection: Connection, key: tuple[Any, ...], lists: Any
) -> dict[tuple[Any, ...], set[str]]:
    """Group -> the distinct members of the JSON lists in column ``lists`` over its entries."""
    each = "json_array_elements_text" if connection.dialect.name == "postgresql" else "json_each"
    members = getattr(func, each)(lists).table_valued("value")
    query = select(*key, members.c.value).select_from(ENTRY.join(members, true())).distinct()
    found: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for row in connection.execute(query):
        found[tuple(row[: len(key)])].add(row[len(key)])
    return found


def client_contracts(connection: Connection) -> dict[str, list[ClientContract]]:
    """Activity id -> the contracts of the ENT clients that name it, revoked ones included:
    every recipient the register declares, before its first read as after."""
    # Imported here: annuaire.auth imports this package (contracts name its activities).
    from annuaire.auth.clients import opened_categories

    contracts: dict[str, list[ClientContract]] = defaultdict(list)
    for row in connection.execute(select(_CLIENTS).order_by(_CLIENTS.c.created_at)):
        if row.activity is None:
            continue
        contracts[row.activity].append(
            ClientContract(
                client_id=row.client_id,
                name=row.name,
                issuer=row.issuer,
                structures=sorted(row.structures or ()),
                scopes=list(row.scopes or ()),
                data_categories=sorted(opened_categories(row.scopes or ())),
                created_at=row.created_at,
                revoked_at=row.revoked_at,
            )
        )
    return dict(contracts)


def client_names(connection: Connection) -> dict[str, str]:
    """Client id -> name, revoked clients included (flows keep naming them)."""
    rows = connection.execute(select(_CLIENTS.c.client_id, _CLIENTS.c.name))
    return {row.client_id: row.name for row in rows}


def _summary(
    connection: Connection,
    config: RegistreConfig,
    verification: Verification | None,
    keys: RegistreKeys,
) -> FlowLogSummary:
    entries, oldest, newest = connection.execute(
        select(func.count(), func.min(ENTRY.c.occurred_at), func.max(ENTRY.c.occurred_at))
    ).one()
    head = connection.execute(
        select(CHAIN.c.last_checkpoint_seq, CHAIN.c.last_checkpoint_at).where(CHAIN.c.id == 1)
    ).first()
    purged, last_purge = connection.execute(
        select(func.coalesce(func.sum(_PURGES.c.entries), 0), func.max(_PURGES.c.purged_at))
    ).one()
    sealed = head.last_checkpoint_seq if head is not None and head.last_checkpoint_seq else None
    return FlowLogSummary(
        retention_months=config.flow_log.retention_months,
        entries=entries,
        oldest_at=oldest,
        newest_at=newest,
        last_checkpoint_seq=sealed,
        last_checkpoint_at=head.last_checkpoint_at if head is not None and sealed else None,
        purged_entries=int(purged),
        last_purge_at=last_purge,
        verified=None if verification is None else verification.ok,
        verification_message=None if verification is None else verification.summary(),
        last_checkpoint=_last_checkpoint(connection, keys),
    )


def _last_checkpoint(connection: Connection, keys: RegistreKeys) -> SignedCheckpoint | None:
    """The last checkpoint as signed: its message, signature and public key."""
    row = connection.execute(select(CHECKPOINT).order_by(CHECKPOINT.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    fields = dict(row._mapping)
    public = keys.verify_keys.get(fields["key_id"])
    if public is None:  # a key the file does not hold: verify says so; nothing to show
        return None
    return SignedCheckpoint(
        message=checkpoint_message(fields).decode(),
        signature=fields["signature"],
        public_key=PublicSigningKey(
            kty="OKP",
            crv="Ed25519",
            kid=fields["key_id"],
            x=b64url_encode(public.public_bytes_raw()),
        ),
    )
