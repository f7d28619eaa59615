"""The flow log's keys: chain HMAC keys, the subject pseudonym key, checkpoint signing keys.

One JSON file (``registre_key_file`` in the settings), readable by the hub only, kept off the
database host in production::

    {"format": "aiguillage-registre-keys/1",
     "chain_keys": [{"id": "c-…", "secret": "<base64url, 32 bytes>",
                     "created": "2026-09-01T06:00:00Z"}, ...],                 # first = current
     "pseudonym_key": "<base64url, 32 bytes>",
     "signing_keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "s-…", "x": "…", "d": "…",
                       "created": "2026-09-01T06:00:00Z"}, ...]}                # first = current

- ``chain_keys``: HMAC-SHA-256 keys of the entry chain, newest first. Each entry names the key
  that chained it; a rotation puts a new key first and keeps the old ones with their secret
  (an HMAC is checked with it), so older entries still verify. A key is *retired* once a newer
  one is listed: the verifier refuses an entry chained with it after an entry chained with a
  newer key, or dated from the ``created`` of the key that replaced it.
- ``pseudonym_key``: persons appear in the log only as ``HMAC-SHA-256(key, hub id)[:16]``
  (hex). It never rotates: an art. 15 request is answered by recomputing a person's pseudonym.
- ``signing_keys``: Ed25519 keys of the checkpoints, newest first. A rotation drops the private
  part (``d``) of the keys it retires: their public part still verifies the checkpoints they
  signed, and the same ordering rules as the chain keys' apply to checkpoints.
- ``created`` (UTC) dates a key. Files written before it existed have none: they load, and
  their keys are only held to the order of the list.

Outside production the file is created on first use (development, tests, the demo), by
whichever process gets there first (an exclusive link of a complete file): the others read it.
In production a missing or malformed file stops the hub with a message naming the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from annuaire.encoding import b64url_decode, b64url_encode
from annuaire.errors import ConfigurationError
from annuaire.settings import Settings
from annuaire.store.changes import PackedIds

__all__ = [
    "KEY_FILE_FORMAT",
    "RegistreKeys",
    "generate_key_file",
    "load_keys",
    "new_key_file_document",
    "rotated",
]

KEY_FILE_FORMAT = "aiguillage-registre-keys/1"
#: Pseudonyms kept in memory per process (~13 MB at most).
KNOWN_PSEUDONYMS = 65_536


@dataclass(frozen=True)
class RegistreKeys:
    #: key id -> HMAC secret; ``chain_key_id`` is the current one.
    chain_keys: dict[str, bytes]
    chain_key_id: str
    pseudonym_key: bytes
    #: key id -> public key; ``signing_key_id`` names the current private key.
    verify_keys: dict[str, Ed25519PublicKey]
    signing_key_id: str
    signing_key: Ed25519PrivateKey | None
    #: Key id -> when a newer key replaced it, for the keys the file dates (``created``):
    #: nothing written from then on may name it.
    chain_retired_at: dict[str, dt.datetime] = field(default_factory=dict)
    signing_retired_at: dict[str, dt.datetime] = field(default_factory=dict)
    #: Pseudonyms already computed, by the hub id's integer (see :meth:`pseudonyms`).
    _known: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def pseudonym(self, person_id: uuid.UUID) -> str:
        """The pseudonym of a person in the log (32 hex digits)."""
        return self.pseudonyms([person_id])[0]

    def pseudonyms(self, person_ids: Iterable[uuid.UUID], *, remember: bool = True) -> list[str]:
        """The pseudonyms of persons, in order (repeats kept).

        Cached, by the id's integer (hashed in C, where a UUID hashes in Python), in a plain
        dict read with ``map``: a page names 100 persons, the same persons are read again and
        again, and a method call per person cost a page more than the rest of its entry.
        Bounded: past :data:`KNOWN_PSEUDONYMS` the cache starts again (an export of a whole
        académie must not grow the worker)."""
        if not remember:  # an import's persons, who do not come back: nothing is cached
            return [digest.hex() for digest in self.pseudonym_digests(person_ids)]
        ints = [p.int for p in person_ids]
        found = list(map(self._known.get, ints))
        if None in found:
            if len(self._known) > KNOWN_PSEUDONYMS:
                self._known.clear()
            key = self.pseudonym_key
            for index, value in enumerate(found):
                if value is None:
                    number = ints[index]
                    digest = hmac.digest(key, number.to_bytes(16, "big"), "sha256")
                    found[index] = self._known[number] = digest[:16].hex()
        return found  # type: ignore[return-value]

    def pseudonym_digests(self, person_ids: Iterable[uuid.UUID]) -> Iterator[bytes]:
        """The 16 bytes of each person's pseudonym, in order, nothing cached (an import's
        persons, who do not come back)."""
        key = self.pseudonym_key
        # A run's packed ids give their bytes without a UUID object each (a third faster).
        raw = (
            person_ids.raw() if isinstance(person_ids, PackedIds) else (p.bytes for p in person_ids)
        )
        return (hmac.digest(key, b, "sha256")[:16] for b in raw)

    def pseudonym_of_text(self, value: str) -> str:
        """The pseudonym of a caller known by a text identifier (a token's ``sub``)."""
        return hmac.digest(self.pseudonym_key, value.encode(), "sha256")[:16].hex()

    def chain_hash(self, key_id: str, *message: bytes) -> str:
        """The HMAC of ``message``, given whole or in pieces (see flowlog.entry_message_parts)."""
        try:
            key = self.chain_keys[key_id]
        except KeyError:
            raise ConfigurationError(f"registre keys: no chain key {key_id!r}") from None
        if len(message) == 1:
            return hmac.digest(key, message[0], "sha256").hex()
        mac = hmac.new(key, digestmod="sha256")
        for part in message:
            mac.update(part)
        return mac.hexdigest()

    def sign(self, message: bytes) -> str:
        if self.signing_key is None:
            raise ConfigurationError(
                f"registre keys: the current signing key {self.signing_key_id!r} has no "
                "private part; checkpoints cannot be signed"
            )
        return b64url_encode(self.signing_key.sign(message))

    def signature_valid(self, key_id: str, message: bytes, signature: str) -> bool:
        key = self.verify_keys.get(key_id)
        if key is None:
            return False
        try:
            key.verify(b64url_decode(signature), message)
        except (InvalidSignature, ValueError):
            return False
        return True


def _key_id(prefix: str, material: bytes) -> str:
    return f"{prefix}-{hashlib.sha256(material).hexdigest()[:12]}"


def _signing_jwk(key: Ed25519PrivateKey, created: str) -> dict[str, str]:
    public = key.public_key().public_bytes_raw()
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": _key_id("s", public),
        "x": b64url_encode(public),
        "d": b64url_encode(key.private_bytes_raw()),
        "created": created,
    }


def new_key_file_document(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """The content of a new key file: one chain key, the pseudonym key, one signing key."""
    created = _created(now)
    return {
        "format": KEY_FILE_FORMAT,
        "chain_keys": [_chain_key(created)],
        "pseudonym_key": b64url_encode(secrets.token_bytes(32)),
        "signing_keys": [_signing_jwk(Ed25519PrivateKey.generate(), created)],
    }


def rotated(document: dict[str, Any], *, now: dt.datetime | None = None) -> dict[str, Any]:
    """``document`` (a valid key file) with a new chain and signing key first; the signing keys
    it retires lose their private part ``d``, so a copy of the file taken from now on cannot
    sign a checkpoint with them. Chain keys keep their secret: an HMAC is checked with it."""
    created = _created(now)
    retired = [{k: v for k, v in jwk.items() if k != "d"} for jwk in document["signing_keys"]]
    return {
        **document,
        "chain_keys": [_chain_key(created), *document["chain_keys"]],
        "signing_keys": [_signing_jwk(Ed25519PrivateKey.generate(), created), *retired],
    }


def generate_key_file(path: Path, *, rotate: bool = False, now: dt.datetime | None = None) -> None:
    """Create a key file (:class:`FileExistsError` if there is one), or (``rotate``) put a new
    chain and signing key first in it (:class:`ConfigurationError` if it is not a key file).

    A new file appears complete or not at all, and only if no other process created it first;
    a rotated one replaces the old in one rename."""
    if rotate:
        document = _read_document(path)
        try:
            _parse(document)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"registre key file {path}: {exc}") from None
        _write(path, rotated(document, now=now), replace=True)
    elif not _write(path, new_key_file_document(now=now), replace=False):
        raise FileExistsError(f"{path} exists already")


def load_keys(settings: Settings) -> RegistreKeys:
    """The keys of ``settings.registre_key_file`` (created outside production when missing)."""
    path = settings.registre_key_file
    if not path.exists():
        if settings.environment == "production":
            raise ConfigurationError(
                f"registre key file {path} does not exist: create it with "
                f"`aiguillage registre keys {path}` on a host the database does not run on"
            )
        # Several processes may start at once (workers, an import): the first to create the
        # file wins, the others read what it wrote.
        try:
            _write(path, new_key_file_document(), replace=False)
        except OSError as exc:
            raise ConfigurationError(f"registre key file {path}: {exc}") from None
    try:
        return _parse(_read_document(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"registre key file {path}: {exc}") from None


def _read_document(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"registre key file {path}: {exc}") from None


def _write(path: Path, document: dict[str, Any], *, replace: bool) -> bool:
    """Write ``document`` to ``path`` through a temporary file of a unique name; without
    ``replace``, only if ``path`` does not exist (False if it does). Readable by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            out.flush()
            os.fsync(out.fileno())
        if replace:
            temporary.replace(path)
            return True
        try:
            os.link(temporary, path)  # fails if the file exists: never overwrites a winner's
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _created(now: dt.datetime | None) -> str:
    instant = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")


def _chain_key(created: str) -> dict[str, str]:
    secret = secrets.token_bytes(32)
    return {"id": _key_id("c", secret), "secret": b64url_encode(secret), "created": created}


def _retirements(keys: list[dict[str, Any]], what: str) -> dict[str, dt.datetime]:
    """Key id -> when a newer key replaced it: the earliest ``created`` of the keys listed
    before it (newest first); keys that no newer key with a ``created`` follows are left out."""
    retired: dict[str, dt.datetime] = {}
    earliest: dt.datetime | None = None
    for key in keys:
        name = str(key.get("id", key.get("kid")))
        if earliest is not None:
            retired[name] = earliest
        if "created" in key:
            created = key["created"]
            try:
                instant = dt.datetime.fromisoformat(created) if isinstance(created, str) else None
            except ValueError:
                instant = None
            if instant is None or instant.tzinfo is None:
                raise ValueError(f"{what} {name!r}: created is not a UTC time ({created!r})")
            instant = instant.astimezone(dt.UTC)
            earliest = instant if earliest is None else min(earliest, instant)
    return retired


def _objects(document: dict[str, Any], member: str) -> list[dict[str, Any]]:
    keys = document[member]
    if not isinstance(keys, list) or not keys:
        raise ValueError(f"{member}: a list of at least one key")
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise ValueError(f"{member}[{index}]: a key is an object, got {type(key).__name__}")
    return keys


def _parse(document: Any) -> RegistreKeys:
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
        raise ValueError(f"not a key file of format {KEY_FILE_FORMAT!r}")
    chain_keys = _objects(document, "chain_keys")
    chain = {k["id"]: b64url_decode(k["secret"]) for k in chain_keys}
    if any(len(secret) < 32 for secret in chain.values()):
        raise ValueError("chain_keys: at least one key of 32 bytes or more")
    pseudonym = b64url_decode(document["pseudonym_key"])
    if len(pseudonym) < 32:
        raise ValueError("pseudonym_key: 32 bytes or more")
    signing_keys = _objects(document, "signing_keys")
    verify: dict[str, Ed25519PublicKey] = {}
    for jwk in signing_keys:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError(f"signing key {jwk.get('kid')!r}: not an Ed25519 JWK")
        verify[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    current = signing_keys[0]
    private = None
    if "d" in current:  # a retired key keeps only its public part
        private = Ed25519PrivateKey.from_private_bytes(b64url_decode(current["d"]))
        if private.public_key().public_bytes_raw() != b64url_decode(current["x"]):
            raise ValueError(f"signing key {current['kid']!r}: private and public parts differ")
    return RegistreKeys(
        chain_keys=chain,
        chain_key_id=chain_keys[0]["id"],
        pseudonym_key=pseudonym,
        verify_keys=verify,
        signing_key_id=current["kid"],
        signing_key=private,
        chain_retired_at=_retirements(chain_keys, "chain key"),
        signing_retired_at=_retirements(signing_keys, "signing key"),
    )
