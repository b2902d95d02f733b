"""Label -> segmentation dataset export -> one tiny epoch of the predictor via `qualitas train`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.importance.dataset_export import export_dataset
from qualitas.importance.enhancers import Bicubic, Unsharp
from qualitas.importance.label import LabelSet, label_media

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "importance_faces.yaml"


def _bright_square_objective(x: torch.Tensor) -> torch.Tensor:
    # Depends only on the pixels of the upper-left quarter: importance lives there.
    h, w = x.shape[-2:]
    return x[..., : h // 2, : w // 2].pow(2).sum(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def labels_dir(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    g = torch.Generator().manual_seed(0)
    for i in range(10):
        arr = (torch.rand(64, 64, 3, generator=g) * 255).byte().numpy()
        Image.fromarray(arr).save(src / f"img{i}.png")
    out = tmp_path_factory.mktemp("labels")
    label_media(
        [src], out, _bright_square_objective, Unsharp(2), Bicubic(2), scale=2, downscale=2, block=8, k=4
    )
    return out


def test_label_folder_and_export(labels_dir, tmp_path):
    labels = LabelSet.load(labels_dir)
    assert len(labels.frames) == 10 and labels.raw[0].shape == (4, 4)  # 32x32 low-res, 8 px blocks
    assert all((r[:2, :2] > 0).all() and (r[2:, :] == 0).all() for r in labels.raw)
    counts = export_dataset(labels_dir, tmp_path / "ds", ratios={"train": 0.6, "val": 0.2, "test": 0.2})
    assert counts == {"train": 6, "val": 2, "test": 2}
    lines = (tmp_path / "ds" / "train.txt").read_text().splitlines()
    img_rel, lab_rel = lines[0].split(" ")
    lab = np.array(Image.open(tmp_path / "ds" / lab_rel))
    img = Image.open(tmp_path / "ds" / img_rel)
    assert lab.shape == (img.size[1], img.size[0]) == (32, 32) and lab.dtype == np.uint8
    stem = Path(lab_rel).stem
    cls = labels.classes[labels.frames.index(f"frames/{stem}.png")]
    # Nearest-neighbour upsampling: every 8x8 tile carries its block's class.
    np.testing.assert_array_equal(lab, np.kron(cls, np.ones((8, 8), dtype=np.uint8)))
    assert lab.max() == 3 and (lab[16:, :] == 0).all()
    assert len((tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()) == 10


@pytest.mark.parametrize(
    "model_args",
    [
        ["model.num_classes=4", "loss={name: importance_ce}"],
        ["model.num_classes=0", "loss=importance_mse"],
        # The frozen MTCNN P-Net pyramid (as in docs/benchmarks.md "Importance"), exported.
        pytest.param(
            ["model.num_classes=0", "loss=importance_mse", "model.backbone=mtcnn_pnet"],
            marks=pytest.mark.skipif(
                importlib.util.find_spec("facenet_pytorch") is None,
                reason="needs facenet-pytorch",
            ),
        ),
    ],
)
def test_predictor_trains_one_epoch(labels_dir, tmp_path, model_args):
    from qualitas.training.config import load_config
    from qualitas.training.run import load_trained, train

    export_dataset(labels_dir, tmp_path / "ds", ratios={"train": 0.6, "val": 0.2, "test": 0.2})
    cfg = load_config(
        CONFIG,
        [
            f"data.manifest={tmp_path / 'ds' / 'manifest.jsonl'}",
            "model.backbone=test_resnet",
            "model.block=8",
            "model.hidden=8",
            "data.num_workers=0",
            "data.batch_size=4",
            "data.input_size={mode: crop, size: [24, 24], hflip: true}",
            "trainer.max_epochs=1",
            "trainer.accelerator=cpu",
            "trainer.progress_bar=false",
            *model_args,
        ],
    )
    res = train(cfg, out=tmp_path / "run")
    val = res.metrics["val"]
    assert val["n"] == 2 and -1.0 <= val["srocc"] <= 1.0 and 0.0 <= val["topk_iou"] <= 1.0
    model, info = load_trained(res.run_dir)
    out = model(torch.rand(1, 3, 32, 40))
    assert out.shape[-2:] == (4, 5) and info["spec"]["output"].startswith("grid")
    if model_args[0] == "model.num_classes=4" or "mtcnn" in model_args[-1]:  # export, with parity
        pytest.importorskip("onnxruntime")
        from qualitas.export.pipeline import export_model

        exp = export_model(res.run_dir, "onnx", tmp_path / "onnx", verify=True)
        assert exp.parity is not None and exp.parity.ok


def test_predictor_exports_to_onnx(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from qualitas.models import build_model

    model = build_model("importance", backbone="test_resnet", block=16, num_classes=10, hidden=8).eval()
    x = torch.rand(1, 3, 64, 96)
    path = tmp_path / "imp.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["frame"], output_names=["logits"], dynamo=False)
    got = onnxruntime.InferenceSession(str(path)).run(None, {"frame": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)
    assert got.shape == (1, 10, 4, 6)


def test_block_size_with_partial_edge_blocks():
    from qualitas.data.importance import _block_of
    from qualitas.errors import MediaError

    # 132x180 low-res frame, 16 px blocks -> 9x12 grid with partial last row and column.
    assert _block_of(132, 180, 9, 12, "f.png", 16) == 16
    assert _block_of(132, 180, 9, 12, "f.png", None) == 16
    with pytest.raises(MediaError):
        _block_of(132, 180, 9, 12, "f.png", 8)
