"""The baseline judge model: answers genreg's judge prompts with the JSON they ask for, by
token overlap. A real, simple, deterministic baseline served by ``genreg llm serve`` under
the model name :data:`MODEL_NAME` over the same protocol as a provider's judge -- it is
**not** an LLM and is no stand-in for one: use it to develop and test evals offline, and
point ``judge.model`` at a real model for verdicts worth reporting.

How it reads a judge request (the shipped ``prompt:judge-faithfulness`` and
``prompt:judge-answer-relevance`` follow this layout; any prompt that does works):

1. **Task**: the last ``user`` message names the JSON it wants: a ``"statements"`` key means
   faithfulness, a ``"questions"`` key answer relevance (neither: an error reply).
2. **Sections**: lines starting ``Question:``, ``Context:`` and ``Answer:`` (case-insensitive)
   open sections; the answer section runs to the end of the message, the context section to
   the ``Answer:`` line.
3. **Statements** (faithfulness): the answer's sentences (split as the extractive baseline
   splits context, :func:`genreg.generation.extractive.sentences`). A statement's verdict is 1
   when at least :data:`SUPPORT_SHARE` of its content terms (:func:`~genreg.generation.
   extractive.terms`: lowercase, stop words dropped, crude suffix strip) occur in the context,
   else 0; the reason says how many did. So the verdicts measure lexical support only.
4. **Questions** (answer relevance): it cannot write questions, so it returns the answer's
   first ``n`` sentences (``n`` from "Generate N questions" in the prompt, default 3) as its
   "questions"; genreg then embeds them against the real question exactly as for an LLM's,
   so under this baseline ``answer_relevance`` = mean cosine(question, answer sentences).
   ``noncommittal`` is 1 when the answer matches :data:`NONCOMMITTAL` (e.g. "I don't know").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from genreg.generation import extractive

MODEL_NAME = "baseline-overlap-judge"
SUPPORT_SHARE = 0.5
NONCOMMITTAL = re.compile(
    r"\b(i\s+(do\s*n[o']?t|don't|dont)\s+know|not\s+sure|cannot\s+answer|can't\s+answer|"
    r"no\s+information|unable\s+to\s+(answer|find))\b",
    re.IGNORECASE,
)
_SECTION = re.compile(r"^\s*(question|context|answer)\s*:\s?(.*)$", re.IGNORECASE)
_N_QUESTIONS = re.compile(r"\b(\d{1,2})\s+questions?\b", re.IGNORECASE)


def sections(text: str) -> dict[str, str]:
    """``{question, context, answer}`` of a judge message (see the module docstring)."""
    out: dict[str, list[str]] = {}
    cur: str | None = None
    for line in text.splitlines():
        m = _SECTION.match(line)
        label = m.group(1).lower() if m else None
        # the answer section is the last one: once open, every line belongs to it
        if m and label and cur != "answer" and label not in out:
            cur = label
            out[cur] = [m.group(2)]
        elif cur is not None:
            out[cur].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def faithfulness(answer: str, context: str) -> dict[str, Any]:
    ctx = set(extractive.terms(context))
    out = []
    for s in extractive.sentences(answer):
        ts = set(extractive.terms(s))
        found = len(ts & ctx)
        verdict = int(bool(ts) and found / len(ts) >= SUPPORT_SHARE)
        out.append(
            {
                "statement": s,
                "reason": f"{found} of {len(ts)} content terms occur in the context",
                "verdict": verdict,
            }
        )
    return {"statements": out}


def answer_relevance(answer: str, n: int) -> dict[str, Any]:
    sents = extractive.sentences(answer) or ([answer.strip()] if answer.strip() else [])
    return {
        "questions": sents[: max(1, n)],
        "noncommittal": int(bool(NONCOMMITTAL.search(answer))),
    }


def reply(messages: Sequence[dict[str, Any]]) -> str:
    """The JSON text the baseline judge answers a chat request with."""
    users = [m for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
    if not users:
        return json.dumps({"error": "no user message"})
    text = users[-1]["content"]
    sec = sections(text)
    answer = sec.get("answer", "")
    if '"statements"' in text:
        return json.dumps(faithfulness(answer, sec.get("context", "")))
    if '"questions"' in text:
        m = _N_QUESTIONS.search(text)
        return json.dumps(answer_relevance(answer, int(m.group(1)) if m else 3))
    return json.dumps({"error": "not a judge prompt this baseline knows"})
