"""Prompt templates: parse, validate, and render in a sandboxed Jinja2 environment.

Canonical content (what is hashed)::

    {"type": "text"|"chat", "template": str|None, "messages": [{"role","content"}]|None,
     "variables": <JSON Schema>, "model": {...}, "metadata": {...}, "description": str}

``description`` is present only when the file has one, so prompts without it keep the
digests they always had. Any other top-level key is refused by the prompt schema.

Rendering: declared variables that are not passed are defined as their schema ``default``,
else ``None`` (so ``{% if audience %}`` works for an optional one); a name that is not
declared stays an error (strict undefined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreg.core import sandbox
from genreg.core.inputs import check_value
from genreg.core.validation import parse_structured, read_text, schema_errors
from genreg.errors import InvalidArtifact, RenderError

TEXT_SUFFIXES = {".txt", ".j2", ".jinja", ".jinja2", ".tmpl"}


def _env() -> Any:
    """The bounded sandbox (output, loop, time and recursion caps): :mod:`genreg.core.sandbox`."""
    return sandbox.environment()


def template_variables(source: str, where: str) -> set[str]:
    """Names a template reads from its context; syntax errors name the line."""
    from jinja2 import TemplateSyntaxError, meta

    env = _env()
    try:
        ast = env.parse(source)
        sandbox.check_ast(ast, where)
        return set(meta.find_undeclared_variables(ast))
    except TemplateSyntaxError as exc:
        raise InvalidArtifact(
            f"{where}:{exc.lineno}: template syntax error: {exc.message}"
        ) from None
    except RecursionError:
        raise InvalidArtifact(f"{where}: template nested too deeply") from None


@dataclass
class Prompt:
    type: str  # "text" | "chat"
    template: str | None
    messages: list[dict[str, str]] | None
    variables: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def _validator(self) -> Any:
        """The variables' JSON Schema validator, built once per Prompt (they are immutable)."""
        v = self.__dict__.get("_validator_cache")
        if v is None:
            from jsonschema import Draft202012Validator

            v = self.__dict__["_validator_cache"] = Draft202012Validator(self.variables)
        return v

    def _compiled(self) -> list[Any]:
        """Compiled sandboxed templates, built once per Prompt."""
        c = self.__dict__.get("_compiled_cache")
        if c is None:
            env = _env()
            c = self.__dict__["_compiled_cache"] = [
                env.from_string(src) for _, src in self.sources()
            ]
        return c

    def to_content(self) -> dict[str, Any]:
        content = {
            "type": self.type,
            "template": self.template,
            "messages": self.messages,
            "variables": self.variables,
            "model": self.model,
            "metadata": self.metadata,
        }
        if self.description is not None:  # absent key: digests of older prompts unchanged
            content["description"] = self.description
        return content

    @classmethod
    def from_content(cls, c: dict[str, Any]) -> Prompt:
        return cls(
            type=c["type"],
            template=c.get("template"),
            messages=c.get("messages"),
            variables=c.get("variables") or {"type": "object"},
            model=c.get("model") or {},
            metadata=c.get("metadata") or {},
            description=c.get("description"),
        )

    def sources(self) -> list[tuple[str, str]]:
        if self.type == "text":
            return [("template", self.template or "")]
        return [(f"messages.{i}.content", m["content"]) for i, m in enumerate(self.messages or [])]

    def declared(self) -> set[str]:
        return set((self.variables.get("properties") or {}).keys())

    def context(self, values: dict[str, Any]) -> dict[str, Any]:
        """Render context: every declared variable not passed gets its schema ``default``
        (else ``None``); passed values win. Undeclared names stay undefined (errors)."""
        props = self.variables.get("properties") or {}
        ctx = {
            name: (spec.get("default") if isinstance(spec, dict) else None)
            for name, spec in props.items()
            if name not in values
        }
        ctx.update(values)
        return ctx

    def validate_variables(self, values: dict[str, Any]) -> None:
        """Raise :class:`RenderError` naming every missing or wrong variable."""
        problems: list[str] = []
        for e in sorted(self._validator().iter_errors(values), key=lambda e: list(e.path)):
            if e.validator == "required":
                # jsonschema reports one error per missing name, each carrying the whole list
                missing = [r for r in e.validator_value if r not in values]
                found = [f"{m}: missing" for m in missing]
            else:
                where = ".".join(str(p) for p in e.path) or "(variables)"
                found = [f"{where}: {e.message}"]
            problems.extend(p for p in found if p not in problems)
        if problems:
            raise RenderError(
                "invalid variables: " + "; ".join(problems),
                details={"errors": problems},
            )

    def render(self, values: dict[str, Any]) -> str | list[dict[str, str]]:
        """Validate ``values`` then render. Chat prompts give OpenAI-style messages."""
        from jinja2 import TemplateError
        from jinja2.exceptions import SecurityError

        self.validate_variables(values)
        values = self.context(values)

        def run() -> str | list[dict[str, str]]:
            compiled = self._compiled()
            if self.type == "text":
                return sandbox.render_stream(compiled[0], values)
            out = []
            for m, t in zip(self.messages or [], compiled):
                out.append({"role": m["role"], "content": sandbox.render_stream(t, values)})
                if sum(len(x["content"]) for x in out) > sandbox.MAX_OUTPUT_CHARS:
                    raise RenderError(
                        f"render refused: the messages exceed the "
                        f"{sandbox.MAX_OUTPUT_CHARS:,}-character output cap"
                    )
            return out

        try:
            return sandbox.bounded(run)
        except RenderError:
            raise
        except SecurityError as exc:
            raise RenderError(f"template refused by the sandbox: {_line(exc)}") from None
        except TemplateError as exc:
            raise RenderError(f"render failed: {_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - 1/0, 'a' + 1, ... in a template: one line
            raise RenderError(f"render failed: {type(exc).__name__}: {_line(exc)}") from None


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def request_body(prompt: Prompt, rendered: str | list[dict[str, str]]) -> dict[str, Any]:
    """The ready OpenAI Chat Completions request body: the prompt's model config
    (``model``, ``temperature``, ``max_tokens``, ... as registered) plus ``messages``; a
    text prompt becomes one user message."""
    messages = rendered if isinstance(rendered, list) else [{"role": "user", "content": rendered}]
    return {**prompt.model, "messages": messages}


def _check(prompt: Prompt, where: str) -> Prompt:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(prompt.variables)
    except SchemaError as exc:
        raise InvalidArtifact(
            f"{where}: variables is not a valid JSON Schema: {exc.message}"
        ) from None
    declared = prompt.declared()
    for field_name, src in prompt.sources():
        used = template_variables(src, where)
        undeclared = sorted(used - declared)
        if undeclared:
            raise InvalidArtifact(
                f"{where}: {field_name} uses undeclared variable(s) {', '.join(undeclared)}; "
                "declare them under variables.properties"
            )
    return prompt


def parse_prompt_file(path: Path) -> Prompt:
    """A YAML/JSON prompt file, or a plain text template (all variables required strings)."""
    where = str(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        text = read_text(path)
        names = sorted(template_variables(text, where))
        variables = {
            "type": "object",
            "properties": {n: {"type": "string"} for n in names},
            "required": names,
        }
        return _check(Prompt("text", text, None, variables), where)
    data = parse_structured(path)
    return parse_prompt_data(data, where)


def parse_prompt_data(data: Any, where: str) -> Prompt:
    if not isinstance(data, dict):
        raise InvalidArtifact(
            f"{where}: a prompt file must be a mapping with 'template' or 'messages'"
        )
    check_value(data, where)
    errors = schema_errors("prompt", data)
    if errors:
        raise InvalidArtifact(f"{where}: {errors[0]}", details={"errors": errors})
    variables = data.get("variables") or {"type": "object", "properties": {}}
    variables.setdefault("type", "object")
    kind = "text" if "template" in data else "chat"
    prompt = Prompt(
        type=kind,
        template=data.get("template"),
        messages=[{"role": m["role"], "content": m["content"]} for m in data["messages"]]
        if kind == "chat"
        else None,
        variables=variables,
        model=data.get("model") or {},
        metadata=data.get("metadata") or {},
        description=data.get("description"),
    )
    return _check(prompt, where)
