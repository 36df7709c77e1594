"""Read-side queries over recorded runs that the web UI needs and the run views do not offer:
one page of runs (filtered, sorted, counted in SQL), the eval names and metric names to filter
by, a metric's trend over the runs of one eval, per-metric confidence intervals of one run, and
the per-query results of a run cached by their content digest (a results object is immutable,
so a parsed copy never goes stale).

Everything returns domain objects or plain dicts; SQL stays in :mod:`genreg.store.run_pages`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genreg.core.runinfo import RunInfo

if TYPE_CHECKING:
    from genreg.service import Registry

SORTS = ("started_at", "name", "status", "passed", "author")


@dataclass
class RunPage:
    runs: list[RunInfo]
    total: int
    page: int
    per_page: int
    metric_names: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


class _LRU:
    """A tiny thread-safe LRU of parsed run results, keyed by results-object digest."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


class RunQueries:
    """Queries for browsing runs, over the registry facade (``reg``)."""

    def __init__(self, reg: Registry, *, cache_size: int = 4) -> None:
        self.reg = reg
        self._results = _LRU(cache_size)
        self._compares = _LRU(16)
        self._evalsets = _LRU(cache_size)
        self._docs = _LRU(cache_size)

    def _pages(self) -> Any:
        from genreg.store.run_pages import RunPages

        return RunPages(self.reg.runs_repo.engine)

    # ---- lists -----------------------------------------------------------------------
    def page(
        self,
        *,
        name: str | None = None,
        used: str | None = None,
        status: str | None = None,
        sort: str = "started_at",
        desc: bool = True,
        page: int = 1,
        per_page: int = 50,
    ) -> RunPage:
        """One page of runs. ``used`` is a ref resolved to the exact version it names (an
        unversioned ref such as ``corpus:docs`` matches every version); ``status`` is
        ``passed`` | ``failed`` | ``no-gates`` | a run status (``done``...); ``sort`` is a column
        of :data:`SORTS` or ``metric:NAME``."""
        u: tuple[str, str, int | None] | None = None
        if used:
            from genreg.core.refs import parse_ref

            r = parse_ref(used)
            if r.version is None and r.alias is None:
                u = (r.kind, r.name, None)
            else:
                v = self.reg.resolve(used)
                u = (v.kind, v.name, v.version)
        page = max(1, page)
        runs, total = self._pages().page(
            name=name,
            used=u,
            status=status,
            sort=sort,
            desc=desc,
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        names: list[str] = []
        for r in runs:
            names += [m for m in r.metrics if m not in names]
        return RunPage(runs, total, page, per_page, names)

    def eval_names(self) -> list[str]:
        return self._pages().names()

    def trend(self, name: str, metric: str, *, limit: int = 500) -> list[dict[str, Any]]:
        """``metric`` over the runs of eval ``name``, oldest first, with each run's inputs."""
        runs = self.reg.list_runs(name=name, limit=limit)
        out = []
        for r in reversed(runs):
            if metric in r.metrics:
                out.append(
                    {
                        "run": r.id,
                        "started_at": r.started_at,
                        "value": float(r.metrics[metric]),
                        "passed": r.passed,
                        "inputs": {**{i.role: i.ref for i in r.inputs}, **_settings(r)},
                    }
                )
        return out

    # ---- one run ---------------------------------------------------------------------
    def results(self, run: RunInfo) -> dict[str, Any]:
        """The per-query results of ``run`` (parsed once per results object)."""
        if not run.results_object:
            return {}
        hit = self._results.get(run.results_object)
        if hit is None:
            hit = self.reg.run_results(run.id)
            self._results.put(run.results_object, hit)
        return hit

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """:meth:`Registry.compare_runs`, remembered per pair (runs are immutable)."""
        key = f"{a}\0{b}"
        hit = self._compares.get(key)
        if hit is None:
            hit = self.reg.compare_runs(a, b)
            self._compares.put(key, hit)
        return hit

    def evalset_row(self, run: RunInfo, qid: str) -> dict[str, Any] | None:
        """The eval-set row (query, relevant, answer, ...) that run ``run`` scored as ``qid``."""
        es = next((i for i in run.inputs if i.role == "evalset"), None)
        if es is None:
            return None
        rows = self._evalsets.get(es.digest)
        if rows is None:
            rows = {r["id"]: r for r in self.reg.load_evalset(es.ref).rows}
            self._evalsets.put(es.digest, rows)
        return rows.get(qid)

    def snippets(self, run: RunInfo, doc_ids: list[str], chars: int = 280) -> dict[str, str]:
        """The first ``chars`` characters of each wanted document of the run's corpus
        (``{}`` for runs without a registered corpus, e.g. scored run files)."""
        c = next((i for i in run.inputs if i.role == "corpus"), None)
        if c is None or not doc_ids:
            return {}
        cache = self._docs.get(c.digest)
        if cache is None:
            cache = {}
            self._docs.put(c.digest, cache)
        missing = set(doc_ids) - set(cache)
        if missing:
            for d in self.reg.iter_documents(c.ref):
                if d.doc_id in missing:
                    text = " ".join(((f"{d.title} - " if d.title else "") + d.text).split())
                    cache[d.doc_id] = text[:chars] + ("..." if len(text) > chars else "")
                    missing.discard(d.doc_id)
                    if not missing:
                        break
            for doc_id in missing:  # not in the snapshot (e.g. a chunk id): remember the miss
                cache[doc_id] = ""
        return {d: cache[d] for d in doc_ids if d in cache}


def _settings(run: RunInfo) -> dict[str, str]:
    """The retrieval settings of a run's lineage that can change between runs of one eval."""
    lin = run.lineage
    out = {}
    emb = lin.get("embedding") or {}
    if emb.get("model"):
        out["embedding"] = str(emb["model"])
    for f in ("chunking", "index", "k"):
        v = lin.get(f)
        if v is not None:
            out[f] = ", ".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v)
    return out


def metric_cis(
    per_query: dict[str, dict[str, float]], confidence: float = 0.95
) -> dict[str, dict[str, float]]:
    """Mean, standard error and a normal-approximation confidence interval of each metric
    over the queries (``mean +- z * sd / sqrt(n)``), clipped to [0, 1] for metrics in that range."""
    z = {0.9: 1.6449, 0.95: 1.9600, 0.99: 2.5758}.get(confidence, 1.96)
    out: dict[str, dict[str, float]] = {}
    for m, vals in per_query.items():
        xs = [float(v) for v in vals.values()]
        n = len(xs)
        if not n:
            continue
        mean = sum(xs) / n
        var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
        se = math.sqrt(var / n)
        unit = min(xs) >= 0.0 and max(xs) <= 1.0
        out[m] = {
            "mean": mean,
            "se": se,
            "n": n,
            "ci_low": max(0.0, mean - z * se) if unit else mean - z * se,
            "ci_high": min(1.0, mean + z * se) if unit else mean + z * se,
        }
    return out
