"""Alembic migrations for genreg's metadata schema (script location of this package).

``HEAD`` must name the newest revision; ``tests/test_migrations.py`` checks it against the
scripts, so opening a store can tell in one query whether anything needs to run.
"""

HEAD = "0003"
