"""The model-directory pre-flight accepts every weights layout a loader reads -- sharded
checkpoints and ONNX/OpenVINO-only exports included -- and still refuses a directory with no
weights (one line naming it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genreg.errors import ConfigError
from genreg.retrieval.model_check import check_model_dir, model_dir_problem

ST_MODULES = (
    '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]'
)


def _model(tmp_path: Path, files: list[str], *, st: bool) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "bert"}')
    if st:
        (d / "modules.json").write_text(ST_MODULES)
    for rel in files:
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(b"x")
    return d


@pytest.mark.parametrize("st", [False, True])
@pytest.mark.parametrize(
    "files",
    [
        ["model.safetensors"],
        ["pytorch_model.bin"],
        ["model.safetensors.index.json", "model-00001-of-00002.safetensors"],
        ["pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"],
        ["onnx/model.onnx"],
        ["onnx/model_qint8_avx512.onnx"],
        ["openvino/openvino_model.xml", "openvino/openvino_model.bin"],
    ],
)
def test_every_weights_layout_passes_the_check(tmp_path: Path, files: list[str], st: bool) -> None:
    d = _model(tmp_path, files, st=st)
    assert model_dir_problem(d) is None
    check_model_dir("m", d)


@pytest.mark.parametrize("files", [[], ["tokenizer.json"], ["onnx/README.md"], ["openvino"]])
def test_no_weights_is_one_line(tmp_path: Path, files: list[str]) -> None:
    d = _model(tmp_path, [f for f in files if f != "openvino"], st=True)
    if "openvino" in files:
        (d / "openvino").mkdir()
    with pytest.raises(ConfigError) as exc:
        check_model_dir("m", d)
    msg = str(exc.value)
    assert msg.startswith(f"embedding model m: no weights in {d} (") and "\n" not in msg
