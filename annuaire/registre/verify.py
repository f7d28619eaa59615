"""Verify the flow log: every entry, the subjects, the checkpoints, the head; say where it breaks.

What is checked, in one pass over the entries in sequence order (memory does not grow with the
log):

- sequence numbers are contiguous, from just after the last purge (or 1);
- each ``prev_hash`` is the ``entry_hash`` before it (the first remaining entry chains onto the
  checkpoint that ends at the last purge, or onto the genesis hash);
- each ``entry_hash`` is the HMAC of the entry's content (its persons included) with the key
  it names;
- keys: no entry (checkpoint) names a chain (signing) key older than one named before it, nor
  one that a newer key had replaced by its time (see :mod:`annuaire.registre.keys`);
- checkpoints: numbered from 1, chained by signature, each signature valid with the public key
  it names, each covering the entries since the previous one and matching the hash of the
  entry it ends on; a checkpoint beyond the last entry means the tail was cut;
- the chain head (``flow_chain``) names the last entry.

A modified entry (its list of persons included, whether the list itself or the digest naming
it was changed) fails its HMAC; an entry whose list was deleted is reported as such; a deleted
entry leaves a gap; an inserted or reordered one breaks the ``prev_hash`` links; a cut tail
contradicts the head and the checkpoints. Entries written after the last checkpoint are
protected by the chain and the head only: the report says how many.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from annuaire.schema import FlowPurge, as_utc

from .flowlog import (
    CHAIN,
    CHECKPOINT,
    ENTRY,
    GENESIS,
    checkpoint_message,
    entries_query,
    entry_message,
    entry_row,
)
from .keys import RegistreKeys
from .purge import PURGE_TARGET

__all__ = ["ChainBreak", "Verification", "verify_log"]

_PURGE = FlowPurge.__table__  # type: ignore[attr-defined]
_BATCH = 2000
_KEPT = 50


@dataclass(frozen=True)
class ChainBreak:
    #: The entry (or checkpoint) where the chain stops holding, when there is one.
    seq: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Verification:
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    sealed_up_to: int = 0
    purged_up_to: int = 0
    breaks: list[ChainBreak] = field(default_factory=list)
    #: Breaks found beyond the ``_KEPT`` first ones.
    more_breaks: int = 0

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def unsealed(self) -> int:
        return max(0, (self.last_seq or 0) - max(self.sealed_up_to, self.purged_up_to))

    def add(self, seq: int | None, kind: str, message: str) -> None:
        if len(self.breaks) < _KEPT:
            self.breaks.append(ChainBreak(seq, kind, message))
        else:
            self.more_breaks += 1

    def summary(self) -> str:
        if self.entries == 0 and self.ok:
            return "flow log: empty, nothing to verify"
        span = f"entries {self.first_seq}..{self.last_seq}" if self.entries else "no entries"
        head = (
            f"flow log: {self.entries:,} {span}, {self.checkpoints} checkpoints "
            f"(sealed up to {self.sealed_up_to}, {self.unsealed} entries after the last one)"
            + (f", purged up to {self.purged_up_to}" if self.purged_up_to else "")
        )
        if self.ok:
            return head + ": intact"
        first = self.breaks[0]
        where = f"at entry {first.seq}" if first.seq is not None else "in its head"
        total = len(self.breaks) + self.more_breaks
        return f"{head}: BROKEN {where}: {first.message} ({total} problems)"


def verify_log(connection: Connection, keys: RegistreKeys) -> Verification:
    """Check the whole log readable in ``connection`` (one snapshot on PostgreSQL if asked)."""
    report = Verification()
    purged_up_to = connection.execute(select(func.coalesce(func.max(_PURGE.c.up_to_seq), 0)))
    report.purged_up_to = int(purged_up_to.scalar_one())
    checkpoints = _verify_checkpoints(connection, keys, report)
    by_last = {c["last_seq"]: c for c in checkpoints}
    expected = report.purged_up_to + 1
    if report.purged_up_to:
        anchor = by_last.get(report.purged_up_to)
        if anchor is None:
            report.add(None, "purge", f"no checkpoint ends at the purge ({report.purged_up_to})")
            prev_hash = None
        else:
            prev_hash = anchor["head_hash"]
    else:
        prev_hash = GENESIS
    recorded_purges: set[int] = set()
    chain_keys = _KeyUse(keys.chain_keys, keys.chain_retired_at)
    for row in _entries(connection):
        seq = row["seq"]
        # A source other than what the purge writes records no purge (and the entry's HMAC
        # tells whether it was changed).
        source = row["source"]
        if (
            row["operation"] == "purge"
            and row["target"] == PURGE_TARGET
            and isinstance(source, dict)
            and isinstance(source.get("purged_up_to"), int)
        ):
            recorded_purges.add(source["purged_up_to"])
        report.entries += 1
        report.first_seq = seq if report.first_seq is None else report.first_seq
        report.last_seq = seq
        if seq != expected:
            if seq > expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                report.add(expected, "missing", f"entries {missing} are missing (deleted)")
            else:
                report.add(seq, "sequence", f"entry {seq} out of sequence (expected {expected})")
        if prev_hash is not None and row["prev_hash"] != prev_hash:
            report.add(
                seq,
                "link",
                f"entry {seq} does not follow the entry before it "
                "(an entry was inserted, removed or reordered here)",
            )
        if row["subjects"] is None:
            report.add(
                seq,
                "subjects",
                f"entry {seq} names a list of persons that is missing "
                f"(flow_subject_set {row['subject_set']})",
            )
        elif row["key_id"] not in keys.chain_keys:
            report.add(seq, "key", f"entry {seq} names an unknown chain key {row['key_id']!r}")
        elif keys.chain_hash(row["key_id"], entry_message(row)) != row["entry_hash"]:
            report.add(seq, "content", f"entry {seq} was modified (its HMAC does not match)")
        retired = chain_keys.misuse(row["key_id"], row["occurred_at"])
        if retired:
            report.add(seq, "key", f"entry {seq} was chained with {retired}")
        checkpoint = by_last.get(seq)
        if checkpoint is not None and checkpoint["head_hash"] != row["entry_hash"]:
            report.add(
                seq, "checkpoint", f"checkpoint {checkpoint['id']} does not match entry {seq}"
            )
        prev_hash = row["entry_hash"]
        expected = seq + 1
    last = report.last_seq if report.last_seq is not None else report.purged_up_to
    if report.sealed_up_to > last:
        report.add(
            last + 1,
            "truncated",
            f"entries {last + 1}..{report.sealed_up_to} are missing: checkpoints seal entries up "
            f"to {report.sealed_up_to} but the log ends at entry {last} (its tail was cut)",
        )
    if report.purged_up_to and report.purged_up_to not in recorded_purges:
        report.add(
            report.first_seq,
            "purge",
            f"entries up to {report.purged_up_to} were deleted, but no purge entry of the chain "
            "records it",
        )
    _verify_head(connection, report, last, prev_hash)
    return report


def _verify_checkpoints(
    connection: Connection, keys: RegistreKeys, report: Verification
) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in connection.execute(select(CHECKPOINT).order_by("id"))]
    previous: dict[str, Any] | None = None
    signing_keys = _KeyUse(keys.verify_keys, keys.signing_retired_at)
    for row in rows:
        number = row["id"]
        expected_id = previous["id"] + 1 if previous else 1
        expected_first = previous["last_seq"] + 1 if previous else 1
        expected_signature = previous["signature"] if previous else ""
        if number != expected_id:
            report.add(None, "checkpoint", f"checkpoint {expected_id} is missing")
        if row["first_seq"] != expected_first or row["last_seq"] < row["first_seq"]:
            report.add(
                row["first_seq"],
                "checkpoint",
                f"checkpoint {number} covers {row['first_seq']}..{row['last_seq']}, "
                f"expected to start at {expected_first}",
            )
        if row["previous_signature"] != expected_signature:
            report.add(row["first_seq"], "checkpoint", f"checkpoint {number} is out of its chain")
        if not keys.signature_valid(row["key_id"], checkpoint_message(row), row["signature"]):
            report.add(
                row["first_seq"], "checkpoint", f"checkpoint {number} has an invalid signature"
            )
        retired = signing_keys.misuse(row["key_id"], row["signed_at"])
        if retired:
            report.add(
                row["first_seq"], "checkpoint", f"checkpoint {number} was signed with {retired}"
            )
        previous = row
    report.checkpoints = len(rows)
    report.sealed_up_to = previous["last_seq"] if previous else 0
    return rows


class _KeyUse:
    """The keys of one kind as the chain uses them, in its order: a key may not come after a
    newer one of the file (listed before it), nor be used from the time a newer key replaced
    it. Someone holding a retired key (an old copy of the key file) cannot rewrite what was
    written after it was replaced without one of the two showing."""

    def __init__(self, keys: Mapping[str, object], retired_at: Mapping[str, dt.datetime]):
        self._rank = {key_id: rank for rank, key_id in enumerate(keys)}  # 0: the newest
        self._retired_at = retired_at
        self._newest: str | None = None

    def misuse(self, key_id: str, at: dt.datetime) -> str | None:
        """What is wrong with using ``key_id`` at ``at`` here, or None."""
        rank = self._rank.get(key_id)
        if rank is None:  # an unknown key: reported as such
            return None
        newest = self._newest
        if newest is not None and rank > self._rank[newest]:
            return f"key {key_id!r}, older than key {newest!r} used before it"
        if newest is None or rank < self._rank[newest]:
            self._newest = key_id
        retired = self._retired_at.get(key_id)
        if retired is not None and as_utc(at) >= retired:
            return (
                f"key {key_id!r} on {as_utc(at):%Y-%m-%d %H:%M:%S} UTC, after a newer key "
                f"replaced it ({retired:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return None


def _verify_head(
    connection: Connection, report: Verification, last: int, last_hash: str | None
) -> None:
    head = connection.execute(select(CHAIN).where(CHAIN.c.id == 1)).first()
    if head is None:
        report.add(None, "head", "the chain head is missing")
        return
    if head.last_checkpoint_seq != report.sealed_up_to:
        report.add(
            None,
            "checkpoint",
            f"the chain head says the last checkpoint ends at entry {head.last_checkpoint_seq}, "
            f"the checkpoints end at {report.sealed_up_to} (a checkpoint was removed or added)",
        )
    if head.last_seq != last or (last_hash is not None and head.last_hash != last_hash):
        report.add(
            min(head.last_seq, last) + 1,
            "head",
            f"the chain head names entry {head.last_seq} but the log ends at entry {last}",
        )


def _entries(connection: Connection) -> Iterator[dict[str, Any]]:
    """Entries in sequence order with their persons, read in batches."""
    after: int | None = None  # no lower bound at first: a forged seq of 0 or less is read too
    while True:
        query = entries_query().order_by(ENTRY.c.seq).limit(_BATCH)
        if after is not None:
            query = query.where(ENTRY.c.seq > after)
        rows = [entry_row(r) for r in connection.execute(query)]
        if not rows:
            return
        yield from rows
        after = rows[-1]["seq"]
