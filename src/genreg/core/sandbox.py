"""The bounded Jinja2 sandbox prompts render in.

Jinja's ``ImmutableSandboxedEnvironment`` stops templates from reaching Python internals; it
does not bound how much work or memory a template may take (``{{ 'a' * 10**9 }}``, nested
``range(100000)`` loops, recursive macros). This environment adds, per render:

- **output**: at most :data:`MAX_OUTPUT_CHARS` characters in total (streamed and counted, so
  the cap is hit before the text is built), and no single string or list over that size
  (``*``, ``+``, ``%``, ``**`` and every filter and method call are checked);
- **loops**: ``range()`` yields at most :data:`MAX_LOOP_ITERATIONS` items in total per render;
- **time**: :data:`RENDER_TIMEOUT` seconds of wall time, enforced by a watchdog that raises
  inside the rendering thread (so a pure-Python loop over caller data stops too);
- **recursion**: a macro that recurses too deep is an error, not a crash;
- no ``{% include %}``, ``{% import %}`` or ``{% extends %}`` (there is no template loader):
  refused at registration (:func:`check_ast`).

Hitting any bound raises :class:`~genreg.errors.RenderError` with one line (HTTP 422).
The limits can be changed with ``GENREG_RENDER_MAX_OUTPUT``, ``GENREG_RENDER_MAX_LOOP`` and
``GENREG_RENDER_TIMEOUT`` (read when the first prompt renders).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from genreg.errors import InvalidArtifact, RenderError

MAX_OUTPUT_CHARS = int(os.environ.get("GENREG_RENDER_MAX_OUTPUT", 1_000_000))
MAX_LOOP_ITERATIONS = int(os.environ.get("GENREG_RENDER_MAX_LOOP", 100_000))
RENDER_TIMEOUT = float(os.environ.get("GENREG_RENDER_TIMEOUT", 2.0))
# A printf width/precision of >= 1,000,000 or '*'; a str.format spec with such a width or a
# nested (argument-supplied) width.
_PCT_WIDE = re.compile(r"%[-+ #0]*(?:\*|\d{7,})|%[-+ #0]*\d*\.(?:\*|\d{7,})")
_FMT_WIDE = re.compile(r"\{[^{}]*:[^{}]*?(?:\d{7,}|\{)")
# Callables whose integer arguments are widths / counts the output grows with.
_WIDTH_ARGS = {
    "center",
    "ljust",
    "rjust",
    "zfill",
    "expandtabs",
    "indent",
    "wordwrap",
    "batch",
    "slice",
}


class RenderTimeout(BaseException):
    """Raised asynchronously in the rendering thread by the watchdog. A BaseException, so no
    ``except Exception`` in a template's call path can swallow it."""


class _Budget(threading.local):
    iterations = 0
    active = False


_budget = _Budget()


def _too_big(what: str) -> RenderError:
    return RenderError(
        f"render refused: {what} would exceed the {MAX_OUTPUT_CHARS:,}-character output cap"
    )


def _size_ok(value: Any, what: str) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_OUTPUT_CHARS:
        raise _too_big(what)
    return value


def _check_args(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-checks for the calls whose output can grow far beyond their inputs."""
    if name in _WIDTH_ARGS:
        for a in itertools.chain(args, kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_OUTPUT_CHARS:
                raise _too_big(f"{name}() with width {a}")
    if name == "indent":
        text = next((a for a in args if isinstance(a, str)), "")
        width = kwargs.get("width", args[2] if len(args) > 2 else None)
        if isinstance(width, str) and (text.count("\n") + 1) * len(width) > MAX_OUTPUT_CHARS:
            raise _too_big("indent()")
    elif name == "replace":
        strs = [a for a in args if isinstance(a, str)]
        if len(strs) >= 3:
            _estimate_replace(*strs[:3])
    elif name == "join":
        seqs = [a for a in args if isinstance(a, (list, tuple))]
        seps = [a for a in itertools.chain(args, kwargs.values()) if isinstance(a, str)]
        if seqs and seps and len(seqs[0]) * len(seps[0]) > MAX_OUTPUT_CHARS:
            raise _too_big("join()")
    elif name in ("format", "format_map"):
        for a in args:
            if isinstance(a, str) and (_PCT_WIDE.search(a) or _FMT_WIDE.search(a)):
                raise _too_big("a format width")


def _bounded_range(*args: int) -> Iterator[int]:
    rng = range(*args)
    _budget.iterations += len(rng)
    if _budget.iterations > MAX_LOOP_ITERATIONS:
        raise RenderError(
            f"render refused: loops would run more than {MAX_LOOP_ITERATIONS:,} iterations"
        )
    return iter(rng)


def _estimate_replace(s: str, old: str, new: str) -> None:
    n = s.count(old) if old else len(s) + 1
    if len(s) + n * (len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise _too_big("replace()")


def _bounded_filter(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _check_args(name, args, kwargs)
        try:
            out = f(*args, **kwargs)
        except (ValueError, TypeError, AssertionError, OverflowError) as exc:
            raise RenderError(
                f"render failed: filter {name}: {exc or type(exc).__name__}"
            ) from None
        return _size_ok(out, f"filter {name}")

    for attr in ("jinja_pass_arg",):  # keep pass_context / pass_environment markers
        if hasattr(f, attr):
            setattr(wrapped, attr, getattr(f, attr))
    return wrapped


@lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    class BoundedNamespace(Namespace):
        def __setitem__(self, name: str, value: Any) -> None:
            super().__setitem__(name, _size_ok(value, f"namespace value {name!r}"))

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%", "+"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**":
                if isinstance(right, int) and abs(right) > 1000 and abs(left) not in (0, 1):
                    raise RenderError(f"render refused: exponent {right} is too large")
            elif operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if (
                        isinstance(seq, (str, list, tuple))
                        and isinstance(n, int)
                        and len(seq) * n > MAX_OUTPUT_CHARS
                    ):
                        raise _too_big("'*'")
            elif operator == "%" and isinstance(left, str) and _PCT_WIDE.search(left):
                raise _too_big("a '%' format width")
            elif (
                operator == "+"
                and isinstance(left, (str, list, tuple))
                and hasattr(right, "__len__")
                and len(left) + len(right) > MAX_OUTPUT_CHARS
            ):
                raise _too_big("'+'")
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value: Any) -> Any:
            owner = getattr(value, "__self__", None)
            if isinstance(owner, str) and getattr(value, "__name__", "") in (
                "format",
                "format_map",
            ):
                _check_args("format", (owner,), {})
            return super().wrap_str_format(value)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            name = getattr(__obj, "__name__", "call")
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str):  # a str method: the string is the first argument
                _check_args(name, (owner, *args), kwargs)
            else:
                _check_args(name, args, kwargs)
            return _size_ok(super().call(__context, __obj, *args, **kwargs), f"{name}()")

    env = BoundedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals["range"] = _bounded_range
    env.globals["namespace"] = BoundedNamespace
    env.filters = {k: _bounded_filter(k, f) for k, f in env.filters.items()}
    return env


def check_ast(ast: Any, where: str) -> None:
    """Refuse template features the registry cannot serve (there is no template loader)."""
    from jinja2 import nodes

    for cls, tag in (
        (nodes.Include, "include"),
        (nodes.Import, "import"),
        (nodes.FromImport, "from ... import"),
        (nodes.Extends, "extends"),
    ):
        node = next(iter(ast.find_all(cls)), None)
        if node is not None:
            raise InvalidArtifact(
                f"{where}:{node.lineno}: {{% {tag} %}} is not supported (prompts are "
                "self-contained: there is no template loader)"
            )


# ---- the watchdog ---------------------------------------------------------------------------
class _Watchdog:
    """One daemon thread that raises :class:`RenderTimeout` in threads past their deadline."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, int]] = []  # (deadline, token, thread id)
        self._live: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> int:
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="genreg-render-watchdog", daemon=True
                )
                self._thread.start()
            token = next(self._tokens)
            self._live.add(token)
            heapq.heappush(self._heap, (deadline, token, threading.get_ident()))
            self._cv.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cv:  # after this returns, the watchdog never fires for ``token``
            self._live.discard(token)

    def _run(self) -> None:
        with self._cv:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                deadline, token, tid = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cv.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(tid), ctypes.py_object(RenderTimeout)
                )


_watchdog = _Watchdog()


def bounded(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (a render) under the loop budget and the wall-clock deadline."""
    if _budget.active:  # nested (a render inside a render): the outer bounds apply
        return fn()
    _budget.iterations = 0
    _budget.active = True
    token = None
    try:
        try:
            token = _watchdog.arm(time.monotonic() + RENDER_TIMEOUT)
            try:
                return fn()
            finally:
                _watchdog.disarm(token)
        except RenderTimeout:
            raise RenderError(
                f"render refused: took longer than the {RENDER_TIMEOUT:g} s render time cap"
            ) from None
        except RecursionError:
            raise RenderError("render failed: recursion too deep (a recursive macro?)") from None
        except MemoryError:
            raise _too_big("the output") from None
    finally:
        _budget.active = False


def render_stream(template: Any, values: dict[str, Any]) -> str:
    """Render ``template`` chunk by chunk, refusing once the total output passes the cap."""
    out: list[str] = []
    n = 0
    for chunk in template.generate(values):
        n += len(chunk)
        if n > MAX_OUTPUT_CHARS:
            raise _too_big("the output")
        out.append(chunk)
    return "".join(out)
