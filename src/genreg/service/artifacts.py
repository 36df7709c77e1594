"""Registering, resolving and aliasing versions of prompts, eval sets and routing configs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreg.core import artifacts as kinds
from genreg.core.hashing import digest_bytes, strip_prefix
from genreg.core.inputs import check_value, load_json
from genreg.core.kinds import BY_NAME
from genreg.core.refs import LATEST, Ref, parse_ref, validate_kind, validate_name
from genreg.core.types import AliasEvent, ArtifactInfo, RegisterResult, VersionInfo
from genreg.errors import ConfigError, IntegrityError, InvalidArtifact, InvalidName, NotFound

if TYPE_CHECKING:
    from genreg.core.evalset import EvalSet
    from genreg.core.prompt import Prompt
    from genreg.core.routing import Decision, Routing
    from genreg.service.store import Store
    from genreg.store.metadata import Metadata
    from genreg.store.objects import ObjectStore

EXPORT_FORMAT = "genreg-export/1"


@dataclass(frozen=True)
class PushResult:
    path: str
    kind: str
    name: str
    version: int
    digest: str
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": "created" if self.created else "unchanged"}


def check_metadata(
    tags: Any, message: Any, author: Any, where: str = "version metadata"
) -> dict[str, Any]:
    """Tags (a JSON mapping), message and author (strings) as plain bounded JSON, checked
    before anything is written; returns the tags as a new dict."""
    if tags is None:
        tags = {}
    if not isinstance(tags, dict):
        raise InvalidArtifact(f"{where}: tags must be a mapping, not {type(tags).__name__}")
    if not isinstance(message, str):
        raise InvalidArtifact(f"{where}: message must be a string")
    if author is not None and not isinstance(author, str):
        raise InvalidArtifact(f"{where}: author must be a string")
    check_value({"tags": tags, "message": message, "author": author}, where)
    return dict(tags)


def as_ref(ref: str | Ref, kind: str | None = None) -> Ref:
    return ref if isinstance(ref, Ref) else parse_ref(ref, kind=kind)


class Artifacts:
    """Prompts, eval sets, routing configs (and corpus versions' rows): register, resolve,
    read, diff, aliases, push, export/import. Depends on the :class:`~genreg.service.store.Store`
    only."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def metadata(self) -> Metadata:
        return self._store.metadata

    @property
    def objects(self) -> ObjectStore:
        return self._store.objects

    def author(self, explicit: str | None = None) -> str:
        return self._store.author(explicit)

    # ---- registration ---------------------------------------------------------------
    def register_parsed(
        self,
        name: str,
        parsed: kinds.Parsed,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Store the canonical bytes (durably) first, then insert the version row. A failure
        at any point leaves no visible version."""
        from genreg.store.objects import ensure_stored

        validate_name(name)
        tags = check_metadata(tags, message, author)
        obj = self.objects.put_bytes(parsed.data)
        info, created = self.metadata.add_version(
            parsed.kind,
            name,
            digest=parsed.digest,
            object_digest=obj,
            author=self.author(author),
            message=message,
            tags=tags,
            summary=parsed.summary,
        )
        ensure_stored(self.objects, obj, parsed.data)  # a concurrent gc may have hidden it
        return RegisterResult(info, created)

    def register(
        self,
        kind: str,
        name: str,
        path: str | Path,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Register the file (or BEIR directory, for eval sets) at ``path`` as ``kind:name``."""
        validate_kind(kind)
        validate_name(name)
        parsed = kinds.parse_file(kind, Path(path))
        return self.register_parsed(name, parsed, message=message, tags=tags, author=author)

    def register_content(
        self,
        kind: str,
        name: str,
        content: Any,
        *,
        message: str = "",
        tags: dict[str, Any] | None = None,
        author: str | None = None,
    ) -> RegisterResult:
        """Register content given as data (a prompt/routing mapping, or eval-set rows)."""
        validate_kind(kind)
        validate_name(name)
        parsed = kinds.parse_payload(kind, content, where=f"{kind}:{name}")
        return self.register_parsed(name, parsed, message=message, tags=tags, author=author)

    # ---- reading --------------------------------------------------------------------
    def resolve(
        self, ref: str | Ref, kind: str | None = None, *, suggest: bool = True
    ) -> VersionInfo:
        """The exact version a reference names (raises NotFound / AmbiguousRef). An unknown
        artifact's NotFound names the closest existing one unless ``suggest`` is False (the
        HTTP API's hot reads: no listing on a 404)."""
        r = as_ref(ref, kind)
        if not suggest:
            return self.metadata.resolve(r)
        try:
            return self.metadata.resolve(r)
        except NotFound as exc:
            raise self._did_you_mean(r, exc) from None

    def _did_you_mean(self, r: Ref, exc: NotFound) -> NotFound:
        """Add the closest existing artifact to an unknown artifact's error."""
        if exc.message != f"{r.kind}:{r.name} not found":
            return exc  # the artifact exists; its version/alias does not
        from genreg.core.suggest import closest_artifact

        near = closest_artifact(r.kind, r.name, ((a.kind, a.name) for a in self.list_artifacts()))
        if near is None:
            return exc
        return NotFound(f"{exc.message}; did you mean {near}?", details={"suggestion": near})

    def history(self, ref: str | Ref) -> list[VersionInfo]:
        r = as_ref(ref)
        return self.metadata.history(r.kind, r.name)

    def list_artifacts(self, kind: str | None = None) -> list[ArtifactInfo]:
        if kind is not None:
            validate_kind(kind)
        return self.metadata.list_artifacts(kind)

    def content(self, ref: str | Ref | VersionInfo) -> bytes:
        info = ref if isinstance(ref, VersionInfo) else self.resolve(ref)
        data = self.objects.get_bytes(info.object_digest)
        if digest_bytes(data) != info.digest:
            raise IntegrityError(f"{info.ref}: content does not match its digest {info.digest}")
        return data

    def show(self, ref: str | Ref) -> tuple[VersionInfo, Any]:
        info = self.resolve(ref)
        return info, kinds.content_json(info.kind, self.content(info))

    def load_prompt(self, ref: str | Ref) -> Prompt:
        return kinds.decode("prompt", self.content(self.resolve(ref, "prompt")))

    def load_routing(self, ref: str | Ref) -> Routing:
        return kinds.decode("routing", self.content(self.resolve(ref, "routing")))

    def load_evalset(self, ref: str | Ref) -> EvalSet:
        """The eval set's rows; a ``#split`` in the ref selects that split."""
        r = as_ref(ref, "evalset")
        es: EvalSet = kinds.decode("evalset", self.content(self.resolve(r)))
        return es.select(r.split)

    def render(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> str | list[dict[str, str]]:
        """Render a prompt; chat prompts give OpenAI-style ``[{role, content}]`` messages."""
        return self.load_prompt(ref).render({**(variables or {}), **kw})

    def render_request(
        self, ref: str | Ref, variables: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Render a prompt into the ready OpenAI request body ``{model, temperature,
        max_tokens, ..., messages}`` (the prompt's model config plus the messages)."""
        from genreg.core.prompt import request_body

        prompt = self.load_prompt(ref)
        return request_body(prompt, prompt.render({**(variables or {}), **kw}))

    def explain_route(self, ref: str | Ref, query: str, tags: list[str] | None = None) -> Decision:
        return self.load_routing(ref).choose(query, tags)

    def diff(self, a: str | Ref, b: str | Ref) -> dict[str, Any]:
        va, vb = self.resolve(a), self.resolve(b)
        if va.kind != vb.kind:
            raise ConfigError(f"cannot diff a {va.kind} with a {vb.kind}")
        out = kinds.diff(va.kind, self.content(va), self.content(vb), va.ref, vb.ref)
        out.update(
            a=va.ref,
            b=vb.ref,
            a_digest=va.digest,
            b_digest=vb.digest,
            identical=va.digest == vb.digest,
        )
        return out

    # ---- aliases --------------------------------------------------------------------
    def set_alias(
        self,
        ref: str | Ref,
        alias: str,
        *,
        reason: str = "",
        actor: str | None = None,
        run_id: str | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at the version ``ref`` resolves to; journaled."""
        validate_name(alias, "alias")
        if alias == LATEST or (alias[0] == "v" and alias[1:].isdigit()):
            raise InvalidName(f"invalid alias {alias!r}: 'latest' and vN are reserved")
        info = self.resolve(ref)
        return self.metadata.set_alias(
            info.kind,
            info.name,
            alias,
            info.version,
            actor=self.author(actor),
            reason=reason,
            run_id=run_id,
        )

    def remove_alias(
        self, artifact: str | Ref, alias: str, *, reason: str = "", actor: str | None = None
    ) -> AliasEvent:
        r = as_ref(artifact)
        return self.metadata.remove_alias(
            r.kind, r.name, alias, actor=self.author(actor), reason=reason
        )

    def alias_history(self, artifact: str | Ref, alias: str | None = None) -> list[AliasEvent]:
        r = as_ref(artifact)
        return self.metadata.alias_history(r.kind, r.name, alias)

    # ---- files in git ---------------------------------------------------------------
    def push(
        self,
        paths: list[str | Path] | None = None,
        *,
        message: str = "",
        author: str | None = None,
        root: Path | None = None,
    ) -> list[PushResult]:
        """Register every prompt/routing/eval-set file under ``paths`` whose content changed.

        Default paths: ``registry/`` and ``evals/`` of the project (the folder holding the
        registry home). A second push of unchanged files creates nothing. All files are
        validated before anything is registered, so one bad file registers nothing.
        """
        base = root or self._project_root()
        targets = [Path(p) for p in paths] if paths else [base / "registry", base / "evals"]
        found: list[tuple[Path, str]] = []
        for t in targets:
            if not t.exists():
                if paths:
                    raise NotFound(f"{t}: no such file or directory")
                continue
            found.extend(self._discover(t))
        found = self._one_file_per_name(found)
        parsed = [(p, kinds.name_from_path(p), kinds.parse_file(k, p)) for p, k in found]
        for p, name, _ in parsed:
            try:
                validate_name(name)
            except InvalidName as exc:
                raise InvalidName(f"{p}: {exc}") from None
        out = []
        for p, name, pa in parsed:
            res = self.register_parsed(name, pa, message=message or f"push {p.name}", author=author)
            v = res.version
            out.append(PushResult(str(p), v.kind, v.name, v.version, v.digest, res.created))
        return out

    @staticmethod
    def _one_file_per_name(found: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
        """Each file once (a path given twice is pushed once), and one file per KIND:NAME:
        ``prompts/x.yaml`` and ``prompts/sub/x.json`` would both be ``prompt:x`` and make
        ``latest`` depend on sort order, so they are refused, naming both files."""
        seen: dict[Path, str] = {}
        owner: dict[tuple[str, str], Path] = {}
        out = []
        for p, k in found:
            key = p.resolve()
            if key in seen:
                continue
            seen[key] = k
            name = (k, kinds.name_from_path(p))
            if name in owner:
                raise InvalidArtifact(
                    f"{owner[name]} and {p} are both {k}:{name[1]}; rename one of them"
                    " (push registers one file per name)"
                )
            owner[name] = p
            out.append((p, k))
        return out

    def _project_root(self) -> Path:
        """The nearest folder (walking up from the cwd) with ``registry/`` or ``evals/``;
        else the folder holding the registry home."""
        cwd = Path.cwd().resolve()
        for d in (cwd, *cwd.parents):
            if (d / "registry").is_dir() or (d / "evals").is_dir():
                return d
        return self._store.home.parent

    @staticmethod
    def _discover(target: Path) -> list[tuple[Path, str]]:
        if target.is_file() or (target.is_dir() and (target / "qrels").is_dir()):
            k = kinds.detect_kind(target)
            if k is None:
                raise InvalidArtifact(
                    f"{target}: cannot tell its kind; put it under registry/prompts, registry/routing "
                    "or evals/sets, or use 'genreg register KIND NAME FILE'"
                )
            return [(target, k)]
        out: list[tuple[Path, str]] = []
        for p in sorted(target.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(target).parts):
                continue
            if p.is_dir() and not (p / "qrels").is_dir():
                continue
            if any(q in p.parents for q, _ in out if q.is_dir()):
                continue
            k = kinds.detect_kind(p)
            if k is not None:
                out.append((p, k))
        return out

    # ---- export / import ------------------------------------------------------------
    def export(self, ref: str | Ref) -> dict[str, Any]:
        """A self-contained, digest-checked bundle of one version."""
        info = self.resolve(ref)
        if not BY_NAME[info.kind].exportable:
            raise ConfigError("use 'genreg corpus export REF DIR' for corpus snapshots")
        data = self.content(info)
        return {
            "format": EXPORT_FORMAT,
            "kind": info.kind,
            "name": info.name,
            "version": info.version,
            "digest": info.digest,
            "author": info.author,
            "message": info.message,
            "tags": info.tags,
            "created_at": info.created_at,
            "content_b64": base64.b64encode(data).decode("ascii"),
        }

    def import_bundle(
        self, bundle: dict[str, Any] | str | Path, *, name: str | None = None
    ) -> RegisterResult:
        if not isinstance(bundle, dict):
            p = Path(bundle)
            try:
                raw = p.read_bytes()
            except OSError as exc:
                raise InvalidArtifact(
                    f"{p}: not a genreg export bundle ({exc.strerror or exc})"
                ) from None
            bundle = load_json(raw, str(p))
        if not isinstance(bundle, dict) or bundle.get("format") != EXPORT_FORMAT:
            raise InvalidArtifact(f"not a genreg export bundle (expected format {EXPORT_FORMAT})")
        # Every field is checked before anything is written (no stray object on refusal).
        for key in ("kind", "name", "digest", "content_b64"):
            if not isinstance(bundle.get(key), str):
                raise InvalidArtifact(f"export bundle: {key!r} must be a string")
        kind, digest = bundle["kind"], bundle["digest"]
        validate_kind(kind)
        validate_name(name or bundle["name"])
        tags = check_metadata(
            bundle.get("tags"), bundle.get("message", ""), bundle.get("author"), "export bundle"
        )
        try:
            data = base64.b64decode(bundle["content_b64"], validate=True)
        except ValueError as exc:
            raise InvalidArtifact(f"export bundle is incomplete or corrupt: {exc}") from None
        if digest_bytes(data) != digest:
            raise IntegrityError(f"export bundle content does not match its digest {digest}")
        # Re-validate: the bundle must hold valid canonical content of its kind.
        try:
            payload = kinds.to_payload(kind, data)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:  # not JSON rows
            raise InvalidArtifact(f"export bundle: content is not a valid {kind}: {exc}") from None
        parsed = kinds.parse_payload(kind, payload, where="bundle")
        if parsed.digest != digest:
            raise IntegrityError(
                f"export bundle content is not in canonical form ({strip_prefix(digest)[:12]})"
            )
        return self.register_parsed(
            name or bundle["name"],
            parsed,
            message=bundle.get("message", ""),
            tags=tags,
            author=bundle.get("author") or None,
        )
