"""``genreg llm serve|export|import``: the local extractive baseline server and response
bundles (the recorded answers of a run, to replay elsewhere with no key and no network)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from genreg.cli._common import JsonOpt, echo, emit_json, open_registry

app = typer.Typer(no_args_is_help=True)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback)."),
    port: int = typer.Option(8081, "--port", help="TCP port (0: any free port)."),
    delay_ms: float = typer.Option(0.0, "--delay-ms", min=0, help="Sleep this long per call."),
    sentences: int = typer.Option(1, "--sentences", min=1, help="Context sentences per answer."),
    api_key_env: str = typer.Option(
        None, "--api-key-env", help="Require 'Bearer <value of this env var>' (else 401)."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Log each request to stderr."),
) -> None:
    """Serve the extractive baseline model and the baseline-overlap-judge over the OpenAI Chat
    Completions protocol (real usage counts; both are labelled baselines, not LLMs)."""
    from genreg.errors import ConfigError
    from genreg.generation.baseline_judge import MODEL_NAME as JUDGE_MODEL
    from genreg.generation.extractive import MODEL_NAME
    from genreg.generation.server import ChatServer, _tokenizer

    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env: environment variable {api_key_env} is not set")
    _tokenizer()  # load before listening: the first call is not slower than the rest
    try:
        server = ChatServer(
            host, port, delay_ms=delay_ms, sentences=sentences, api_key=key, verbose=verbose
        )
    except OSError as exc:
        raise ConfigError(f"--port {port}: cannot listen on {host} ({exc.strerror})") from None
    echo(
        f"serving {MODEL_NAME} (an extractive baseline, not an LLM) and {JUDGE_MODEL} "
        f"(a token-overlap baseline judge, not an LLM) at {server.base_url}",
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command("export")
def export(
    run_id: str = typer.Argument(..., help="Run id whose generated responses to export."),
    out: Path = typer.Option(..., "-o", "--output", help="Bundle file to write (.jsonl.gz)."),
    json_out: bool = JsonOpt,
) -> None:
    """Write the recorded LLM responses of a run to a bundle (share answers, replay in CI)."""
    from genreg.generation.cache import export_run

    n = export_run(open_registry(), run_id, out)
    if json_out:
        emit_json({"run_id": run_id, "path": str(out), "responses": n})
    else:
        echo(f"exported {n} responses of run {run_id} to {out}")


@app.command("import")
def import_(
    bundle: Path = typer.Argument(..., help="A bundle written by 'genreg llm export'."),
    json_out: bool = JsonOpt,
) -> None:
    """Import recorded LLM responses into the response cache (then run with cache: replay)."""
    from genreg.generation.cache import import_bundle

    n = import_bundle(open_registry(), bundle)
    if json_out:
        emit_json({"path": str(bundle), "responses": n})
    else:
        echo(f"imported {n} responses from {bundle}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="llm", help="Local extractive baseline LLM server; response bundles.")
