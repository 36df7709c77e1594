"""The type checker's escape hatches stay rare and explained (mypy itself runs in scripts/test)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "genreg"
_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
_EXPLAINED = re.compile(r"^\[[a-z0-9-]+(,\s*[a-z0-9-]+)*\]\s+#\s*\S")


def test_every_type_ignore_names_its_error_code_and_reason() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = _IGNORE.search(line)
            if m and not _EXPLAINED.match(m.group("rest").strip()):
                bad.append(f"{path.relative_to(SRC.parent)}:{n}: {line.strip()}")
    assert not bad, "write `# type: ignore[code]  # why`:\n" + "\n".join(bad)


def test_mypy_is_configured_for_src_and_run_by_scripts_test() -> None:
    root = SRC.parents[1]
    assert 'files = ["src"]' in (root / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^mypy\b", (root / "scripts" / "test").read_text(), re.M)
