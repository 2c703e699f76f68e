"""`kumo-controller`: runs the controller until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from controller.config import apply_switch_interval, load_config
from kumo.logs import setup_logging

app = typer.Typer(add_completion=False, help="The kumo controller.")


@app.command()
def serve(
    data_dir: Annotated[
        Path | None, typer.Option(help="State directory [env KUMO_DATA_DIR; default ./.kumo]")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config file [env KUMO_CONFIG]")] = None,
    listen: Annotated[str | None, typer.Option(help="Public API address, host:port")] = None,
    node_listen: Annotated[str | None, typer.Option(help="Node API (mTLS) address, host:port")] = None,
    metrics_listen: Annotated[
        str | None, typer.Option(help="Prometheus metrics address, host:port; empty: off")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="Database URL; empty for SQLite in the data dir")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = None,
    log_format: Annotated[str | None, typer.Option(help="json or text")] = None,
) -> None:
    """Run the controller in the foreground."""
    try:
        cfg = load_config(
            config,
            {
                "data_dir": data_dir,
                "listen": listen,
                "node_listen": node_listen,
                "metrics_listen": metrics_listen,
                "database_url": database_url,
                "log_level": log_level,
                "log_format": log_format,
            },
        )
    except (OSError, ValueError) as exc:
        typer.echo(f"kumo-controller: bad configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    setup_logging(cfg.log_level, cfg.log_format)
    apply_switch_interval(cfg)
    from controller.server import Controller

    try:
        controller = Controller(cfg)
        controller.start()
    except (OSError, RuntimeError, ValueError) as exc:
        typer.echo(f"kumo-controller: cannot start: {exc}", err=True)
        raise typer.Exit(1) from None

    def on_signal(signum: int, _frame: object) -> None:
        controller._stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.wait()
    controller.stop()


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
