"""Where the registry lives: ``GENREG_HOME`` or a ``.genreg/`` found walking up from the
current directory (like git or dvc). ``GENREG_CEILING_DIRECTORIES`` (``os.pathsep``-separated,
like git's ``GIT_CEILING_DIRECTORIES``) stops that walk: a ceiling directory and what lies
above it are never searched (unless the walk starts there). ``GENREG_DATABASE_URL`` and
``GENREG_OBJECTS_URL`` point metadata and objects elsewhere (PostgreSQL, S3...)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genreg.errors import ConfigError

HOME_DIRNAME = ".genreg"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    objects_url: str

    @classmethod
    def for_home(cls, home: Path) -> Settings:
        home = Path(home).resolve()
        db = os.environ.get("GENREG_DATABASE_URL") or f"sqlite:///{home / 'registry.db'}"
        objects = os.environ.get("GENREG_OBJECTS_URL") or str(home / "objects")
        return cls(home=home, database_url=db, objects_url=objects)


def _ceilings() -> set[Path]:
    raw = os.environ.get("GENREG_CEILING_DIRECTORIES", "")
    return {Path(p).resolve() for p in raw.split(os.pathsep) if p.strip()}


def find_home(start: Path | None = None) -> Path | None:
    env = os.environ.get("GENREG_HOME")
    if env:
        return Path(env)
    cur = (start or Path.cwd()).resolve()
    ceilings = _ceilings()
    for d in (cur, *cur.parents):
        if d in ceilings and d != cur:
            break
        candidate = d / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return None


def resolve_settings(home: Path | None = None, *, create: bool = False) -> Settings:
    """Settings for an explicit home, ``GENREG_HOME``, or the nearest ``.genreg/``."""
    found = Path(home) if home else find_home()
    if found is None:
        if not create:
            raise ConfigError("no genreg registry here: run 'genreg init' or set GENREG_HOME")
        found = Path.cwd() / HOME_DIRNAME
    if not found.exists():
        if not create:
            raise ConfigError(f"registry home {found} does not exist: run 'genreg init'")
        found.mkdir(parents=True)
    return Settings.for_home(found)


def default_author() -> str:
    env = os.environ.get("GENREG_AUTHOR")
    if env:
        return env
    import getpass
    import subprocess

    try:
        out = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=2
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user database in some containers
        return "unknown"
