"""Persistence: SQL metadata (SQLModel tables, engine, migrations) and the object store.

Table models never leave this package; the service layer receives domain objects.
"""
