"""The resource-server checklist of IDENTITY.md §7.1-7.4 (T-01 to T-22) against a real JWKS server.

Every negative test asserts the stable ``reason`` of the :class:`InvalidToken`, so a token
refused for the wrong reason (say, ``unknown_key`` where the algorithm should have stopped it)
fails the test. Forged tokens are signed by real keys whenever the point is that only the
check under test stands in the way.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from annuaire.auth import _jose, bearer
from annuaire.auth.jwks import JwksCache, KeysUnavailable, usable_keys
from annuaire.auth.principal import Unauthenticated
from annuaire.auth.tokens import DEFAULT_MAX_AGE_S, InvalidToken, TokenValidator
from annuaire.errors import ConfigurationError
from annuaire.settings import Settings

from .conftest import (
    ABSENT,
    AUDIENCE,
    ISSUER,
    LEEWAY_S,
    REFRESH_S,
    TTL_S,
    Clock,
    Hub,
    JwksServer,
    Signer,
    b64,
    b64json,
    fast_cache,
    forge,
    issuer_settings,
    make_hub,
)


def refused(hub: Hub, token: str) -> str:
    """The reason ``token`` is refused (fails the test if it is accepted)."""
    with pytest.raises(InvalidToken) as info:
        hub.validator.validate(token)
    message = str(info.value)
    assert not [part for part in token.split(".") if len(part) >= 16 and part in message]
    return info.value.reason


def accepted(hub: Hub, token: str) -> dict[str, Any]:
    return hub.validator.validate(token).claims


# -- the nominal case ----------------------------------------------------------------------


def test_a_valid_token_is_accepted(hub: Hub) -> None:
    validated = hub.validator.validate(hub.token())
    assert validated.issuer == hub.settings
    assert validated.claims["sub"] == "person-0001"
    assert validated.header == {"alg": "ES256", "typ": "at+jwt", "kid": hub.key.kid}
    assert (validated.client_id, validated.subject) == ("vendor-a", "person-0001")
    assert hub.server.requests == 1
    hub.validator.validate(hub.token(jti="jti-0002"))
    assert hub.server.requests == 1, "a known kid needs no fetch while the keys are fresh"


def test_tokens_signed_by_the_hub_signing_code_are_accepted(hub: Hub) -> None:
    private = _jose.generate_es256_jwk("hub-minted")
    hub.server.publish(hub.key.jwk, _jose.public_jwk(private))
    assert accepted(hub, _jose.sign(hub.claims(), private))["client_id"] == "vendor-a"


def test_an_rs256_issuer(jwks_server: JwksServer, clock: Clock) -> None:
    rsa_hub = make_hub(jwks_server, Signer("rsa-1", "RS256"), clock, algorithms=["RS256"])
    assert accepted(rsa_hub, rsa_hub.token())["iss"] == ISSUER


# -- 7.1 token structure and algorithms ----------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize(
    ("signature", "reason"), [("", "signature"), ("forged", "algorithm")], ids=["empty", "junk"]
)
def test_t01_alg_none(hub: Hub, alg: str, signature: str, reason: str) -> None:
    sign = (lambda data: b"\x01" * 64) if signature else None
    assert refused(hub, forge(hub.header(alg=alg), hub.claims(), sign)) == reason


def test_t01_signature_stripped(hub: Hub) -> None:
    head, payload, _ = hub.token().split(".")
    assert refused(hub, f"{head}.{payload}.") == "signature"
    assert refused(hub, f"{head}.{payload}") == "malformed"


def _hmac(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def _public_key_forms(signer: Signer) -> dict[str, bytes]:
    public = signer.private.public_key()
    pem, der, ssh = (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
    )
    return {
        "pem": pem,
        "der": der,
        "openssh": ssh,
        "jwk-json": json.dumps(signer.jwk).encode(),
        "jwk-json-compact": json.dumps(signer.jwk, separators=(",", ":"), sort_keys=True).encode(),
    }


@pytest.mark.parametrize("form", ["pem", "der", "openssh", "jwk-json", "jwk-json-compact"])
@pytest.mark.parametrize("kind", ["ES256", "RS256"])
def test_t02_hs256_with_the_public_key_as_secret(
    jwks_server: JwksServer, clock: Clock, kind: str, form: str
) -> None:
    signer = Signer(f"{kind}-key", kind)
    # The widest allow-list the settings permit: HS* can never be part of it.
    hub = make_hub(jwks_server, signer, clock, algorithms=["ES256", "RS256", "PS256"])
    secret = _public_key_forms(signer)[form]
    token = forge(hub.header(alg="HS256"), hub.claims(), _hmac(secret))
    assert refused(hub, token) == "algorithm"
    # Below the validator, the JOSE module refuses HS256 with that very key as well.
    with pytest.raises(_jose.JoseError) as info:
        _jose.verify(token, signer.jwk, "HS256")
    assert info.value.reason == "algorithm"


def test_t02_hs_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValidationError, match="never accepted"):
        issuer_settings("https://broker.example.fr/certs", algorithms=["ES256", "HS256"])


@pytest.fixture
def mixed_hub(jwks_server: JwksServer, key: Signer, clock: Clock) -> tuple[Hub, Signer]:
    """An issuer allowing several algorithms, publishing an EC key and an RS256-bound RSA key."""
    algorithms = ["ES256", "ES384", "RS256", "RS384", "PS256"]
    hub = make_hub(jwks_server, key, clock, algorithms=algorithms)
    rsa_signer = Signer("rsa-1", "RS256")
    hub.server.publish(key.jwk, {**rsa_signer.jwk, "alg": "RS256"})
    return hub, rsa_signer


def test_t03_rs256_where_only_es256_is_allowed(
    jwks_server: JwksServer, key: Signer, clock: Clock
) -> None:
    hub = make_hub(jwks_server, key, clock, algorithms=["ES256"])
    rsa_signer, pss_signer = Signer("rsa-1", "RS256"), Signer("rsa-2", "PS256")
    hub.server.publish(key.jwk, rsa_signer.jwk, pss_signer.jwk)
    assert refused(hub, hub.token(rsa_signer)) == "algorithm"
    assert refused(hub, hub.token(pss_signer)) == "algorithm"


@pytest.mark.parametrize(
    ("alg", "kid", "signed_by"),
    [
        ("RS256", "hub-2025-01", "rsa"),  # RSA signature, EC key named
        ("PS256", "hub-2025-01", "rsa"),
        ("ES384", "hub-2025-01", "ec"),  # right key type, wrong curve
        ("ES256", "rsa-1", "ec"),  # EC signature, RSA key named
        ("RS384", "rsa-1", "rsa"),  # the JWKS binds rsa-1 to RS256
        ("PS256", "rsa-1", "rsa"),
    ],
)
def test_t03_algorithm_not_bound_to_the_key(
    mixed_hub: tuple[Hub, Signer], alg: str, kid: str, signed_by: str
) -> None:
    hub, rsa_signer = mixed_hub
    signer = rsa_signer if signed_by == "rsa" else hub.key
    token = forge(hub.header(alg=alg, kid=kid), hub.claims(), lambda d: signer.sign(d, alg))
    assert refused(hub, token) == "algorithm"


def test_t03_control_the_rsa_key_works_with_its_own_algorithm(
    mixed_hub: tuple[Hub, Signer],
) -> None:
    hub, rsa_signer = mixed_hub
    assert accepted(hub, hub.token(rsa_signer))


def _flip(segment: str, index: int) -> str:
    raw = bytearray(_jose_b64decode(segment))
    raw[index] ^= 0x01
    return b64(bytes(raw))


def _jose_b64decode(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


TAMPERING: dict[str, tuple[Callable[[str], str], set[str]]] = {
    "bit-flip-signature": (
        lambda t: ".".join([*t.split(".")[:2], _flip(t.split(".")[2], 10)]),
        {"signature"},
    ),
    "bit-flip-payload": (
        lambda t: ".".join([t.split(".")[0], _flip(t.split(".")[1], 5), t.split(".")[2]]),
        {"signature", "malformed"},
    ),
    "claim-changed": (
        lambda t: ".".join(
            [
                t.split(".")[0],
                b64json({**json.loads(_jose_b64decode(t.split(".")[1])), "sub": "person-0002"}),
                t.split(".")[2],
            ]
        ),
        {"signature"},
    ),
    "signature-truncated": (lambda t: t[:-4], {"signature", "malformed"}),
    "signature-half": (lambda t: t[: len(t) - 43], {"signature", "malformed"}),
    "token-truncated": (lambda t: t[: len(t) // 2], {"malformed"}),
    "plus-slash-alphabet": (lambda t: t.replace("-", "+").replace("_", "/") + "+/", {"malformed"}),
    "padding": (lambda t: t + "==", {"malformed"}),
    "padding-in-header": (lambda t: t.split(".")[0] + "=." + t.split(".", 1)[1], {"malformed"}),
    "whitespace": (lambda t: t[:20] + " " + t[20:], {"malformed"}),
    "newline": (lambda t: t + "\n", {"malformed"}),
    "extra-segment": (lambda t: t + ".e30", {"malformed"}),
    "two-segments": (lambda t: t.rsplit(".", 1)[0], {"malformed"}),
    "jwe-shaped": (
        lambda t: ".".join(
            [b64json({"alg": "RSA-OAEP", "enc": "A256GCM", "typ": "at+jwt"}), "a", "b", "c", "d"]
        ),
        {"malformed"},
    ),
    "empty": (lambda t: "", {"malformed"}),
    "dots-only": (lambda t: "..", {"malformed"}),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_t04_signature_tampering(hub: Hub, case: str) -> None:
    tamper, reasons = TAMPERING[case]
    token = hub.token()
    assert accepted(hub, token)
    assert refused(hub, tamper(token)) in reasons


def test_t04_non_canonical_signature_encoding_is_refused(hub: Hub) -> None:
    # A 64-byte signature leaves 4 spare bits in its last base64url character: decoders
    # ignore them, so without a canonical check 16 strings would verify as one token.
    token = hub.token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [token[:-1] + c for c in alphabet if c != token[-1]]
    assert {refused(hub, variant) for variant in variants} <= {"malformed", "signature"}


def test_t05_duplicate_header_member(hub: Hub) -> None:
    header = f'{{"alg":"ES256","typ":"at+jwt","kid":"{hub.key.kid}","alg":"none"}}'
    assert refused(hub, forge(header, hub.claims(), hub.key.sign)) == "duplicate_member"


@pytest.mark.parametrize("member", ["aud", "iss", "exp", "sub"])
def test_t05_duplicate_payload_member(hub: Hub, member: str) -> None:
    claims = hub.claims()
    body = json.dumps(claims)[:-1] + f", {json.dumps(member)}: {json.dumps(claims[member])}}}"
    assert refused(hub, forge(hub.header(), body, hub.key.sign)) == "duplicate_member"


def _timed_refusal(hub: Hub, token: str) -> tuple[str, float]:
    started = time.perf_counter()
    reason = refused(hub, token)
    return reason, time.perf_counter() - started


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("claims-over-8kb", "too_large"),
        ("one-megabyte", "too_large"),
        ("nested-payload", "malformed"),
        ("nested-header", "malformed"),
    ],
)
def test_t06_oversized_or_deeply_nested(hub: Hub, case: str, reason: str) -> None:
    deep = '{"x":' + "[" * 2000 + "]" * 2000 + "}"
    token = {
        "claims-over-8kb": lambda: hub.token(pad="x" * 9000),
        "one-megabyte": lambda: "a" * 1_000_000 + ".b.c",
        "nested-payload": lambda: forge(hub.header(), deep, hub.key.sign),
        "nested-header": lambda: forge(deep, hub.claims(), hub.key.sign),
    }[case]()
    got, elapsed = _timed_refusal(hub, token)
    assert got == reason
    assert elapsed < 0.25
    assert hub.server.requests == 0, "refused before any key is looked up"


# -- 7.2 keys, kid, jku, rotation and caching ----------------------------------------------


class FileOpens:
    """Paths opened by this process while ``watching`` (a ``sys.addaudithook`` hook)."""

    def __init__(self) -> None:
        self.watching = False
        self.paths: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event == "open":
            self.paths.append(str(args[0]))


@pytest.fixture(scope="session")
def file_opens() -> FileOpens:
    return FileOpens()


INJECTED_KIDS = [
    "../../../../etc/passwd",
    "/dev/null",
    "/dev/random",
    "file:///etc/shadow",
    "' OR '1'='1",
    "1; DROP TABLE keys; --",
    "kid\r\nX-Injected: 1",
    "\x00",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "*",
    "k" * 256,
]


@pytest.mark.parametrize("kid", INJECTED_KIDS, ids=range(len(INJECTED_KIDS)))
def test_t07_kid_injection(hub: Hub, file_opens: FileOpens, kid: str) -> None:
    assert accepted(hub, hub.token())
    file_opens.paths.clear()
    file_opens.watching = True
    try:
        reason = refused(hub, hub.token(header=hub.header(kid=kid)))
    finally:
        file_opens.watching = False
    assert reason == "unknown_key"
    assert file_opens.paths == []
    assert hub.server.requests == 1


@pytest.mark.parametrize("kid", ["k" * 257, "", 42, None, ["hub-2025-01"], {"$ne": ""}])
def test_t07_kid_that_is_not_a_short_string(hub: Hub, kid: object) -> None:
    assert refused(hub, hub.token(header=hub.header(kid=kid))) == "malformed"
    assert hub.server.requests == 0


def _self_signed_certificate(signer: Signer) -> str:
    private = signer.private
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    import base64

    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("jku-attacker-kid", "unknown_key"),
        ("jku-legit-kid", "signature"),
        ("x5u-attacker-kid", "unknown_key"),
        ("x5u-legit-kid", "signature"),
        ("jwk-attacker-kid", "unknown_key"),
        ("jwk-legit-kid", "signature"),
        ("x5c-legit-kid", "signature"),
        ("all-of-them", "signature"),
    ],
)
def test_t08_keys_named_by_the_token_are_never_used(
    hub: Hub, attacker_server: JwksServer, case: str, reason: str
) -> None:
    attacker = Signer("attacker-1")
    attacker_server.publish(attacker.jwk)
    kid = hub.key.kid if "legit" in case or case == "all-of-them" else attacker.kid
    pointers: dict[str, Any] = {
        "jku": attacker_server.url,
        "x5u": attacker_server.url.replace("/certs", "/cert.pem"),
        "jwk": attacker.jwk,
        "x5c": [_self_signed_certificate(attacker)],
    }
    extra = pointers if case == "all-of-them" else {case[:3]: pointers[case[:3]]}
    token = hub.token(attacker, header=hub.header(attacker, kid=kid, **extra))
    assert refused(hub, token) == reason
    assert attacker_server.requests == 0, "no request to a URL taken from a token"
    assert hub.server.requests == 1


def test_t08_the_jwks_endpoint_cannot_redirect_elsewhere(
    hub: Hub, attacker_server: JwksServer
) -> None:
    attacker = Signer("attacker-1")
    attacker_server.publish(attacker.jwk)
    hub.server.serve(302, b"", location=attacker_server.url)
    with pytest.raises(KeysUnavailable):
        hub.validator.validate(hub.token(attacker))
    assert attacker_server.requests == 0


def test_t09_a_burst_of_unknown_kids_costs_one_refresh(hub: Hub) -> None:
    assert accepted(hub, hub.token())
    assert hub.server.requests == 1
    for n in range(50):  # right after a fetch: none of them may fetch again
        assert refused(hub, hub.token(header=hub.header(kid=f"unknown-{n}"))) == "unknown_key"
    assert hub.server.requests == 1
    hub.clock.advance(REFRESH_S)
    for n in range(50):
        assert refused(hub, hub.token(header=hub.header(kid=f"later-{n}"))) == "unknown_key"
    assert hub.server.requests == 2
    assert accepted(hub, hub.token()), "the known key still works"


def test_t09_a_concurrent_burst_costs_one_refresh(hub: Hub) -> None:
    assert accepted(hub, hub.token())
    hub.clock.advance(REFRESH_S)
    hub.server.slow_down(0.1)  # every request of the burst arrives while the fetch runs
    tokens = [hub.token(header=hub.header(kid=f"unknown-{n}")) for n in range(32)]

    def reason(token: str) -> str:
        try:
            hub.validator.validate(token)
        except InvalidToken as exc:
            return exc.reason
        return "accepted"

    with ThreadPoolExecutor(max_workers=32) as pool:
        reasons = list(pool.map(reason, tokens))
    assert set(reasons) == {"unknown_key"}
    assert hub.server.requests == 2


def test_t09_a_concurrent_burst_with_a_new_key_waits_for_the_one_fetch(hub: Hub) -> None:
    assert accepted(hub, hub.token())
    new = Signer("hub-2025-02")
    hub.server.publish(hub.key.jwk, new.jwk)
    hub.server.slow_down(0.1)
    hub.clock.advance(REFRESH_S)
    tokens = [hub.token(new, jti=f"jti-{n}") for n in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        subjects = list(pool.map(lambda t: hub.validator.validate(t).subject, tokens))
    assert subjects == ["person-0001"] * 16
    assert hub.server.requests == 2


def test_t10_rotation_without_restart(hub: Hub) -> None:
    old, new = hub.key, Signer("hub-2025-02")
    assert accepted(hub, hub.token(old))
    hub.server.publish(old.jwk, new.jwk)  # the new key is published before it signs
    hub.clock.advance(REFRESH_S)
    assert accepted(hub, hub.token(new)), "new key accepted by the running validator"
    hub.server.publish(new.jwk)  # the old key is withdrawn
    fetched = hub.server.requests
    assert accepted(hub, hub.token(old)), "still trusted while the cached set is fresh"
    hub.clock.advance(TTL_S)
    assert refused(hub, hub.token(old)) == "unknown_key", "gone once the cache TTL ran out"
    assert accepted(hub, hub.token(new))
    assert hub.server.requests == fetched + 1


BREAKDOWNS: dict[str, Callable[[JwksServer], None]] = {
    "down": lambda s: s.stop(),
    "status-500": lambda s: s.fail_with(500),
    "status-503": lambda s: s.fail_with(503),
    "status-404": lambda s: s.fail_with(404),
    "garbage": lambda s: s.serve(200, b"<html>maintenance</html>"),
    "truncated-json": lambda s: s.serve(200, b'{"keys": [{"kty": "EC"'),
    "not-a-jwks": lambda s: s.serve(200, b'{"issuer": "https://broker.example.fr"}'),
    "keys-not-a-list": lambda s: s.serve(200, b'{"keys": {"kid": "x"}}'),
    "json-array": lambda s: s.serve(200, b"[]"),
    "empty-set": lambda s: s.publish(),
    "only-unusable-keys": lambda s: s.publish(
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {**_jose.generate_es256_jwk("private")},
        {k: v for k, v in Signer("no-kid").jwk.items() if k != "kid"},
    ),
    "too-large": lambda s: s.serve(200, b'{"keys": [' + b'{"kty":"EC"},' * 30_000 + b"{}]}"),
    "hangs": lambda s: s.hang(1.0),
}


@pytest.mark.parametrize("breakdown", sorted(BREAKDOWNS))
def test_t11_jwks_endpoint_failing(hub: Hub, breakdown: str) -> None:
    assert accepted(hub, hub.token())
    BREAKDOWNS[breakdown](hub.server)

    # Within the TTL: a refresh is tried (an unknown kid asks for one) and fails...
    hub.clock.advance(REFRESH_S)
    assert refused(hub, hub.token(header=hub.header(kid="unknown"))) == "unknown_key"
    # ...and the cached key keeps working: a transient error never wipes the cache.
    assert accepted(hub, hub.token())
    assert hub.cache.kids() == {hub.key.kid}

    # After the TTL, with the endpoint still failing: fail closed (503), never open.
    hub.clock.advance(TTL_S)
    with pytest.raises(KeysUnavailable) as info:
        hub.validator.validate(hub.token())
    assert 0 <= info.value.retry_after_s <= REFRESH_S
    asked = hub.server.requests
    with pytest.raises(KeysUnavailable):  # and without hammering the endpoint meanwhile
        hub.validator.validate(hub.token())
    assert hub.server.requests == asked

    # Once the endpoint answers again, the next allowed fetch restores service.
    if breakdown == "down":
        hub.server.start()
    hub.server.publish(hub.key.jwk)
    hub.clock.advance(REFRESH_S)
    assert accepted(hub, hub.token())


def test_t11_no_keys_ever_fetched_is_a_503(hub: Hub) -> None:
    hub.server.fail_with(500)
    with pytest.raises(KeysUnavailable) as info:
        hub.validator.validate(hub.token())
    assert not isinstance(info.value, InvalidToken)
    assert info.value.retry_after_s == REFRESH_S


def test_t11_each_retry_is_logged(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.server.fail_with(500)
    with caplog.at_level("WARNING", logger="aiguillage.auth"), pytest.raises(KeysUnavailable):
        hub.validator.validate(hub.token())
    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == 1  # two attempts in the test cache: one retry
    assert hub.server.requests == 2
    assert any("keeping 0 cached key(s)" in r.getMessage() for r in caplog.records)


@pytest.fixture
def two_issuers(jwks_server: JwksServer, clock: Clock) -> Iterator[tuple[Hub, Hub, TokenValidator]]:
    other_server = JwksServer()
    a = make_hub(jwks_server, Signer("key-a"), clock)
    b = make_hub(
        other_server, Signer("key-b"), clock, issuer="https://other.example.fr/realms/x", name="b"
    )
    validator = TokenValidator(
        [(a.settings, a.cache), (b.settings, b.cache)],
        audience_default=AUDIENCE,
        leeway_s=LEEWAY_S,
        now=clock,
    )
    a.validator = b.validator = validator
    yield a, b, validator
    other_server.stop()


def test_t12_key_of_another_issuer(two_issuers: tuple[Hub, Hub, TokenValidator]) -> None:
    a, b, _ = two_issuers
    assert accepted(a, a.token())["iss"] == a.settings.issuer
    assert accepted(b, b.token())["iss"] == b.settings.issuer
    # iss names A, the kid and the signature are B's: A's keys are the only ones consulted.
    assert refused(a, a.token(b.key)) == "unknown_key"
    assert refused(b, b.token(a.key)) == "unknown_key"
    assert b.server.requests == 1 and a.server.requests == 1


def test_t12_same_kid_at_two_issuers(two_issuers: tuple[Hub, Hub, TokenValidator]) -> None:
    a, b, _ = two_issuers
    impostor = Signer(a.key.kid)  # B publishes a key under A's kid
    b.server.publish(b.key.jwk, impostor.jwk)
    assert refused(a, a.token(impostor)) == "signature"


# -- 7.3 time claims -----------------------------------------------------------------------


def test_t13_exp_and_the_leeway(hub: Hub) -> None:
    now = int(hub.clock.now)
    old: dict[str, Any] = {"iat": now - 900, "nbf": now - 900}
    assert accepted(hub, hub.token(exp=now - LEEWAY_S + 1, **old))
    # RFC 7519 §4.1.4: valid only *before* exp, so exactly exp + leeway is already too late.
    assert refused(hub, hub.token(exp=now - LEEWAY_S, **old)) == "expired"
    assert refused(hub, hub.token(exp=now - LEEWAY_S - 1, **old)) == "expired"


def test_t13_exp_without_leeway(hub: Hub) -> None:
    strict = TokenValidator(
        [(hub.settings, hub.cache)], audience_default=None, leeway_s=0, now=hub.clock
    )
    now = int(hub.clock.now)
    assert strict.validate(hub.token(iat=now - 60, nbf=ABSENT, exp=now + 1))
    with pytest.raises(InvalidToken, match="expired"):
        strict.validate(hub.token(iat=now - 60, nbf=ABSENT, exp=now))


def test_t14_nbf_and_the_leeway(hub: Hub) -> None:
    now = int(hub.clock.now)
    assert accepted(hub, hub.token(nbf=now + LEEWAY_S))
    assert refused(hub, hub.token(nbf=now + LEEWAY_S + 1)) == "not_yet_valid"


def test_t15_iat_in_the_future(hub: Hub) -> None:
    now = int(hub.clock.now)
    assert accepted(hub, hub.token(iat=now + LEEWAY_S, nbf=ABSENT))
    assert refused(hub, hub.token(iat=now + LEEWAY_S + 1, nbf=ABSENT)) == "issued_in_future"


def test_t15_iat_older_than_the_maximum_age(hub: Hub) -> None:
    now = int(hub.clock.now)
    oldest = now - DEFAULT_MAX_AGE_S - LEEWAY_S
    assert accepted(hub, hub.token(iat=oldest, nbf=oldest, exp=now + 600))
    assert refused(hub, hub.token(iat=oldest - 1, nbf=oldest, exp=now + 600)) == "too_old"


def test_t15_a_validation_holds_until_exp_or_the_maximum_age(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a validation is cached for: until ``exp``, or until the token is too old, whichever
    comes first, and never more than five minutes (a key may leave the issuer's JWKS)."""
    now = int(hub.clock.now)
    young = hub.validator.validate(hub.token(iat=now - 60, nbf=ABSENT, exp=now + 600))
    assert hub.validator.accepted_until(young) == now + 600
    old = now - DEFAULT_MAX_AGE_S + 30
    aging = hub.validator.validate(hub.token(iat=old, nbf=ABSENT, exp=now + 30 * 86_400))
    assert hub.validator.accepted_until(aging) == now + 30 + LEEWAY_S

    authenticator = bearer.Authenticator(Settings(environment="test"), [])
    authenticator.validator = hub.validator
    monkeypatch.setattr(bearer.time, "time", hub.clock)
    for iat, exp in ((old, now + 30 * 86_400), (now, now + 86_400)):
        token = hub.token(iat=iat, nbf=ABSENT, exp=exp, jti=f"jti-{iat}")
        hub.clock.now = now
        assert anyio.run(authenticator.principal_of, token).client_id == "vendor-a"
        hub.clock.advance(300 + 1)  # past the cache's own limit, still young
        if iat == now:
            assert anyio.run(authenticator.principal_of, token).client_id == "vendor-a"
            continue
        hub.clock.now = now + 30 + LEEWAY_S + 1  # too old now: validated again, refused
        with pytest.raises(Unauthenticated, match="issued too long ago"):
            anyio.run(authenticator.principal_of, token)


@pytest.mark.parametrize("claim", ["exp", "iat", "aud", "iss", "sub", "client_id", "jti"])
def test_t16_required_claim_missing(hub: Hub, claim: str) -> None:
    assert refused(hub, hub.token(**{claim: ABSENT})) == "missing_claim"


def test_t16_nbf_is_optional(hub: Hub) -> None:
    assert accepted(hub, hub.token(nbf=ABSENT))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize(
    "value",
    [
        "2000000000",
        "2.0e9",
        "",
        True,
        False,
        None,
        [2000000000],
        {"$date": 2000000000},
        float("inf"),
        float("-inf"),
        float("nan"),
        10**400,
        2**53,
        -1,
    ],
    ids=repr,
)
def test_t17_non_numeric_time_claims(hub: Hub, claim: str, value: Any) -> None:
    # NaN and Infinity are not JSON: refused while parsing; other shapes by the claim check
    expected = (
        "malformed" if isinstance(value, float) and not math.isfinite(value) else "claim_type"
    )
    assert refused(hub, hub.token(**{claim: value})) == expected


def test_t17_float_numeric_dates_are_numbers(hub: Hub) -> None:
    now = hub.clock.now
    assert accepted(hub, hub.token(iat=now - 0.5, nbf=now - 0.5, exp=now + 600.25))


# -- 7.4 issuer, audience, token type ------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        ISSUER + "/",
        ISSUER.replace("https://", "http://"),
        ISSUER.upper(),
        ISSUER.replace("broker.", "BROKER."),
        ISSUER.replace("/realms/hub", "/realms/Hub"),
        ISSUER.replace("/realms/hub", "/realms/other"),
        ISSUER.replace("broker.", "broker-preprod."),
        ISSUER.replace("example.fr", "example.fr:443"),
        " " + ISSUER,
        ISSUER + " ",
        ISSUER + "#",
        ISSUER + "?",
        ISSUER.replace("e", "е"),  # Cyrillic е
        "",
    ],
)
def test_t18_issuer_variants(hub: Hub, iss: str) -> None:
    assert refused(hub, hub.token(iss=iss)) == "unknown_issuer"
    assert hub.server.requests == 0, "an unknown issuer costs no key lookup"


@pytest.mark.parametrize("iss", [[ISSUER], 42, {"iss": ISSUER}, None])
def test_t18_issuer_not_a_string(hub: Hub, iss: object) -> None:
    assert refused(hub, hub.token(iss=iss)) == "claim_type"


@pytest.mark.parametrize(
    ("aud", "reason"),
    [
        ("urn:aiguillage:other-api", "audience"),
        ("account", "audience"),
        ("vendor-a", "audience"),  # an id_token's aud is the client id
        (AUDIENCE + "/", "audience"),
        (AUDIENCE.upper(), "audience"),
        (["account", "urn:aiguillage:other-api"], "audience"),
        ([], "audience"),
        ([AUDIENCE, 42], "claim_type"),
        (42, "claim_type"),
        (None, "claim_type"),
        ({"aud": AUDIENCE}, "claim_type"),
        (ABSENT, "missing_claim"),
    ],
    ids=repr,
)
def test_t19_audience_variants(hub: Hub, aud: object, reason: str) -> None:
    assert refused(hub, hub.token(aud=aud)) == reason


@pytest.mark.parametrize("aud", [AUDIENCE, [AUDIENCE], ["account", AUDIENCE]], ids=repr)
def test_t19_audience_accepted(hub: Hub, aud: object) -> None:
    assert accepted(hub, hub.token(aud=aud))["aud"] == aud


@pytest.mark.parametrize(
    "typ",
    [
        "JWT",
        "jwt",
        ABSENT,
        None,
        "",
        "ID",
        "Bearer",
        "Refresh",
        "logout+jwt",
        "secevent+jwt",
        "dpop+jwt",
        "application/jwt",
        "at+jwt ",
        "at+jwt; charset=utf-8",
        "application/at+jwt+extra",
        ["at+jwt"],
        1,
    ],
    ids=repr,
)
def test_t20_not_an_access_token_type(hub: Hub, typ: object) -> None:
    assert refused(hub, hub.token(header=hub.header(typ=typ))) == "type"


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+JWT"])
def test_t20_access_token_types(hub: Hub, typ: str) -> None:
    assert accepted(hub, hub.token(header=hub.header(typ=typ)))


def test_t20_broker_id_token(hub: Hub) -> None:
    # What a broker gives a vendor application for its own login: same issuer, same keys.
    id_token = hub.token(
        header=hub.header(typ="JWT"),
        aud="vendor-a",
        azp="vendor-a",
        nonce="n-0S6_WzA2Mj",
        client_id=ABSENT,
        typ="ID",
    )
    assert refused(hub, id_token) == "type"
    # Keycloak refresh tokens: typ JWT, HMAC-signed, and never meant for a resource server.
    refresh = forge({"alg": "HS512", "typ": "JWT", "kid": "r"}, hub.claims(typ="Refresh"), None)
    assert refused(hub, refresh + "c2ln") == "type"


def test_t20_upstream_id_token(hub: Hub) -> None:
    franceconnect = Signer("fc-key")
    token = hub.token(
        franceconnect,
        header=hub.header(franceconnect, typ="JWT"),
        iss="https://fcp-low.franceconnect.gouv.fr/api/v2",
        aud="hub-broker",
    )
    assert refused(hub, token) == "type"


def test_t21_the_client_is_the_one_named_by_the_token(hub: Hub) -> None:
    # The API has no other client identity to compare with: a bearer token's client is its
    # ``client_id``, taken from the verified claims only (vendor A's token always acts as A).
    for client in ("vendor-a", "vendor-b"):
        assert hub.validator.validate(hub.token(client_id=client)).client_id == client


@pytest.mark.parametrize(
    "cnf", [{"x5t#S256": b64(b"\x01" * 32)}, {"jkt": b64(b"\x02" * 32)}], ids=["mtls", "dpop"]
)
def test_t21_sender_constrained_tokens_are_refused(hub: Hub, cnf: dict[str, str]) -> None:
    # Bound to vendor A's certificate or DPoP key; the API cannot check the binding, and
    # accepting the token as a plain bearer would let another client replay it.
    assert refused(hub, hub.token(cnf=cnf)) == "sender_constrained"


@pytest.mark.parametrize("claim", ["client_id", "sub", "jti"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (ABSENT, "missing_claim"),
        ("", "claim_type"),
        (None, "claim_type"),
        (42, "claim_type"),
        (["vendor-a"], "claim_type"),
    ],
    ids=["absent", "empty", "null", "number", "array"],
)
def test_t22_client_id_sub_jti(hub: Hub, claim: str, value: Any, reason: str) -> None:
    assert refused(hub, hub.token(**{claim: value})) == reason


# -- the key cache's own contract ----------------------------------------------------------


def test_unusable_keys_are_left_out_of_a_jwks() -> None:
    good, good_rsa, twice = Signer("good"), Signer("good-rsa", "RS256"), Signer("twice")
    weak = Signer("weak-rsa", "RS256")
    weak.private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    keys = usable_keys(
        {
            "keys": [
                good.jwk,
                good_rsa.jwk,
                weak.jwk,
                {k: v for k, v in Signer("x").jwk.items() if k != "kid"},
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                _jose.generate_es256_jwk("private"),
                {**Signer("enc").jwk, "use": "enc"},
                twice.jwk,
                {**Signer("twice", "RS256").jwk},
                "not a key",
                {**Signer("numeric-kid").jwk, "kid": 7},
            ]
        }
    )
    assert keys == {"good": good.jwk, "good-rsa": good_rsa.jwk}


@pytest.mark.parametrize("document", [[], {}, {"keys": {}}, {"keys": []}, {"keys": ["x"]}])
def test_a_document_without_usable_keys_is_not_a_jwks(document: object) -> None:
    with pytest.raises(ValueError):
        usable_keys(document)


@pytest.mark.parametrize(
    "uri",
    ["http://broker.example.fr/certs", "file:///etc/passwd", "ftp://127.0.0.1/certs", "/certs"],
)
def test_jwks_uri_must_be_https_or_loopback(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        JwksCache(issuer_settings(uri))


@pytest.mark.parametrize("uri", ["https://broker.example.fr/certs", "http://localhost:8080/x"])
def test_jwks_uri_accepted(uri: str) -> None:
    assert JwksCache(issuer_settings(uri)).kids() == frozenset()


def test_jwks_file_issuer_and_its_rotation(tmp_path: Path, clock: Clock) -> None:
    old, new = Signer("file-1"), Signer("file-2")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [old.jwk]}))
    settings = issuer_settings(None, jwks_file=path)
    cache = fast_cache(settings, clock)
    assert cache.key("file-1") == old.jwk
    path.write_text(json.dumps({"keys": [new.jwk]}))
    assert cache.key("file-2") is None, "rate limited"
    clock.advance(REFRESH_S)
    assert cache.key("file-2") == new.jwk
    path.unlink()
    clock.advance(TTL_S)
    with pytest.raises(KeysUnavailable):
        cache.key("file-2")


def test_validator_configuration_errors(hub: Hub) -> None:
    pair = (hub.settings, hub.cache)
    with pytest.raises(ConfigurationError, match="twice"):
        TokenValidator([pair, pair], audience_default=None, leeway_s=0)
    # Principals, and the client contracts bound to them, know their issuer by its name.
    namesake = hub.settings.model_copy(update={"issuer": "https://other.example.fr/realms/x"})
    with pytest.raises(ConfigurationError, match="two issuers are named"):
        TokenValidator([pair, (namesake, JwksCache(namesake))], audience_default=None, leeway_s=0)
    with pytest.raises(ConfigurationError, match="leeway"):
        TokenValidator([pair], audience_default=None, leeway_s=61)


def test_crit_headers_are_refused(hub: Hub) -> None:
    token = hub.token(header=hub.header(crit=["b64"], b64=False))
    assert refused(hub, token) == "malformed"


# -- property ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def file_hub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Hub, str]:
    """A hub whose keys come from a file (no server) and one valid token, minted once: the
    examples of a hypothesis test must not depend on a fresh (random) ECDSA signature."""
    clock = Clock()
    signer = Signer("prop-1")
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [signer.jwk]}))
    settings = issuer_settings(None, jwks_file=path)
    cache = fast_cache(settings, clock)
    validator = TokenValidator(
        [(settings, cache)], audience_default=None, leeway_s=LEEWAY_S, now=clock
    )
    server: Any = None
    hub = Hub(server, signer, clock, settings, cache, validator)
    token = hub.token()
    assert accepted(hub, token)
    return hub, token


_MUTANTS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \x00é"


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_single_character_mutation_is_refused(
    file_hub: tuple[Hub, str], data: st.DataObject
) -> None:
    hub, token = file_hub
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1), label="position")
    others = [c for c in _MUTANTS if c != token[position]]
    char = data.draw(st.sampled_from(others), label="replacement")
    with pytest.raises(InvalidToken):
        hub.validator.validate(token[:position] + char + token[position + 1 :])


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=1, max_value=400))
def test_any_truncation_is_refused(file_hub: tuple[Hub, str], cut: int) -> None:
    hub, token = file_hub
    with pytest.raises(InvalidToken):
        hub.validator.validate(token[: max(0, len(token) - cut)])
