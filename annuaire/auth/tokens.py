"""Validation of the bearer access tokens the API accepts (RFC 9068, IDENTITY.md §6.4).

:meth:`TokenValidator.validate` returns a :class:`ValidatedToken` or raises
:class:`InvalidToken` (the API answers 401 ``invalid_token``); :class:`KeysUnavailable` from
the issuer's key cache goes through untouched (503: without fresh keys nothing is accepted).
The steps, in order, each refusing with a stable ``reason``:

1. size and shape: one JWS in compact form of at most 8 KB, header and payload strict JSON
   objects without duplicate members (``too_large``, ``malformed``, ``duplicate_member``);
   the signature segment must be canonical base64url, so a token has exactly one spelling;
2. header read without trusting it: ``typ`` is ``at+jwt`` or ``application/at+jwt`` (any
   case), which refuses id_tokens, logout and refresh tokens (``type``); a ``crit`` header is
   refused as no extension is understood (``malformed``); ``kid`` is a short string
   (``malformed``); ``jku``, ``x5u``, ``jwk`` and ``x5c`` are ignored;
3. the issuer is the configured one whose ``issuer`` is exactly the unverified ``iss``
   (``unknown_issuer``); nothing else is tried;
4. the header ``alg`` is in that issuer's allow-list (``algorithm``) and the key is looked up
   by ``kid`` in that issuer's cache only (``unknown_key``);
5. the signature is verified by :mod:`annuaire.auth._jose` with that algorithm, which must
   also suit the key (``algorithm``, ``signature``);
6. claims: ``iss``, ``aud``, ``exp``, ``iat``, ``sub``, ``client_id`` and ``jti`` are required
   (``missing_claim``) with their JSON types (``claim_type``: NumericDates are int or finite
   float in [0, 2**53), never bool or string); ``iss`` equals the issuer exactly
   (``issuer``); ``aud``, a string or an array, holds one of the issuer's audiences
   (``audience``);
7. time, with ``leeway_s`` of tolerance: ``exp`` not passed (``expired``), ``nbf`` reached
   (``not_yet_valid``), ``iat`` not in the future (``issued_in_future``) nor older than
   ``max_age_s`` (``too_old``);
8. a sender-constrained token (``cnf`` claim: mTLS or DPoP binding) is refused
   (``sender_constrained``): the API cannot check the binding, and accepting it as a plain
   bearer token would let whoever holds it use it (T-21).

The caller identity is what the token says: ``client_id`` and ``sub`` come from the verified
claims only. Error messages never contain the token; values read from it are shortened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from annuaire.errors import AiguillageError, ConfigurationError
from annuaire.settings import IssuerSettings

from . import _jose
from .jwks import JwksCache, KeysUnavailable

__all__ = [
    "ACCESS_TOKEN_TYPES",
    "DEFAULT_MAX_AGE_S",
    "REQUIRED_CLAIMS",
    "InvalidToken",
    "KeysUnavailable",
    "TokenValidator",
    "ValidatedToken",
]

#: Header ``typ`` values of an RFC 9068 access token (compared case-insensitively).
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Claims every accepted token carries (RFC 9068 §2.2, plus ``aud`` always).
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "client_id", "jti")
#: Tokens issued longer ago than this are refused whatever their ``exp``.
DEFAULT_MAX_AGE_S = 24 * 3600

_MAX_KID_CHARS = 256
#: 2**53: beyond it a NumericDate is no longer an exact JSON number anywhere.
_MAX_NUMERIC_DATE = 2**53
#: _jose reason -> the reason reported here.
_JOSE_REASONS = {
    "too_large": "too_large",
    "duplicate_member": "duplicate_member",
    "algorithm": "algorithm",
    "key_mismatch": "algorithm",
    "signature": "signature",
}


class InvalidToken(AiguillageError):
    """The token is refused; ``reason`` is a short stable code for logs and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ValidatedToken:
    """A token whose signature, issuer, audience, type, times and claims were all checked."""

    issuer: IssuerSettings
    claims: dict[str, Any]
    header: dict[str, Any]

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])


def _shown(value: object) -> str:
    """A value read from a token, safe and short enough for a message or a log line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_numeric_date(value: object) -> bool:
    # JSON numbers as Python reads them: bool is an int, NaN/Infinity are floats, and an int
    # may have hundreds of digits (math.isfinite would overflow on it): keep plausible times.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return 0 <= value < _MAX_NUMERIC_DATE


class TokenValidator:
    """Validates access tokens against a fixed set of issuers, each with its key cache."""

    def __init__(
        self,
        issuers: Sequence[tuple[IssuerSettings, JwksCache]],
        *,
        audience_default: str | None,
        leeway_s: int,
        max_age_s: int = DEFAULT_MAX_AGE_S,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not 0 <= leeway_s <= 60:
            raise ConfigurationError("the token leeway must be between 0 and 60 seconds")
        self._issuers: dict[str, tuple[IssuerSettings, JwksCache]] = {}
        self._audiences: dict[str, frozenset[str]] = {}
        names: set[str] = set()
        for settings, cache in issuers:
            if settings.issuer in self._issuers:
                raise ConfigurationError(f"issuer {settings.issuer!r} is configured twice")
            # Principals (and the contracts bound to them) know their issuer by its name.
            if settings.name in names:
                raise ConfigurationError(f"two issuers are named {settings.name!r}")
            names.add(settings.name)
            if cache.issuer.issuer != settings.issuer:
                raise ConfigurationError(f"issuer {settings.name!r} is paired with another cache")
            # An issuer without its own audiences (never the case from the settings file,
            # which requires one) accepts the API's default audience.
            audiences = frozenset(settings.audiences) or frozenset(
                [audience_default] if audience_default else []
            )
            if not audiences:
                raise ConfigurationError(f"issuer {settings.name!r} accepts no audience")
            self._issuers[settings.issuer] = (settings, cache)
            self._audiences[settings.issuer] = audiences
        self._leeway_s = leeway_s
        self._max_age_s = max_age_s
        self._now = now

    def accepted_until(self, validated: ValidatedToken) -> float:
        """When a validation of this token stops holding: its ``exp``, or the end of the age
        it may reach (``iat`` + the maximum age), with the leeway, whichever comes first."""
        claims = validated.claims
        limit = float(claims["iat"]) + self._max_age_s + self._leeway_s
        return min(float(claims["exp"]), limit)

    def validate(self, token: str) -> ValidatedToken:
        """The validated token, or :class:`InvalidToken` (:class:`KeysUnavailable` passes)."""
        if not isinstance(token, str):
            raise InvalidToken("malformed", "the token is not a string")
        try:
            header = _jose.read_header(token)
            unverified = _jose.read_payload(token)
            # One spelling per signature: a decoder ignores base64url's spare bits.
            _jose.read_signature(token)
        except _jose.JoseError as exc:
            raise InvalidToken(_JOSE_REASONS.get(exc.reason, "malformed"), str(exc)) from None

        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("type", f"header typ {_shown(typ)} is not an access token type")
        if "crit" in header:
            raise InvalidToken("malformed", "critical header extensions are not supported")
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("algorithm", "the header has no alg")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID_CHARS:
            raise InvalidToken("malformed", "the header kid is missing or not a short string")

        if "iss" not in unverified:
            raise InvalidToken("missing_claim", "claim 'iss' is required")
        iss = unverified["iss"]
        if not isinstance(iss, str):
            raise InvalidToken("claim_type", "claim 'iss' is not a string")
        found = self._issuers.get(iss)
        if found is None:
            raise InvalidToken("unknown_issuer", f"issuer {_shown(iss)} is not trusted")
        issuer, cache = found

        if alg not in issuer.algorithms or alg not in _jose.ASYMMETRIC_ALGORITHMS:
            raise InvalidToken(
                "algorithm", f"algorithm {_shown(alg)} is not accepted from {issuer.name!r}"
            )
        key = cache.key(kid)  # KeysUnavailable propagates: 503, not 401
        if key is None:
            raise InvalidToken("unknown_key", f"kid {_shown(kid)} is not a key of {issuer.name!r}")
        try:
            claims = _jose.verify(token, key, alg)
        except _jose.JoseError as exc:
            raise InvalidToken(_JOSE_REASONS.get(exc.reason, "malformed"), str(exc)) from None

        self._check_claims(issuer, claims)
        return ValidatedToken(issuer=issuer, claims=claims, header=header)

    def _check_claims(self, issuer: IssuerSettings, claims: dict[str, Any]) -> None:
        for name in REQUIRED_CLAIMS:
            if name not in claims:
                raise InvalidToken("missing_claim", f"claim {name!r} is required")
        for name in ("exp", "iat", "nbf"):
            if name in claims and not _is_numeric_date(claims[name]):
                raise InvalidToken("claim_type", f"claim {name!r} is not a NumericDate")
        for name in ("iss", "sub", "client_id", "jti"):
            if not isinstance(claims[name], str) or not claims[name]:
                raise InvalidToken("claim_type", f"claim {name!r} is not a non-empty string")
        if "scope" in claims and not isinstance(claims["scope"], str):
            raise InvalidToken("claim_type", "claim 'scope' is not a string")

        if claims["iss"] != issuer.issuer:
            raise InvalidToken("issuer", f"iss {_shown(claims['iss'])} is not {issuer.issuer!r}")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
            raise InvalidToken("claim_type", "claim 'aud' is not a string or an array of strings")
        if not self._audiences[issuer.issuer].intersection(audiences):
            raise InvalidToken("audience", f"aud {_shown(aud)} does not name this API")

        now, leeway = self._now(), self._leeway_s
        # RFC 7519 §4.1.4: valid only *before* exp; the leeway moves that instant, not the rule.
        if now >= claims["exp"] + leeway:
            raise InvalidToken("expired", "the token has expired")
        if "nbf" in claims and now + leeway < claims["nbf"]:
            raise InvalidToken("not_yet_valid", "the token is not valid yet (nbf)")
        if claims["iat"] > now + leeway:
            raise InvalidToken("issued_in_future", "the token is issued in the future (iat)")
        if now - claims["iat"] > self._max_age_s + leeway:
            raise InvalidToken("too_old", "the token was issued too long ago (iat)")

        if "cnf" in claims:
            raise InvalidToken(
                "sender_constrained", "sender-constrained tokens (cnf) are not supported"
            )
