"""The eval run as a pipeline of stages over per-query records (see docs/architecture.md,
"Pipeline"): :mod:`~genreg.pipeline.records` (what flows), :mod:`~genreg.pipeline.stages`
(the units), :mod:`~genreg.pipeline.runner` (their order)."""

from genreg.pipeline.records import Hit, QueryRecord, RunDraft, RunRequest, RunState
from genreg.pipeline.runner import Pipeline, eval_pipeline, score_pipeline
from genreg.pipeline.stages import (
    EstimateCost,
    ReadRunFile,
    Record,
    Resolve,
    Retrieve,
    Score,
    Stage,
    check_render,
)

__all__ = [
    "EstimateCost",
    "Hit",
    "Pipeline",
    "QueryRecord",
    "ReadRunFile",
    "Record",
    "Resolve",
    "Retrieve",
    "RunDraft",
    "RunRequest",
    "RunState",
    "Score",
    "Stage",
    "check_render",
    "eval_pipeline",
    "score_pipeline",
]
