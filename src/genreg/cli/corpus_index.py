"""``genreg corpus index|search`` (derived side: chunks, embeddings, FAISS indexes)."""

from __future__ import annotations

from typing import Any

import typer

from genreg.cli._common import JsonOpt, QuietOpt, echo, emit_json, open_registry, progress

ModelOpt = typer.Option(
    None,
    "--model",
    "-m",
    help="Embedding model: a sentence-transformers name or local path "
    "(default sentence-transformers/all-MiniLM-L6-v2, shipped offline).",
)
ChunkingOpt = typer.Option(
    "none",
    "--chunking",
    "-c",
    help="none | chars:SIZE[:OVERLAP] | tokens:SIZE[:OVERLAP] | a JSON object.",
)
IndexOpt = typer.Option(
    "flat",
    "--index",
    "-i",
    help="flat | hnsw | ivf | ivfpq | ivf_hnsw (compressed, on disk) | a JSON object such as "
    '{"type":"ivfpq","nlist":1024,"m":48,"nprobe":32}.',
)


BackendOpt = typer.Option(
    "torch",
    "--backend",
    help="Embedding backend: torch (sentence-transformers) | onnx (ONNX Runtime; genreg[onnx]) "
    "| openvino (OpenVINO on the CPU; genreg[openvino]).",
)
QuantizeOpt = typer.Option(
    "none",
    "--quantize",
    help="none | int8 (onnx: ONNX Runtime dynamic quantization; openvino: NNCF static "
    "quantization).",
)
PrecisionOpt = typer.Option(
    "f32",
    "--precision",
    help="f32 | bf16 (openvino backend only: bfloat16 inference on a CPU with AMX/AVX512_BF16).",
)
DeviceOpt = typer.Option("auto", "--device", help="auto (a CUDA GPU when present) | cpu | cuda.")


def _model(
    model: str | None, backend: str, quantize: str, precision: str, device: str
) -> str | dict[str, Any] | None:
    """The model argument: a name, or an embedding spec when a backend option is set."""
    if (backend, quantize, precision, device) == ("torch", "none", "f32", "auto"):
        return model
    return {
        "model": model,
        "backend": backend,
        "quantize": quantize,
        "precision": precision,
        "device": device,
    }


def _snippet(text: str | None, width: int = 100) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def register(corpus_app: typer.Typer) -> None:
    """Add the index/search commands to the ``corpus`` group."""

    @corpus_app.command("index")
    def index_cmd(
        ref: str = typer.Argument(..., help="Corpus version, e.g. corpus:docs@v3 or docs."),
        model: str | None = ModelOpt,
        chunking: str = ChunkingOpt,
        index: str = IndexOpt,
        backend: str = BackendOpt,
        quantize: str = QuantizeOpt,
        precision: str = PrecisionOpt,
        device: str = DeviceOpt,
        engine: str = typer.Option(
            "local",
            "--engine",
            help="local (in-process) | ray (Ray Data actors; RAY_ADDRESS or a local cluster; "
            "genreg[ray]).",
        ),
        actors: int = typer.Option(2, "--actors", min=1, help="Ray actors (--engine ray)."),
        num_gpus: float = typer.Option(
            0.0, "--num-gpus", min=0.0, help="GPUs per Ray actor (--engine ray)."
        ),
        batch_size: int = typer.Option(32, "--batch-size", min=1, help="Texts per model call."),
        quiet: bool = QuietOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Chunk, embed (through the cache) and index a corpus version; reuse it if built."""
        reg = open_registry()
        with progress(quiet or as_json) as cb:
            info = reg.build_index(
                _corpus(ref),
                model=_model(model, backend, quantize, precision, device),
                chunking=chunking,
                index=index,
                progress=cb,
                batch_size=batch_size,
                engine=engine,
                ray={"actors": actors, "num_gpus": num_gpus} if engine == "ray" else None,
            )
        if as_json:
            emit_json(info.to_dict())
            return
        status = "reused" if info.reused else f"built ({info.embedded} chunks embedded)"
        echo(f"{info.corpus} index {info.key[:19]} {status}")
        where = f", {info.device}" if info.device else ""
        echo(f"  model    {info.model} ({info.model_digest[:19]}{where}, engine {info.engine})")
        echo(f"  chunking {info.chunking}  index {info.index}")
        echo(f"  {info.n_docs} documents, {info.n_chunks} chunks, {info.seconds:.2f}s")

    @corpus_app.command("search")
    def search_cmd(
        ref: str = typer.Argument(..., help="Corpus version, e.g. corpus:docs@production."),
        query: str = typer.Argument(..., help="The query text."),
        k: int = typer.Option(5, "-k", "--top-k", help="Number of documents to return."),
        model: str | None = ModelOpt,
        chunking: str = ChunkingOpt,
        index: str = IndexOpt,
        backend: str = BackendOpt,
        quantize: str = QuantizeOpt,
        precision: str = PrecisionOpt,
        device: str = DeviceOpt,
        quiet: bool = QuietOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Print the top-k documents (best chunk each) for a query, with scores."""
        reg = open_registry()
        with progress(quiet or as_json) as cb:
            hits = reg.search(
                _corpus(ref),
                query,
                k,
                model=_model(model, backend, quantize, precision, device),
                chunking=chunking,
                index=index,
                progress=cb,
            )
        if as_json:
            emit_json([h.to_dict() for h in hits])
            return
        if not hits:
            echo("(no results)")
        for rank, h in enumerate(hits, 1):
            echo(f"{rank:>2}. {h.score:.4f}  {h.doc_id}#{h.chunk_index}  {_snippet(h.text)}")


def _corpus(ref: str) -> str:
    return ref if ":" in ref.split("@", 1)[0] else f"corpus:{ref}"
