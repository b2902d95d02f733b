"""eval / predict / export / data check|browse of the task models, and the example configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.cli.main import main
from qualitas.export.pipeline import export_model
from qualitas.runtime.vision import load_task_model
from qualitas.training.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported_program", "openvino"])
@pytest.mark.parametrize("task", ["cls", "seg"])
def test_export_parity_every_format(task, fmt, cls_run, seg_run, tmp_path):
    run = cls_run if task == "cls" else seg_run
    res = export_model(run.run_dir, fmt, tmp_path / fmt, verify=True, dynamic=True)
    assert res.parity.ok and res.parity.max_abs_diff <= 1e-4  # raw logits vs eager, real photos included
    assert any(c["shape"][0] == 3 and c["shape"][2:] != [128, 128] for c in res.parity.cases)  # dynamic
    card = res.card
    assert card.output.kind == ("classes" if task == "cls" else "segmentation")
    assert card.input.dynamic_batch and card.input.dynamic_hw
    assert list(card.output.labels)[:2] == (
        ["circle", "square"] if task == "cls" else ["background", "circle"]
    )
    # The exported file predicts what the run predicts.
    exported, eager = load_task_model(tmp_path / fmt), load_task_model(run.run_dir)
    x = torch.rand(2, 3, 40, 56)
    assert torch.allclose(exported.logits(x), eager.logits(x), atol=1e-4)


def test_eval_predict_cli(cls_run, cls_data, tmp_path, capsys):
    out = tmp_path / "ev" / "results.json"
    args = [
        "eval",
        str(cls_run.run_dir),
        "--out",
        str(out),
        "--show-dir",
        str(tmp_path / "show"),
        "--max-show",
        "3",
    ]
    assert main([*args, "--fuse-conv-bn"]) == 0
    res = json.loads(out.read_text())
    assert res["split"] == "test" and res["n"] == 90 and res["fused_conv_bn"] > 0
    assert res["metrics"]["top1"] == pytest.approx(cls_run.metrics["test"]["top1"], abs=1e-6)
    assert sum(r["correct"] for r in res["predictions"]) == round(res["metrics"]["top1"] * 90)
    assert out.with_suffix(".png").is_file() and len(list((tmp_path / "show").glob("*.png"))) == 3
    # A config + --weights, with another list through -o.
    few = cls_data / "few_for_eval.txt"  # beside images/: list paths are relative to the list
    few.write_text("".join((cls_data / "val.txt").read_text().splitlines(True)[:6]))
    cfg = cls_run.run_dir / "config.yaml"
    assert (
        main(
            [
                "eval",
                str(cfg),
                "--weights",
                str(cls_run.run_dir),
                "-o",
                f"data.test={few}",
                "--out",
                str(tmp_path / "few.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "few.json").read_text())["n"] == 6
    capsys.readouterr()
    imgs = sorted((cls_data / "images").glob("test_*.png"))[:3]
    assert (
        main(
            [
                "predict",
                str(cls_run.run_dir),
                *map(str, imgs),
                str(tmp_path / "nope.png"),
                "--show-dir",
                str(tmp_path / "pred"),
            ]
        )
        == 1
    )  # the missing file is reported, the rest done
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert [r["label"] for r in rows] == ["circle", "square", "triangle"]  # what those images hold
    assert "nope.png: not found" in cap.err and len(list((tmp_path / "pred").glob("*.png"))) == 3


def test_predict_video_frames_segmentation(seg_run, tmp_path):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 48, 48, "yuv420p"
        for i in range(4):
            frame = np.zeros((48, 48, 3), np.uint8)
            frame[10 + i : 30 + i, 10:30] = (250, 30, 30)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    m = load_task_model(seg_run.run_dir)
    assert (
        main(
            [
                "predict",
                str(seg_run.run_dir),
                str(path),
                "--frame-step",
                "2",
                "--out",
                str(tmp_path / "p.jsonl"),
                "--mask-dir",
                str(tmp_path / "masks"),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 2]
    mask = np.array(Image.open(rows[0]["mask"]))
    assert mask.shape == (48, 48) and mask.max() < len(m.classes)


def test_score_refuses_a_task_model(cls_run, capsys, tmp_path):
    _img = tmp_path / "a.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(_img)
    assert main(["score", str(_img), "--model", str(cls_run.run_dir)]) != 0
    assert "use qualitas predict" in capsys.readouterr().err


def test_data_check_and_browse(seg_run, seg_data, tmp_path, capsys):
    cfg = seg_run.run_dir / "config.yaml"
    assert main(["data", "check", str(cfg)]) == 0
    assert '"ok": true' in capsys.readouterr().out
    assert main(["data", "browse", str(cfg), "--out", str(tmp_path / "b"), "--max", "4"]) == 0
    assert len(list((tmp_path / "b").glob("*.png"))) == 4
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "images" / "a.jpg")
    Image.fromarray(np.full((8, 8), 9, np.uint8), mode="L").save(bad / "masks" / "a.png")
    capsys.readouterr()
    assert (
        main(
            [
                "data",
                "check",
                str(cfg),
                "-o",
                f"data.train={bad}",
                "-o",
                f"data.val={bad}",
                "-o",
                "data.test=null",
            ]
        )
        != 0
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "a.jpg: mask value 9 out of range" in err


@pytest.mark.parametrize(
    "name",
    [
        "classification.yaml",
        "classification_list.yaml",
        "segmentation.yaml",
        "importance_seg.yaml",
        "detection.yaml",
        "keypoints.yaml",
    ],
)
def test_example_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.task in ("classification", "segmentation", "detection", "keypoints") and cfg.data.train


def test_importance_seg_config_reads_the_exported_dataset(tmp_path):
    from qualitas.importance.dataset_export import export_dataset
    from qualitas.importance.enhancers import Bicubic, Unsharp
    from qualitas.importance.label import label_media
    from qualitas.training.run import train

    src = tmp_path / "src"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        Image.fromarray((torch.rand(64, 64, 3, generator=g) * 255).byte().numpy()).save(src / f"i{i}.png")

    def objective(x):
        return x[..., :16, :16].pow(2).sum(dim=(1, 2, 3))

    label_media(
        [src], tmp_path / "labels", objective, Unsharp(2), Bicubic(2), scale=2, downscale=2, block=8, k=10
    )
    export_dataset(tmp_path / "labels", tmp_path / "ds", ratios={"train": 0.5, "val": 0.25, "test": 0.25})
    ds = tmp_path / "ds"
    cfg = load_config(
        CONFIGS / "importance_seg.yaml",
        [
            f"data.train={ds / 'train.txt'}",
            f"data.val={ds / 'val.txt'}",
            f"data.test={ds / 'test.txt'}",
            "model.backbone=test_resnet",
            "model.pretrained=false",
            "data.input_size.size=[32,32]",
            "data.batch_size=2",
            "data.num_workers=0",
            "trainer.max_epochs=1",
            "trainer.progress_bar=false",
        ],
    )
    res = train(cfg, out=tmp_path / "run")
    assert len(res.metrics["val"]["iou"]) == 10 and res.metrics["classes"][0] == "class0"


def test_eval_counts_segmentation_at_mask_resolution(seg_run, tmp_path):
    """Inputs resized to 20x20, masks of their own sizes with 1-px lines on odd columns (a
    nearest-resized mask loses every one): figures are counted at each mask's resolution."""
    import torch.nn.functional as F

    from qualitas.training.run import load_trained
    from qualitas.training.vision_eval import evaluate_task

    rng = np.random.default_rng(3)
    root = tmp_path / "thin"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masks = []
    for i, (h, w) in enumerate([(40, 40), (36, 44), (44, 36)]):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        for k, col in enumerate(range(1, w, 4)):
            mask[2:, col] = 1 + k % 3
            img[2:, col] = (255, 40 * (k % 3), 0)
        mask[0, :] = 255  # ignored
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"{i}.png")
        masks.append(mask)
    res = evaluate_task(
        seg_run.run_dir / "config.yaml",
        weights=seg_run.run_dir,
        overrides=[f"data.test={root}", "data.input_size={mode: resize, size: [20, 20]}"],
        out=tmp_path / "thin.json",
    )
    figs = res["metrics"]
    assert figs["n"] == sum(int((m != 255).sum()) for m in masks)  # full-resolution pixels
    # The same count by hand: the model on the 20x20 input, logits upsampled bilinearly to
    # the mask's size, a numpy confusion matrix over the non-ignored pixels.
    model, _ = load_trained(seg_run.run_dir)
    cm = np.zeros((4, 4), np.int64)
    for i, m in enumerate(masks):
        x = (
            torch.from_numpy(np.array(Image.open(root / "images" / f"{i}.png"))).permute(2, 0, 1)[None]
            / 255.0
        )
        x = F.interpolate(x, size=(20, 20), mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            z = F.interpolate(model(x), size=m.shape, mode="bilinear", align_corners=False)
        pred = z[0].argmax(0).numpy()
        keep = m != 255
        cm += np.bincount(m[keep].astype(np.int64) * 4 + pred[keep], minlength=16).reshape(4, 4)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    iou = [tp[k] / union[k] if union[k] else None for k in range(4)]
    assert figs["iou"] == pytest.approx(iou, abs=0.02)  # antialias rounding: a pixel or two may flip
    assert figs["pixel_acc"] == pytest.approx(tp.sum() / cm.sum(), abs=0.01)
    # Its own test split: the run's test figures (also counted at mask resolution).
    own = evaluate_task(seg_run.run_dir, out=tmp_path / "own.json")
    assert own["metrics"]["miou"] == pytest.approx(seg_run.metrics["test"]["miou"], abs=1e-6)
