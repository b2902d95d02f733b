"""Round trips of a trained model through every export format, the card, verify, int8."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import qualitas
from qualitas.cli.main import main
from qualitas.export.card import ModelCard, read_card
from qualitas.export.formats import FORMATS

FORMAT_NAMES = ["onnx", "torchscript", "exported_program", "openvino"]
FILES = {
    "onnx": "model.onnx",
    "torchscript": "model.pt",
    "exported_program": "model.pt2",
    "openvino": "model.xml",
}


def _need(fmt: str) -> None:
    if fmt == "openvino":
        pytest.importorskip("openvino")
    if fmt in ("onnx", "openvino"):
        pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_round_trip_scores_match_pytorch(fmt, export_of, trained_run, media):
    _need(fmt)
    res = export_of(fmt, dynamic=fmt == "onnx")  # ONNX: also dynamic height/width
    assert res.parity is not None and res.parity.ok, res.parity.summary()
    assert res.parity.max_abs_diff <= 1e-4
    names = {c["name"] for c in res.parity.cases}
    assert {"random batch 1", "random batch 2", "sample photos"} <= names  # random and real content
    assert (res.folder / FILES[fmt]).is_file() and (res.folder / "model.json").is_file()
    # The runtime on the exported folder scores like PyTorch on the checkpoint, through
    # the card alone (sizing: resize short side 64 + centre crop 64; MOS de-normalised).
    exported = qualitas.load_model(res.folder)
    pytorch = qualitas.load_model(trained_run)
    images = sorted(media["images"].iterdir())
    got, want = exported.score_batch(images), pytorch.score_batch(images)
    assert len(got) == 3
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-4
    assert len(set(want)) == 3  # different photos, different scores: the comparison means something


def test_runtime_matches_training_predictions(trained_run):
    """The runtime reproduces the predictions training wrote for its validation split."""
    model = qualitas.load_model(trained_run)
    rows = [json.loads(line) for line in (trained_run / "predictions_val.jsonl").read_text().splitlines()]
    root = model.card.trained_on["root"]
    assert len(rows) == 4
    for row in rows:
        assert model.score(f"{root}/{row['path']}") == pytest.approx(row["pred"], abs=1e-5)


def test_card_fields(export_of, trained_run):
    res = export_of("torchscript")
    card = read_card(res.folder)
    d = json.loads((res.folder / "model.json").read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert d["card_version"] == 1 and d["qualitas_version"] == qualitas.__version__
    assert card.name == "tiny_koniq"
    assert card.full_reference is False and card.video is False and card.clips is None
    assert card.input.names == ("dist",) and card.input.layout == "NCHW" and card.input.channels == 3
    assert card.input.value_range == (0.0, 1.0) and card.input.normalized_inside is True
    # the backbone's statistics (timm's test_resnet: 0.5), applied inside the graph
    assert card.input.mean == (0.5, 0.5, 0.5) and card.input.std == (0.5, 0.5, 0.5)
    assert card.input.mean == tuple(card.architecture["mean"])
    assert card.input.size_policy == {
        "mode": "crop",
        "size": [64, 64],
        "resize_short": 64,
        "grid": 7,
        "patch": 32,
    }
    assert (card.input.height, card.input.width, card.input.dynamic_batch) == (64, 64, True)
    # config: mos_norm minmax over score_range [1, 5] -> mos = y * 4 + 1
    assert card.output.kind == "score" and card.output.mos_norm == "minmax"
    assert (card.output.scale, card.output.shift) == (4.0, 1.0)
    assert card.output.score_range == (1.0, 5.0) and card.output.higher_is_better is True
    assert card.evaluation["val"]["srocc"] == pytest.approx(metrics["val"]["srocc"])
    assert card.evaluation["val"]["plcc"] == pytest.approx(metrics["val"]["plcc"])
    assert card.trained_on["dataset"] == "image" and card.trained_on["target"] == "mos"
    assert card.export["format"] == "torchscript" and card.export["file"] == "model.pt"
    assert card.export["parity"]["ok"] is True
    assert ModelCard.from_dict(card.to_dict()) == card  # lossless round trip


def test_dynamic_height_width_onnx(export_of):
    pytest.importorskip("onnxruntime")
    res = export_of("onnx", dynamic=True)
    card = res.card
    assert card.input.dynamic_hw and card.input.height is None and card.input.width is None
    other = [c for c in res.parity.cases if c["name"] == "random batch 3 other size"]
    assert other and other[0]["shape"] == [3, 3, 96, 128] and other[0]["max_abs_diff"] <= 1e-4


def test_cli_parity_failure_exits_1_and_prints_difference(trained_run, tmp_path, monkeypatch, capsys):
    """A runtime that computes something else (here: scores + 1e-3) fails --verify."""
    fmt = FORMATS.get("torchscript")

    def broken_load(path, card, device="cpu"):
        runner = fmt.load(path, card, device)
        return lambda *x: runner(*x) + 1e-3

    monkeypatch.setitem(FORMATS._items, "torchscript", dataclasses.replace(fmt, load=broken_load))
    rc = main(
        ["export", str(trained_run), "--format", "torchscript", "--out", str(tmp_path / "x"), "--verify"]
    )
    out, err = capsys.readouterr()
    assert rc == 1
    assert "parity check failed: max |diff| 0.001 > 0.0001" in err
    assert "max |diff| 0.001" in out  # the per-input table
    card = read_card(tmp_path / "x")
    assert card.export["parity"]["ok"] is False


def test_cli_quantize_int8_reports_score_change(trained_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    rc = main(
        ["export", str(trained_run), "--format", "onnx", "--out", str(tmp_path / "q"), "--quantize", "int8"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "int8 (static): max score change" in out
    card = read_card(tmp_path / "q")
    assert card.file == "model.int8.onnx" and card.export["fp32_file"] == "model.onnx"
    q = card.export["quantized"]
    # int8 moves scores a little, never to another part of the [1, 5] scale
    assert 0 < q["max_abs_change"] < 0.5
    int8 = qualitas.load_model(tmp_path / "q")
    fp32 = qualitas.load_model(tmp_path / "q" / "model.onnx")
    x = torch.rand(3, 64, 64)
    assert int8.score(x) != fp32.score(x)
    assert abs(int8.score(x) - fp32.score(x)) < 0.5


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "torchscript", "--quantize", "int8"], "applies to --format onnx"),
        (["--format", "torchscript", "--opset", "17"], "--opset applies to"),
        (["--format", "onnx", "--input-size", "64", "64"], "applies to models that take any size"),
        (["--format", "saved_model", "--dynamic"], "saved_model needs a fixed height/width"),
    ],
)
def test_cli_usage_errors(trained_run, tmp_path, capsys, argv, message):
    rc = main(["export", str(trained_run), "--out", str(tmp_path / "u"), *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_cli_missing_source(tmp_path, capsys):
    rc = main(["export", str(tmp_path / "nope"), "--format", "onnx", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "not found" in capsys.readouterr().err
