"""Read-side queries over recorded runs that the web UI needs and the run views do not offer:
one page of runs (filtered, sorted, counted in SQL), the eval names and metric names to filter
by, a metric's trend over the runs of one eval, per-metric confidence intervals of one run, and
the per-query results of a run in a form the pages read fast.

**The UI index of a run** (:func:`index_results`). A run's results object is one gzipped JSON
of every query with its ranked documents (10,000 queries x 100 documents: ~23 MB of JSON,
1-3 s to parse). The pages need far less at once, so the results are split once -- when the
run is recorded (the record stage calls it), or on the first view of a run recorded before --
into derived objects keyed by the results object's digest (immutable, so never stale):

- a *summary*: per query the id, text, metric values, latency, route, cost, a clipped answer and
  the top-10 document ids; the per-query metric values by metric; the metric CIs;
- *shards* of ~256 queries each with the full per-query entries (ranked documents, answer,
  usage, verdicts, generation detail), found by ``crc32(query id) % shards``; a query's
  drill-down reads one shard.

The derived row (kind ``ui-run``) names the summary; its metadata lists the shard digests, so
``gc`` keeps them. A registry that cannot be written (or a failed write) only loses the
persistence: the pages then use the in-memory copy.

**Comparisons** (:meth:`RunQueries.compare`) are :meth:`Registry.compare_runs` (paired bootstrap
+ randomization, 10,000 resamples), stored as a derived object keyed by the two run ids (runs
are immutable). A pair too large to compare within a page request (shared queries x metrics
above :attr:`RunQueries.sync_limit`) is computed in a separate process (numpy would hold the
server's GIL for seconds); until it is stored the
page shows the deltas, wins/losses/ties and most regressed queries (cheap, exact) and says the
CI and p-value are being computed.

Everything returns domain objects or plain dicts; SQL stays in :mod:`genreg.store.run_pages`.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import zlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genreg.core.runinfo import RunInfo
from genreg.errors import GenregError, NotFound

if TYPE_CHECKING:
    from genreg.service import Registry

log = logging.getLogger("genreg.ui")

SORTS = ("started_at", "name", "status", "passed", "author")
INDEX_FORMAT = "genreg-ui-run/1"
INDEX_KIND = "ui-run"
COMPARE_FORMAT = "genreg-ui-compare/1"
COMPARE_KIND = "ui-compare"
SHARD_QUERIES = 256
TOP = 10  # document ids kept per query in the summary (compare: entered/left the top 10)
ANSWER_CHARS = 300  # an answer as the per-query table shows it (the drill-down shows all)
# per-query keys that mean the run generated (the pages then show answers, usage, verdicts)
GEN_KEYS = ("answer", "usage", "verdicts", "judges", "judgments", "generation")


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
    """A tiny thread-safe LRU, keyed by an immutable digest."""

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


# ---- the UI index of a run ------------------------------------------------------------------
def shard_of(qid: str, shards: int) -> int:
    return zlib.crc32(qid.encode("utf-8")) % max(1, shards)


def summarize(results: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Split a run's results into the summary the pages read and the per-query shards."""
    queries = results.get("queries") or []
    n_shards = max(1, math.ceil(len(queries) / SHARD_QUERIES))
    shards: list[dict[str, Any]] = [{} for _ in range(n_shards)]
    rows = []
    for q in queries:
        row: dict[str, Any] = {
            "id": q["id"],
            "query": q.get("query", ""),
            "metrics": q.get("metrics") or {},
            "top": _join_ids([d for d, _ in (q.get("ranked") or [])[:TOP]]),
        }
        for k in ("latency", "route", "model", "cost"):
            if q.get(k) is not None:
                row[k] = q[k]
        if "answer" in q:
            a = q.get("answer")
            row["answer"] = (
                a[:ANSWER_CHARS] + "..." if isinstance(a, str) and len(a) > ANSWER_CHARS else a
            )
        if any(k in q for k in GEN_KEYS):
            row["generated"] = True
            gen = gen_columns(q)
            if gen:
                row["gen"] = gen
        rows.append(row)
        shards[shard_of(q["id"], n_shards)][q["id"]] = _pack_entry(q)
    pq = results.get("per_query_metrics") or {}
    summary = {
        "format": INDEX_FORMAT,
        "metrics": list(results.get("metrics") or pq),
        "per_query_metrics": pq,
        "cis": metric_cis(pq),
        "rows": rows,
        "shards": n_shards,
    }
    return summary, shards


def verdict_text(verdicts: Any) -> str | None:
    """Judge verdicts in one short line (``faithful: yes; relevance: 0.8``), whatever their
    shape: a dict by judge name (of a verdict, or of a dict with verdict/label/score) or a list
    of such dicts."""
    if not verdicts:
        return None
    items = (
        list(verdicts.items())
        if isinstance(verdicts, dict)
        else [(v.get("judge") or v.get("name") or f"#{i}", v) for i, v in enumerate(verdicts, 1)]
        if isinstance(verdicts, list)
        else [("judge", verdicts)]
    )
    parts = []
    for name, v in items:
        if isinstance(v, dict):
            v = next((v[k] for k in ("verdict", "label", "score", "value") if k in v), "?")
        parts.append(f"{name}: {v}")
    return "; ".join(parts)


def gen_columns(q: dict[str, Any]) -> dict[str, Any]:
    """The per-query generation values the per-query table shows as columns: generation
    latency, output tokens and the judge verdicts (whichever the run recorded)."""
    out: dict[str, Any] = {}
    g: dict[str, Any] = q["generation"] if isinstance(q.get("generation"), dict) else {}
    lat = g.get("latency_ms")
    if isinstance(lat, (int, float)):
        out["gen_latency_ms"] = float(lat)
    usage: dict[str, Any] = q["usage"] if isinstance(q.get("usage"), dict) else {}
    if isinstance(usage.get("output_tokens"), (int, float)):
        out["output_tokens"] = usage["output_tokens"]
    v = verdict_text(q.get("verdicts") or q.get("judges") or q.get("judgments"))
    if v:
        out["verdict"] = v
    return out


def _pack_entry(q: dict[str, Any]) -> dict[str, Any]:
    """A results entry with its ranked list stored columnar -- doc ids joined by a newline,
    scores as base64 float64 bytes -- which encodes ~5x faster than a JSON list of pairs and
    decodes to exactly the same values (:func:`unpack_entry`). Doc ids that contain a newline
    (never in practice) keep the plain list."""
    ranked = q.get("ranked")
    if not ranked:
        return q
    docs, scores = zip(*ranked)
    joined = "\n".join(docs)
    if joined.count("\n") != len(docs) - 1:
        return q
    out = {k: v for k, v in q.items() if k != "ranked"}
    out["_docs"] = joined
    out["_scores"] = base64.b64encode(array("d", scores).tobytes()).decode()
    return out


def unpack_entry(q: dict[str, Any]) -> dict[str, Any]:
    if "_docs" not in q:
        return q
    scores = array("d")
    scores.frombytes(base64.b64decode(q["_scores"]))
    out = {k: v for k, v in q.items() if k not in ("_docs", "_scores")}
    out["ranked"] = [[d, x] for d, x in zip(q["_docs"].split("\n"), scores)]
    return out


def _join_ids(ids: list[str]) -> str | list[str]:
    """Doc ids as one newline-joined string (one JSON token instead of ten: the summary
    parses faster), unless an id contains a newline."""
    joined = "\n".join(ids)
    return ids if joined.count("\n") != max(0, len(ids) - 1) else joined


def top_ids(row: dict[str, Any]) -> list[str]:
    """The top-10 document ids of a summary row."""
    top = row.get("top") or []
    return top.split("\n") if isinstance(top, str) else list(top)


def _compact(summary: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a summary: per-query metric values as lists aligned with ``rows``
    (no repeated query ids); :func:`_expand` restores the dicts."""
    ids = [r["id"] for r in summary["rows"]]
    pq = summary["per_query_metrics"]
    out = {k: v for k, v in summary.items() if k != "per_query_metrics"}
    out["per_query_values"] = {m: [vals.get(q) for q in ids] for m, vals in pq.items()}
    return out


def _expand(stored: dict[str, Any]) -> dict[str, Any]:
    ids = [r["id"] for r in stored["rows"]]
    vals = stored.pop("per_query_values", {})
    stored["per_query_metrics"] = {
        m: {q: v for q, v in zip(ids, vs) if v is not None} for m, vs in vals.items()
    }
    return stored


def _gz(obj: Any) -> bytes:
    return gzip.compress(json.dumps(obj, separators=(",", ":")).encode(), 1, mtime=0)


def _ungz(data: bytes) -> Any:
    return json.loads(gzip.decompress(data))


def index_key(results_digest: str) -> str:
    return f"{INDEX_FORMAT}:{results_digest}"


def index_results(reg: Any, results_digest: str, results: dict[str, Any]) -> dict[str, Any]:
    """Build and store the UI index of one results object (idempotent); returns the summary
    with ``shard_objects`` (the digest of each shard)."""
    from genreg.store.objects import ensure_stored

    summary, shards = summarize(results)
    blobs = [_gz(s) for s in shards]
    digests = [reg.objects.put_bytes(b) for b in blobs]
    summary["shard_objects"] = digests
    blob = _gz(_compact(summary))
    obj = reg.objects.put_bytes(blob)
    reg.derived.put(
        INDEX_KIND,
        "ui",
        index_key(results_digest),
        obj,
        {"results": results_digest, "shards": digests, "queries": len(summary["rows"])},
    )
    ensure_stored(reg.objects, obj, blob)  # a concurrent gc may have hidden them
    for d, b in zip(digests, blobs):
        ensure_stored(reg.objects, d, b)
    return summary


def cheap_compare(
    ra: RunInfo, rb: RunInfo, sa: dict[str, Any], sb: dict[str, Any]
) -> dict[str, Any]:
    """What :meth:`Registry.compare_runs` returns, without the resampling tests: means, delta,
    wins/losses/ties and the most regressed queries are exact; ``ci_low``/``ci_high``/``p_value``
    are None (``pending`` is True) until the full comparison is stored."""
    from genreg.core.compare import pair_header

    qa, qb = sa.get("per_query_metrics", {}), sb.get("per_query_metrics", {})
    metrics: dict[str, Any] = {}
    for m in (m for m in ra.metrics if m in rb.metrics):
        a, b = qa.get(m, {}), qb.get(m, {})
        common = [q for q in a if q in b]
        n = len(common)
        s: dict[str, Any] = {"n_shared": n, "only_a": len(a) - n, "only_b": len(b) - n}
        if common:
            xa = [float(a[q]) for q in common]
            xb = [float(b[q]) for q in common]
            d = [y - x for x, y in zip(xa, xb)]
            mean_a, mean_b = sum(xa) / n, sum(xb) / n
            worst = heapq.nsmallest(10, zip(d, common))
            s.update(
                mean_a=mean_a,
                mean_b=mean_b,
                delta=mean_b - mean_a,
                ci_low=None,
                ci_high=None,
                p_value=None,
                wins=sum(1 for x in d if x > 1e-12),
                losses=sum(1 for x in d if x < -1e-12),
                ties=sum(1 for x in d if abs(x) <= 1e-12),
                most_regressed=[
                    {"query": q, "a": a[q], "b": b[q], "delta": x} for x, q in worst if x < -1e-12
                ],
            )
        metrics[m] = s
    return {
        "a": ra.id,
        "b": rb.id,
        "metrics": metrics,
        **pair_header(ra, rb),
        "pending": True,
    }


def compare_key(a: str, b: str, n_resamples: int) -> str:
    return f"{COMPARE_FORMAT}:{a}:{b}:{n_resamples}"


def store_compare(reg: Any, key: str, a: str, b: str, out: dict[str, Any]) -> None:
    """Store a comparison as a derived object (a read-only registry keeps it in memory only)."""
    from genreg.store.objects import ensure_stored

    try:
        blob = _gz(out)
        obj = reg.objects.put_bytes(blob)
        reg.derived.put(COMPARE_KIND, "ui", key, obj, {"a": a, "b": b})
        ensure_stored(reg.objects, obj, blob)
    except (GenregError, OSError) as exc:
        log.warning("cannot store the comparison %s vs %s: %s", a, b, exc)


def compare_main(argv: list[str] | None = None) -> None:
    """``python -c 'from genreg.service.run_queries import compare_main; compare_main()'
    HOME A B N``: compare runs A and B (N resamples) and store the result -- the web UI's
    background comparison, in its own process. Exit 1 with the error on stderr."""
    from genreg import Registry

    home, a, b, n = (sys.argv[1:] if argv is None else argv)[:4]
    reg = Registry(home)
    try:
        out = reg.compare_runs(a, b, n_resamples=int(n))
        store_compare(reg, compare_key(a, b, int(n)), a, b, out)
    except GenregError as exc:
        print(exc.message, file=sys.stderr)
        sys.exit(1)
    finally:
        reg.close()


class RunQueries:
    """Queries for browsing runs, over the registry facade (``reg``)."""

    # shared queries x metrics a page request compares itself (10,000 resamples x 3,000
    # values ~ 0.2 s); larger pairs are compared in the background. The environment variable
    # GENREG_UI_COMPARE_SYNC_LIMIT overrides it (0: every new pair in the background).
    sync_limit = 3_000
    n_resamples = 10_000

    def __init__(self, reg: Registry, *, cache_size: int = 8) -> None:
        self.reg = reg
        limit = os.environ.get("GENREG_UI_COMPARE_SYNC_LIMIT", "")  # 0: always in background
        if limit.strip().isdigit():
            self.sync_limit = int(limit)
        self._summaries = _LRU(cache_size)
        self._shards = _LRU(64)
        self._compares = _LRU(32)
        self._evalsets = _LRU(4)
        self._docs = _LRU(4)
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}
        self._failed: dict[str, str] = {}

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
        label: str | None = None,
        sort: str = "started_at",
        desc: bool = True,
        page: int = 1,
        per_page: int = 50,
    ) -> RunPage:
        """One page of runs. ``used`` is a ref resolved to the exact version it names (an
        unversioned ref such as ``corpus:docs`` matches every version); ``status`` is
        ``passed`` | ``failed`` | ``no-gates`` | a run status (``done``...); ``sort`` is a column
        of :data:`SORTS` or ``metric:NAME``; ``label`` is ``key=value`` of a tag or a
        parameter."""
        lab: tuple[str, str] | None = None
        if label:
            key, eq, value = label.partition("=")
            if not eq or not key.strip():
                from genreg.errors import ConfigError

                raise ConfigError(f"param/tag filter {label!r}: expected key=value")
            lab = (key.strip(), value.strip())
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
            label=lab,
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
    def summary(self, run: RunInfo) -> dict[str, Any]:
        """The UI index summary of ``run`` (see the module docstring): from memory, else the
        stored derived object, else built from the results object (and stored)."""
        if not run.results_object:
            return {"rows": [], "per_query_metrics": {}, "metrics": [], "cis": {}, "shards": 0}
        key = run.results_object
        hit = self._summaries.get(key)
        if hit is not None:
            return hit
        hit = self._load_summary(key)
        if hit is None:
            results = self.reg.run_results(run.id)
            try:
                hit = index_results(self.reg, key, results)
            except (GenregError, OSError) as exc:  # read-only registry: keep it in memory
                log.warning("cannot store the UI index of run %s: %s", run.id, exc)
                hit, shards = summarize(results)
                hit["_shards"] = shards
        self._summaries.put(key, hit)
        return hit

    def _load_summary(self, results_digest: str) -> dict[str, Any] | None:
        d = self.reg.derived.get(index_key(results_digest))
        if d is None:
            return None
        try:
            out = _ungz(self.reg.objects.get_bytes(d.object_digest))
        except (GenregError, OSError, ValueError) as exc:  # missing/corrupt: rebuild
            log.warning("UI index %s unreadable (%s): rebuilding", d.object_digest[:12], exc)
            return None
        return _expand(out) if out.get("format") == INDEX_FORMAT else None

    def query(self, run: RunInfo, qid: str) -> dict[str, Any]:
        """One query's full results entry (ranked documents, answer, usage, verdicts, ...):
        one shard read."""
        s = self.summary(run)
        n = int(s.get("shards") or 0)
        if not n:
            raise NotFound(f"query {qid!r} is not in this run")
        i = shard_of(qid, n)
        if "_shards" in s:
            shard = s["_shards"][i]
        else:
            digest = s["shard_objects"][i]
            shard = self._shards.get(digest)
            if shard is None:
                try:
                    shard = _ungz(self.reg.objects.get_bytes(digest))
                except (GenregError, OSError, ValueError) as exc:  # lost/corrupt: use the results
                    log.warning("UI index shard %s unreadable (%s)", digest[:12], exc)
                    res = self.reg.run_results(run.id)
                    shard = {
                        q["id"]: q for q in res.get("queries", []) if shard_of(q["id"], n) == i
                    }
                self._shards.put(digest, shard)
        q = shard.get(qid)
        if q is None:
            raise NotFound(f"query {qid!r} is not in this run")
        return unpack_entry(q)

    def compare(self, ra: RunInfo, rb: RunInfo) -> dict[str, Any]:
        """:meth:`Registry.compare_runs` of ``ra`` (base) and ``rb`` (head): from memory, the
        stored derived object, computed now (small pairs), or -- for large pairs not yet
        computed -- :func:`cheap_compare` with ``pending`` set while a separate process
        (:func:`compare_main`; numpy would hold this server's GIL) computes and stores the full
        comparison (``failed`` says why when it could not)."""
        key = compare_key(ra.id, rb.id, self.n_resamples)
        hit = self._compares.get(key) or self._load_compare(key)
        if hit is not None:
            self._compares.put(key, hit)
            return hit
        sa, sb = self.summary(ra), self.summary(rb)
        shared = len({r["id"] for r in sa["rows"]} & {r["id"] for r in sb["rows"]})
        work = shared * len([m for m in ra.metrics if m in rb.metrics])
        if work <= self.sync_limit:
            out = self.reg.compare_runs(ra.id, rb.id, n_resamples=self.n_resamples)
            self._compares.put(key, out)
            store_compare(self.reg, key, ra.id, rb.id, out)
            return out
        with self._lock:
            if key not in self._pending and key not in self._failed:
                self._pending[key] = self._spawn(ra.id, rb.id)
        failed = self._poll(key)
        out = cheap_compare(ra, rb, sa, sb)
        if failed:
            out["failed"] = failed
        return out

    def _load_compare(self, key: str) -> dict[str, Any] | None:
        d = self.reg.derived.get(key)
        if d is None:
            return None
        try:
            return _ungz(self.reg.objects.get_bytes(d.object_digest))
        except (GenregError, OSError, ValueError):
            return None

    def _spawn(self, a: str, b: str) -> tuple[subprocess.Popen[bytes], Any]:
        err = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by _poll once the process ends
        code = "from genreg.service.run_queries import compare_main; compare_main()"
        args = [str(self.reg.home), a, b, str(self.n_resamples)]
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        return proc, err

    def _poll(self, key: str) -> str | None:
        """Reap the pair's comparing process if it ended; the failure message, if any."""
        with self._lock:
            pending = self._pending.get(key)
            if pending is not None and pending[0].poll() is not None:
                proc, err = self._pending.pop(key)
                if proc.returncode != 0:
                    err.seek(0)
                    lines = err.read().decode("utf-8", "replace").strip().splitlines()
                    self._failed[key] = lines[-1] if lines else f"exit status {proc.returncode}"
                err.close()
            return self._failed.get(key)

    def compare_ready(self, ra: RunInfo, rb: RunInfo) -> bool:
        """Whether the pair's full comparison is stored (or failed: the page then says why)."""
        key = compare_key(ra.id, rb.id, self.n_resamples)
        if self._compares.get(key) is not None or self._poll(key):
            return True
        return self.reg.derived.get(key) is not None

    def wait_compare(self, ra: RunInfo, rb: RunInfo, timeout: float = 120.0) -> None:
        """Block until a background comparison of the pair has ended (tests, benchmarks)."""
        key = compare_key(ra.id, rb.id, self.n_resamples)
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            pending[0].wait(timeout)
        self._poll(key)

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
        """The first ``chars`` characters of each wanted document of the run's corpus, read by
        doc id from the snapshot (no scan); ``{}`` for runs without a registered corpus (e.g.
        scored run files). Ids the snapshot does not hold (e.g. chunk ids) map to ``""``."""
        c = next((i for i in run.inputs if i.role == "corpus"), None)
        if c is None or not doc_ids:
            return {}
        cache = self._docs.get(c.digest)
        if cache is None:
            cache = {}
            self._docs.put(c.digest, cache)
        missing = [d for d in dict.fromkeys(doc_ids) if d not in cache]
        if missing:
            found = self.reg.corpus_documents(c.ref, missing)
            for doc_id in missing:
                d = found.get(doc_id)
                if d is None:
                    cache[doc_id] = ""
                    continue
                text = " ".join(((f"{d.title} - " if d.title else "") + d.text).split())
                cache[doc_id] = text[:chars] + ("..." if len(text) > chars else "")
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


CI_RESAMPLES = 1_000
CI_SEED = 0


def metric_cis(
    per_query: dict[str, dict[str, float]],
    confidence: float = 0.95,
    *,
    n_resamples: int = CI_RESAMPLES,
    seed: int = CI_SEED,
) -> dict[str, dict[str, Any]]:
    """Mean, standard error and a confidence interval of each metric's mean over the queries:
    the percentile bootstrap (resample the queries with replacement ``n_resamples`` times,
    ``numpy.random.default_rng(seed)``; :func:`genreg.core.stats.paired_bootstrap` against a
    zero baseline), so the interval stays inside the metric's range and follows its skew.
    Deterministic for given values; stored in the run's UI index, so computed once per run."""
    from genreg.core.stats import paired_bootstrap

    out: dict[str, dict[str, Any]] = {}
    for m, vals in per_query.items():
        xs = [float(v) for v in vals.values()]
        n = len(xs)
        if not n or not all(math.isfinite(x) for x in xs):
            continue
        mean = sum(xs) / n
        var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
        boot = paired_bootstrap(
            [0.0] * n, xs, n_resamples=n_resamples, confidence=confidence, seed=seed
        )
        out[m] = {
            "mean": mean,
            "se": math.sqrt(var / n),
            "n": n,
            "ci_low": boot.ci_low,
            "ci_high": boot.ci_high,
            "confidence": confidence,
            "method": f"percentile bootstrap, {n_resamples} resamples, seed {seed}",
        }
    return out
