"""The web UI's pages through TestClient over a real registry: values, links, scopes, CSRF."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from _evalhelp import BAD, GOOD, add_evalset, trec
from genreg.api.app import create_app
from genreg.api.auth import ApiConfig


@pytest.fixture
def runs(registry, tmp_path: Path) -> dict[str, Any]:
    add_evalset(registry)
    good = registry.eval_score(
        "evalset:gold#test",
        trec(tmp_path / "good.trec", GOOD),
        metrics=["ndcg@10", "mrr@10"],
        name="search",
        gates=["ndcg@10 >= 0.9"],
    )
    bad = registry.eval_score(
        "evalset:gold#test",
        trec(tmp_path / "bad.trec", BAD),
        metrics=["ndcg@10", "mrr@10"],
        name="search",
        gates=["ndcg@10 >= 0.9"],
    )
    other = registry.eval_score(
        "evalset:gold", trec(tmp_path / "o.trec", GOOD), metrics=["ndcg@10"], name="other"
    )
    tokens = {
        "read": registry.create_token("reader", ["read"])[0],
        "grader": registry.create_token("grader", ["read", "evalsets:read"])[0],
        "writer": registry.create_token("writer", ["write", "evalsets:read"])[0],
    }
    return {"good": good.run, "bad": bad.run, "other": other.run, "tokens": tokens}


def client(registry, **cfg: Any) -> TestClient:
    return TestClient(create_app(registry=registry, config=ApiConfig(**cfg)))


def signed_in(registry, token: str, **cfg: Any) -> TestClient:
    c = client(registry, **cfg)
    r = c.post("/ui/login", data={"token": token, "next": "/ui/runs"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/runs"
    return c


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def test_runs_page_lists_runs_with_metrics_links_and_filters(registry, runs) -> None:
    c = client(registry)
    r = c.get("/ui/runs")
    assert r.status_code == 200
    html = r.text
    for k in ("good", "bad", "other"):
        assert f'href="/ui/runs/{runs[k].id}"' in html
    assert f"{runs['good'].metrics['ndcg@10']:.4f}" in html
    assert "3 runs" in html and "failed" in html and "passed" in html
    only = c.get("/ui/runs?name=other").text
    assert runs["other"].id in only and runs["good"].id not in only
    failed = c.get("/ui/runs?status=failed").text
    assert runs["bad"].id in failed and runs["good"].id not in failed
    assert runs["other"].id in c.get("/ui/runs?status=no-gates").text
    used = c.get("/ui/runs", params={"used": "evalset:gold@v1#test"}).text
    assert runs["good"].id in used
    bad_ref = c.get("/ui/runs", params={"used": "corpus:nope@v9"})
    assert bad_ref.status_code == 400 and "nope" in bad_ref.text
    # Sorting by a metric: the worse run first when ascending.
    asc = c.get("/ui/runs?sort=metric:ndcg@10&order=asc&name=search").text
    assert asc.index(runs["bad"].id) < asc.index(runs["good"].id)
    desc = c.get("/ui/runs?sort=metric:ndcg@10&order=desc&name=search").text
    assert desc.index(runs["good"].id) < desc.index(runs["bad"].id)


def test_runs_page_paginates(registry, runs, tmp_path: Path) -> None:
    for i in range(52):
        registry.eval_score(
            "evalset:gold#test",
            trec(tmp_path / f"r{i}.trec", GOOD),
            metrics=["mrr@10"],
            name="bulk",
        )
    c = client(registry)
    p1 = c.get("/ui/runs?name=bulk").text
    assert "page 1 of 2" in p1 and "52 runs" in p1
    p2 = c.get("/ui/runs?name=bulk&page=2").text
    assert "page 2 of 2" in p2
    ids1 = set(re.findall(r'value="([0-9a-f]{16})"', p1))
    ids2 = set(re.findall(r'value="([0-9a-f]{16})"', p2))
    assert len(ids1) == 50 and len(ids2) == 2 and not ids1 & ids2


def test_tables_download_as_csv_and_json(registry, runs) -> None:
    c = client(registry)
    r = c.get("/ui/runs?format=csv&table=runs")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["id"] for x in rows} == {runs[k].id for k in ("good", "bad", "other")}
    j = c.get(f"/ui/runs/{runs['good'].id}?table=metrics&format=json").json()
    assert j["table"] == "metrics"
    assert {x["metric"]: x["value"] for x in j["rows"]} == runs["good"].metrics
    q = c.get(f"/ui/runs/{runs['bad'].id}?table=queries&format=json").json()
    assert len(q["rows"]) == 3  # every query, not one page
    assert all("query" not in x or x["query"] is None for x in q["rows"])  # hidden anonymously
    assert c.get("/ui/runs?format=csv&table=nope").status_code == 404


def test_run_page_metrics_ci_gates_lineage(registry, runs) -> None:
    bad = runs["bad"]
    html = client(registry).get(f"/ui/runs/{bad.id}").text
    nd = bad.metrics["ndcg@10"]
    assert f"{nd:.4f}" in html
    assert "95% CI" in html
    # The failed gate is written as the comparison that holds.
    assert f"{nd:.4f} &lt; 0.90" in html and "FAIL" in html
    assert 'href="/ui/artifacts/evalset/gold/v/1"' in html  # lineage input -> version page
    good = client(registry).get(f"/ui/runs/{runs['good'].id}").text
    assert f"{runs['good'].metrics['ndcg@10']:.4f} &gt;= 0.90" in good


def test_eval_set_content_needs_the_scope(registry, runs) -> None:
    bad = runs["bad"]
    anon = client(registry).get(f"/ui/runs/{bad.id}").text
    assert "how do refunds work" not in anon
    assert "evalsets:read" in anon and "Hidden" in anon
    reader = signed_in(registry, runs["tokens"]["read"]).get(f"/ui/runs/{bad.id}").text
    assert "how do refunds work" not in reader and "Your token (reader)" in reader
    grader = signed_in(registry, runs["tokens"]["grader"]).get(f"/ui/runs/{bad.id}").text
    assert "how do refunds work" in grader and "Hidden" not in grader
    # The drill-down hides judgments the same way; the eval set's own page hides its rows.
    q = client(registry).get(f"/ui/runs/{bad.id}/queries/q3").text
    assert "non-relevant" not in q and "d9" in q
    v = client(registry).get("/ui/artifacts/evalset/gold/v/1").text
    assert "reset my password" not in v and "evalsets:read" in v
    v2 = signed_in(registry, runs["tokens"]["grader"]).get("/ui/artifacts/evalset/gold/v/1").text
    assert "reset my password" in v2


def test_query_drill_down_marks_judgments(registry, runs) -> None:
    c = signed_in(registry, runs["tokens"]["grader"])
    html = c.get(f"/ui/runs/{runs['bad'].id}/queries/q3").text
    assert "error 503 on upload" in html
    # BAD ranks d9 (judged 0) then d6 (unjudged); the relevant d4 was not retrieved.
    rows = re.findall(r'<td class="doc">([^<]+)</td>\s*<td><span class="judg ([a-z-]+)"', html)
    assert rows == [("d9", "non-relevant"), ("d6", "unjudged")]
    assert "Relevant but not retrieved at all" in html and "<code>d4</code>" in html
    q1 = c.get(f"/ui/runs/{runs['bad'].id}/queries/q1").text
    assert re.search(r'class="judg relevant">relevant \(2\)', q1)  # d1 graded 2
    assert c.get(f"/ui/runs/{runs['bad'].id}/queries/nope").status_code == 404


def test_per_query_table_sorts_and_searches(registry, runs) -> None:
    c = signed_in(registry, runs["tokens"]["grader"])
    url = f"/ui/runs/{runs['bad'].id}"
    html = c.get(url, params={"qsort": "ndcg@10", "qorder": "asc"}).text
    order = re.findall(r'/queries/(q\d)"', html)
    vals = {
        q: v
        for q, v in registry.run_results(runs["bad"].id)["per_query_metrics"]["ndcg@10"].items()
    }
    assert order == sorted(vals, key=lambda q: (vals[q], q))
    found = c.get(url, params={"q": "password"}).text
    assert re.findall(r'/queries/(q\d)"', found) == ["q2"]


def test_compare_page(registry, runs) -> None:
    good, bad = runs["good"], runs["bad"]
    c = signed_in(registry, runs["tokens"]["grader"])
    # Ticking two runs on the runs page submits ?run=A&run=B: the older becomes the base.
    r = c.get(f"/ui/compare?run={bad.id}&run={good.id}", follow_redirects=False)
    assert (
        r.status_code == 303
        and r.headers["location"] == f"/ui/compare?base={good.id}&head={bad.id}"
    )
    html = c.get(f"/ui/compare?base={good.id}&head={bad.id}").text
    cmp = registry.compare_runs(good.id, bad.id)
    s = cmp["metrics"]["ndcg@10"]
    assert f"{s['delta']:+.4f}" in html and f"{s['p_value']:.4f}" in html
    assert f"{s['ci_low']:+.4f}" in html
    assert f"{s['losses']} worse" in html
    assert "Most regressed on ndcg@10" in html
    # Per-query rows sorted by |delta|, biggest first, linking to the per-query comparison.
    qs = re.findall(r"/ui/compare/queries/(q\d)\?", html)
    pa = registry.run_results(good.id)["per_query_metrics"]["ndcg@10"]
    pb = registry.run_results(bad.id)["per_query_metrics"]["ndcg@10"]
    expect = sorted(pa, key=lambda q: (-abs(pb[q] - pa[q]), pb[q] - pa[q], q))
    table_part = html[html.index('id="t-per_query"') :]
    assert re.findall(r"/ui/compare/queries/(q\d)\?", table_part) == expect
    assert "<svg" in html and qs
    # Runs over different eval-set splits: the CLI's attribution warning.
    w = c.get(f"/ui/compare?base={runs['other'].id}&head={bad.id}").text
    assert "EVAL SETS DIFFER" in w


def test_compare_only_changed_and_docs_that_moved(registry, runs, tmp_path: Path) -> None:
    good = runs["good"]
    tweak = {**GOOD, "q1": ["d2", "d1", "d7"]}  # only q1 changes
    head = registry.eval_score(
        "evalset:gold#test",
        trec(tmp_path / "t.trec", tweak),
        metrics=["ndcg@10", "mrr@10"],
        name="search",
    ).run
    c = signed_in(registry, runs["tokens"]["grader"])
    url = f"/ui/compare?base={good.id}&head={head.id}&metric=ndcg@10"
    every = c.get(url).text[1:]
    only = c.get(url + "&changed=1").text
    part = only[only.index('id="t-per_query"') :]
    assert re.findall(r"/ui/compare/queries/(q\d)\?", part) == ["q1"]
    assert (
        len(re.findall(r"/ui/compare/queries/(q\d)\?", every[every.index('id="t-per_query"') :]))
        == 3
    )
    moved = (
        signed_in(registry, runs["tokens"]["grader"])
        .get(f"/ui/compare/queries/q1?base={good.id}&head={runs['bad'].id}")
        .text
    )
    # GOOD q1 top: d1 d2 d7; BAD q1: d7 d2 d1 -> same set, ranks moved.
    assert "how do refunds work" in moved
    j = c.get(
        f"/ui/compare/queries/q2?base={good.id}&head={runs['bad'].id}&table=docs&format=json"
    ).json()
    change = {r["doc"]: r["change"] for r in j["rows"]}
    assert change == {"d6": "entered", "d8": "up", "d3": "down"}


def test_promote_needs_write_scope_and_csrf(registry, runs) -> None:
    good, bad = runs["good"], runs["bad"]
    w = signed_in(registry, runs["tokens"]["writer"])
    page = w.get(f"/ui/runs/{good.id}").text
    token = csrf(page)
    # No CSRF token / a wrong one: refused, alias unchanged.
    for data in (
        {"ref": "evalset:gold@v1", "alias": "production"},
        {"ref": "evalset:gold@v1", "alias": "production", "csrf": "0" * 64},
    ):
        r = w.post(f"/ui/runs/{good.id}/promote", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert registry.alias_history("evalset:gold", "production") == []
    # A read-only token with a valid CSRF token: refused for lack of the write scope.
    g = signed_in(registry, runs["tokens"]["grader"])
    gtok = csrf(g.get(f"/ui/runs/{good.id}").text)
    r = g.post(
        f"/ui/runs/{good.id}/promote",
        data={"ref": "evalset:gold@v1", "alias": "production", "csrf": gtok},
    )
    assert r.status_code == 403 and "&#39;write&#39; scope" in r.text
    # A failed run cannot promote (the CLI's rule), even with write + CSRF.
    btok = csrf(w.get(f"/ui/runs/{bad.id}").text)
    r = w.post(
        f"/ui/runs/{bad.id}/promote",
        data={"ref": "evalset:gold@v1", "alias": "production", "csrf": btok},
    )
    assert r.status_code == 409 and "failed its gate" in r.text
    assert registry.alias_history("evalset:gold", "production") == []
    r = w.post(
        f"/ui/runs/{good.id}/promote",
        data={"ref": "evalset:gold@v1", "alias": "production", "csrf": token},
    )
    assert r.status_code == 200 and "Promoted evalset:gold@v1 to &#39;production&#39;" in r.text
    ev = registry.alias_history("evalset:gold", "production")
    assert len(ev) == 1 and ev[0].run_id == good.id and ev[0].actor == "writer"


def test_sign_in_cookie_and_sign_out(registry, runs) -> None:
    c = client(registry)
    bad = c.post("/ui/login", data={"token": "grg_nope_nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "Not signed in" in bad.text
    r = c.post(
        "/ui/login",
        data={"token": runs["tokens"]["grader"], "next": "//evil.example"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/ui/runs"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/ui" in cookie
    page = c.get("/ui/runs").text
    assert "grader" in page
    out = c.post("/ui/logout", data={"csrf": csrf(page)}, follow_redirects=False)
    assert out.status_code == 303 and 'genreg_ui_token=""' in out.headers["set-cookie"]


def test_require_token_shows_nothing_anonymously(registry, runs) -> None:
    c = client(registry, require_token=True)
    for url in (
        "/ui/runs",
        f"/ui/runs/{runs['good'].id}",
        "/ui/artifacts",
        "/ui/trend",
        f"/ui/compare?base={runs['good'].id}&head={runs['bad'].id}",
    ):
        r = c.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
        assert runs["good"].id not in r.text
    s = signed_in(registry, runs["tokens"]["read"], require_token=True)
    assert runs["good"].id in s.get("/ui/runs").text


def test_security_headers_and_no_inline_script(registry, runs) -> None:
    c = client(registry)
    r = c.get(f"/ui/runs/{runs['good'].id}")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert re.findall(r"<script(?![^>]*\bsrc=)", r.text) == []
    assert " style=" not in r.text and "<style" not in r.text
    assert "https://" not in r.text  # nothing from a CDN
    js = c.get("/ui/static/ui.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert c.get("/ui/static/../app.py").status_code == 404


def test_artifact_pages(registry, runs, write) -> None:
    from _apihelp import chat

    registry.register_content("prompt", "qa", chat(0))
    registry.register_content("prompt", "qa", {**chat(1), "model": {"model": "gpt-4o"}})
    registry.set_alias("prompt:qa@v2", "staging")
    c = client(registry)
    lst = c.get("/ui/artifacts?kind=prompt").text
    assert 'href="/ui/artifacts/prompt/qa"' in lst and "staging→v2" in lst
    v = c.get("/ui/artifacts/prompt/qa/v/1").text
    assert "Answer from the context: {{ context }}" in v.replace("&#34;", '"')
    d = c.get("/ui/artifacts/prompt/qa/diff?a=1&b=2").text
    assert 'class="add"' in d and "gpt-4o" in d
    j = c.get("/ui/artifacts/prompt/qa").text
    assert "staging" in j and "set" in j
    used = c.get("/ui/artifacts/evalset/gold/v/1").text
    assert f'href="/ui/runs/{runs["good"].id}"' in used


def test_trend_page(registry, runs) -> None:
    html = client(registry).get("/ui/trend?name=search&metric=ndcg@10").text
    assert "<svg" in html and "<polyline" in html
    for k in ("good", "bad"):
        assert f"{runs[k].metrics['ndcg@10']:.4f}" in html
    j = client(registry).get("/ui/trend?name=search&metric=ndcg@10&format=json").json()
    assert [r["run"] for r in j["rows"]] == [runs["bad"].id, runs["good"].id]  # newest first


def test_a_ui_page_imports_no_torch_or_faiss(genreg_home, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from genreg import Registry\n"
        "from genreg.api.app import create_app\n"
        "from fastapi.testclient import TestClient\n"
        "sys.path.insert(0, 'tests')\n"
        f"reg = Registry.init({str(genreg_home)!r})\n"
        "reg.register_content('evalset', 'gold', [{'id': 'q1', 'query': 'x', 'relevant': ['d1']}])\n"
        f"open({str(tmp_path / 'r.trec')!r}, 'w').write('q1 Q0 d1 1 1.0 t\\n')\n"
        f"run = reg.eval_score('evalset:gold', {str(tmp_path / 'r.trec')!r}, metrics=['mrr@10']).run\n"
        "for m in [m for m in sys.modules if m.split('.')[0] in ('torch', 'faiss', 'sentence_transformers')]:\n"
        "    raise SystemExit('imported before the test: ' + m)\n"
        "c = TestClient(create_app())\n"
        "for u in ('/ui/runs', f'/ui/runs/{run.id}', f'/ui/runs/{run.id}/queries/q1', "
        "f'/ui/compare?base={run.id}&head={run.id}', '/ui/artifacts', '/ui/trend'):\n"
        "    assert c.get(u).status_code == 200, u\n"
        "heavy = [m for m in ('torch', 'faiss', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_compare_without_runs_offers_a_picker(registry, runs) -> None:
    c = client(registry)
    html = c.get("/ui/compare").text
    assert f'<option value="{runs["good"].id}"' in html and 'name="base"' in html
    one = c.get(f"/ui/compare?run={runs['good'].id}")
    assert one.status_code == 400 and "Pick exactly two runs" in one.text


def test_trend_says_where_an_input_changed(registry, runs) -> None:
    registry.register_content(
        "evalset", "gold", [{"id": "q1", "query": "new", "relevant": ["d1"], "split": "test"}]
    )
    from _evalhelp import trec as _trec

    p = _trec(Path("later.trec"), {"q1": ["d1"]})
    later = registry.eval_score("evalset:gold#test", p, metrics=["ndcg@10"], name="search").run
    html = client(registry).get("/ui/trend?name=search&metric=ndcg@10").text
    assert "Where an input changed" in html
    assert "evalset:gold@v1#test" in html and "evalset:gold@v2#test" in html
    assert f'href="/ui/runs/{later.id}"' in html


def test_run_names_tags_and_params_show_and_filter(registry, runs, tmp_path: Path) -> None:
    import dataclasses

    named = registry.eval_score(
        "evalset:gold#test",
        trec(tmp_path / "n.trec", GOOD),
        metrics=["ndcg@10"],
        name="search",
        run_name="chunk-400",
        tags={"team": "search"},
    ).run
    p = dataclasses.replace(runs["bad"], id="feedbeef00000001", params={"chunking": "none"})
    registry.runs_repo.create(p)
    c = client(registry)
    page = c.get("/ui/runs").text
    assert "run name" in page and "chunk-400" in page
    assert "#team=search" in page and "chunking=none" in page
    only = c.get("/ui/runs", params={"label": "team=search"}).text
    assert named.id in only and runs["good"].id not in only and p.id not in only
    by_param = c.get("/ui/runs", params={"label": "chunking=none"}).text
    assert p.id in by_param and named.id not in by_param
    bad = c.get("/ui/runs", params={"label": "nokey"})
    assert bad.status_code == 400 and "expected key=value" in bad.text
    run = c.get(f"/ui/runs/{named.id}").text
    assert "search · chunk-400" in run and 'id="labels"' in run
    assert 'href="/ui/runs?label=team%3Dsearch"' in run


def test_head_works_on_ui_pages(registry, runs) -> None:
    c = client(registry)
    good = runs["good"].id
    for path in (
        "/ui/runs",
        f"/ui/runs/{good}",
        f"/ui/runs/{good}/queries/q1",
        f"/ui/compare?base={good}&head={runs['bad'].id}",
        "/ui/trend",
        "/ui/artifacts",
        "/ui/login",
        "/ui/static/ui.css",
        "/ui/runs/nope",
    ):
        g, h = c.get(path), c.head(path)
        assert h.status_code == g.status_code != 405, path
        assert h.content == b"" and h.headers["content-type"] == g.headers["content-type"], path
