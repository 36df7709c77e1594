"""The web UI in a real headless browser (Playwright driving Debian's chromium) against a real
``genreg serve`` on a free loopback port: runs -> tick two -> compare -> a query's
comparison -> a run's query drill-down -> sign in -> promote. Screenshots of each page go to
``$GENREG_TEST_ARTIFACTS/ui`` (default: the test's tmp dir).

Without playwright or /usr/bin/chromium the tests skip locally and FAIL under CI (CI=true):
``.ci/run`` installs chromium itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from _apihelp import start_server, stop_server
from _evalhelp import BAD, GOOD, add_evalset, trec
from genreg import Registry

CHROMIUM = os.environ.get("GENREG_CHROMIUM", "/usr/bin/chromium")


def _browser_or_skip() -> Any:
    why = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "playwright is not installed (pip install -e '.[test]')"
    if not why and not Path(CHROMIUM).exists():
        why = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if why:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests must run in CI: {why}")
        pytest.skip(why)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    sync_playwright = _browser_or_skip()
    tmp = tmp_path_factory.mktemp("ui-browser")
    home = tmp / ".genreg"
    reg = Registry.init(home)
    add_evalset(reg)
    mk = {"metrics": ["ndcg@10", "mrr@10"], "name": "search", "gates": ["ndcg@10 >= 0.5"]}
    good = reg.eval_score(
        "evalset:gold#test", trec(tmp / "good.trec", GOOD), run_name="bm25", **mk
    ).run
    bad = reg.eval_score(
        "evalset:gold#test",
        trec(tmp / "bad.trec", BAD),
        run_name="dense-v2",
        tags={"team": "search"},
        **mk,
    ).run
    token = reg.create_token("alice", ["write", "evalsets:read"])[0]
    reg.close()
    shots = Path(os.environ.get("GENREG_TEST_ARTIFACTS") or tmp) / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    proc, url = start_server(home, env={"GENREG_AUTHOR": "tester"})
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        yield {
            "url": url,
            "good": good,
            "bad": bad,
            "token": token,
            "shots": shots,
            "browser": browser,
            "home": home,
        }
    finally:
        browser.close()
        pw.stop()
        stop_server(proc)


@pytest.fixture
def page(site: dict[str, Any]) -> Any:
    ctx = site["browser"].new_context(viewport={"width": 1360, "height": 900})
    p = ctx.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    ctx.close()
    assert errors == [], f"browser console errors (CSP violations show here): {errors}"


def shot(site: dict[str, Any], p: Any, name: str) -> None:
    p.screenshot(path=str(site["shots"] / f"{name}.png"), full_page=True)


def test_runs_select_two_compare_and_drill_down(site: dict[str, Any], page: Any) -> None:
    url, good, bad = site["url"], site["good"], site["bad"]
    page.goto(f"{url}/ui/login")
    page.fill("#token", site["token"])
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{url}/ui/runs")
    assert page.locator("h1").inner_text() == "Runs"
    btn = page.locator("#compare-btn")
    assert btn.is_disabled()  # the script enables it at exactly two ticks
    page.check(f'input[name="run"][value="{good.id}"]')
    assert btn.is_disabled()
    page.check(f'input[name="run"][value="{bad.id}"]')
    assert btn.is_enabled()
    shot(site, page, "01-runs")
    btn.click()
    page.wait_for_url(re.compile(r".*/ui/compare\?base=.*"))
    assert f"base={good.id}" in page.url and f"head={bad.id}" in page.url  # older = base
    assert page.locator("h1").inner_text() == "Compare runs"
    worst = page.locator("#most-regressed")
    assert "Most regressed on ndcg@10" in worst.inner_text()
    assert page.locator("svg.chart circle").count() >= 1
    shot(site, page, "02-compare")
    # The first per-query row is the biggest |delta|: open it.
    first = page.locator("#t-per_query tbody tr").first.locator("a").first
    qid = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(rf".*/ui/compare/queries/{qid}\?.*"))
    assert f"Query {qid}: base vs head" in page.locator("h1").inner_text()
    assert page.locator("#t-docs tbody tr").count() >= 1
    shot(site, page, "03-compare-query")
    # The head run's ranking for that query: judgments marked.
    page.click("text=head ranking")
    page.wait_for_url(re.compile(rf".*/ui/runs/{bad.id}/queries/{qid}$"))
    marks = page.locator("span.judg").all_inner_texts()
    assert marks and all(re.match(r"(relevant|non-relevant|unjudged)", m) for m in marks)
    shot(site, page, "04-query")


def test_sign_in_and_promote(site: dict[str, Any], page: Any) -> None:
    url, good = site["url"], site["good"]
    page.goto(f"{url}/ui/runs/{good.id}")
    assert "Sign in" in page.locator("header").inner_text()
    assert page.locator("form.promote").count() == 0  # anonymous: no write form
    page.click("header >> text=Sign in")
    page.fill("#token", site["token"])
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{url}/ui/runs/{good.id}")
    assert "alice" in page.locator("header").inner_text()
    shot(site, page, "05-run")
    page.select_option("form.promote select[name=ref]", "evalset:gold@v1")
    page.fill("form.promote input[name=alias]", "production")
    page.click("form.promote button[type=submit]")
    flash = page.locator("#flash")
    assert "Promoted evalset:gold@v1 to 'production'" in flash.inner_text()
    shot(site, page, "06-promoted")
    reg = Registry(site["home"])
    try:
        ev = reg.alias_history("evalset:gold", "production")
    finally:
        reg.close()
    assert [(e.to_version, e.run_id, e.actor) for e in ev] == [(1, good.id, "alice")]
    page.goto(f"{url}/ui/artifacts/evalset/gold")
    assert "production" in page.locator("#t-alias_journal").inner_text()
    shot(site, page, "07-artifact")
    page.click("header >> text=Sign out")
    page.wait_for_url(re.compile(r".*/ui/login\?why=signed-out"))
    page.goto(f"{url}/ui/runs/{good.id}")
    assert "anonymous" in page.locator("header").inner_text()


def test_compare_statistics_arrive_by_themselves(site: dict[str, Any], page: Any) -> None:
    """A pair compared in the background: the page shows the exact deltas at once, its script
    polls the status under the CSP and reloads when the CIs and p-values are stored."""
    good, bad = site["good"], site["bad"]
    env = {"GENREG_AUTHOR": "tester", "GENREG_UI_COMPARE_SYNC_LIMIT": "0"}
    proc, url = start_server(site["home"], env=env)
    try:
        resp = page.goto(f"{url}/ui/compare?base={bad.id}&head={good.id}")  # a new pair
        assert 'id="stats-pending"' in resp.text()
        page.wait_for_selector("#stats-pending", state="detached", timeout=90_000)
        ci = page.locator("#t-deltas tbody tr").first.locator("td.col-ci_low").inner_text()
        assert re.fullmatch(r"[+-]\d\.\d{4}", ci.strip()), ci
        shot(site, page, "08-compare-background")
    finally:
        stop_server(proc)
