"""Moving instances: cold migration and resize with confirm/revert
(docs/moves.md). `engine.py` holds the state machine every move goes through,
`cold.py` MigrateInstance (live = false), `resize.py` the resize verbs."""
