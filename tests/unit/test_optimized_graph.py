"""onnxruntime's optimised graph, saved once beside a model: reused, atomic, and optional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from dubbing_pipeline.dubbed_speech.tts import optimized_graph


def tiny_model(path: Path) -> Path:
    """y = (x + 1) * 2 with the constants folded by the EXTENDED level."""
    one = numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one")
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["h"]), helper.make_node("Mul", ["h", "two"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [one, two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": np.array([0.0, 1.0, 2.5], dtype=np.float32)})[0])


def test_the_graph_is_saved_once_and_computes_the_same(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "m.onnx")
    saved = optimized_graph(model)
    assert saved.parent == tmp_path and saved.name == f"m.ort-{ort.__version__}-extended.onnx"
    stamp = saved.stat().st_mtime_ns
    assert optimized_graph(model) == saved and saved.stat().st_mtime_ns == stamp
    assert np.array_equal(run(saved), run(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", saved.name]  # no partial file left


def test_where_the_graph_cannot_be_saved_the_model_runs_as_it_is(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "m.onnx")
    blocked = tmp_path / f"m.ort-{ort.__version__}-extended.onnx"
    blocked.mkdir()  # something that is not a file holds the saved graph's name
    assert optimized_graph(model) == model
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([blocked.name, "m.onnx"])  # no partial


def test_a_graph_onnxruntime_cannot_load_keeps_the_model_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    assert optimized_graph(broken) == broken
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]
