"""Node rules: join tokens, enrollment, the admin's view and verbs (disable,
enable, delete), node authentication and each node's desired state.

Live state (READY/DOWN, last heartbeat, usage) is kept by the NodeRegistry on
the node server's event loop; the views here combine it with the database row."""

from __future__ import annotations

import datetime
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from controller import clock
from controller.auth.decoding import LogLimiter
from controller.auth.principal import NodePrincipal, Principal
from controller.config import ControllerConfig
from controller.db import nodes as store
from controller.db.database import write_transaction
from controller.db.models import JoinToken, Node
from controller.domain.events import EventLog
from controller.domain.extensions import InUseCheck
from controller.domain.idempotency import NO_REQUEST_ID, RequestKey, idempotent_create
from controller.domain.node_certs import NodeCertificates
from controller.domain.node_registry import DOWN, READY, LiveView, NodeRegistry
from controller.domain.node_state import fenced_error
from controller.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    not_found,
)
from controller.pki import CertificateAuthority
from kumo import jointoken
from kumo.ids import is_uuid
from kumo.v1 import node_pb2 as pb

log = logging.getLogger("kumo.nodes")

DISABLED = "DISABLED"
MIN_TTL = 1.0
MAX_TTL = 30 * 86400.0
DEFAULT_TTL = 3600.0
MAX_USES = 100_000
MIN_CERT_LIFETIME = 3.0


def _check_csr(csr_pem: str, field: str) -> None:
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError:
        raise InvalidArgument(f"{field} is not a PEM certificate signing request", field=field) from None
    if not csr.is_signature_valid:
        raise InvalidArgument(f"{field}'s signature is not valid", field=field)
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InvalidArgument(f"{field} must be for an EC P-256 key", field=field)


def find_node(ref: str) -> Node:
    """A node by id or name (a move's target); NOT_FOUND otherwise."""
    row = Node.get_or_none(Node.id == ref) if is_uuid(ref) else Node.get_or_none(Node.name == ref)
    if row is None:
        raise not_found("node", ref)
    return row


def token_state(row: JoinToken, now: float) -> int:
    if row.uses >= row.max_uses:
        return pb.JOIN_TOKEN_STATE_USED_UP
    if row.expire_time <= now:
        return pb.JOIN_TOKEN_STATE_EXPIRED
    return pb.JOIN_TOKEN_STATE_VALID


@dataclass(frozen=True)
class NodeView:
    row: Node
    state: str  # READY | DOWN | DISABLED
    live: LiveView | None

    @property
    def connected(self) -> bool:
        return bool(self.live and self.live.connected)

    @property
    def last_heartbeat_time(self) -> float:
        if self.live and self.live.last_seen_wall:
            return max(self.live.last_seen_wall, self.row.last_heartbeat_time)
        return self.row.last_heartbeat_time

    @property
    def controller_id(self) -> str:
        return self.live.controller_id if self.live else ""

    @property
    def applied_revision(self) -> int:
        return self.live.applied_revision if self.live else self.row.applied_revision

    @property
    def address(self) -> str:
        return (self.live.address if self.live and self.live.address else "") or self.row.address

    def inventory(self) -> pb.NodeInventory:
        if self.live and self.live.inventory is not None:
            return self.live.inventory
        return pb.NodeInventory(**{c: getattr(self.row, c) for c in store.INVENTORY_COLUMNS})

    def usage(self) -> pb.NodeUsage:
        if self.live and self.live.usage is not None:
            return self.live.usage
        try:
            data = json.loads(self.row.usage or "{}")
            return pb.NodeUsage(**data) if isinstance(data, dict) else pb.NodeUsage()
        except (ValueError, TypeError):
            return pb.NodeUsage()


@dataclass(frozen=True)
class Enrollment:
    node: Node
    certificate_pem: bytes


class Nodes:
    def __init__(
        self,
        cfg: ControllerConfig,
        ca: CertificateAuthority,
        in_use: Sequence[InUseCheck] = (),
        events: EventLog | None = None,
        registry: NodeRegistry | None = None,
    ) -> None:
        if cfg.node_cert_lifetime_seconds < MIN_CERT_LIFETIME:
            raise ValueError(f"node_cert_lifetime_seconds must be at least {MIN_CERT_LIFETIME:g}")
        self.cfg = cfg
        self.ca = ca
        self.in_use = tuple(in_use)
        self.registry = registry or NodeRegistry(
            cfg.node_grace_seconds, cfg.node_heartbeat_seconds, cfg.node_stats_log_seconds, events=events
        )
        self.certificates = NodeCertificates(ca, self.authenticate, LogLimiter())

    # Join tokens

    def create_join_token(
        self,
        caller: Principal | None,
        description: str,
        max_uses: int,
        ttl: float,
        request_key: RequestKey = NO_REQUEST_ID,
    ) -> tuple[JoinToken, str]:
        """The token row and the token string. Only the secret's hash is kept,
        so a replayed request_id (cloud-wide, as admins make tokens) cannot
        answer the token again: it says ALREADY_EXISTS with the token's id."""
        if max_uses < 0 or max_uses > MAX_USES:
            raise InvalidArgument(f"join_token.max_uses must be between 1 and {MAX_USES}, got {max_uses}")
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise InvalidArgument(
                f"ttl must be between {MIN_TTL:g} s and {MAX_TTL / 86400:g} days, got {ttl:g} s"
            )
        now = clock.now()
        token_id = clock.new_id()
        secret = jointoken.new_secret()

        def replayed(first_id: str) -> JoinToken:
            raise AlreadyExists(
                f"request_id {request_key.request_id!r} already made join token {first_id}; its secret "
                "was shown once and only its hash is kept: delete it and create a new one",
                reason="SECRET_SHOWN_ONCE",
                id=first_id,
            )

        row = idempotent_create(
            "join_token",
            "",
            request_key,
            lambda: store.insert_join_token(
                token_id,
                description,
                jointoken.hash_secret(secret),
                max_uses or 1,
                now + ttl,
                caller.user_id if caller else "",
                now,
            ),
            replayed,
            lambda t: t.id,
        )
        if secrets.randbelow(50) == 0:
            store.prune_join_tokens(now - 86400)
        log.info(
            "join token created",
            extra={"token_id": token_id, "max_uses": row.max_uses, "ttl": ttl},
        )
        return row, jointoken.format_token(token_id, secret, self.ca.fingerprint)

    def list_join_tokens(self, page_size: int, page_token: str) -> tuple[list[JoinToken], str]:
        return store.list_join_tokens(page_size, page_token)

    def delete_join_token(self, token_id: str) -> None:
        if store.delete_join_token(token_id) == 0:
            raise NotFound(f"join token {token_id!r} not found", reason="JOIN_TOKEN_NOT_FOUND")

    # Enrollment

    def ca_bundle(self) -> tuple[bytes, str]:
        return self.ca.cert_pem, self.ca.fingerprint

    def _check_token(self, token: str) -> jointoken.ParsedJoinToken:
        invalid = Unauthenticated(
            "join token is not valid (unknown, deleted or a wrong secret)", reason="JOIN_TOKEN_INVALID"
        )
        try:
            parsed = jointoken.parse_token(token)
        except jointoken.JoinTokenFormatError as exc:
            raise Unauthenticated(f"join token is malformed: {exc}", reason="JOIN_TOKEN_INVALID") from None
        row = store.get_join_token(parsed.token_id)
        if row is None or not jointoken.secret_matches(parsed.secret, row.secret_hash):
            raise invalid
        if parsed.ca_fingerprint != self.ca.fingerprint:
            raise Unauthenticated(
                "join token names another CA than this controller's", reason="JOIN_TOKEN_WRONG_CA"
            )
        self._refuse_unusable(row)
        return parsed

    @staticmethod
    def _refuse_unusable(row: JoinToken | None) -> None:
        if row is None:
            raise Unauthenticated("join token was deleted", reason="JOIN_TOKEN_INVALID")
        state = token_state(row, clock.now())
        if state == pb.JOIN_TOKEN_STATE_USED_UP:
            raise Unauthenticated(
                f"join token has been used {row.uses} time(s), as many as it may be; make a new one",
                reason="JOIN_TOKEN_USED_UP",
            )
        if state == pb.JOIN_TOKEN_STATE_EXPIRED:
            raise Unauthenticated("join token has expired; make a new one", reason="JOIN_TOKEN_EXPIRED")

    def enroll(self, token: str, csr_pem: str, name: str) -> Enrollment:
        """Checks the token, signs the CSR and records the node; the token is
        used (atomically) only if all of that succeeds."""
        _check_csr(csr_pem, "csr_pem")
        parsed = self._check_token(token)

        node_id = clock.new_id()
        serial = x509.random_serial_number()
        cert_pem, expire = self._sign(csr_pem, node_id, serial)
        now = clock.now()
        with write_transaction():
            if not store.claim_join_token(parsed.token_id, now):
                self._refuse_unusable(store.get_join_token(parsed.token_id))
                raise Unauthenticated("join token is no longer usable", reason="JOIN_TOKEN_USED_UP")
            row = store.insert_node(node_id, name, format(serial, "x"), expire, parsed.token_id, now)
        self.registry.enrolled_threadsafe(node_id)
        log.info("node enrolled", extra={"node_id": node_id, "node": name, "token_id": parsed.token_id})
        return Enrollment(row, cert_pem)

    def _sign(self, csr_pem: str, node_id: str, serial: int) -> tuple[bytes, float]:
        lifetime = datetime.timedelta(seconds=self.cfg.node_cert_lifetime_seconds)
        cert_pem = self.ca.sign_node_csr(csr_pem.encode(), node_id, serial, lifetime)
        expire = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp()
        return cert_pem, expire

    def renew_certificate(self, node_id: str, csr_pem: str) -> bytes:
        """A new certificate for a connected node's fresh key (through its
        session). Both it and the current one are accepted until the node opens
        a session with the new one; a rotation request is done with it."""
        _check_csr(csr_pem, "renew_certificate.csr_pem")
        serial = x509.random_serial_number()
        cert_pem, expire = self._sign(csr_pem, node_id, serial)
        with write_transaction():
            row = store.get_node(node_id)
            if row is None:
                raise Unauthenticated("this node has been deleted", reason="NODE_DELETED")
            store.set_pending_cert(node_id, format(serial, "x"), expire, clock.now())
            if row.cert_rotate_requested:
                store.bump_desired_revision(node_id, clock.now())
        if row.cert_rotate_requested:
            self.registry.notify_threadsafe(node_id)
        log.info("node certificate renewed", extra={"node_id": node_id, "serial": format(serial, "x")})
        return cert_pem

    def rotate_certificate(self, node_id: str) -> NodeView:
        """An admin's forced rotation: the node's desired state asks it to renew."""
        with write_transaction():
            self._must(node_id)
            store.request_cert_rotation(node_id, clock.now())
        self.registry.notify_threadsafe(node_id)
        log.info("node certificate rotation requested", extra={"node_id": node_id})
        return self.get_node(node_id)

    def node_endpoint(self, node_port: int) -> str:
        """Where nodes open their session. An empty host means: the host the
        node enrolled through (when the node port listens on every address)."""
        if self.cfg.node_advertise:
            return self.cfg.node_advertise
        host = self.cfg.node_listen.rsplit(":", 1)[0].strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = ""
        return f"[{host}]:{node_port}" if ":" in host else f"{host}:{node_port}"

    # Node authentication (the node port's interceptor)

    def authenticate(self, common_name: str, serial_hex: str, session: bool = True) -> NodePrincipal:
        if not is_uuid(common_name):
            raise Unauthenticated("the client certificate does not name a node", reason="NOT_A_NODE")
        found = store.node_auth_row(common_name)
        if found is None:
            raise Unauthenticated(
                "this node is not enrolled (it may have been deleted); join it again", reason="NODE_UNKNOWN"
            )
        current, pending = found
        if serial_hex == pending and session:
            # The first session with a renewed certificate: the old one is refused from now on.
            with write_transaction():
                store.promote_pending_cert(common_name, serial_hex, clock.now())
            log.info("node certificate in use", extra={"node_id": common_name, "serial": serial_hex})
        elif serial_hex not in (current, pending):
            raise Unauthenticated(
                "this certificate is no longer the node's (it was replaced or revoked); join it again",
                reason="CERT_REVOKED",
            )
        return NodePrincipal(common_name, serial_hex)

    # The admin's view

    def _view(self, row: Node) -> NodeView:
        live = self.registry.snapshot(row.id)
        if not row.enabled:
            state = DISABLED
        elif live is not None:
            state = live.status
        else:
            state = row.status if row.status in (READY, DOWN) else DOWN
        return NodeView(row, state, live)

    def _must(self, node_id: str) -> Node:
        row = store.get_node(node_id)
        if row is None:
            raise not_found("node", node_id)
        return row

    def get_node(self, node_id: str) -> NodeView:
        return self._view(self._must(node_id))

    def list_nodes(self, page_size: int, page_token: str, name: str) -> tuple[list[NodeView], str]:
        rows, token = store.list_nodes(page_size, page_token, name)
        return [self._view(r) for r in rows], token

    def set_enabled(self, node_id: str, enabled: bool, reason: str) -> NodeView:
        with write_transaction():
            row = self._must(node_id)
            if row.enabled == enabled:
                if enabled:
                    raise FailedPrecondition(f"node {row.name!r} is not disabled", reason="NODE_NOT_DISABLED")
                raise FailedPrecondition(
                    f"node {row.name!r} is disabled already", reason="NODE_ALREADY_DISABLED"
                )
            store.set_enabled(row.id, enabled, "" if enabled else reason, clock.now())
        self.registry.notify_threadsafe(node_id)
        log.info("node enabled" if enabled else "node disabled", extra={"node_id": node_id})
        return self.get_node(node_id)

    # Fencing: the admin's word that a lost node runs nothing any more

    def fence(self, node_id: str) -> NodeView:
        """Declares a DOWN node fenced (the admin powered it off): it is
        refused a session until unfenced, and what its instances hold may be
        freed or moved. A session that opened meanwhile is closed.

        Exclusive with session admission: a session registers itself, then
        reads its desired state, which refuses a fenced node (DesiredStates.
        for_node); the fence commits, then closes the session registered here
        and tells every session (this controller's, another's through the
        notifier) to re-read it. A session whose hello check passed just
        before this commit is thus either seen registered here, or reads
        `fenced` itself and ends."""
        with write_transaction():
            row = self._must(node_id)
            live = self.registry.snapshot(node_id)
            if live is not None and (live.status == READY or live.connected):
                raise FailedPrecondition(
                    f"node {row.name!r} is READY (heartbeating): only a DOWN node can be fenced; "
                    "stop its daemon and power it off first",
                    reason="NODE_NOT_DOWN",
                )
            if store.set_fenced(node_id, True, clock.now()) != 1:
                raise FailedPrecondition(f"node {row.name!r} is fenced already", reason="NODE_ALREADY_FENCED")
        self.registry.fence_threadsafe(node_id)
        self.registry.notify_threadsafe(node_id)
        log.warning("node fenced", extra={"node_id": node_id, "node": row.name})
        return self.get_node(node_id)

    def unfence(self, node_id: str) -> NodeView:
        """Re-admits a fenced node: its next session is accepted, and its
        reconcile removes the guests that moved away meanwhile."""
        with write_transaction():
            row = self._must(node_id)
            if store.set_fenced(node_id, False, clock.now()) != 1:
                raise FailedPrecondition(f"node {row.name!r} is not fenced", reason="NODE_NOT_FENCED")
        log.info("node unfenced", extra={"node_id": node_id, "node": row.name})
        return self.get_node(node_id)

    def refuse_if_fenced(self, node_id: str) -> None:
        """The session's check: a fenced node gets no session (so it runs
        nothing: noded reconciles only a desired state a session gave it)."""
        if store.is_fenced(node_id):
            raise fenced_error()

    def delete_node(self, node_id: str) -> None:
        with write_transaction():
            view = self._view(self._must(node_id))
            if view.state == READY:
                raise FailedPrecondition(
                    f"node {view.row.name!r} is READY; disable it (or stop its daemon) before deleting it",
                    reason="NODE_IN_SERVICE",
                )
            for check in self.in_use:
                n = check.count(node_id)
                if n:
                    raise FailedPrecondition(
                        f"node {view.row.name!r} still has {n} {check.kind}(s)", reason="NODE_IN_USE"
                    )
            store.delete_node(node_id)
        self.registry.forget_threadsafe(node_id)
        log.info("node deleted", extra={"node_id": node_id, "node": view.row.name})
