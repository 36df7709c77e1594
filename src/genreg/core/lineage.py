"""The lineage record of an eval run: what it used, where it ran, and its fingerprint.

:class:`Lineage` is the typed form of the JSON stored on every run (``run.lineage``). It is
frozen: the pipeline assembles its fields stage by stage and builds the record once, so the
fingerprint can never be computed over one state and stored with another.

Stored JSON (``to_dict``/``from_dict``; runs stored by earlier versions load unchanged)::

    source                 eval (genreg retrieved) | score (an external run file)
    inputs                 {role: {kind, name, version, digest, split}}  role in INPUT_ROLES
    embedding              {model, digest[, backend, quantize][, precision][, device]} | null
                           backend/quantize only for a non-torch backend (onnx/openvino, int8/none);
                           precision only when not f32 (openvino bf16);
                           device (cpu | cuda) is where this run embedded; absent or null when
                           every vector came from the cache
    chunking, index        normalised parameters | null
    index_key              the derived index's key (eval runs)
    k, metrics             cutoffs retrieved, metric names
    cost                   cost options | null
    run_file               sha256: of the scored run file | null; run_file_path: its path
    generation             the generation stage's settings (model, params, prompt...) | absent
    latency                how per-query latency was measured: per-query | per-batch | absent
    code                   {commit, dirty, diff_digest, genreg}        -- environment
    packages               {python, implementation, <key package>: version}  -- environment
    host                   {platform, cpu, cores, ram_bytes, gpu}      -- environment
    started_at, ended_at   ISO-8601 UTC
    fingerprint            see below

Fingerprint
-----------
``fingerprint`` = ``sha256:`` of the canonical JSON (``genreg.core.hashing``) of exactly the
fields :data:`FINGERPRINT_FIELDS` of the stored form, plus ``generation`` when the run has a
generation stage (so runs without one keep the fingerprints stored before it existed):

- ``source``, ``inputs`` (kind, name, version, digest, split of every role), ``embedding``,
  ``chunking``, ``index``, ``k``, ``metrics``, ``cost``, ``run_file`` -- the *inputs*;
- ``code`` (commit, dirty flag, diff digest, genreg version) and ``packages`` (Python and key
  package versions) -- the *environment* that could still change the numbers.

``embedding.device`` is environment, not an input: it is left out of the fingerprint (and of
attribution), like the host. ``generation.cache`` (``rw``/``replay``/``off``) stays in the
fingerprint (stored fingerprints never change meaning, and a replay is not the same
computation: it makes no call) but is not an input for attribution: it says where the
answers came from, not what they are -- the response cache key covers endpoint, model,
messages, parameters and repeat, so a CI ``replay`` of a recorded run compares with it as
"inputs that differ: none". ``embedding.backend``/``quantize``/``precision`` are inputs: an
ONNX, int8 or bf16 model is a different model with its own digest.

Left out on purpose (they do not change the numbers): run id, eval name, run name, tags and
parameters, author, start/end time, host (CPU, cores, RAM, GPU), batch size, how latency was
measured, gates and baseline. Two runs with the same fingerprint are a repeat of the same
computation ("identical to run X").

Attribution (:mod:`genreg.core.compare`) is narrower than the fingerprint: a delta between
two runs is attributed to the *inputs* that differ; ``code`` and ``packages`` are shown as
"environment differs" but never make a delta unattributable.

Environment capture (git, ``/proc``, ``nvidia-smi``) lives at the edge, in
:mod:`genreg.environment`; this module only describes and hashes the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from genreg.core.hashing import digest_json

INPUT_ROLES = ("evalset", "corpus", "prompt", "routing")
FINGERPRINT_FIELDS = (
    "source",
    "inputs",
    "embedding",
    "chunking",
    "index",
    "k",
    "metrics",
    "cost",
    "run_file",
    "code",
    "packages",
)
# Fingerprinted only when present: records stored before these existed keep their fingerprint.
OPTIONAL_FINGERPRINT_FIELDS = ("generation",)
ENVIRONMENT_FIELDS = ("code", "packages", "host")
# Recorded in ``generation`` but not what the answers are (see the module docstring).
GENERATION_RECORD_ONLY = ("cache",)
# Emitted by to_dict only when set (absent from older records).
_OPTIONAL_KEYS = ("index_key", "run_file_path", "generation", "latency")


def fingerprint(lineage: Mapping[str, Any]) -> str:
    """``sha256:`` of the canonical JSON of :data:`FINGERPRINT_FIELDS` of a stored lineage
    dict (plus :data:`OPTIONAL_FINGERPRINT_FIELDS` that are set)."""
    body = {f: lineage.get(f) for f in FINGERPRINT_FIELDS}
    emb = body.get("embedding")
    if isinstance(emb, Mapping) and "device" in emb:  # environment, not an input
        body["embedding"] = {k: v for k, v in emb.items() if k != "device"}
    for f in OPTIONAL_FINGERPRINT_FIELDS:
        if lineage.get(f) is not None:
            body[f] = lineage[f]
    return digest_json(body)


def generation_identity(generation: Mapping[str, Any]) -> dict[str, Any]:
    """The compared part of a lineage's ``generation`` settings (what a delta can be
    attributed to): all of them but :data:`GENERATION_RECORD_ONLY` (the cache mode)."""
    return {k: v for k, v in generation.items() if k not in GENERATION_RECORD_ONLY}


@dataclass(frozen=True)
class InputPin:
    """One exact input version a run used, under its role."""

    role: str  # prompt | evalset | corpus | routing
    kind: str
    name: str
    version: int
    digest: str
    split: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@v{self.version}" + (f"#{self.split}" if self.split else "")

    def to_dict(self) -> dict[str, Any]:
        """The public form (API, ``--json``): every field plus ``ref``."""
        return {
            "role": self.role,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "split": self.split,
            "ref": self.ref,
        }

    def stored(self) -> dict[str, Any]:
        """The form stored under ``lineage.inputs[role]``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "split": self.split,
        }

    @classmethod
    def from_stored(cls, role: str, d: Mapping[str, Any]) -> InputPin:
        return cls(role, d["kind"], d["name"], int(d["version"]), d["digest"], d.get("split"))


@dataclass(frozen=True)
class ModelPin:
    """The embedding model by name and weights digest; ``backend``/``quantize`` for a
    non-torch backend (part of its identity) and the ``device`` it ran on (environment)."""

    model: str
    digest: str | None
    backend: str | None = None
    quantize: str | None = None
    device: str | None = None
    precision: str | None = None  # openvino inference precision; None/f32 not stored

    def identity(self) -> dict[str, Any]:
        """What the model is (the fingerprinted and compared part): no device."""
        d: dict[str, Any] = {"model": self.model, "digest": self.digest}
        if self.backend not in (None, "torch"):
            d["backend"] = self.backend
            d["quantize"] = self.quantize or "none"
        if self.precision not in (None, "f32"):
            d["precision"] = self.precision
        return d

    def to_dict(self) -> dict[str, Any]:
        d = self.identity()
        if self.device is not None:
            d["device"] = self.device
        return d

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> ModelPin:
        return cls(
            str(d.get("model")),
            d.get("digest"),
            d.get("backend"),
            d.get("quantize"),
            d.get("device"),
            d.get("precision"),
        )


@dataclass(frozen=True)
class CodeState:
    """The git state of the working tree the run started from, and the genreg version."""

    commit: str | None = None
    dirty: bool | None = None
    diff_digest: str | None = None
    genreg: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "diff_digest": self.diff_digest,
            "genreg": self.genreg,
        }

    @property
    def short(self) -> str:
        c = (self.commit or "no git")[:12]
        return c + ("+dirty" if self.dirty else "")


@dataclass(frozen=True)
class Environment:
    """What a run records about where it ran (captured by :mod:`genreg.environment`)."""

    code: CodeState = field(default_factory=CodeState)
    packages: Mapping[str, str | None] = field(default_factory=dict)
    host: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.to_dict(),
            "packages": dict(self.packages),
            "host": dict(self.host),
        }


@dataclass(frozen=True)
class Lineage:
    """The lineage record of one run (see the module docstring for each field)."""

    source: str
    inputs: tuple[InputPin, ...] = ()
    embedding: ModelPin | None = None
    chunking: Mapping[str, Any] | None = None
    index: Mapping[str, Any] | None = None
    index_key: str | None = None
    k: tuple[int, ...] | None = None
    metrics: tuple[str, ...] | None = None
    cost: Mapping[str, Any] | None = None
    run_file: str | None = None
    run_file_path: str | None = None
    generation: Mapping[str, Any] | None = None
    latency: str | None = None
    code: CodeState | None = None
    packages: Mapping[str, str | None] | None = None
    host: Mapping[str, Any] | None = None
    started_at: str | None = None
    ended_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown stored keys, kept verbatim

    # ---- access ---------------------------------------------------------------------------
    def input(self, role: str) -> InputPin | None:
        return next((i for i in self.inputs if i.role == role), None)

    @property
    def environment(self) -> Environment:
        return Environment(self.code or CodeState(), self.packages or {}, self.host or {})

    @property
    def fingerprint(self) -> str:
        """See the module docstring: inputs plus code and packages, never times or host."""
        return fingerprint(self._body())

    def with_times(self, started_at: str | None, ended_at: str | None) -> Lineage:
        return replace(self, started_at=started_at, ended_at=ended_at)

    def with_environment(self, env: Environment) -> Lineage:
        return replace(self, code=env.code, packages=dict(env.packages), host=dict(env.host))

    # ---- stored form ----------------------------------------------------------------------
    def _body(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source,
            "inputs": {i.role: i.stored() for i in self.inputs},
            "embedding": self.embedding.to_dict() if self.embedding else None,
            "chunking": _plain(self.chunking),
            "index": _plain(self.index),
            "k": list(self.k) if self.k is not None else None,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "cost": _plain(self.cost),
            "run_file": self.run_file,
            "code": self.code.to_dict() if self.code else None,
            "packages": _plain(self.packages),
            "host": _plain(self.host),
        }
        for key in _OPTIONAL_KEYS:
            v = getattr(self, key)
            if v is not None:
                d[key] = _plain(v)
        return d

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON (with the fingerprint)."""
        d = {**_plain(self.extra), **self._body()}
        d["fingerprint"] = fingerprint(d)
        d["started_at"], d["ended_at"] = self.started_at, self.ended_at
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Lineage:
        """Load a stored record (any version genreg has written)."""
        known = ({f.name for f in fields(cls)} - {"extra"}) | {"fingerprint"}
        emb = d.get("embedding")
        code = d.get("code")
        return cls(
            source=str(d.get("source") or "eval"),
            inputs=tuple(InputPin.from_stored(r, i) for r, i in (d.get("inputs") or {}).items()),
            embedding=ModelPin.from_stored(emb) if emb else None,
            chunking=d.get("chunking"),
            index=d.get("index"),
            index_key=d.get("index_key"),
            k=tuple(d["k"]) if d.get("k") is not None else None,
            metrics=tuple(d["metrics"]) if d.get("metrics") is not None else None,
            cost=d.get("cost"),
            run_file=d.get("run_file"),
            run_file_path=d.get("run_file_path"),
            generation=d.get("generation"),
            latency=d.get("latency"),
            code=CodeState(**{k: code.get(k) for k in CodeState.__dataclass_fields__})
            if code
            else None,
            packages=d.get("packages"),
            host=d.get("host"),
            started_at=d.get("started_at"),
            ended_at=d.get("ended_at"),
            extra={k: v for k, v in d.items() if k not in known},
        )

    # Read access by stored key (``run.lineage["run_file"]``), for code that predates the type.
    def __getitem__(self, key: str) -> Any:
        if key == "fingerprint":
            return self.fingerprint
        d = {**_plain(self.extra), **self._body()}
        d["started_at"], d["ended_at"] = self.started_at, self.ended_at
        return d[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def _plain(v: Any) -> Any:
    """A JSON-ready deep copy (mappings to dicts, tuples to lists)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


_MOVED = {
    "capture_environment",
    "git_state",
    "package_versions",
    "cpu_model",
    "ram_bytes",
    "gpus",
    "KEY_PACKAGES",
}


def __getattr__(name: str) -> Any:
    """Environment capture moved to :mod:`genreg.environment` (the edge); the old names are
    still importable from here, loaded only when asked for."""
    if name in _MOVED:
        import genreg.environment as env

        return getattr(env, name)
    raise AttributeError(name)
