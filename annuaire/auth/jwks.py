"""The public keys of one token issuer, fetched from its configured JWKS and cached.

Contract of :class:`JwksCache` (IDENTITY.md §6.4 step 2, tests T-07 to T-11):

- keys come only from the issuer's configured ``jwks_uri`` (https, or http on a loopback
  address; redirects are not followed) or ``jwks_file``; nothing a token says (``jku``, ``x5u``,
  ``jwk``, ``x5c``, ``kid``) is ever fetched or opened: a ``kid`` is only a dictionary key;
- a fetched set is trusted for the issuer's ``jwks_ttl_s``; a known ``kid`` needs no network
  while the set is fresh;
- fetches are rate limited: at most one per ``refresh_interval_s``, whatever triggers it (an
  unknown ``kid``, an expired set, a failed attempt), so a burst of unknown kids costs one
  fetch; concurrent callers share the fetch in flight instead of starting their own;
- a failed fetch (endpoint down, timeout, 5xx, garbage, not a JWKS, no usable key) never wipes
  the cache: the previous keys serve until their TTL runs out; after that, and until a fetch
  succeeds, :meth:`JwksCache.key` raises :class:`KeysUnavailable` (the API answers 503: it
  fails closed, never open);
- from a JWKS, keys without a ``kid``, symmetric keys (``kty: oct``), private keys, keys whose
  ``use`` is not ``sig``, RSA keys under 2048 bits and kids published twice are left out; a
  set left with no key counts as a failed fetch;
- one HTTP fetch is a few short attempts (tenacity, one log line per retry) within a few
  seconds in all.

The class is thread-safe: the API calls it from its thread pool.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from annuaire.encoding import b64url_decode
from annuaire.errors import ConfigurationError, Retriable
from annuaire.settings import IssuerSettings

__all__ = ["MAX_JWKS_BYTES", "MIN_RSA_BITS", "JwksCache", "KeysUnavailable", "usable_keys"]

log = logging.getLogger("aiguillage.auth")

#: A JWKS larger than this is refused (a real one holds a handful of keys).
MAX_JWKS_BYTES = 256 * 1024

#: Smaller RSA keys in a JWKS are left out.
MIN_RSA_BITS = 2048

#: JWK members that only a private (or symmetric) key carries.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class KeysUnavailable(Retriable):
    """No trustworthy keys for an issuer right now: the API answers 503, never accepts."""

    def __init__(self, issuer: str, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.issuer = issuer
        #: Seconds until the cache will try to fetch the keys again.
        self.retry_after_s = retry_after_s


class _FetchFailed(Exception):
    """One fetch of the key set failed; ``transient`` ones are worth another attempt."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def _rsa_bits(jwk: dict[str, Any]) -> int:
    modulus = jwk.get("n")
    if not isinstance(modulus, str):
        return 0
    try:
        raw = b64url_decode(modulus)
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def usable_keys(document: object) -> dict[str, dict[str, Any]]:
    """The public signature keys of a JWKS document, by ``kid`` (raises ``ValueError``)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set (no 'keys' array)")
    found: dict[str, dict[str, Any]] = {}
    published_twice: set[str] = set()
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if entry.get("kty") not in ("EC", "RSA") or _PRIVATE_MEMBERS & entry.keys():
            continue
        if entry.get("use", "sig") != "sig":
            continue
        if entry["kty"] == "RSA" and _rsa_bits(entry) < MIN_RSA_BITS:
            continue  # RFC 7518 §3.3: RS*/PS* keys have at least 2048 bits
        if kid in found:
            # Two keys under one kid: which one a token means is ambiguous, so neither serves.
            published_twice.add(kid)
        found[kid] = dict(entry)
    for kid in published_twice:
        del found[kid]
        log.warning("JWKS publishes kid %r more than once: ignored", kid[:64])
    if not found:
        raise ValueError("the JWK Set holds no usable public signature key")
    return found


def _check_uri(issuer: IssuerSettings, uri: str) -> None:
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
    raise ConfigurationError(
        f"issuer {issuer.name!r}: jwks_uri must be https (or http on a loopback address)"
    )


class JwksCache:
    """The cached public keys of one issuer; :meth:`key` is the only call the validator needs."""

    def __init__(
        self,
        issuer: IssuerSettings,
        *,
        refresh_interval_s: float = 30.0,
        timeout_s: float = 1.5,
        attempts: int = 3,
        retry_wait_s: float = 0.2,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if issuer.jwks_uri is not None:
            _check_uri(issuer, issuer.jwks_uri)
        self.issuer = issuer
        self.refresh_interval_s = refresh_interval_s
        self._timeout_s = timeout_s
        self._attempts = max(1, attempts)
        self._retry_wait_s = retry_wait_s
        self._now = now
        self._client: httpx.Client | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._fetching = False
        self._changed = threading.Condition()

    # -- public --------------------------------------------------------------------------

    def key(self, kid: str) -> dict[str, Any] | None:
        """The public JWK published under ``kid``, or None; :class:`KeysUnavailable` if the
        keys are too old to trust and cannot be fetched again yet."""
        while True:
            with self._changed:
                now = self._now()
                fresh = self._is_fresh(now)
                if fresh and kid in self._keys:
                    return self._keys[kid]
                if self._fetching:
                    # Another thread is fetching: its result may hold this kid, or may be
                    # the only keys there are; wait for it rather than fetch again.
                    self._changed.wait(timeout=self._timeout_s * (self._attempts + 1))
                    continue
                if not self._may_fetch(now):
                    return self._answer(kid, now)
                self._fetching = True
                self._last_attempt = now
            try:
                self._refresh()
            finally:
                with self._changed:
                    self._fetching = False
                    self._changed.notify_all()
            with self._changed:
                return self._answer(kid, self._now())

    def kids(self) -> frozenset[str]:
        """The kids currently cached (for diagnostics; no fetch)."""
        with self._changed:
            return frozenset(self._keys)

    def close(self) -> None:
        """Close the HTTP connection pool (the cache still works: it opens a new one)."""
        with self._changed:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- state ---------------------------------------------------------------------------

    def _is_fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self.issuer.jwks_ttl_s

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self.refresh_interval_s

    def _answer(self, kid: str, now: float) -> dict[str, Any] | None:
        if self._is_fresh(now):
            return self._keys.get(kid)
        assert self._last_attempt is not None
        wait = max(0.0, self.refresh_interval_s - (now - self._last_attempt))
        raise KeysUnavailable(
            self.issuer.name,
            f"no fresh keys for issuer {self.issuer.name!r}: the last fetch failed",
            retry_after_s=wait,
        )

    def _refresh(self) -> None:
        """Fetch the set once (with retries); on failure keep what was cached."""
        try:
            raw = self._read_file() if self.issuer.jwks_file is not None else self._fetch()
            keys = usable_keys(json.loads(raw))
        except (_FetchFailed, ValueError, RecursionError) as exc:
            log.warning(
                "JWKS refresh for issuer %r failed, keeping %d cached key(s): %s",
                self.issuer.name,
                len(self._keys),
                exc,
            )
            return
        with self._changed:
            if keys.keys() != self._keys.keys():
                log.info(
                    "JWKS of issuer %r now has kids %s",
                    self.issuer.name,
                    sorted(k[:64] for k in keys),
                )
            self._keys = keys
            self._fetched_at = self._now()

    def _read_file(self) -> bytes:
        assert self.issuer.jwks_file is not None
        try:
            with self.issuer.jwks_file.open("rb") as handle:
                raw = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as exc:
            message = f"cannot read {self.issuer.jwks_file}: {exc}"
            raise _FetchFailed(message, transient=False) from None
        if len(raw) > MAX_JWKS_BYTES:
            raise _FetchFailed(f"larger than {MAX_JWKS_BYTES} bytes", transient=False)
        return raw

    def _fetch(self) -> bytes:
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._retry_wait_s, max=4 * self._retry_wait_s),
            retry=retry_if_exception(lambda exc: isinstance(exc, _FetchFailed) and exc.transient),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        result: bytes = retrying(self._fetch_once)
        return result

    def _fetch_once(self) -> bytes:
        assert self.issuer.jwks_uri is not None
        with self._changed:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self._timeout_s),
                    follow_redirects=False,
                    headers={"Accept": "application/jwk-set+json, application/json"},
                )
            client = self._client
        deadline = time.monotonic() + 2 * self._timeout_s
        try:
            with client.stream("GET", self.issuer.jwks_uri) as response:
                if response.status_code != 200:
                    raise _FetchFailed(
                        f"HTTP {response.status_code}",
                        transient=response.status_code >= 500 or response.status_code == 429,
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise _FetchFailed(f"larger than {MAX_JWKS_BYTES} bytes", transient=False)
                    if time.monotonic() > deadline:
                        raise _FetchFailed("the response is too slow", transient=True)
                return bytes(body)
        except httpx.HTTPError as exc:
            raise _FetchFailed(f"{type(exc).__name__}: {exc}", transient=True) from None
