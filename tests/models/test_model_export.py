"""Export-ability smoke tests: the trained model class exports as is (no export copies)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from qualitas.models import build_model


def _onnx_parity(
    model: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    other: tuple[torch.Tensor, ...],
    *,
    dynamo: bool,
):
    ort = pytest.importorskip("onnxruntime")
    names = [f"in{i}" for i in range(len(example))]
    if dynamo:  # torch.export-based exporter (PyTorch's default)
        batch = torch.export.Dim("batch", min=1, max=64)
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            input_names=names,
            output_names=["score"],
            dynamic_shapes=tuple({0: batch} for _ in names),
            verbose=False,
        )
        data = program.model_proto.SerializeToString()
    else:  # TorchScript-based exporter
        buf = io.BytesIO()
        torch.onnx.export(
            model,
            example,
            buf,
            dynamo=False,
            input_names=names,
            output_names=["score"],
            dynamic_axes={n: {0: "batch"} for n in names},
        )
        data = buf.getvalue()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {n: x.numpy() for n, x in zip(names, other)})
    with torch.no_grad():
        np.testing.assert_allclose(got, model(*other).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_nr_iqa_onnx_and_trace():
    model = build_model("nr_iqa", backbone="test_resnet", head="distribution", num_bins=5).eval()
    x = torch.rand(1, 3, 64, 64)
    _onnx_parity(model, (x,), (torch.rand(3, 3, 64, 64),), dynamo=False)  # batch size is dynamic
    traced = torch.jit.trace(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_tsm_video_onnx_through_torch_export():
    model = build_model(
        "nr_vqa", backbone="test_resnet", tsm=True, num_segments=4, temporal_pool="attention"
    ).eval()
    x = torch.rand(2, 4, 3, 48, 48)
    _onnx_parity(model, (x,), (torch.rand(3, 4, 3, 48, 48),), dynamo=True)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_fr_iqa_trace():
    model = build_model("fr_iqa", backbone="test_resnet", fusion="siamese").eval()
    d, r = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    traced = torch.jit.trace(model, (d, r))
    with torch.no_grad():
        torch.testing.assert_close(traced(d, r), model(d, r))


@pytest.mark.parametrize("fusion", ["diff6", "siamese"])
def test_fr_torch_export_with_dynamic_batch(fusion):
    model = build_model("fr_iqa", backbone="test_resnet", fusion=fusion).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    d, r = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    program = torch.export.export(model, (d, r), dynamic_shapes=({0: batch}, {0: batch}))
    d3, r3 = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(d3, r3), model(d3, r3))
