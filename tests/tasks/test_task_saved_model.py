"""`--format saved_model` for the task models (classifier, segmenter) and the importance
predictor, checked in TensorFlow's own runtime. Skipped where no TensorFlow environment is
set up (`make tf-env`, or QUALITAS_TF_PYTHON)."""

from __future__ import annotations

import pytest
import torch

from qualitas.errors import UsageError
from qualitas.export.pipeline import export_model
from qualitas.export.saved_model import tf_available
from qualitas.runtime.vision import load_task_model

pytestmark = [
    pytest.mark.skipif(
        not tf_available(),
        reason="no TensorFlow environment: `make tf-env` (or set QUALITAS_TF_PYTHON) to run SavedModel tests",
    ),
    pytest.mark.slow,
]


@pytest.mark.parametrize("task", ["cls", "seg"])
def test_task_saved_model_parity_and_predict(task, cls_run, seg_run, tmp_path):
    pytest.importorskip("onnxruntime")
    run = cls_run if task == "cls" else seg_run
    size = (64, 64)  # both were trained on images as they are (any size): the size to serve
    res = export_model(
        run.run_dir, "saved_model", tmp_path / "sm", verify=True, io_names="triton", input_size=size
    )
    assert res.parity.ok and res.parity.max_abs_diff <= 1e-4
    assert any(c["name"].startswith("sample") for c in res.parity.cases)  # real photos, in TensorFlow
    card = res.card
    assert card.output.kind == ("classes" if task == "cls" else "segmentation")
    h, w = card.input.height, card.input.width
    # Dense (B, K, H, W) logits come back in the ONNX (NCHW) layout, batch dynamic.
    want_out = [None, 3] if task == "cls" else [None, 4, h, w]
    assert card.export["signature_inputs"] == {"INPUT__0": [None, 3, h, w]}
    assert card.export["signature_outputs"] == {"OUTPUT__0": want_out}
    exported, eager = load_task_model(tmp_path / "sm"), load_task_model(run.run_dir)
    x = torch.rand(3, 3, h, w)
    assert torch.allclose(exported.logits(x), eager.logits(x), atol=1e-4)
    got, want = exported.read(exported.logits(x)), eager.read(eager.logits(x))
    if task == "cls":
        assert [p.row["label"] for p in got] == [p.row["label"] for p in want]
    else:  # the class maps agree (a near-tie may flip a pixel)
        assert all((g.mask == w.mask).mean() > 0.99 for g, w in zip(got, want))


def _importance_source(num_classes: int):
    from qualitas.export.card import ModelCard
    from qualitas.export.pipeline import Source
    from qualitas.models import build_model

    torch.manual_seed(0)
    model = build_model("importance", backbone="test_resnet", block=16, num_classes=num_classes, hidden=8)
    spec = model.spec.to_dict()
    info = {"spec": spec, "model": {"name": "importance", "kwargs": dict(model.spec.build_kwargs)}}
    return Source(model.eval(), ModelCard.from_training(spec, {**info, "input_size": {"mode": "none"}}))


def test_importance_predictor_saved_model_at_a_fixed_size(tmp_path):
    """The importance predictor takes frames of any size; onnx2tf converts it at the frame
    size given with --input-size. 64x64 frames: a square 4x4 grid, whose layout the shapes
    cannot tell (resolved against ONNX Runtime inside the TF environment)."""
    pytest.importorskip("onnxruntime")
    src = _importance_source(0)
    with pytest.raises(UsageError, match="needs a fixed height/width .* give --input-size H W"):
        export_model(src, "saved_model", tmp_path / "any")
    res = export_model(src, "saved_model", tmp_path / "sm", verify=True, input_size=(64, 64))
    assert res.parity.ok and res.parity.max_abs_diff <= 1e-4
    assert res.card.export["signature_outputs"] == {"score": [None, 4, 4]}
    assert res.card.input.height == 64 and not res.card.input.dynamic_hw
    with pytest.raises(UsageError, match="does not go with --dynamic"):
        export_model(src, "saved_model", tmp_path / "x", dynamic=True, input_size=(64, 64))
