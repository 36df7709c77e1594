"""Progress: one bar per stage with total and ETA on a TTY, a line while the model loads,
nothing at all (no ANSI) otherwise -- the demo's own headers included."""

from __future__ import annotations

import io
import os
import pty
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_helpers import HashEmbedder

REPO = Path(__file__).resolve().parent.parent


def _tty_console() -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)


def test_one_bar_per_stage_with_total_eta_and_a_loading_line() -> None:
    from genreg.cli._common import progress

    console = _tty_console()
    with progress(console=console) as cb:
        assert cb is not None
        cb("loading all-MiniLM-L6-v2", 0, None)
        cb("chunking", 0, 1000)
        cb("chunking", 500, 1000)
        cb("loading all-MiniLM-L6-v2", 1, 1)
        cb("chunking", 1000, 1000)
        cb("embedding", 0, 3000)
        cb("embedding", 1500, 3000)
    out = console.file.getvalue()
    final = out.split("\r")[-1] if "\r" in out else out
    lines = [ln for ln in out.splitlines() if "chunking" in ln]
    assert lines and "1000/1000" in lines[-1]
    emb = [ln for ln in out.splitlines() if "embedding" in ln]
    assert emb and "1500/3000" in emb[-1] and "eta" in emb[-1]
    assert any("loading all-MiniLM-L6-v2" in ln for ln in out.splitlines())
    # one line per stage in the final frame, in the order the stages started
    assert final.count("chunking") <= 1 and final.count("embedding") <= 1


def test_no_progress_and_no_ansi_when_stderr_is_not_a_tty(capsys: Any) -> None:
    from genreg.cli._common import progress

    with progress() as cb:  # pytest's stderr is not a TTY
        assert cb is None
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_cli_output_has_no_ansi_codes_off_a_tty(cli: Any, registry: Any, write: Any) -> None:
    write("kb/a.txt", "alpha")
    write("kb/b.txt", "beta")
    r = cli("corpus", "snapshot", "kb", "kb")
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\x1b" not in r.stderr


class _Model:
    """Stands in for the sentence-transformers weights (their load is what takes ~30 s)."""

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        return np.ones((len(texts), 4), dtype=np.float32)


def test_embedder_reports_the_model_load_and_the_embedding_total_up_front(
    tmp_path: Path, monkeypatch: Any
) -> None:
    from genreg.retrieval import embedders

    emb = embedders.Embedder("tiny", tmp_path, "sha256:00")
    emb.__dict__["dim"] = 4
    calls: list[tuple[str, int, int | None]] = []

    real_model = embedders.Embedder.model

    def load(self: Any) -> Any:
        calls.append(("<weights load>", 0, None))
        monkeypatch.setitem(embedders._models, str(self.path), _Model())
        return real_model.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(embedders.Embedder, "model", property(load))
    emb.encode(["a", "bb", "ccc"], batch_size=1, progress=lambda *a: calls.append(a))
    assert calls[:4] == [
        ("loading tiny", 0, None),  # shown before the weights load
        ("<weights load>", 0, None),
        ("loading tiny", 1, 1),
        ("embedding", 0, 3),  # the bar has its total from the start
    ]
    assert calls[-1] == ("embedding", 3, 3)
    calls.clear()
    emb.encode(["a"], progress=lambda *a: calls.append(a))  # loaded: no loading line
    assert [c[0] for c in calls if c[0].startswith("loading")] == []


def test_index_build_reports_chunking_with_its_total_and_search_per_batch(
    registry: Any, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(12):
        (src / f"d{i:02d}.txt").write_text(f"note {i} about topic {i % 3}", encoding="utf-8")
    registry.snapshot("kb", src)
    calls: list[tuple[str, int, int | None]] = []
    emb = HashEmbedder(16)
    registry.build_index("corpus:kb", model=emb, progress=lambda *a: calls.append(a))
    chunking = [c for c in calls if c[0] == "chunking"]
    assert chunking[0] == ("chunking", 0, 12) and chunking[-1] == ("chunking", 12, 12)
    r = registry.open_retriever("corpus:kb", model=emb)
    calls.clear()
    r.search([f"topic {i}" for i in range(5)], 3, batch_size=2, progress=lambda *a: calls.append(a))
    assert calls == [("search", 0, 5), ("search", 2, 5), ("search", 4, 5), ("search", 5, 5)]


def _demo_step(tty: bool) -> bytes:
    demo = (REPO / "scripts" / "demo").read_text(encoding="utf-8")
    step = next(ln for ln in demo.splitlines() if ln.startswith("step()"))
    cmd = ["bash", "-c", f"{step}\nstep genreg init"]
    if not tty:
        return subprocess.run(cmd, capture_output=True, check=True).stdout
    main, child = pty.openpty()
    subprocess.run(cmd, stdout=child, check=True)
    os.close(child)
    out = os.read(main, 1000)
    os.close(main)
    return out


def test_demo_step_headers_have_ansi_only_on_a_tty() -> None:
    assert _demo_step(tty=False) == b"\n== genreg init\n"
    assert b"\x1b[1m== genreg init\x1b[0m" in _demo_step(tty=True)
