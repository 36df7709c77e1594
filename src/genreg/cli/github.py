"""GitHub Actions integration of ``genreg eval run|score``, on without flags when
``GITHUB_ACTIONS=true``: the Markdown summary is appended to ``$GITHUB_STEP_SUMMARY`` and
each failed gate becomes an ``::error::`` annotation (workflow-command syntax, with ``%``,
CR and LF escaped as GitHub documents)."""

# No `from __future__ import annotations`: it would clash with annotations() below.
import os
import sys
from pathlib import Path
from typing import Any


def active() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape(text: str, *, prop: bool = False) -> str:
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return out.replace(":", "%3A").replace(",", "%2C") if prop else out


def annotations(o: dict[str, Any]) -> list[str]:
    """One ``::error`` line per failed gate of a run outcome dict."""
    lines = []
    for g in o.get("gates") or []:
        if g.get("passed") is False:
            title = _escape(f"genreg gate failed: {o.get('name')}", prop=True)
            msg = f"gate {g['gate']} failed ({g.get('detail', '')}) in run {o['run_id']}"
            lines.append(f"::error title={title}::{_escape(msg)}")
    return lines


def report(o: dict[str, Any], markdown: str, *, json_out: bool) -> None:
    """Write the step summary and the annotations (to stderr under ``--json`` so stdout
    stays one JSON document; the runner reads workflow commands from both)."""
    if not active():
        return
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as f:
            f.write(markdown.rstrip("\n") + "\n\n")
    stream = sys.stderr if json_out else sys.stdout
    for line in annotations(o):
        stream.write(line + "\n")
    stream.flush()
