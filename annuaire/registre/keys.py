"""The flow log's keys: chain HMAC keys, the subject pseudonym key, checkpoint signing keys.

One JSON file (``registre_key_file`` in the settings), readable by the hub only, kept off the
database host in production::

    {"format": "aiguillage-registre-keys/1",
     "chain_keys": [{"id": "c-…", "secret": "<base64url, 32 bytes>"}, ...],   # first = current
     "pseudonym_key": "<base64url, 32 bytes>",
     "signing_keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "s-…", "x": "…", "d": "…"}, ...]}

- ``chain_keys``: HMAC-SHA-256 keys of the entry chain. Each entry names the key that chained
  it; a rotation puts a new key first and keeps the old ones, so older entries still verify.
- ``pseudonym_key``: persons appear in the log only as ``HMAC-SHA-256(key, hub id)[:16]``
  (hex). It never rotates: an art. 15 request is answered by recomputing a person's pseudonym.
- ``signing_keys``: Ed25519 keys of the checkpoints (first = current). A retired key may keep
  only its public part (no ``d``): checkpoints it signed still verify.

Outside production the file is created on first use (development, tests, the demo). In
production a missing or malformed file stops the hub with a message naming the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import Iterable
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

__all__ = ["KEY_FILE_FORMAT", "RegistreKeys", "generate_key_file", "load_keys"]

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
            key = self.pseudonym_key
            # A run's packed ids give their bytes without a UUID object each (a third faster).
            raw = (
                person_ids.raw()
                if isinstance(person_ids, PackedIds)
                else (p.bytes for p in person_ids)
            )
            return [hmac.digest(key, b, "sha256")[:16].hex() for b in raw]
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

    def pseudonym_of_text(self, value: str) -> str:
        """The pseudonym of a caller known by a text identifier (a token's ``sub``)."""
        return hmac.digest(self.pseudonym_key, value.encode(), "sha256")[:16].hex()

    def chain_hash(self, key_id: str, message: bytes) -> str:
        try:
            key = self.chain_keys[key_id]
        except KeyError:
            raise ConfigurationError(f"registre keys: no chain key {key_id!r}") from None
        return hmac.digest(key, message, "sha256").hex()

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


def _signing_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    public = key.public_key().public_bytes_raw()
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": _key_id("s", public),
        "x": b64url_encode(public),
        "d": b64url_encode(key.private_bytes_raw()),
    }


def generate_key_file(path: Path, *, rotate: bool = False) -> None:
    """Write a new key file, or (``rotate``) put a new chain and signing key first in it."""
    document: dict[str, Any]
    if rotate:
        document = orjson.loads(path.read_bytes())
    else:
        document = {
            "format": KEY_FILE_FORMAT,
            "chain_keys": [],
            "pseudonym_key": b64url_encode(secrets.token_bytes(32)),
            "signing_keys": [],
        }
    secret = secrets.token_bytes(32)
    document["chain_keys"].insert(0, {"id": _key_id("c", secret), "secret": b64url_encode(secret)})
    document["signing_keys"].insert(0, _signing_jwk(Ed25519PrivateKey.generate()))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    temporary.replace(path)


def load_keys(settings: Settings) -> RegistreKeys:
    """The keys of ``settings.registre_key_file`` (created outside production when missing)."""
    path = settings.registre_key_file
    if not path.exists():
        if settings.environment == "production":
            raise ConfigurationError(
                f"registre key file {path} does not exist: create it with "
                "`aiguillage registre keys --new` on a host the database does not run on"
            )
        generate_key_file(path)
    try:
        return _parse(orjson.loads(path.read_bytes()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"registre key file {path}: {exc}") from None


def _parse(document: Any) -> RegistreKeys:
    if not isinstance(document, dict) or document.get("format") != KEY_FILE_FORMAT:
        raise ValueError(f"not a key file of format {KEY_FILE_FORMAT!r}")
    chain = {k["id"]: b64url_decode(k["secret"]) for k in document["chain_keys"]}
    if not chain or any(len(secret) < 32 for secret in chain.values()):
        raise ValueError("chain_keys: at least one key of 32 bytes or more")
    pseudonym = b64url_decode(document["pseudonym_key"])
    if len(pseudonym) < 32:
        raise ValueError("pseudonym_key: 32 bytes or more")
    verify: dict[str, Ed25519PublicKey] = {}
    for jwk in document["signing_keys"]:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise ValueError(f"signing key {jwk.get('kid')!r}: not an Ed25519 JWK")
        verify[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    if not verify:
        raise ValueError("signing_keys: at least one key")
    current = document["signing_keys"][0]
    private = None
    if "d" in current:  # a retired key keeps only its public part
        private = Ed25519PrivateKey.from_private_bytes(b64url_decode(current["d"]))
        if private.public_key().public_bytes_raw() != b64url_decode(current["x"]):
            raise ValueError(f"signing key {current['kid']!r}: private and public parts differ")
    return RegistreKeys(
        chain_keys=chain,
        chain_key_id=document["chain_keys"][0]["id"],
        pseudonym_key=pseudonym,
        verify_keys=verify,
        signing_key_id=current["kid"],
        signing_key=private,
    )
