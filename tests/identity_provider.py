"""An OIDC identity provider for the tests: real key pairs, generated per run, whose public
halves are served as a JWKS over loopback HTTP, and tokens signed with them.

This is the identity provider itself, not a stand-in for Dapr, a broker or a store: the
tokens are real JWTs and jobrelay fetches the JWKS over HTTP exactly as it would from an IdP.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.jobrelay.test/"
AUDIENCE = "jobrelay-api"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jwk(kid: str, key: SigningKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        public: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class IdentityProvider:
    """Serves `keys` (kid -> private key; the JWKS lists their public halves) at `jwks_url`.
    `fetches` counts JWKS requests; `broken` makes it answer garbage instead."""

    keys: dict[str, SigningKey] = field(default_factory=lambda: {"k1": rsa_key(), "e1": ec_key()})
    fetches: int = 0
    broken: bool = False
    _server: ThreadingHTTPServer | None = None

    @property
    def jwks_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_jwk(kid, key) for kid, key in self.keys.items()]}

    def start(self) -> IdentityProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = b"<html>oops</html>" if provider.broken else json.dumps(provider.jwks())
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def token(
        self,
        tenant: str | None = "tenant-a",
        *,
        kid: str = "k1",
        key: SigningKey | None = None,
        lifetime: float = 300,
        **claims: Any,
    ) -> str:
        """A token signed by `kid`'s key (or by `key`, to forge one under that kid)."""
        signer = key or self.keys[kid]
        alg = "RS256" if isinstance(signer, rsa.RSAPrivateKey) else "ES256"
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + lifetime,
        }
        if tenant is not None:
            payload["tenant"] = tenant
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, signer, algorithm=alg, headers={"kid": kid})
