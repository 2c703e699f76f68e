"""kumo-dashboard: a web UI that is a client of the public gRPC API, like the CLI."""
