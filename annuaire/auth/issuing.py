"""The hub's authorization server side: its signing key and the access tokens it mints.

Contract:

- The signing key is a private ES256 JWK in ``settings.signing_key_file``. In development and
  test, when the file does not exist (default path :data:`DEFAULT_SIGNING_KEY_FILE` when unset),
  it is created on first use, readable by its owner only (0600), with the RFC 7638 thumbprint
  as ``kid``. In production nothing is created: without a readable key,
  :func:`signing_key` raises :class:`SigningKeyUnavailable` (the token endpoint answers 503)
  and :func:`hub_jwks` publishes no key.
- :func:`mint_access_token` signs an RFC 9068 access token (header ``typ: at+jwt``, ``alg:
  ES256``, ``kid``) whose ``scope`` is the requested scopes within the client's contract — all
  of the contract when none is requested; a request outside it raises :class:`InvalidScope`.
  Tokens carry no personal data: ``sub`` and ``client_id`` are the client id.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from annuaire.encoding import b64url_encode
from annuaire.errors import AiguillageError, ConfigurationError
from annuaire.schema import ApiClient, ClientScope
from annuaire.settings import Settings

from . import _jose

__all__ = [
    "DEFAULT_SIGNING_KEY_FILE",
    "InvalidScope",
    "SigningKeyUnavailable",
    "granted_scopes",
    "hub_jwks",
    "jwks_file_of",
    "load_or_create_key",
    "mint_access_token",
    "publish_jwks",
    "signing_key",
]

log = logging.getLogger("aiguillage.auth")

DEFAULT_SIGNING_KEY_FILE = Path(".aiguillage/signing-key.json")
_KNOWN_SCOPES = frozenset(scope.value for scope in ClientScope)


class SigningKeyUnavailable(ConfigurationError):
    """No usable signing key: tokens cannot be minted until one is configured."""


class InvalidScope(AiguillageError):
    """The requested scopes are unknown or outside the client's contract."""


# -- key files -------------------------------------------------------------------------------


def _ec_thumbprint(key: dict[str, Any]) -> str:
    canonical = json.dumps(
        {m: key[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def _checked_private_key(key: Any, path: Path) -> dict[str, Any]:
    if not isinstance(key, dict) or not all(
        isinstance(key.get(m), str) and key.get(m) for m in ("x", "y", "d", "kid")
    ):
        raise SigningKeyUnavailable(f"{path}: not a private EC JWK with x, y, d and kid")
    if key.get("kty") != "EC" or key.get("crv") != "P-256" or key.get("alg", "ES256") != "ES256":
        raise SigningKeyUnavailable(f"{path}: the signing key must be an ES256 (P-256) key")
    return key


@functools.lru_cache(maxsize=8)
def _read_key(path: Path, _mtime_ns: int, _size: int) -> dict[str, Any]:
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SigningKeyUnavailable(f"cannot read the key file {path}: {exc}") from None
    checked = _checked_private_key(key, path)
    if path.stat().st_mode & 0o077:
        log.warning("key file %s is readable by others than its owner: chmod 600 it", path)
    return checked


def _create_key(path: Path, kid_prefix: str) -> None:
    """Write a new key to ``path`` (0600), unless another process wrote one first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _jose.generate_es256_jwk("pending")
    key["kid"] = f"{kid_prefix}{_ec_thumbprint(key)[:16]}"
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(key, out, indent=2)
            out.write("\n")
        # A hard link never replaces an existing file: two workers starting together end up
        # with the same key, the first one written.
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    log.info("created signing key %s (kid %s)", path, key["kid"])


def load_or_create_key(path: Path, *, create: bool, kid_prefix: str = "") -> dict[str, Any]:
    """The private ES256 JWK in ``path``; created there first when missing and ``create``."""
    if create and not path.exists():
        _create_key(path, kid_prefix)
    try:
        stat = path.stat()
    except OSError:
        raise SigningKeyUnavailable(f"no signing key at {path}") from None
    return _read_key(path.resolve(), stat.st_mtime_ns, stat.st_size)


def jwks_file_of(key_file: Path) -> Path:
    """Where the public JWKS of the private key in ``key_file`` is published."""
    return key_file.with_name(f"{key_file.name.removesuffix('.json')}.jwks.json")


def publish_jwks(key: dict[str, Any], key_file: Path) -> Path:
    """Write the public half of ``key`` next to ``key_file`` (atomically, when it changed)."""
    path = jwks_file_of(key_file)
    document = json.dumps({"keys": [_jose.public_jwk(key)]}, indent=2) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != document:
        scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        scratch.write_text(document, encoding="utf-8")
        os.replace(scratch, path)
    return path


def signing_key(settings: Settings) -> dict[str, Any]:
    """The hub's private signing JWK (see the module docstring for where it comes from)."""
    path = settings.signing_key_file
    production = settings.environment == "production"
    if path is None:
        if production:
            raise SigningKeyUnavailable(
                "no signing_key_file configured: the token endpoint is off in production"
            )
        path = DEFAULT_SIGNING_KEY_FILE
    return load_or_create_key(path, create=not production, kid_prefix="hub-")


def hub_jwks(settings: Settings) -> dict[str, Any]:
    """The hub's public JWKS (``{"keys": []}`` when it has no signing key)."""
    try:
        key = signing_key(settings)
    except SigningKeyUnavailable as exc:
        log.warning("publishing an empty JWKS: %s", exc)
        return {"keys": []}
    return {"keys": [_jose.public_jwk(key)]}


# -- access tokens ---------------------------------------------------------------------------


def granted_scopes(client: ApiClient, requested: Collection[str] | None) -> list[str]:
    """The scopes a token gets: ``requested`` within the contract, or the whole contract."""
    contract = [scope for scope in client.scopes if scope in _KNOWN_SCOPES]
    if requested is None or not requested:
        granted = contract
    else:
        unknown = sorted(set(requested) - _KNOWN_SCOPES)
        if unknown:
            raise InvalidScope(f"unknown scope {', '.join(unknown)}")
        granted = [scope for scope in contract if scope in requested]
    if not granted:
        raise InvalidScope("none of the requested scopes is in this client's contract")
    return granted


def mint_access_token(
    settings: Settings,
    client: ApiClient,
    scopes: Collection[str] | None = None,
    *,
    now: float | None = None,
) -> tuple[str, int]:
    """An RFC 9068 access token for ``client`` and its lifetime in seconds.

    Raises :class:`InvalidScope` (see :func:`granted_scopes`) and
    :class:`SigningKeyUnavailable`. The caller authenticated the client; a revoked client is
    refused here too.
    """
    if not client.active:
        raise ValueError(f"client {client.client_id} is revoked")
    granted = granted_scopes(client, scopes)
    key = signing_key(settings)
    issued_at = int(now if now is not None else time.time())
    lifetime = settings.access_token_lifetime_s
    claims = {
        "iss": settings.token_issuer_url,
        "aud": settings.api_audience,
        "sub": client.client_id,
        "client_id": client.client_id,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": secrets.token_urlsafe(16),
        "scope": " ".join(granted),
    }
    return _jose.sign(claims, key, typ="at+jwt"), lifetime
