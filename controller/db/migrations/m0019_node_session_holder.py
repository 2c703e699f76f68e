"""Where each node's session lives, for several controllers on one database:
the controller holding it ('' when none does) and the guests the node last
reported (base64 of a kumo.v1 Heartbeat holding only `guests`, written with
the batched last-seen time) and its whole inventory (base64 of a
NodeInventory: tunnel address and storage backends too), so the other
controllers can place on it, show its power states and tunnel to it."""

STATEMENTS = [
    "ALTER TABLE node ADD COLUMN session_controller_id VARCHAR(36) NOT NULL DEFAULT ''",
    "ALTER TABLE node ADD COLUMN guests TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE node ADD COLUMN inventory TEXT NOT NULL DEFAULT ''",
]
