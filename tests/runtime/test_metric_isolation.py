"""One metric failing on an input never wipes the others: ``metric_errors``, skip notes, exit status."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.cli.main import main
from qualitas.errors import MediaError
from qualitas.metrics.base import MetricInfo
from qualitas.runtime.score import Pair, ScoreOptions, score_pairs


class _FailsOnBatch:
    """A frame scorer that scores frames (their mean) and raises on its ``fail_at``-th call."""

    def __init__(self, fail_at: int, name: str = "flaky") -> None:
        self.info = MetricInfo(name, False, True, (0.0, 1.0), "RGB frames")
        self.fail_at, self.calls = fail_at, 0

    def __call__(self, dist: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise MediaError("flaky refused this batch")
        return dist.mean(dim=(1, 2, 3))


class _FilesFail:
    """A ``kind="files"`` scorer (like VMAF or a video model) that fails on every file."""

    info = MetricInfo("clipper", False, True, (0.0, 1.0), "video files", kind="files")

    def score_files(self, dist, ref, **options):
        raise RuntimeError("clipper crashed on this file")


def test_small_video_with_the_default_set_scores_what_it_can_and_exits_0(tmp_path, make_video, capsys):
    # QCIF (176x144): MS-SSIM's 5 scales need 176 lines; psnr, ssim and vmaf must survive.
    ref = make_video("ref.mp4", n=3, size=(176, 144), crf=0)
    dist = make_video("dist.mp4", n=3, size=(176, 144), crf=35)
    out = tmp_path / "s.json"
    assert main(["score", str(dist), "--ref", str(ref), "--out", str(out)]) == 0
    r = json.loads(out.read_text())["results"][0]
    assert r["error"] is None and r["metric_errors"] == {}
    assert set(r["scores"]) == {"psnr", "ssim", "vmaf"} and r["frames_scored"] == 3
    assert all("ms_ssim" not in f["scores"] and "vmaf" in f["scores"] for f in r["frames"])
    assert any(n.startswith("ms_ssim skipped: needs images at least 176") for n in r["notes"])
    err = capsys.readouterr().err
    assert "ms_ssim skipped" in err and "1 scored, 0 failed" in err


def test_named_metric_that_fails_is_a_metric_error_and_exit_1(tmp_path, make_video, capsys):
    ref = make_video("ref.mp4", n=3, size=(176, 144), crf=0)
    dist = make_video("dist.mp4", n=3, size=(176, 144), crf=35)
    out = tmp_path / "s.csv"
    code = main(["score", str(dist), "--ref", str(ref), "--metric", "psnr,ms_ssim,ssim", "--out", str(out)])
    assert code == 1  # partial: documented as a failure for the exit status
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["path", "ref", "kind", "psnr", "ms_ssim", "ssim", "error", "metric_errors"]
    assert float(rows[1][3]) > 20 and rows[1][4] == "" and 0 < float(rows[1][5]) < 1
    assert rows[1][6] == "" and rows[1][7].startswith("ms_ssim needs images at least 176")
    err = capsys.readouterr().err
    assert "1 scored (1 with failed metrics), 0 failed" in err
    assert err.count(str(dist)) == 1 and "Traceback" not in err


def test_every_metric_failing_fails_the_input_and_lists_each_reason(tmp_path):
    tiny = tmp_path / "one.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 12, 3), np.uint8)).save(tiny)
    (r,), _ = score_pairs([Pair(str(tiny))], ["niqe", "brisque"], ScoreOptions(), has_ref=False)
    assert set(r.metric_errors) == {"niqe", "brisque"} and r.scores == {}
    assert r.error is not None and r.error.startswith("no metric could be scored")
    assert "96x96" in r.metric_errors["niqe"] and "16x16" in r.metric_errors["brisque"]


def test_metric_failing_mid_video_is_dropped_from_every_frame(make_video):
    dist = make_video("d.mp4", n=6)
    flaky = _FailsOnBatch(fail_at=2)
    (r,), infos = score_pairs(
        [Pair(str(dist), str(dist))],
        ["psnr"],
        ScoreOptions(batch_size=2, prefetch=False),
        scorers={"flaky": flaky},
    )
    assert r.error is None and set(r.scores) == {"psnr"} and r.frames_scored == 6
    assert r.metric_errors == {"flaky": "flaky refused this batch"}
    assert all(set(f.scores) == {"psnr"} for f in r.frames)  # batch 1's flaky scores removed
    assert flaky.calls == 2  # not called again once it failed
    assert "flaky" in infos


def test_files_metric_failure_keeps_the_frame_metrics(make_video):
    dist = make_video("d.mp4", n=3)
    (r,), _ = score_pairs(
        [Pair(str(dist), str(dist))], ["psnr"], ScoreOptions(), scorers={"clipper": _FilesFail()}
    )
    assert r.error is None and set(r.scores) == {"psnr"}
    assert r.metric_errors == {"clipper": "clipper crashed on this file"}


@pytest.mark.parametrize("prefetch", [True, False])
def test_failure_of_a_prepared_metric_in_the_decoding_thread_is_per_metric(make_video, prefetch, monkeypatch):
    # SSIM and MS-SSIM prepare their inputs in the decoding threads: a failure there must
    # only affect that metric, not the stream.
    from qualitas.metrics import ssim as ssim_mod

    def broken(self, gray):
        raise ValueError("pyramid exploded")

    monkeypatch.setattr(ssim_mod.MSSSIM, "refine", broken)
    dist = make_video("d.mp4", n=3)
    (r,), _ = score_pairs([Pair(str(dist), str(dist))], ["ssim", "ms_ssim"], ScoreOptions(prefetch=prefetch))
    assert r.error is None and set(r.scores) == {"ssim"} and r.scores["ssim"] == pytest.approx(1.0)
    assert r.metric_errors == {"ms_ssim": "pyramid exploded"}


def test_vmaf_only_run_reports_frame_counts_and_a_mismatch(make_video):
    ref = make_video("ref.mp4", n=6)
    dist = make_video("dist.mp4", n=4, crf=30)
    (r,), _ = score_pairs([Pair(str(dist), str(ref))], ["vmaf"], ScoreOptions())
    assert r.error is None and r.frames_scored == 4
    assert (r.dist_frames, r.ref_frames) == (4, 6)
    assert "frame counts differ: distorted 4 vs reference 6; scored the first 4" in r.notes
    (r2,), _ = score_pairs([Pair(str(dist), str(ref))], ["vmaf"], ScoreOptions(frame_step=2))
    assert (r2.dist_frames, r2.ref_frames) == (2, 3)
