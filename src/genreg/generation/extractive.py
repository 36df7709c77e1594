"""The extractive baseline model: answers with the context sentence that best matches the
question. A real, simple, deterministic baseline (no weights, no randomness), served over
the OpenAI protocol by ``genreg llm serve`` under the model name :data:`MODEL_NAME`.

How it reads a chat request (any prompt that puts the retrieved context and the question in
the messages works; the shipped ``prompt:rag-answer`` does):

1. **Question**: in the last ``user`` message, the text after the last line starting with
   ``Question:`` (case-insensitive); without such a line, that message's last non-empty line.
2. **Context**: the text after ``Context:`` (up to the question line) in the message holding
   it; without a ``Context:`` label, every ``user``/``assistant`` message except the question.
   System messages are instructions, never context.
3. **Sentences**: context lines, with doc-id markers such as ``[billing/refunds.md]`` and
   bullet marks removed and Markdown heading lines skipped, split after ``.``, ``!`` or ``?`` followed by space.
4. **Score** (token overlap, IDF-weighted): terms are lowercase ``\\w+`` tokens minus a small
   stop-word list, with a crude suffix strip (``ing``, ``ed``, ``es``, ``s``; :func:`stem`); a sentence scores ``sum(idf(t))`` over the distinct question terms it
   contains, ``idf(t) = ln(1 + N / df(t))`` over the N candidate sentences. The best sentence
   wins (ties: the earlier one); ``sentences`` (default 1) best sentences are joined in
   context order. No shared term: the answer is :data:`NO_ANSWER`.

``temperature``/``top_p``/``seed`` are accepted and ignored (the model is deterministic).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

MODEL_NAME = "genreg-extractive-baseline"
NO_ANSWER = "I don't know."
_TERM = re.compile(r"\w+", re.UNICODE)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")
_MARKER = re.compile(r"\[[^\[\]\s]+\]")
_LEAD = re.compile(r"^\s*(?:#+|[-*+]|\d+[.)])\s+")
_QUESTION = re.compile(r"^\s*question\s*:\s*", re.IGNORECASE)
_CONTEXT = re.compile(r"^\s*context\s*:\s*", re.IGNORECASE)
STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being
    do does did doing have has had having i me my we our you your he she it its they them their
    this that these those what which who whom whose when where why how can could should would
    will shall may might must not no so than too very just about into over under again there
    here am s t get got""".split()  # noqa: SIM905 - a word list reads better as text
)


def stem(t: str) -> str:
    """Crude suffix stripping so "refunds"/"refunded"/"refunding" meet "refund"."""
    for suf in ("ing", "ed", "es", "s"):
        if len(t) > len(suf) + 2 and t.endswith(suf):
            return t[: -len(suf)]
    return t


def terms(text: str) -> list[str]:
    return [stem(t) for t in _TERM.findall(text.lower()) if t not in STOPWORDS]


def split_question(messages: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """``(question, context)`` of a chat request (see the module docstring)."""
    msgs = [m for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)]
    users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
    if not users:
        return "", ""
    last = users[-1]
    lines = msgs[last]["content"].splitlines()
    q_at = max((i for i, ln in enumerate(lines) if _QUESTION.match(ln)), default=None)
    if q_at is not None:
        question = "\n".join([_QUESTION.sub("", lines[q_at]), *lines[q_at + 1 :]]).strip()
        before = lines[:q_at]
    else:
        nonempty = [i for i, ln in enumerate(lines) if ln.strip()]
        if not nonempty:
            return "", ""
        question = lines[nonempty[-1]].strip()
        before = lines[: nonempty[-1]]
    # the Context: label, in the question's message or an earlier one
    for idx in range(last, -1, -1):
        body = before if idx == last else msgs[idx]["content"].splitlines()
        c_at = next((i for i, ln in enumerate(body) if _CONTEXT.match(ln)), None)
        if c_at is not None and msgs[idx].get("role") != "system":
            ctx = [_CONTEXT.sub("", body[c_at]), *body[c_at + 1 :]]
            return question, "\n".join(ctx)
    rest = [
        m["content"]
        for i, m in enumerate(msgs)
        if m.get("role") in ("user", "assistant") and i != last
    ]
    return question, "\n".join([*rest, "\n".join(before)])


def sentences(context: str) -> list[str]:
    out: list[str] = []
    for line in context.splitlines():
        if line.lstrip().startswith("#"):
            continue  # a Markdown heading names a topic, it does not answer
        line = _LEAD.sub("", _MARKER.sub(" ", line)).strip()
        if not line:
            continue
        out.extend(s.strip() for s in _SENT_SPLIT.split(line) if s.strip())
    return out


def answer(messages: Sequence[dict[str, Any]], n_sentences: int = 1) -> str:
    """The extractive answer to a chat request."""
    question, context = split_question(messages)
    qterms = set(terms(question))
    cands = sentences(context)
    if not qterms or not cands:
        return NO_ANSWER
    bags = [set(terms(s)) for s in cands]
    n = len(cands)
    df: dict[str, int] = {}
    for b in bags:
        for t in b & qterms:
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log(1 + n / c) for t, c in df.items()}
    scores = [sum(idf[t] for t in b & qterms) for b in bags]
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    best = [i for i in ranked[: max(1, n_sentences)] if scores[i] > 0]
    if not best:
        return NO_ANSWER
    return " ".join(cands[i] for i in sorted(best))
