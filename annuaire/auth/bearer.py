"""From the ``Authorization`` header of a request to an (unresolved) principal.

The :class:`Authenticator` holds the trusted issuers (configured ones, the hub's own token
endpoint, and the dev issuers in development only) and validates bearer tokens with
annuaire.auth.tokens. A validated token is cached until it expires (bounded LRU keyed by a hash
of the token), so its signature is checked once, not on every request; what may change
meanwhile (a client revoked, a person gone) is checked on every request by the access rules.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

import anyio.to_thread
from fastapi import Request

from annuaire.errors import ConfigurationError
from annuaire.settings import HUB_ISSUER_NAME, IssuerSettings, Settings, check_issuer_names

from .devtokens import dev_issuers
from .issuing import DEFAULT_SIGNING_KEY_FILE, SigningKeyUnavailable, publish_jwks, signing_key
from .jwks import JwksCache, KeysUnavailable
from .principal import Principal, Unauthenticated, principal_from_claims
from .tokens import InvalidToken, TokenValidator

__all__ = ["Authenticator", "KeysUnavailable", "trusted_issuers"]

_CACHE_SIZE = 10_000
#: A validated token is validated again after this long, whatever its lifetime, against the
#: issuer's keys as cached: a key that left its issuer's JWKS stops being accepted at most
#: this long after the key cache fetches the set again (at the latest when its ``jwks_ttl_s``
#: runs out).
_CACHE_TTL_S = 300.0
log = logging.getLogger("aiguillage.auth")


def trusted_issuers(settings: Settings) -> list[IssuerSettings]:
    """The configured issuers, the hub's own token endpoint, and the dev issuers (dev only).

    The hub's issuer is trusted when it has a signing key (always outside production, where
    the key is created on first use; in production once ``signing_key_file`` is set); its
    public JWKS is written next to the key, where the key cache reads it.

    ConfigurationError when a configured issuer's name is taken twice or is one of the hub's
    (settings made without validation, ``model_copy``, reach here too).
    """
    try:
        check_issuer_names(settings.token_issuers)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    issuers = list(settings.token_issuers)
    try:
        key = signing_key(settings)
    except SigningKeyUnavailable as exc:
        log.warning("the hub's own tokens are not accepted: %s", exc)
    else:
        jwks_file = publish_jwks(key, settings.signing_key_file or DEFAULT_SIGNING_KEY_FILE)
        issuers.append(
            IssuerSettings(
                name=HUB_ISSUER_NAME,
                issuer=settings.token_issuer_url,
                jwks_file=jwks_file.resolve(),
                audiences=[settings.api_audience],
                algorithms=["ES256"],
                profile="client_credentials",
                jwks_ttl_s=60,
            )
        )
    issuers.extend(dev_issuers(settings))
    return issuers


class Authenticator:
    def __init__(self, settings: Settings, issuers: Sequence[IssuerSettings]) -> None:
        self.settings = settings
        self.issuers = list(issuers)
        self.validator = TokenValidator(
            [(issuer, JwksCache(issuer)) for issuer in self.issuers],
            audience_default=settings.api_audience,
            leeway_s=settings.token_leeway_s,
        )
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def open_access(self) -> bool:
        return self.settings.api_open_access

    async def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is None:
            if self.open_access:
                return Principal.operator()
            raise Unauthenticated("a bearer token is required", "missing_token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be `Bearer <token>`", "malformed")
        return await self.principal_of(token.strip())

    async def principal_of(self, token: str) -> Principal:
        key = hashlib.blake2b(token.encode(), digest_size=16).digest()
        now = time.time()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(key)
                return cached[1]
        # Validation may fetch keys over the network: never on the event loop.
        principal, expires = await anyio.to_thread.run_sync(self._validate, token)
        with self._lock:
            self._cache[key] = (expires, principal)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return principal

    def _validate(self, token: str) -> tuple[Principal, float]:
        try:
            validated = self.validator.validate(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc), exc.reason) from None
        issuer = validated.issuer
        principal = principal_from_claims(
            issuer.profile, issuer.name, validated.claims, fredu_vecteur=issuer.fredu_vecteur
        )
        until = min(self.validator.accepted_until(validated), time.time() + _CACHE_TTL_S)
        return principal, until
