"""The kumo controller: identity, images, volumes, networks, scheduling."""
