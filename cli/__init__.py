"""The kumo CLI."""
