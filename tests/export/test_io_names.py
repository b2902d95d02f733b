"""Graph names (--io-names triton, --input-name/--output-name) and --opset checks."""

from __future__ import annotations

import json

import pytest
import torch

import qualitas
from qualitas.cli.main import main
from qualitas.errors import UsageError
from qualitas.export.card import read_card
from qualitas.export.common import ExportError, with_io_names
from qualitas.export.pipeline import export_model, load_source


def test_triton_names_onnx_verify_and_score_model(trained_run, tmp_path, media, capsys):
    """A Triton-named ONNX export at opset 21: the file, the card and --verify agree, and `qualitas score
    --model` scores with it exactly like the run it came from."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "triton"
    argv = ["--format", "onnx", "--out", str(out), "--io-names", "triton", "--opset", "21", "--verify"]
    rc = main(["export", str(trained_run), *argv])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "INPUT__0 (B,3,64,64) -> OUTPUT__0" in text and "parity ok" in text
    proto = onnx.load(str(out / "model.onnx"))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [21]
    graph = proto.graph
    assert [i.name for i in graph.input] == ["INPUT__0"]
    assert [o.name for o in graph.output] == ["OUTPUT__0"]
    card = read_card(out)
    assert card.input.names == ("INPUT__0",) and card.output.name == "OUTPUT__0"
    assert card.export["opset"] == 21
    assert card.export["parity"]["ok"] and card.export["parity"]["max_abs_diff"] <= 1e-4

    scores = {}
    for model in (str(out / "model.onnx"), str(trained_run)):
        dest = tmp_path / f"scores_{len(scores)}.json"
        assert main(["score", str(media["images"]), "--model", model, "--out", str(dest), "--quiet"]) == 0
        doc = json.loads(dest.read_text())
        scores[model] = {r["path"]: r["scores"]["tiny_koniq"] for r in doc["results"]}
    exported, pytorch = scores.values()
    assert exported.keys() == pytorch.keys() and len(exported) == 3
    assert max(abs(exported[k] - pytorch[k]) for k in exported) < 1e-4

    # The names are read from the file and checked against the card, never assumed.
    doc = json.loads((out / "model.json").read_text())
    doc["input"]["names"] = ["dist"]
    (out / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ExportError, match=r"graph inputs \['INPUT__0'\]"):
        qualitas.load_model(out)


def test_explicit_names_openvino(trained_run, tmp_path):
    """Explicit names reach the OpenVINO IR (converted from the ONNX export) and its runner."""
    pytest.importorskip("openvino")
    res = export_model(trained_run, "openvino", tmp_path / "ov", input_names=["image"], output_name="mos")
    assert res.card.input.names == ("image",) and res.card.output.name == "mos"
    model = qualitas.load_model(tmp_path / "ov")
    assert model.runner.names == ["image"]
    x = torch.rand(3, 64, 64)
    assert model.score(x) == pytest.approx(qualitas.load_model(trained_run).score(x), abs=1e-4)


def test_name_rules(trained_run):
    card = load_source(trained_run).card
    fr = card.with_input(names=("dist", "ref"))
    assert with_io_names(fr, "triton").input.names == ("INPUT__0", "INPUT__1")
    assert with_io_names(card).input.names == ("dist",) and with_io_names(card).output.name == "score"
    with pytest.raises(UsageError, match="1 input .*got 2 input name"):
        with_io_names(card, input_names=["a", "b"])
    with pytest.raises(UsageError, match="distinct"):
        with_io_names(card, input_names=["x"], output_name="x")
    with pytest.raises(UsageError, match="invalid graph name"):
        with_io_names(card, output_name="bad name")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "onnx", "--opset", "11"], "--opset 11 is not supported here: torch"),
        (["--format", "onnx", "--opset", "99"], "--opset 99 is not supported here"),
        (["--format", "onnx", "--output-name", "a b"], "invalid graph name"),
    ],
)
def test_cli_one_line_errors(trained_run, tmp_path, capsys, argv, message):
    pytest.importorskip("onnx")
    rc = main(["export", str(trained_run), "--out", str(tmp_path / "e"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
