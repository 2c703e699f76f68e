"""Join tokens: `kumojoin1.<id>.<secret>.<ca fingerprint>`.

The id is public (it names the token in `kumo node token list`); the secret is
32 random bytes, of which the controller keeps only a sha256. A plain hash is
enough here, unlike for passwords: a 256-bit random secret cannot be guessed,
so there is nothing for a slow, salted hash to protect against. The CA
fingerprint (sha256 of the CA certificate's DER) lets the node pin the
controller's CA before it trusts anything the controller says.

Shared (in the `kumo` package) because the controller makes and checks tokens,
kumo-noded reads the fingerprint out of one, and the tests forge them."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "kumojoin1"
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_FP_RE = re.compile(r"^[0-9a-f]{64}$")


class JoinTokenFormatError(ValueError):
    """The text is not a join token; the message says which part is wrong."""


@dataclass(frozen=True)
class ParsedJoinToken:
    token_id: str
    secret: str
    ca_fingerprint: str


def new_secret() -> str:
    """A fresh secret in the form parse_token accepts."""
    return secrets.token_urlsafe(32)  # 43 characters


def hash_secret(secret: str) -> str:
    """What the controller stores instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison, so timing does not leak the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def format_token(token_id: str, secret: str, ca_fingerprint: str) -> str:
    """The text `kumo node token create` prints; parse_token reads it back."""
    return f"{PREFIX}.{token_id}.{secret}.{ca_fingerprint}"


def parse_token(token: str) -> ParsedJoinToken:
    """Checks the form only; raises JoinTokenFormatError saying what is wrong."""
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        raise JoinTokenFormatError(f"a join token looks like {PREFIX}.<id>.<secret>.<fingerprint>")
    _, token_id, secret, fp = parts
    try:
        if str(uuid.UUID(token_id)) != token_id:
            raise ValueError
    except ValueError:
        raise JoinTokenFormatError("the join token's id is not valid") from None
    if not _SECRET_RE.match(secret):
        raise JoinTokenFormatError("the join token's secret is not valid")
    if not _FP_RE.match(fp):
        raise JoinTokenFormatError("the join token's CA fingerprint is not 64 lowercase hex digits")
    return ParsedJoinToken(token_id, secret, fp)
