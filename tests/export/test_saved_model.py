"""`--format saved_model`: onnx2tf in the TensorFlow environment (`make tf-env`), checked
against TensorFlow's own runtime. Skipped where no TensorFlow environment is set up."""

from __future__ import annotations

import json

import pytest

import qualitas
from qualitas.cli.main import main
from qualitas.export.card import read_card
from qualitas.export.saved_model import tf_available

pytestmark = pytest.mark.skipif(
    not tf_available(),
    reason="no TensorFlow environment: `make tf-env` (or set QUALITAS_TF_PYTHON) to run SavedModel tests",
)


@pytest.mark.slow
def test_saved_model_triton_names_verify_and_score(trained_run, tmp_path, media, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "sm"
    rc = main(
        [
            "export",
            str(trained_run),
            "--format",
            "saved_model",
            "--out",
            str(out),
            "--io-names",
            "triton",
            "--verify",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert (out / "saved_model" / "saved_model.pb").is_file()
    card = read_card(out)
    assert card.format == "saved_model" and card.file == "saved_model"
    # The signature has the ONNX contract: the card's names, NCHW, dynamic batch.
    assert card.export["signature_inputs"] == {"INPUT__0": [None, 3, 64, 64]}
    assert card.export["signature_outputs"] == {"OUTPUT__0": [None]}
    parity = card.export["parity"]
    assert parity["ok"] and parity["max_abs_diff"] <= 1e-4
    assert any(c["name"] == "sample photos" for c in parity["cases"])  # real content, in TF's runtime

    dest = tmp_path / "scores.json"
    # --model takes the export folder, its model.json, or (here) the SavedModel folder itself
    rc = main(
        ["score", str(media["images"]), "--model", str(out / "saved_model"), "--out", str(dest), "--quiet"]
    )
    assert rc == 0
    got = {r["path"]: r["scores"]["tiny_koniq"] for r in json.loads(dest.read_text())["results"]}
    pytorch = qualitas.load_model(trained_run)
    want = {str(p): pytorch.score(p) for p in sorted(media["images"].iterdir())}
    assert len(got) == 3 and max(abs(got[k] - want[k]) for k in want) < 1e-4
    assert len(set(want.values())) == 3  # different photos, different scores
