"""kumo-noded: the node daemon on each hypervisor host."""

__version__ = "0.1.0"
