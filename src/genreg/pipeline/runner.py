"""The pipeline: an ordered list of stages run in two passes (all ``prepare`` then all
``run``), and the two pipelines genreg ships.

    eval run     resolve -> retrieve      -> cost -> score -> record
    eval score   resolve -> read-run-file          -> score -> record

A generation step slots in after retrieve (``resolve -> retrieve -> generate -> judge ->
cost -> score -> record``) with :meth:`Pipeline.insert`, touching neither retrieval nor
scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

from genreg.pipeline.records import Progress, RunState
from genreg.pipeline.stages import (
    ArtifactSource,
    EstimateCost,
    IndexSource,
    ReadRunFile,
    Record,
    Resolve,
    Retrieve,
    RunHistory,
    RunSink,
    Score,
    Stage,
)


class Pipeline:
    def __init__(self, stages: Sequence[Stage]) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names: {names}")
        self.stages = list(stages)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def insert(self, stage: Stage, *, after: str | None = None, before: str | None = None) -> None:
        """Add a stage after (or before) the named one."""
        if (after is None) == (before is None):
            raise ValueError("give exactly one of after= / before=")
        at = self.names.index(after or before or "")
        self.stages.insert(at + 1 if after else at, stage)

    def replace(self, name: str, stage: Stage) -> None:
        self.stages[self.names.index(name)] = stage

    def run(self, state: RunState, progress: Progress | None = None) -> RunState:
        """Every stage's cheap ``prepare`` (in order), then every stage's ``run``."""
        for s in self.stages:
            s.prepare(state)
        for s in self.stages:
            s.run(state, progress)
        return state


def eval_pipeline(
    artifacts: ArtifactSource, indexes: IndexSource, history: RunHistory, sink: RunSink
) -> Pipeline:
    """``genreg eval run``: genreg retrieves."""
    return Pipeline(
        [
            Resolve(artifacts, history),
            Retrieve(indexes),
            EstimateCost(),
            Score(history),
            Record(sink),
        ]
    )


def score_pipeline(artifacts: ArtifactSource, history: RunHistory, sink: RunSink) -> Pipeline:
    """``genreg eval score``: the same pipeline, retrieval replaced by reading a run file."""
    return Pipeline([Resolve(artifacts, history), ReadRunFile(), Score(history), Record(sink)])
