"""Generation: send the rendered prompt to the routed model and measure the answer.

- :mod:`genreg.generation.client` -- OpenAI-compatible Chat Completions client (aiohttp):
  bounded concurrency, retries honouring Retry-After, per-call timeout, streaming, usage.
- :mod:`genreg.generation.cache` -- the response cache (rw | replay | off) and bundles.
- :mod:`genreg.generation.extractive` / :mod:`genreg.generation.server` -- the extractive
  baseline model and the local OpenAI-compatible server ``genreg llm serve``.
- :mod:`genreg.generation.judge` -- LLM-as-judge metrics (faithfulness, answer relevance).
- answer metrics (exact match, token F1, ROUGE-L) are pure functions in
  :mod:`genreg.core.answers`.
"""
