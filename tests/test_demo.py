"""`python -m qualitas.demo --quick`: the demo end to end at tiny sizes, then a re-run that
reuses everything. Slow: five child processes (synth, train, eval, export, score) each
import torch; about 1-4 minutes on a busy 2-core machine."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("skimage.data")
pytest.importorskip("onnxruntime")
pytest.importorskip("lightning")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_demo_runs_and_reuses_its_outputs(tmp_path, capsys):
    from qualitas import demo

    out = tmp_path / "demo-output"
    summary = demo.run(out, demo.QUICK)
    for rel in (
        "synth/images.jsonl",
        "run/metrics.json",
        "eval/results.json",
        "eval/results.png",
        "export/model.onnx",
        "export/model.json",
        "clip/pristine.mp4",
        "clip/distorted.mp4",
        "scores/vmaf_distorted.json",
        "summary.json",
    ):
        assert (out / rel).is_file(), rel
    assert json.loads((out / "summary.json").read_text()) == summary
    # Figures are real numbers in range (a 1-epoch model need not be good, only measured).
    for key in ("srocc", "plcc"):
        assert -1.0 <= summary[key] <= 1.0 and not math.isnan(summary[key])
    assert "srocc_random_init" in summary  # the pretrained-vs-random comparison ran
    assert summary["parity"] is not None and summary["parity"] < 1e-3
    # x264 CRF 40 against a CRF 4 pristine: clearly degraded, far from 0 and from 100.
    assert 20 < summary["vmaf_distorted"] < 95
    assert 20 < summary["psnr_distorted"] < 45
    if demo.nr_video_available():
        assert summary["nr_video_pristine"] > summary["nr_video_distorted"]
    printed = capsys.readouterr().out
    assert "held-out SROCC / PLCC" in printed

    # A re-run does no work: every step finds its output and the figures are unchanged.
    mtimes = {p: p.stat().st_mtime for p in out.rglob("*") if p.is_file() and p.name != "summary.json"}
    again = demo.run(out, demo.QUICK)
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k != "seconds"
    }
    changed = [str(p) for p, t in mtimes.items() if p.stat().st_mtime != t]
    assert not changed, changed
    assert "$ qualitas train" not in capsys.readouterr().out
