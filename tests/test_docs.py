"""Docs that tests keep honest: every CLI command has help text and appears in the README."""

from __future__ import annotations

import click
import typer.main

from conftest import REPO_ROOT


def _commands() -> list[tuple[str, click.Command]]:
    from genreg.cli import app

    root = typer.main.get_command(app)
    out: list[tuple[str, click.Command]] = []

    def walk(prefix: str, cmd: click.Command) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            out.append((prefix, cmd))

    walk("", root)
    return out


def test_every_cli_command_has_help_text() -> None:
    missing = [name for name, cmd in _commands() if not (cmd.help or "").strip()]
    assert missing == []


def test_every_cli_command_appears_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name, _ in _commands() if f"genreg {name}" not in readme]
    assert missing == [], f"document these commands in README.md: {missing}"
