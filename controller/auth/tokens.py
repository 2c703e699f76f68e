"""Bearer tokens: `kumo1.<payload>.<signature>`, HMAC-SHA256 over the payload
with a key from the token keyring (a directory every controller of a control
plane reads: `shared_dir/token-keys/`). The payload names its key (`kid`), so
keys rotate: the newest key signs, every key still on disk verifies, and
`kumo-controller rotate-token-key` adds a key and drops those no unexpired
token can be signed with. The signature lets a controller reject forged or
tampered tokens without a database lookup; the token row (revocation, user and
project still there) is checked after."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from controller.errors import Unauthenticated
from kumo.keys import write_private

PREFIX = "kumo1"
# The key of tokens made before keys rotated (they carry no kid): the old
# single token.key, imported into the keyring on the first start after an upgrade.
LEGACY_KID = "0"
# How often a controller looks for a newer signing key (a rotation made by
# another controller or by the command reaches it within this bound).
RESCAN_SECONDS = 10.0
KID = re.compile(r"0|[0-9]{13}-[0-9a-f]{6}")


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
    """Signs with one key, verifies against `verify_keys` (kid -> key)."""

    def __init__(self, key: bytes, kid: str = LEGACY_KID) -> None:
        if len(key) < 32:
            raise ValueError("token signing key must be at least 32 bytes")
        self._key = key
        self.kid = kid

    def _keys(self) -> dict[str, bytes]:
        return {self.kid: self._key}

    def _signing(self) -> tuple[str, bytes]:
        return self.kid, self._key

    def issue(self, claims: TokenClaims) -> str:
        kid, key = self._signing()
        fields: dict[str, object] = {
            "tid": claims.token_id,
            "uid": claims.user_id,
            "pid": claims.project_id,
            "exp": claims.expire_time,
        }
        if kid != LEGACY_KID:
            fields["kid"] = kid
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{PREFIX}.{payload}.{_sign(key, payload)}"

    def _key_for(self, kid: str) -> bytes | None:
        return self._keys().get(kid)

    def verify(self, token: str, now: float) -> TokenClaims:
        """Checks form, signature and expiry; raises Unauthenticated with the reason."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise Unauthenticated("token is malformed", reason="TOKEN_INVALID")
        _, payload, signature = parts
        try:
            data = json.loads(_unb64(payload))
            kid = str(data.get("kid", LEGACY_KID))
        except (ValueError, AttributeError, TypeError):
            raise Unauthenticated("token is malformed", reason="TOKEN_INVALID") from None
        key = self._key_for(kid)
        if key is None or not hmac.compare_digest(_sign(key, payload), signature):
            raise Unauthenticated("token signature is not valid", reason="TOKEN_INVALID")
        try:
            claims = TokenClaims(str(data["tid"]), str(data["uid"]), str(data["pid"]), float(data["exp"]))
        except (ValueError, KeyError, TypeError):
            raise Unauthenticated("token is malformed", reason="TOKEN_INVALID") from None
        if claims.expire_time <= now:
            raise Unauthenticated("token has expired; log in again", reason="TOKEN_EXPIRED")
        return claims


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def key_check(key: bytes) -> str:
    """A value that tells whether two controllers hold the same key without
    revealing it (recorded in the database, compared by a joining controller)."""
    return _sign(key, "kumo token key check")


def new_kid(now: float, after: str = LEGACY_KID) -> str:
    """Sortable by creation time (milliseconds), which rotation relies on;
    later than `after`, so a rotation always makes the newest key."""
    ms = max(int(now * 1000), int(_kid_time(after) * 1000) + 1)
    return f"{ms:013d}-{secrets.token_hex(3)}"


def _kid_time(kid: str) -> float:
    return 0.0 if kid == LEGACY_KID else int(kid.split("-", 1)[0]) / 1000


class TokenKeyring(TokenSigner):
    """The keys in a directory, one `<kid>.key` file (0600) each. Reread when a
    token names a kid whose file has appeared since, and every RESCAN_SECONDS
    before signing, so a rotation reaches every controller."""

    def __init__(self, directory: Path, legacy_file: Path | None = None) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._loaded: dict[str, bytes] = {}
        self._scanned = 0.0
        ensure_keyring(directory, legacy_file)
        self._scan()

    def _scan(self) -> None:
        keys = read_keys(self.directory)
        if not keys:
            raise RuntimeError(f"the token keyring {self.directory} holds no key")
        with self._lock:
            self._loaded = keys
            self._scanned = time.monotonic()

    def _keys(self) -> dict[str, bytes]:
        with self._lock:
            return self._loaded

    def _signing(self) -> tuple[str, bytes]:
        if time.monotonic() - self._scanned > RESCAN_SECONDS:
            self._scan()
        keys = self._keys()
        kid = max(keys, key=lambda k: (_kid_time(k), k))
        return kid, keys[kid]

    def _key_for(self, kid: str) -> bytes | None:
        key = self._keys().get(kid)
        # A key made elsewhere (a rotation on another controller): load it the
        # first time a token names it. The kid is the caller's text, so only a
        # well-formed one is looked up, and only its file's existence costs.
        if key is None and KID.fullmatch(kid) and (self.directory / f"{kid}.key").exists():
            self._scan()
            key = self._keys().get(kid)
        return key

    def rotate(self, token_ttl: float, now: float) -> tuple[str, list[str]]:
        kid, removed = rotate(self.directory, token_ttl, now)
        self._scan()
        return kid, removed

    def checks(self) -> dict[str, str]:
        return {kid: key_check(key) for kid, key in self._keys().items()}


def read_keys(directory: Path) -> dict[str, bytes]:
    keys = {}
    for path in directory.glob("*.key"):
        data = path.read_bytes()
        if len(data) >= 32:
            keys[path.stem] = data
    return keys


def ensure_keyring(directory: Path, legacy_file: Path | None) -> None:
    """Makes the first key on first start (importing the old single key, so
    tokens made before the upgrade keep working)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if read_keys(directory):
        return
    if legacy_file is not None and legacy_file.exists():
        write_private(directory / f"{LEGACY_KID}.key", legacy_file.read_bytes())
    else:
        write_private(directory / f"{new_kid(time.time())}.key", secrets.token_bytes(32))


def rotate(directory: Path, token_ttl: float, now: float) -> tuple[str, list[str]]:
    """Adds a signing key; removes the keys that can no longer have signed an
    unexpired token (superseded more than `token_ttl` ago). Returns the new kid
    and the removed ones."""
    ensure_keyring(directory, None)
    newest = max(read_keys(directory), key=lambda k: (_kid_time(k), k))
    kid = new_kid(now, newest)
    write_private(directory / f"{kid}.key", secrets.token_bytes(32))
    ordered = sorted(read_keys(directory), key=lambda k: (_kid_time(k), k))
    removed = []
    for older, newer in itertools.pairwise(ordered):
        if now - _kid_time(newer) > token_ttl:
            (directory / f"{older}.key").unlink(missing_ok=True)
            removed.append(older)
    return kid, removed
