"""`kumo-noded`: join a controller, then run the node agent."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from kumo.logs import setup_logging

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="The kumo node daemon."
)

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Node state directory [env KUMO_NODED_STATE_DIR; default /var/lib/kumo-noded]"
    ),
]
DriverOpt = Annotated[str, typer.Option("--driver", help="libvirt, or fake (simulations only)")]
VirtTypeOpt = Annotated[
    str, typer.Option("--virt-type", envvar="KUMO_VIRT_TYPE", help="kvm, or qemu (TCG, no /dev/kvm needed)")
]
UriOpt = Annotated[str, typer.Option("--libvirt-uri", help="libvirt connection URI")]


# Exit statuses of `kumo-noded run` (docs/nodes.md): 1 any other error.
EXIT_NODE_REFUSED = 3  # the node was deleted, or its certificate replaced
EXIT_CERT_REFUSED = 4  # the node port refused its certificate (other CA, forged, expired)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _state(state_dir: Path | None):  # type: ignore[no-untyped-def]
    from noded.state import StateDir, default_state_dir

    return StateDir(state_dir or default_state_dir())


def _default_name() -> str:
    name = socket.gethostname().split(".")[0]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)[:63] or "node"


@app.command()
def join(
    address: Annotated[str, typer.Argument(help="The controller's public address, HOST:PORT")],
    token: Annotated[str, typer.Argument(help="A join token from `kumo node token create`")],
    name: Annotated[str | None, typer.Option(help="Node name [default: the host name]")] = None,
    state_dir: StateDirOpt = None,
    node_endpoint: Annotated[
        str, typer.Option(help="Override where to open the session (HOST:PORT of the node port)")
    ] = "",
    force: Annotated[bool, typer.Option(help="Join again even if this state dir has joined before")] = False,
) -> None:
    """Enroll this host with a controller (pins its CA by the token's fingerprint)."""
    from noded.enroll import JoinError
    from noded.enroll import join as do_join

    state = _state(state_dir)
    if state.joined() and not force:
        raise _fail(
            f"{state.path} already holds a joined node ({state.load().identity.name}); use --force to join anew"
        )
    try:
        creds = do_join(address, token, name or _default_name(), node_endpoint)
    except JoinError as exc:
        raise _fail(str(exc)) from None
    if force:
        state.forget()
    state.save(creds)
    ident = creds.identity
    typer.echo(f"joined as node {ident.name} ({ident.node_id}); session endpoint {ident.node_endpoint}")


@app.command()
def run(
    state_dir: StateDirOpt = None,
    driver: DriverOpt = "libvirt",
    virt_type: VirtTypeOpt = "kvm",
    libvirt_uri: UriOpt = "qemu:///system",
    instances_dir: Annotated[
        Path | None, typer.Option(help="Where instance disks live [state dir/instances]")
    ] = None,
    heartbeat_seconds: Annotated[
        float | None, typer.Option(help="Heartbeat interval [default: what the controller says]")
    ] = None,
    reconcile_seconds: Annotated[float, typer.Option(help="Reconcile at least this often")] = 30.0,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
    log_format: Annotated[str, typer.Option(help="json or text")] = "json",
    fake_vcpus: Annotated[int, typer.Option(help="--driver fake: the simulated host's vCPUs")] = 32,
    fake_memory_mb: Annotated[int, typer.Option(help="--driver fake: its RAM in MiB")] = 128 * 1024,
    fake_disk_gb: Annotated[int, typer.Option(help="--driver fake: its disk in GiB")] = 2000,
    fake_fail_snapshots: Annotated[
        bool, typer.Option(help="--driver fake: every instance snapshot fails (tests)")
    ] = False,
    tunnel_ip: Annotated[
        str,
        typer.Option(help="VXLAN underlay address [the local address of the connection to the controller]"),
    ] = "",
    migration_address: Annotated[
        str,
        typer.Option(
            help="Where other nodes send live migrations' data to this one [the VXLAN underlay address]; "
            "'none': take no live migrations"
        ),
    ] = "",
    migration_uri: Annotated[
        str,
        typer.Option(
            help="The libvirt URI other nodes' libvirtd reach this one's with "
            "[qemu+tls://<migration address>/system]"
        ),
    ] = "",
    migration_port: Annotated[
        int,
        typer.Option(
            help="The TCP port of this node's TLS migration tunnel on the migration address "
            "(the live migration stream arrives there; 0: any free port, advertised to the controller)"
        ),
    ] = 0,
    migration_max_bandwidth: Annotated[
        int, typer.Option(help="Live migrations from this node: at most this many MiB/s (0: unlimited)")
    ] = 0,
    fake_migration_seconds: Annotated[
        float, typer.Option(help="--driver fake: how long a simulated live migration takes")
    ] = 0.2,
    physical_network: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=IFACE: the host interface of an external network's physical network "
            "(NAME= alone: a host-local bridge with no uplink); repeatable"
        ),
    ] = None,
    metrics_listen: Annotated[
        str,
        typer.Option(
            envvar="KUMO_NODED_METRICS_LISTEN",
            help="Prometheus metrics address, host:port (loopback unless set otherwise); empty: off",
        ),
    ] = "127.0.0.1:9465",
    metrics_cert_file: Annotated[
        str, typer.Option(envvar="KUMO_NODED_METRICS_CERT_FILE", help="Serve metrics over HTTPS: certificate")
    ] = "",
    metrics_key_file: Annotated[
        str, typer.Option(envvar="KUMO_NODED_METRICS_KEY_FILE", help="... and its private key")
    ] = "",
    dns_server: Annotated[
        list[str] | None,
        typer.Option(
            help="Where the networks' resolvers forward guests' queries (repeat for several) "
            "[the host's resolvers, from /etc/resolv.conf]"
        ),
    ] = None,
    rbd_monitors: Annotated[
        str,
        typer.Option(
            help="Ceph monitors host:port,... : enables the rbd volume backend", envvar="KUMO_RBD_MONITORS"
        ),
    ] = "",
    rbd_pool: Annotated[
        str, typer.Option(help="rbd: the pool of volume images", envvar="KUMO_RBD_POOL")
    ] = "rbd",
    rbd_user: Annotated[
        str, typer.Option(help="rbd: the cephx client (without 'client.')", envvar="KUMO_RBD_USER")
    ] = "kumo",
    rbd_keyring: Annotated[
        Path | None, typer.Option(help="rbd: that client's keyring file", envvar="KUMO_RBD_KEYRING")
    ] = None,
    shared_fs_dir: Annotated[
        Path | None,
        typer.Option(
            help="A directory every node mounts at this path: enables the shared-fs volume backend",
            envvar="KUMO_SHARED_FS_DIR",
        ),
    ] = None,
    controllers: Annotated[
        str,
        typer.Option(
            help="Node ports of several controllers on one database, HOST:PORT,HOST:PORT: "
            "the session fails over between them [the endpoint given at join]",
            envvar="KUMO_NODED_CONTROLLERS",
        ),
    ] = "",
) -> None:
    """Run the node agent: the session with the controller and the reconcile loop."""
    from noded.agent import Agent, CertificateRefused, Fatal
    from noded.endpoints import ControllerEndpoints
    from noded.hypervisor import DriverError, make_driver
    from noded.state import CurrentCredentials, StateError

    setup_logging(log_level, log_format)
    try:
        dns = tuple(str(ipaddress.ip_address(d)) for d in dns_server or [])
    except ValueError as exc:
        raise _fail(f"--dns-server: {exc}") from None
    physnets: dict[str, str] = {}
    for item in physical_network or []:
        name, eq, iface = item.partition("=")
        if not eq or not name:
            raise _fail(f"--physical-network wants NAME=IFACE, got {item!r}")
        physnets[name] = iface
    state = _state(state_dir)
    try:
        creds = state.load()
    except StateError as exc:
        raise _fail(str(exc)) from None
    if heartbeat_seconds is not None and heartbeat_seconds <= 0:
        raise _fail("--heartbeat-seconds must be positive")
    try:
        drv = make_driver(
            driver,
            virt_type,
            libvirt_uri,
            instances_dir or state.path / "instances",
            fake_capacity=(fake_vcpus, fake_memory_mb, fake_disk_gb),
            fake_fail_snapshots=fake_fail_snapshots,
            fake_migration_seconds=fake_migration_seconds,
        )
    except DriverError as exc:
        raise _fail(str(exc)) from None

    from prometheus_client import CollectorRegistry

    from kumo.metrics import MetricsConfigError, serve_metrics
    from noded.compute import make_compute
    from noded.compute.migration_tunnel import LocalPeers, MigrationTunnel
    from noded.console import ConsoleServer
    from noded.metrics import GuestCollector, ImageCacheCollector, NodeMetrics
    from noded.storage import RbdSettings, StorageError, VolumeStep, make_backend

    # This daemon's series, on a registry of its own (never prometheus_client's global one).
    metrics = NodeMetrics(CollectorRegistry(auto_describe=False))
    metrics.registry.register(GuestCollector(drv))
    metrics.registry.register(ImageCacheCollector(state.path / "images"))
    guests_dir = instances_dir or state.path / "instances"
    # Volumes beside the instances directory (qemu must reach both); the
    # instances step attaches them, the volumes step makes them.
    try:
        rbd = None
        if rbd_monitors:
            if rbd_keyring is None:
                raise StorageError("--rbd-monitors needs --rbd-keyring")
            rbd = RbdSettings(RbdSettings.parse_monitors(rbd_monitors), rbd_pool, rbd_user, rbd_keyring)
        backend = make_backend(drv, guests_dir.parent / "volumes", rbd, shared_fs_dir)
    except (StorageError, DriverError) as exc:
        raise _fail(str(exc)) from None
    current = CurrentCredentials(creds, state)
    endpoints = ControllerEndpoints(controllers or creds.identity.node_endpoint, state.controllers_file)

    from noded.network.step import default_tunnel_ip

    tunnel = tunnel_ip or default_tunnel_ip(endpoints.given[0])
    migration = migration_endpoint(migration_address, migration_uri, tunnel, driver)
    # The live migration streams go through the node daemons' TLS tunnel
    # (real guests only: a fake driver sends no streams).
    mig_tunnel = None
    if driver == "libvirt" and migration[0]:
        try:
            guest_user = drv.guest_user()  # who, besides root, may use the tunnel's sockets
        except DriverError as exc:
            drv.close()
            raise _fail(str(exc)) from None
        mig_tunnel = MigrationTunnel(
            current.get, guests_dir.parent / "migration", migration[0], migration_port, LocalPeers(guest_user)
        )
        try:
            migration = (*migration[:2], mig_tunnel.start())
        except OSError as exc:
            drv.close()
            raise _fail(
                f"--migration-port: cannot listen on {migration[0]}:{migration_port}: {exc}"
            ) from None
    compute = make_compute(
        current.get,
        drv,
        guests_dir,
        state.path / "images",
        backend,
        metrics,
        endpoints.current,
        migration_max_bandwidth,
        mig_tunnel,
    )
    volumes = VolumeStep(backend, compute.cache)

    from noded.network import NetworkStep

    # Bridges, DHCP and rules are for real guests: a fake node has none.
    networks = [NetworkStep(state.path, tunnel, dns, physnets)] if driver == "libvirt" else []

    try:
        metrics_server = serve_metrics(metrics.registry, metrics_listen, metrics_cert_file, metrics_key_file)
    except MetricsConfigError as exc:
        drv.close()
        raise _fail(str(exc)) from None
    state.save_metrics_url(metrics_server.url if metrics_server else "")

    async def main() -> None:
        agent = Agent(
            current,
            drv,
            state,
            heartbeat_seconds,
            reconcile_seconds,
            steps=[volumes, *networks, compute],
            guest_reporter=compute.report_guests,
            volume_reporter=volumes.report,
            periodic=[(2.0, compute.send_consoles)],
            tunnel_ip=tunnel,
            migration=migration,
            metrics=metrics,
            storage_backends=tuple(backend.names()),
            consoles=ConsoleServer(drv, compute.console_log),
            endpoints=endpoints,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    try:
        asyncio.run(main())
    except CertificateRefused as exc:
        raise _fail(f"{exc}; join this host again (kumo-noded join --force)", EXIT_CERT_REFUSED) from None
    except Fatal as exc:
        raise _fail(f"{exc}; join this host again (kumo-noded join --force)", EXIT_NODE_REFUSED) from None
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if mig_tunnel is not None:
            mig_tunnel.stop()
        drv.close()


@app.command()
def migration_endpoint(address: str, uri: str, tunnel: str, driver: str) -> tuple[str, str, int]:
    """(migration address, hypervisor URI, tunnel port: 0 until it listens)
    this node advertises; ("", "", 0) when it takes none."""
    if address == "none":
        return "", "", 0
    address = address or tunnel
    if not address:
        return "", "", 0
    host = f"[{address}]" if ":" in address else address
    return address, uri or (f"fake://{host}" if driver == "fake" else f"qemu+tls://{host}/system"), 0


def inventory(
    driver: DriverOpt = "libvirt",
    virt_type: VirtTypeOpt = "kvm",
    libvirt_uri: UriOpt = "qemu:///system",
    instances_dir: Annotated[Path, typer.Option(help="Where instance disks live")] = Path("."),
) -> None:
    """Print what this host would report (JSON)."""
    from dataclasses import asdict

    from noded.hypervisor import DriverError, make_driver

    try:
        drv = make_driver(driver, virt_type, libvirt_uri, instances_dir)
        out = {"facts": asdict(drv.host_facts()), "usage": asdict(drv.usage())}
        out["guests"] = [asdict(g) for g in drv.list_guests()]
        drv.close()
    except DriverError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(out, indent=2))


@app.command()
def status(state_dir: StateDirOpt = None) -> None:
    """Print who this node is (from its state dir)."""
    from dataclasses import asdict

    from cryptography import x509

    from noded.state import StateError

    state = _state(state_dir)
    try:
        creds = state.load()
    except StateError as exc:
        raise _fail(str(exc)) from None
    cert = x509.load_pem_x509_certificate(creds.cert_pem)
    out = {
        **asdict(creds.identity),
        "certificate_serial": format(cert.serial_number, "x"),
        "certificate_expires": cert.not_valid_after_utc.isoformat(),
        "applied_revision": state.load_desired_revision(),
    }
    typer.echo(json.dumps(out, indent=2))


def main() -> None:
    os.umask(0o077)
    sys.exit(app())


if __name__ == "__main__":
    main()
