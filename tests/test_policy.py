"""The policy table covers every RPC; nothing is open by accident."""

from controller.auth.policy import POLICY, Rule
from tests.rpcs import all_rpcs

# The only RPCs anyone may call without a token. Adding one is a security decision.
EXPECTED_OPEN = {
    "/kumo.v1.IdentityService/Authenticate",
    # Says why the node port would refuse a certificate (a node whose handshake
    # failed has nothing else to authenticate with). Certificates are public,
    # the answer grants nothing and the check has no side effect (docs/nodes.md).
    "/kumo.v1.NodeAgentService/CheckCertificate",
}
NODE_FACING_OPEN_HINTS = ("Enroll", "GetCaBundle", "GetCa")


def test_every_rpc_has_a_policy_entry() -> None:
    missing = [r.path for r in all_rpcs() if r.path not in POLICY]
    assert not missing, f"RPCs without a policy entry: {missing}"


def test_no_stale_policy_entries() -> None:
    paths = {r.path for r in all_rpcs()}
    assert not [p for p in POLICY if p not in paths]


def test_open_rpcs_are_only_login_and_enrollment() -> None:
    open_rpcs = {p for p, rule in POLICY.items() if rule is Rule.OPEN}
    unexpected = {
        p for p in open_rpcs - EXPECTED_OPEN if not p.rsplit("/", 1)[-1].startswith(NODE_FACING_OPEN_HINTS)
    }
    assert not unexpected, f"RPCs open without a token: {unexpected}"
