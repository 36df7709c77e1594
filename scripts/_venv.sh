# Sourced by scripts/demo and scripts/test: create or reuse .venv and install genreg into it.
# torch is installed first and pinned (torch==2.13.0) so nothing pulls a multi-GB CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GENREG_VENV:-$ROOT/.venv}"
MODE="${1:-run}"   # run | test
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
STAMP="$VENV/.genreg-installed-$MODE"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    echo "installing genreg into $VENV (first run only)..." >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    if [ "$MODE" = "test" ]; then
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
    else
        "$VENV/bin/python" -m pip install -q -e "$ROOT"
    fi
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
