"""The state store: peewee models, migrations and queries. Nothing here makes
ids or reads the clock; callers pass them in."""
