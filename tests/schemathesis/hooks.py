"""Schemathesis hooks for the genreg API (loaded with SCHEMATHESIS_HOOKS).

OpenAPI cannot express a constraint *across* parameters: the selectors ``alias``, ``digest``
and ``version`` are mutually exclusive (each route says so in its description, and a request
with two is a documented 422). This hook teaches the generator that rule, so the
``positive_data_acceptance`` check holds the API to everything the schema *can* say.
"""

from __future__ import annotations

from typing import Any

import schemathesis

SELECTORS = ("alias", "digest", "version")


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    query = case.query
    return not isinstance(query, dict) or sum(query.get(k) is not None for k in SELECTORS) <= 1
