"""The ONNX rewrites the SavedModel worker applies before onnx2tf keep what the graph
computes (checked with ONNX Runtime in qualitas' own environment: no TensorFlow needed)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from qualitas.export.card import ModelCard
from qualitas.export.pipeline import Source, export_model
from qualitas.export.saved_model import WORKER
from qualitas.models import build_model


def _worker():
    before = dict(os.environ)  # the worker sets TensorFlow's environment variables on import
    spec = importlib.util.spec_from_file_location("qualitas_tf_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    os.environ.clear()
    os.environ.update(before)
    return mod


def test_resize_sizes_become_scales_and_outputs_stay(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = build_model("importance", backbone="test_resnet", block=16, num_classes=10, hidden=8).eval()
    spec = model.spec.to_dict()
    info = {"spec": spec, "model": {"name": "importance", "kwargs": dict(model.spec.build_kwargs)}}
    src = Source(model, ModelCard.from_training(spec, {**info, "input_size": {"mode": "none"}}))
    # A frame size that is not a multiple of the grid: non-integer resize ratios.
    res = export_model(src, "onnx", tmp_path / "onnx", input_size=(72, 100))
    assert res.card.input.height == 72 and res.card.input.width == 100 and not res.card.input.dynamic_hw
    fixed = tmp_path / "fixed.onnx"
    info = _worker().prepare_onnx(str(res.path), str(fixed))
    assert info["rewritten_resizes"] == 2  # feature fusion + the grid resize: both had computed sizes
    resizes = [n for n in onnx.load(str(fixed)).graph.node if n.op_type == "Resize"]
    assert len(resizes) == 2 and all(len(n.input) == 3 and n.input[2] for n in resizes)  # scales, no sizes
    x = np.random.default_rng(0).random((3, 3, 72, 100), dtype=np.float32)
    want = ort.InferenceSession(str(res.path)).run(None, {"dist": x})[0]
    got = ort.InferenceSession(str(fixed)).run(None, {"dist": x})[0]
    assert got.shape == want.shape == (3, 10, 5, 7)
    np.testing.assert_allclose(got, want, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(want, model(torch.from_numpy(x)).numpy(), atol=1e-4)
