"""``genreg corpus snapshot|diff|status|export|docs`` (snapshot side of the corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from genreg.core.corpus import CorpusDiff

from genreg.cli._common import JsonOpt, QuietOpt, echo, emit_json, open_registry, parse_kv, progress

app = typer.Typer(no_args_is_help=True)

FmtOpt = typer.Option(
    None, "--format", help="Source format: tree, jsonl or beir (default: detect)."
)
IdOpt = typer.Option(
    "id", "--id-field", help="JSON(L) field holding the doc id (falls back to _id)."
)
TextOpt = typer.Option("text", "--text-field", help="JSON(L) field holding the text.")
TitleOpt = typer.Option("title", "--title-field", help="JSON(L) field holding the title.")


@app.command()
def snapshot(
    name: str = typer.Argument(..., help="Corpus name (versions are corpus:NAME@vN)."),
    source: Path = typer.Argument(..., help="A directory tree, a .jsonl file or a BEIR folder."),
    fmt: str = FmtOpt,
    id_field: str = IdOpt,
    text_field: str = TextOpt,
    title_field: str = TitleOpt,
    verify: bool = typer.Option(
        False, "--verify", help="Re-hash every file (ignore the stat cache)."
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Skip bad files/records (listed) instead of failing."
    ),
    message: str = typer.Option("", "-m", "--message", help="Message for the new version."),
    tag: list[str] = typer.Option(None, "--tag", help="key=value tag (repeatable)."),
    author: str = typer.Option(
        None, "--author", help="Author (default: $GENREG_AUTHOR or git user.name)."
    ),
    quiet: bool = QuietOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Snapshot a corpus source; unchanged content gives the existing version (nothing new)."""
    reg = open_registry()
    with progress(quiet or json_out) as cb:
        res = reg.snapshot(
            name, source, fmt=fmt, id_field=id_field, text_field=text_field,
            title_field=title_field, verify=verify, skip_invalid=skip_invalid, message=message,
            tags=parse_kv(tag), author=author, progress=cb,
        )  # fmt: skip
    if json_out:
        emit_json(res.to_dict())
        return
    from genreg.textout import snapshot_lines

    snapshot_lines(res)


def _print_diff(d: CorpusDiff, limit: int) -> None:
    c = d.counts()
    echo(f"{d.a} -> {d.b}")
    echo(
        f"added {c['added']}, removed {c['removed']}, changed {c['changed']}, unchanged {c['unchanged']}"
    )
    for label, ids in (("+", d.added), ("-", d.removed), ("M", d.changed)):
        for doc_id in ids[:limit]:
            echo(f"  {label} {doc_id}")
        if len(ids) > limit:
            echo(f"  {label} ... {len(ids) - limit} more")


LimitOpt = typer.Option(50, "--limit", help="Doc ids listed per category in text output.")


@app.command()
def diff(
    a: str = typer.Argument(..., help="Older snapshot, e.g. corpus:docs@v1."),
    b: str = typer.Argument(..., help="Newer snapshot, e.g. corpus:docs@v2."),
    limit: int = LimitOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Documents added, removed and changed between two snapshots, with counts."""
    d = open_registry().corpus_diff(a, b)
    if json_out:
        emit_json(d.to_dict())
    else:
        _print_diff(d, limit)


@app.command()
def status(
    ref: str = typer.Argument(..., help="Snapshot to compare with, e.g. corpus:docs@production."),
    source: Path = typer.Argument(..., help="The working source (tree, .jsonl or BEIR folder)."),
    fmt: str = FmtOpt,
    verify: bool = typer.Option(False, "--verify", help="Re-hash every file."),
    limit: int = LimitOpt,
    quiet: bool = QuietOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Has SOURCE drifted from the snapshot? Exit 0 when clean, 1 when it drifted."""
    reg = open_registry()
    with progress(quiet or json_out) as cb:
        d = reg.corpus_status(ref, source, fmt=fmt, verify=verify, progress=cb)
    if json_out:
        emit_json({**d.to_dict(), "drifted": d.drifted})
    elif d.drifted:
        _print_diff(d, limit)
    else:
        echo(f"clean: {source} matches {d.a} ({d.a_digest[:19]})")
    if d.drifted:
        raise typer.Exit(1)


@app.command()
def export(
    ref: str = typer.Argument(..., help="Snapshot to restore, e.g. corpus:docs@v3."),
    out_dir: Path = typer.Argument(..., help="Directory to write the files into."),
    json_out: bool = JsonOpt,
) -> None:
    """Restore a snapshot's files byte for byte (JSONL sources in their original order)."""
    st = open_registry().corpus_export(ref, out_dir)
    if json_out:
        emit_json(st.to_dict())
    else:
        echo(
            f"exported {st.ref}: {st.files} files, {st.docs} docs, {st.bytes} bytes to {st.out_dir}"
        )


@app.command()
def docs(
    ref: str = typer.Argument(..., help="Snapshot, e.g. corpus:docs@v3."),
    json_out: bool = JsonOpt,
) -> None:
    """List a snapshot's documents (doc id, sha256, size, format)."""
    man = open_registry().corpus_manifest(ref)
    if json_out:
        emit_json(
            {
                "header": man.header,
                "documents": [
                    {"doc_id": i, "sha256": s, "size": n, "format": f} for i, s, n, f in man.entries
                ],
            }
        )
        return
    for i, s, n, f in man.entries:
        echo(f"{s[:12]}  {n:>9}  {f:6}  {i}")
