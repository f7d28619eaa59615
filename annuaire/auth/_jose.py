"""The only module that touches the JOSE library (python-jose with the cryptography backend).

Everything else in the project signs and verifies through these few functions, so the library
can be replaced (PyJWT, joserfc) without touching the rest; the security tests exercise this
module through the API. Rules enforced here, whatever the token says:

- the header and the payload are parsed by us, strictly: base64url without padding tricks,
  JSON objects, no duplicate member names, at most ``MAX_TOKEN_BYTES``;
- only asymmetric algorithms exist here (``ES256/384/512``, ``RS256/384/512``, ``PS256/384/512``),
  and each is bound to the key type it needs: an EC key never verifies an RS256 signature, a
  public key is never an HMAC secret (``none`` and ``HS*`` are refused before any crypto);
- the key comes from the caller (a configured JWKS), never from the token (``jku``, ``x5u``,
  ``jwk`` and ``x5c`` headers are ignored).
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jws
from jose.exceptions import JOSEError

from annuaire.encoding import b64url_decode, b64url_encode

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "JoseError",
    "generate_es256_jwk",
    "public_jwk",
    "read_header",
    "read_payload",
    "read_signature",
    "sign",
    "verify",
]

MAX_TOKEN_BYTES = 8192

#: Algorithm -> the JWK ``kty`` its key must have.
ASYMMETRIC_ALGORITHMS: dict[str, str] = {
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


class JoseError(Exception):
    """A token that cannot be read or verified; ``reason`` is a short stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise JoseError("duplicate_member", f"duplicate member {name!r}")
        seen[name] = value
    return seen


def _no_constant(name: str) -> Any:
    raise JoseError("malformed", f"{name} is not a JSON number")


def _decode(text: str, what: str) -> bytes:
    """Canonical base64url only: one spelling per value (python-jose ignores spare bits)."""
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise JoseError("malformed", f"the {what} is not base64url")
    try:
        raw = b64url_decode(text)
    except ValueError:
        raise JoseError("malformed", f"the {what} is not base64url") from None
    if b64url_encode(raw) != text:
        raise JoseError("malformed", f"the {what} is not canonical base64url")
    return raw


def _segment(text: str, what: str) -> dict[str, Any]:
    raw = _decode(text, what)
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JoseError:
        raise
    except (ValueError, RecursionError):
        raise JoseError("malformed", f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise JoseError("malformed", f"the {what} is not a JSON object")
    return value


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _parts(token: str) -> list[str]:
    if len(token) > MAX_TOKEN_BYTES:
        raise JoseError("too_large", f"token longer than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("malformed", "a JWS compact token has three segments")
    return parts


def read_header(token: str) -> dict[str, Any]:
    """The protected header, parsed strictly; nothing in it is trusted yet."""
    return _segment(_parts(token)[0], "header")


def read_payload(token: str) -> dict[str, Any]:
    """The claims, parsed strictly but not verified: trust nothing read here before
    :func:`verify` (the validator reads ``iss`` first, only to choose the issuer's keys)."""
    return _segment(_parts(token)[1], "payload")


def read_signature(token: str) -> bytes:
    """The signature bytes, refused when empty or not in canonical base64url."""
    segment = _parts(token)[2]
    if not segment:
        raise JoseError("signature", "the signature is empty")
    return _decode(segment, "signature")


def verify(token: str, key: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """The claims of ``token`` if ``key`` (a public JWK) signed it with ``algorithm``."""
    parts = _parts(token)
    expected_kty = ASYMMETRIC_ALGORITHMS.get(algorithm)
    if expected_kty is None:
        raise JoseError("algorithm", f"algorithm {algorithm!r} is not accepted")
    if key.get("kty") != expected_kty or "d" in key or key.get("kty") == "oct":
        raise JoseError("key_mismatch", f"{algorithm} needs a public {expected_kty} key")
    if expected_kty == "EC" and key.get("crv") != _EC_CURVES[algorithm]:
        raise JoseError("key_mismatch", f"{algorithm} needs curve {_EC_CURVES[algorithm]}")
    if key.get("alg") not in (None, algorithm):
        raise JoseError("key_mismatch", f"the key is bound to {key.get('alg')}, not {algorithm}")
    read_signature(token)
    try:
        jws.verify(token, jwk.construct(key, algorithm), algorithms=[algorithm])
    except (JOSEError, ValueError, TypeError) as exc:
        raise JoseError("signature", f"the signature does not verify: {exc}") from None
    return _segment(parts[1], "payload")


def sign(claims: dict[str, Any], private_key: dict[str, Any], *, typ: str = "at+jwt") -> str:
    """An ES256 JWS of ``claims`` with ``private_key`` (a private EC JWK with a ``kid``)."""
    headers = {"typ": typ, "kid": private_key["kid"]}
    key = {k: v for k, v in private_key.items() if k != "kid"}
    return str(jws.sign(claims, key, headers=headers, algorithm="ES256"))


def generate_es256_jwk(kid: str) -> dict[str, Any]:
    """A new P-256 private key as a JWK (with ``kid``, ``alg`` ES256 and ``use`` sig)."""
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.private_numbers()

    def b64(value: int) -> str:
        return b64url_encode(value.to_bytes(32, "big"))

    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.public_numbers.x),
        "y": b64(numbers.public_numbers.y),
        "d": b64(numbers.private_value),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }


def public_jwk(private_key: dict[str, Any]) -> dict[str, Any]:
    """The public half of a private JWK (what a JWKS publishes)."""
    return {k: v for k, v in private_key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
