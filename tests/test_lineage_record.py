"""The typed lineage record: stored JSON round-trips (runs stored by genreg 0.1 included),
the fingerprint is unchanged for them, compare separates environment from inputs, and the
environment capture counts only tracked changes as dirty."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from _evalhelp import BAD, GOOD, add_evalset, trec
from genreg.core.compare import environment_diff, environment_note, lineage_diff
from genreg.core.lineage import CodeState, InputPin, Lineage, ModelPin
from genreg.environment import git_state

STORED = json.loads((Path(__file__).parent / "data" / "stored_runs_v0_1.json").read_text())


@pytest.mark.parametrize("source", ["eval", "score"])
def test_stored_lineage_round_trips_and_keeps_its_fingerprint(source: str) -> None:
    stored = STORED[source]["lineage"]
    lin = Lineage.from_dict(stored)
    assert lin.to_dict() == stored
    assert lin.fingerprint == stored["fingerprint"] == STORED[source]["fingerprint"]
    assert Lineage.from_dict(lin.to_dict()) == lin
    assert lin.source == source


def test_typed_fields_of_a_stored_eval_run() -> None:
    lin = Lineage.from_dict(STORED["eval"]["lineage"])
    assert [i.role for i in lin.inputs] == ["corpus", "evalset", "prompt", "routing"]
    assert lin.input("evalset") == InputPin(
        "evalset", "evalset", "gold", 1, lin.inputs[1].digest, "test"
    )
    assert lin.embedding and lin.embedding.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert lin.k == (1, 5, 10) and lin.index_key and lin.code and lin.code.genreg == "0.1.0"
    assert lin.latency is None and lin.generation is None  # not recorded by 0.1
    assert lin["k"] == [1, 5, 10]  # read access by stored key


def test_fingerprint_covers_inputs_and_environment_not_times_host_or_latency_mode() -> None:
    lin = Lineage.from_dict(STORED["eval"]["lineage"])
    fp = lin.fingerprint
    assert lin.with_times("x", "y").fingerprint == fp
    assert replace(lin, host={"cpu": "other"}, latency="per-query").fingerprint == fp
    assert replace(lin, k=(1, 5)).fingerprint != fp
    assert replace(lin, embedding=ModelPin("m", "sha256:00")).fingerprint != fp
    assert replace(lin, code=CodeState("abc", False, None, "0.1.0")).fingerprint != fp
    assert replace(lin, packages={"torch": "2.12.0"}).fingerprint != fp
    # generation settings are fingerprinted when present, absent from older records
    gen = replace(lin, generation={"model": "gpt-4o-mini", "temperature": 0})
    assert gen.fingerprint != fp and gen.to_dict()["generation"]["temperature"] == 0
    assert "generation" not in lin.to_dict()
    # the cache mode is fingerprinted (a replay makes no call) but is not an input
    rw = replace(lin, generation={"model": "m", "context_k": 3, "cache": "rw"})
    replay = replace(lin, generation={"model": "m", "context_k": 3, "cache": "replay"})
    assert replay.fingerprint != rw.fingerprint
    assert replay.to_dict()["generation"]["cache"] == "replay"
    assert lineage_diff(rw, replay) == {}
    other = replace(lin, generation={"model": "m", "context_k": 2, "cache": "rw"})
    assert set(lineage_diff(rw, other)) == {"generation"}


def test_unknown_stored_keys_are_kept_verbatim() -> None:
    stored = {**STORED["score"]["lineage"], "future_field": {"a": 1}}
    lin = Lineage.from_dict(stored)
    assert lin.to_dict()["future_field"] == {"a": 1}


def test_environment_differences_are_not_inputs() -> None:
    a = Lineage.from_dict(STORED["eval"]["lineage"])
    b = replace(
        a,
        code=CodeState("1" * 40, False, None, "0.1.0"),
        packages={**(a.packages or {}), "torch": "2.12.0"},
    )
    assert lineage_diff(a, b) == {}
    env = environment_diff(a, b)
    assert set(env) == {"commit", "torch"}
    note = environment_note(env)
    assert note is not None and note.startswith("environment differs: commit ")
    assert "torch 2.13.0+cpu -> 2.12.0" in note
    c = replace(b, k=(1, 5))
    assert list(lineage_diff(a, c)) == ["k"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_untracked_files_do_not_make_the_tree_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("a")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-qm", "x")
    (repo / "scratch.log").write_text("untracked")
    (repo / "results").mkdir()
    (repo / "results" / "r.json").write_text("{}")
    state = git_state(repo)
    assert state["dirty"] is False and state["diff_digest"] is None
    (repo / "f.txt").write_text("b")
    assert git_state(repo)["dirty"] is True


def test_compare_reports_a_new_commit_as_environment_and_stays_attributable(
    registry, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("a")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-qm", "one")
    monkeypatch.chdir(repo)
    add_evalset(registry)
    a = registry.eval_score("evalset:gold#test", trec(tmp_path / "a.trec", GOOD))
    (repo / "f.txt").write_text("b")
    _git(repo, "commit", "-qam", "two")
    (repo / "untracked.txt").write_text("x")
    b = registry.eval_score("evalset:gold#test", trec(tmp_path / "b.trec", BAD))
    assert b.run.lineage.code is not None and b.run.lineage.code.dirty is False
    r = cli("runs", "compare", a.run.id, b.run.id, "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.output)
    assert list(c["differs"]) == ["run_file"] and c["attributable"] and c["warnings"] == []
    assert list(c["environment_differs"]) == ["commit"]
    assert c["environment_note"].startswith("environment differs: commit ")
    text = cli("runs", "compare", a.run.id, b.run.id)
    assert "environment differs: commit" in text.output
    assert "INPUTS CHANGED" not in text.output


def test_runs_stored_by_genreg_0_1_load_show_and_compare(registry, cli) -> None:
    """Rows written as genreg 0.1 wrote them (before migration 0003) still read."""
    from genreg.store.db import downgrade

    downgrade(registry.engine, "0002")
    registry.close()
    db = sqlite3.connect(registry.home / "registry.db")
    for src in ("eval", "score"):
        r = STORED[src]
        db.execute(
            "INSERT INTO run (id, name, source, status, passed, fingerprint, started_at,"
            " ended_at, author, config, lineage, metrics, report, results_object)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r["id"],
                r["name"],
                r["source"],
                r["status"],
                r["passed"],
                r["fingerprint"],
                r["started_at"],
                r["ended_at"],
                r["author"],
                json.dumps(r["config"]),
                json.dumps(r["lineage"]),
                json.dumps(r["metrics"]),
                json.dumps(r["report"]),
                None,
            ),
        )
        for i in r["inputs"]:
            db.execute(
                "INSERT INTO run_input (run_id, role, kind, name, version, digest, split)"
                " VALUES (?,?,?,?,?,?,?)",
                (r["id"], i["role"], i["kind"], i["name"], i["version"], i["digest"], i["split"]),
            )
    db.commit()
    db.close()
    from genreg import Registry

    with Registry(registry.home) as reg:  # migrates to head on open
        ev = reg.get_run(STORED["eval"]["id"])
        assert ev.lineage.to_dict() == STORED["eval"]["lineage"]
        assert ev.run_name is None and ev.tags == {} and ev.params == {}
        assert ev.lineage.fingerprint == ev.fingerprint
        tree = reg.lineage(ev.id)
        assert tree["retrieval"]["k"] == [1, 5, 10] and tree["latency"] is None
        c = reg.compare_runs(STORED["score"]["id"], ev.id)
        assert "corpus" in c["differs"] and not c["attributable"]
    r = cli("runs", "show", STORED["eval"]["id"])
    assert r.exit_code == 0, r.output
    assert "recall@5" in r.output and "fingerprint" in r.output
    r = cli("runs", "list", "--json")
    assert {x["id"] for x in json.loads(r.output)} == {STORED["eval"]["id"], STORED["score"]["id"]}


def test_run_summary_lines_show_settings_readably_not_as_dict_reprs() -> None:
    from genreg.report import inputs_lines

    lin = Lineage.from_dict(STORED["eval"]["lineage"])
    lines = inputs_lines(lin)
    chunking = next(x for x in lines if x.startswith("chunking: "))
    assert chunking == "chunking: " + ", ".join(f"{k}={v}" for k, v in lin.chunking.items())
    assert not any("{'" in x or "': " in x or "[" in x for x in lines), lines
