"""Retention of the flow log: delete what is older than the register says, keep it verifiable.

Entries go by whole checkpoint windows: the purge first seals the tail, then deletes the entries
up to the last checkpoint whose entries are all older than the cutoff.
The checkpoints stay (they hold no personal data), so the first remaining entry chains onto the
signed hash of the checkpoint that ends the purged range, and ``registre verify`` still checks
everything that remains. The purge records itself twice, in the same transaction: a row of
``flow_purge`` (what the append-only triggers let go) and an entry of the chain (operation
``purge``, which says up to where; the verifier checks that the two agree).

Checkpoints come every ``registre_checkpoint_every`` entries and at least hourly while entries
are written, so an entry outlives the retention by at most one such window.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, delete, exists, func, insert, select

from annuaire.schema import FlowPurge

from .flowlog import CHECKPOINT, ENTRY, SUBJECT_SET, FlowLog, FlowRecord
from .vocabulary import FlowKind, Operation, RecipientKind

__all__ = ["PURGE_TARGET", "PurgeResult", "months_before", "purge_log"]

PURGE_TARGET = "registre purge"
_PURGE = FlowPurge.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PurgeResult:
    cutoff: dt.datetime
    #: Entries with a sequence up to this one are gone (0: nothing was ever purged).
    up_to_seq: int
    entries: int
    #: The persons the purged entries named, summed over the entries: one named by two entries
    #: counts twice.
    subjects: int


def months_before(instant: dt.datetime, months: int) -> dt.datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day if short)."""
    index = instant.year * 12 + instant.month - 1 - months
    year, month = divmod(index, 12)
    day = min(instant.day, calendar.monthrange(year, month + 1)[1])
    return instant.replace(year=year, month=month + 1, day=day)


def purge_log(
    connection: Connection,
    flow_log: FlowLog,
    *,
    activity: str,
    retention_months: int,
    operator: str,
    now: dt.datetime | None = None,
) -> PurgeResult:
    """Apply retention in ``connection``'s transaction; what was deleted."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cutoff = months_before(now, retention_months)
    flow_log.checkpoint(connection, now=now)
    already = connection.execute(select(func.coalesce(func.max(_PURGE.c.up_to_seq), 0)))
    purged_before = int(already.scalar_one())
    first_recent = connection.execute(
        select(func.min(ENTRY.c.seq)).where(ENTRY.c.occurred_at >= cutoff)
    ).scalar()
    if first_recent is None:
        newest_expired = connection.execute(select(func.max(ENTRY.c.seq))).scalar() or 0
    else:
        newest_expired = first_recent - 1
    window = connection.execute(
        select(CHECKPOINT.c.id, CHECKPOINT.c.last_seq)
        .where(CHECKPOINT.c.last_seq <= newest_expired, CHECKPOINT.c.last_seq > purged_before)
        .order_by(CHECKPOINT.c.last_seq.desc())
        .limit(1)
    ).first()
    if window is None:
        return PurgeResult(cutoff, purged_before, 0, 0)
    up_to = int(window.last_seq)
    entries, subjects = connection.execute(
        select(func.count(), func.coalesce(func.sum(ENTRY.c.persons), 0)).where(
            ENTRY.c.seq <= up_to
        )
    ).one()
    connection.execute(
        insert(_PURGE),
        [
            {
                "up_to_seq": up_to,
                "checkpoint_id": window.id,
                "entries": entries,
                "subjects": subjects,
                "cutoff": cutoff,
                "purged_at": now,
                "operator": operator[:128],
            }
        ],
    )
    connection.execute(delete(ENTRY).where(ENTRY.c.seq <= up_to))
    # Lists of persons no remaining entry names go with them (retention covers them too). The
    # chain's lock, held since the checkpoint above, keeps writers from naming one meanwhile.
    connection.execute(
        delete(SUBJECT_SET).where(~exists().where(ENTRY.c.subject_set == SUBJECT_SET.c.digest))
    )
    flow_log.append(
        connection,
        FlowRecord(
            flow=FlowKind.REGISTRE,
            operation=Operation.PURGE,
            activity=activity,
            actor_kind=RecipientKind.DPO,
            actor=operator[:128],
            target=PURGE_TARGET,
            source={
                "purged_up_to": up_to,
                "checkpoint": window.id,
                "entries": entries,
                "subjects": subjects,
                "cutoff": cutoff.isoformat(),
            },
        ),
        now=now,
    )
    return PurgeResult(cutoff, up_to, entries, subjects)
