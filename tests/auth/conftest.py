"""Fakes for the token tests: a real JWKS server on 127.0.0.1, a settable clock, token forgery.

:class:`JwksServer` is a threaded ``http.server`` on a free loopback port. A test changes what
it serves (:meth:`~JwksServer.publish`, :meth:`~JwksServer.fail_with`), makes it hang or stops
and restarts it, and reads how many requests it received. Tokens are built by hand with
``cryptography`` (any header, any algorithm, any raw JSON), so the tests can forge what the
production code must refuse; only the validator under test goes through ``_jose``.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from annuaire.auth.jwks import JwksCache
from annuaire.auth.tokens import TokenValidator
from annuaire.settings import IssuerSettings

ISSUER = "https://broker.example.fr/realms/hub"
AUDIENCE = "urn:aiguillage:api"
LEEWAY_S = 30
TTL_S = 300
REFRESH_S = 30.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


# -- clock ---------------------------------------------------------------------------------


@dataclass
class Clock:
    """Wall time for the validator and monotonic time for the cache, both set by the test."""

    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- keys and forgery ----------------------------------------------------------------------


@functools.cache
def _rsa_key(kid: str) -> rsa.RSAPrivateKey:
    # RSA generation costs tens of milliseconds: one key per kid for the whole session.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Signer:
    """A private key that signs JWS input with one algorithm, and its public JWK."""

    def __init__(self, kid: str, alg: str = "ES256") -> None:
        self.kid = kid
        self.alg = alg
        self.private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if alg.startswith("ES"):
            curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
            self.private = ec.generate_private_key(curve[alg])
        else:
            self.private = _rsa_key(kid)

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            size = (public.curve.key_size + 7) // 8
            numbers = public.public_numbers()
            crv = {256: "P-256", 384: "P-384", 521: "P-521"}[public.curve.key_size]
            return {
                "kty": "EC",
                "crv": crv,
                "x": b64(numbers.x.to_bytes(size, "big")),
                "y": b64(numbers.y.to_bytes(size, "big")),
                "kid": self.kid,
                "use": "sig",
            }
        assert isinstance(public, rsa.RSAPublicKey)
        rsa_numbers = public.public_numbers()
        return {
            "kty": "RSA",
            "n": b64(rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64(rsa_numbers.e.to_bytes(3, "big")),
            "kid": self.kid,
            "use": "sig",
        }

    def sign(self, data: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(digest)))
            size = (self.private.curve.key_size + 7) // 8
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if alg.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            return self.private.sign(data, pss, digest)
        return self.private.sign(data, padding.PKCS1v15(), digest)


def forge(
    header: dict[str, Any] | str,
    claims: dict[str, Any] | str,
    sign: Callable[[bytes], bytes] | None,
) -> str:
    """A compact JWS; ``header``/``claims`` given as str are raw JSON text, used verbatim."""
    h = b64(header.encode()) if isinstance(header, str) else b64json(header)
    p = b64(claims.encode()) if isinstance(claims, str) else b64json(claims)
    signature = b64(sign(f"{h}.{p}".encode())) if sign is not None else ""
    return f"{h}.{p}.{signature}"


# -- JWKS server ---------------------------------------------------------------------------


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) is expected, not worth a traceback


class JwksServer:
    """A real HTTP server on 127.0.0.1 whose answer the test controls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paths: list[str] = []
        self.status = 200
        self.body = b'{"keys": []}'
        self.content_type = "application/jwk-set+json"
        self.hang_s = 0.0
        self.delay_s = 0.0
        self.location: str | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/certs"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.paths)

    def publish(self, *keys: dict[str, Any]) -> None:
        self.serve(200, json.dumps({"keys": list(keys)}).encode())

    def serve(self, status: int, body: bytes, *, location: str | None = None) -> None:
        with self._lock:
            self.status, self.body, self.hang_s, self.location = status, body, 0.0, location

    def fail_with(self, status: int) -> None:
        self.serve(status, b"<html>Internal Server Error</html>")

    def hang(self, seconds: float) -> None:
        """Accept requests but answer nothing for ``seconds``, then drop the connection."""
        with self._lock:
            self.hang_s = seconds

    def slow_down(self, seconds: float) -> None:
        """Answer normally, but only after ``seconds``."""
        with self._lock:
            self.delay_s = seconds

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.paths.append(self.path)
                    status, body, hang_s = server.status, server.body, server.hang_s
                    location, delay_s = server.location, server.delay_s
                if hang_s:
                    time.sleep(hang_s)
                    return
                time.sleep(delay_s)
                self.send_response(status)
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(body)))
                if location:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        self.port = httpd.server_address[1]
        threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        self._httpd = httpd

    def stop(self) -> None:
        """Close the port: fetches get 'connection refused' until :meth:`start`."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture
def attacker_server() -> Iterator[JwksServer]:
    """A server the tokens point to (jku, x5u...): it must never be asked anything."""
    server = JwksServer()
    yield server
    server.stop()


# -- the system under test -----------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def key() -> Signer:
    return Signer("hub-2025-01")


def issuer_settings(
    jwks_uri: str | None, *, issuer: str = ISSUER, name: str = "broker", **overrides: Any
) -> IssuerSettings:
    values: dict[str, Any] = {
        "name": name,
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "audiences": [AUDIENCE],
        "algorithms": ["ES256"],
        "profile": "client_credentials",
        "jwks_ttl_s": TTL_S,
    }
    values.update(overrides)
    return IssuerSettings(**values)


def fast_cache(settings: IssuerSettings, clock: Clock) -> JwksCache:
    """A cache with test-sized timeouts: a hanging server costs a fraction of a second."""
    return JwksCache(
        settings,
        refresh_interval_s=REFRESH_S,
        timeout_s=0.2,
        attempts=2,
        retry_wait_s=0.01,
        now=clock,
    )


@dataclass
class Hub:
    """One trusted issuer served by ``server``, and a way to mint tokens for it."""

    server: JwksServer
    key: Signer
    clock: Clock
    settings: IssuerSettings
    cache: JwksCache
    validator: TokenValidator

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now)
        values: dict[str, Any] = {
            "iss": self.settings.issuer,
            "aud": AUDIENCE,
            "sub": "person-0001",
            "client_id": "vendor-a",
            "jti": "jti-0001",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "scope": "roster-core.readonly",
        }
        values.update(overrides)
        return {k: v for k, v in values.items() if v is not _ABSENT}

    def header(self, signer: Signer | None = None, **overrides: Any) -> dict[str, Any]:
        signer = signer or self.key
        values: dict[str, Any] = {"alg": signer.alg, "typ": "at+jwt", "kid": signer.kid}
        values.update(overrides)
        return {k: v for k, v in values.items() if v is not _ABSENT}

    def token(
        self, signer: Signer | None = None, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        signer = signer or self.key
        return forge(header or self.header(signer), self.claims(**claims), signer.sign)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


_ABSENT = _Absent()
#: Pass as a claim or header value to leave that member out.
ABSENT: Any = _ABSENT


def make_hub(server: JwksServer, key: Signer, clock: Clock, **issuer: Any) -> Hub:
    server.publish(key.jwk)
    settings = issuer_settings(server.url, **issuer)
    cache = fast_cache(settings, clock)
    validator = TokenValidator(
        [(settings, cache)], audience_default=AUDIENCE, leeway_s=LEEWAY_S, now=clock
    )
    return Hub(server, key, clock, settings, cache, validator)


@pytest.fixture
def hub(jwks_server: JwksServer, key: Signer, clock: Clock) -> Iterator[Hub]:
    made = make_hub(jwks_server, key, clock)
    yield made
    made.cache.close()
