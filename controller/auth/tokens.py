"""Bearer tokens: `kumo1.<payload>.<signature>`, HMAC-SHA256 over the payload
with a key kept in the data directory. The signature lets a controller reject
forged or tampered tokens without a database lookup; the token row (revocation,
user and project still there) is checked after."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from controller.errors import Unauthenticated
from kumo.keys import write_private

PREFIX = "kumo1"


@dataclass(frozen=True)
class TokenClaims:
    token_id: str
    user_id: str
    project_id: str
    expire_time: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("token signing key must be at least 32 bytes")
        self._key = key

    @classmethod
    def from_file(cls, path: Path) -> TokenSigner:
        """Loads the key, making it on first start (0600, never logged)."""
        if not path.exists():
            write_private(path, secrets.token_bytes(32))
        os.chmod(path, 0o600)
        return cls(path.read_bytes())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def issue(self, claims: TokenClaims) -> str:
        body = json.dumps(
            {
                "tid": claims.token_id,
                "uid": claims.user_id,
                "pid": claims.project_id,
                "exp": claims.expire_time,
            },
            separators=(",", ":"),
        )
        payload = _b64(body.encode())
        return f"{PREFIX}.{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float) -> TokenClaims:
        """Checks form, signature and expiry; raises Unauthenticated with the reason."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise Unauthenticated("token is malformed", reason="TOKEN_INVALID")
        _, payload, signature = parts
        if not hmac.compare_digest(self._sign(payload), signature):
            raise Unauthenticated("token signature is not valid", reason="TOKEN_INVALID")
        try:
            data = json.loads(_unb64(payload))
            claims = TokenClaims(str(data["tid"]), str(data["uid"]), str(data["pid"]), float(data["exp"]))
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("token is malformed", reason="TOKEN_INVALID") from None
        if claims.expire_time <= now:
            raise Unauthenticated("token has expired; log in again", reason="TOKEN_EXPIRED")
        return claims
