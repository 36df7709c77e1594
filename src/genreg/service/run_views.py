"""Reading recorded runs: show, list, results, compare, lineage (both ways), baselines and
gated promotion. The read half of :class:`genreg.service.runs.Evals`."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

from genreg.core.refs import parse_ref
from genreg.errors import ConfigError, GateFailed, GenregError, NotFound

if TYPE_CHECKING:
    from genreg.core.refs import Ref
    from genreg.core.runinfo import RunInfo
    from genreg.core.types import AliasEvent, VersionInfo
    from genreg.service.artifacts import Artifacts
    from genreg.service.store import Store
    from genreg.store.objects import ObjectStore
    from genreg.store.runs import RunRepo


class RunViews:
    """Recorded runs, over the store's run rows and results objects; versions and aliases
    through :class:`~genreg.service.artifacts.Artifacts`."""

    def __init__(self, store: Store, artifacts: Artifacts) -> None:
        self._store = store
        self._artifacts = artifacts

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    @property
    def runs_repo(self) -> RunRepo:
        return self._store.metadata.runs

    def resolve(self, ref: Any, kind: str | None = None) -> VersionInfo:
        return self._artifacts.resolve(ref, kind)

    def alias_history(self, artifact: Any, alias: str | None = None) -> list[AliasEvent]:
        return self._artifacts.alias_history(artifact, alias)

    def set_alias(
        self,
        ref: str | Ref,
        alias: str,
        *,
        reason: str = "",
        actor: str | None = None,
        run_id: str | None = None,
    ) -> AliasEvent:
        return self._artifacts.set_alias(ref, alias, reason=reason, actor=actor, run_id=run_id)

    def get_run(self, run_id: str) -> RunInfo:
        """A run by id or unique prefix."""
        return self.runs_repo.get(run_id)

    def list_runs(
        self,
        *,
        used: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> list[RunInfo]:
        """Runs newest first; ``used`` is a ref resolved to the exact version it names;
        ``tags``/``params`` keep runs carrying every given ``key=value``."""
        u = None
        if used:
            v = self.resolve(used)
            u = (v.kind, v.name, v.version)
        return self.runs_repo.list(name=name, used=u, limit=limit, tags=tags, params=params)

    def run_results(self, run_id: str) -> dict[str, Any]:
        """The per-query results object of a run (ranked docs, metrics, latency, tokens)."""
        run = self.get_run(run_id)
        if not run.results_object:
            return {}
        return json.loads(gzip.decompress(self.objects.get_bytes(run.results_object)))

    def verify_run_inputs(self, run_id: str) -> list[dict[str, Any]]:
        """Re-resolve every recorded input by version and check its digest is unchanged."""
        out = []
        for i in self.get_run(run_id).inputs:
            try:
                cur = self.resolve(f"{i.kind}:{i.name}@v{i.version}").digest
            except GenregError as exc:
                cur = None
                err = exc.message
            else:
                err = "" if cur == i.digest else "digest changed"
            out.append(
                {
                    "ref": i.ref,
                    "role": i.role,
                    "recorded": i.digest,
                    "current": cur,
                    "ok": cur == i.digest,
                    "error": err,
                }
            )
        return out

    def lineage(self, run_id: str) -> dict[str, Any]:
        """The tree of exact inputs and environment of a run."""
        run = self.get_run(run_id)
        lin = run.lineage
        return {
            "run": run.id,
            "name": run.name,
            "run_name": run.run_name,
            "source": run.source,
            "fingerprint": run.fingerprint,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "author": run.author,
            "inputs": [
                {**i.to_dict(), "resolvable": v["ok"]}
                for i, v in zip(run.inputs, self.verify_run_inputs(run.id))
            ],
            "retrieval": {
                "embedding": lin.embedding.to_dict() if lin.embedding else None,
                "chunking": lin.get("chunking"),
                "index": lin.get("index"),
                "k": lin.get("k"),
                "index_key": lin.index_key,
            },
            "generation": lin.get("generation"),
            "generation_stats": lin.get("generation_stats"),
            "metrics": lin.get("metrics"),
            "run_file": lin.run_file,
            "latency": lin.latency,
            "code": lin.code.to_dict() if lin.code else None,
            "packages": lin.get("packages"),
            "host": lin.get("host"),
        }

    def used_by(self, ref: str) -> list[RunInfo]:
        """Reverse lineage: every run that used the exact version ``ref`` names."""
        return self.list_runs(used=ref)

    def resolve_baseline(self, spec: str) -> RunInfo:
        """A run id (or prefix), or a ref: for an alias, the run recorded by the latest journal
        entry of that alias that names a run (e.g. the promotion); otherwise the latest run that
        used the exact version the ref names."""
        if ":" not in spec:
            try:
                return self.get_run(spec)
            except NotFound:
                raise ConfigError(f"baseline {spec!r}: no such run") from None
        ref = parse_ref(spec)
        if ref.alias:
            events = [e for e in self.alias_history(ref.artifact, ref.alias) if e.run_id]
            if not events:
                raise ConfigError(
                    f"baseline {spec}: no alias move of {ref.alias!r} recorded a run "
                    "(promote with 'genreg promote REF --to ALIAS --run RUN')"
                )
            return self.get_run(events[-1].run_id)  # type: ignore[arg-type]  # filtered on run_id above
        v = self.resolve(ref)
        runs = self.runs_repo.list(used=(v.kind, v.name, v.version), limit=1)
        if not runs:
            raise ConfigError(f"baseline {spec}: no run used {v.ref}")
        return runs[0]

    def promote(
        self, ref: str, alias: str, run_id: str, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        """Move ``alias`` to the version ``ref`` names, only if run ``run_id`` passed its gates
        (a run without gates does not count as passed) and used exactly that version. The
        journal entry records the run id."""
        v = self.resolve(ref)
        run = self.get_run(run_id)
        used = [i for i in run.inputs if i.kind == v.kind and i.name == v.name]
        if not used or all(i.version != v.version or i.digest != v.digest for i in used):
            got = ", ".join(i.ref for i in used) or f"no {v.kind}:{v.name}"
            raise GateFailed(f"cannot promote {v.ref}: run {run.id} used {got}, not {v.ref}")
        if run.passed is None:
            raise GateFailed(f"cannot promote {v.ref}: run {run.id} ran no gates")
        if not run.passed:
            failed = [g["gate"] for g in run.report.get("gates", []) if not g.get("passed")]
            raise GateFailed(
                f"cannot promote {v.ref}: run {run.id} failed its gate(s): {'; '.join(failed)}"
            )
        return self.set_alias(
            v.ref, alias, reason=reason or f"promoted by run {run.id}", actor=actor, run_id=run.id
        )

    def compare_runs(self, a: str, b: str, *, n_resamples: int = 10000) -> dict[str, Any]:
        """Metric deltas (B - A) with paired tests, per-query wins/losses, the inputs that differ
        (loud warnings when the delta is not attributable) and, apart, the environment that
        differs (commit, genreg and package versions: shown, never blocking attribution)."""
        from genreg.core.compare import ann_recall_diff, compare_metric, pair_header

        ra, rb = self.get_run(a), self.get_run(b)
        res_a, res_b = self.run_results(ra.id), self.run_results(rb.id)
        qa = res_a.get("per_query_metrics", {})
        qb = res_b.get("per_query_metrics", {})
        common = [m for m in ra.metrics if m in rb.metrics]
        metrics = {
            m: compare_metric(qa.get(m, {}), qb.get(m, {}), n_resamples=n_resamples) for m in common
        }
        return {
            "a": ra.id,
            "b": rb.id,
            "a_name": ra.name,
            "b_name": rb.name,
            "a_run_name": ra.run_name,
            "b_run_name": rb.run_name,
            "metrics": metrics,
            **pair_header(ra, rb),
            "ann_recall": ann_recall_diff(ra.report, rb.report),
            "answers": _changed_answers(res_a, res_b, qa, qb),
        }


def _changed_answers(
    res_a: dict[str, Any],
    res_b: dict[str, Any],
    qa: dict[str, Any],
    qb: dict[str, Any],
    n: int = 5,
) -> dict[str, Any] | None:
    """The two answers side by side for the ``n`` queries whose answer metric (token_f1, else
    the first answer metric both runs have) changed most; None when either has no answers."""
    from genreg.core.answers import ANSWER_METRICS

    metric = next((m for m in ("token_f1", *ANSWER_METRICS) if m in qa and m in qb), None)
    if metric is None:
        return None
    a_q = {q["id"]: q for q in res_a.get("queries", [])}
    b_q = {q["id"]: q for q in res_b.get("queries", [])}
    shared = sorted(set(qa[metric]) & set(qb[metric]))
    ranked = sorted(shared, key=lambda q: (-abs(qb[metric][q] - qa[metric][q]), q))[:n]
    return {
        "metric": metric,
        "queries": [
            {
                "query": q,
                "text": (b_q.get(q) or a_q.get(q) or {}).get("query"),
                "a": qa[metric][q],
                "b": qb[metric][q],
                "delta": qb[metric][q] - qa[metric][q],
                "answer_a": (a_q.get(q) or {}).get("answer"),
                "answer_b": (b_q.get(q) or {}).get("answer"),
            }
            for q in ranked
        ],
    }
