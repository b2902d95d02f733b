"""`qualitas score`: output schema (JSON/CSV/table), exit codes, bad inputs, atomic output, --quiet."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from qualitas.cli.main import main

RESULT_KEYS = {"path", "ref", "kind", "width", "height", "frames_scored", "scores", "frames", "error"}


def _strict_json(text: str) -> dict:
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_json_schema_for_image_and_video_pairs(tmp_path, make_image, make_video, capsys):
    make_image("ref/a.png")
    make_image("dist/a.png", noise=8.0)
    make_video("ref/clip.mp4", n=4, crf=0)
    make_video("dist/clip.mp4", n=4, crf=38)
    out = tmp_path / "scores.json"
    code = main(
        ["score", str(tmp_path / "dist"), "--ref", str(tmp_path / "ref"), "--out", str(out), "--quiet"]
    )
    assert code == 0
    assert capsys.readouterr().err == ""  # --quiet: no bar, no summary
    doc = _strict_json(out.read_text())
    assert isinstance(doc["version"], str)
    assert set(doc["metrics"]) == {"psnr", "ssim", "ms_ssim", "vmaf"}
    for info in doc["metrics"].values():
        assert info["full_reference"] is True and info["higher_is_better"] is True and len(info["range"]) == 2
    by_kind = {r["kind"]: r for r in doc["results"]}
    img, vid = by_kind["image"], by_kind["video"]
    for r in (img, vid):
        assert RESULT_KEYS <= set(r) and r["error"] is None
        assert (r["width"], r["height"]) == (192, 176)
        assert r["ref"].endswith(r["path"].rsplit("/", 1)[1])
    assert set(img["scores"]) == {"psnr", "ssim", "ms_ssim"} and img["frames"] is None  # no vmaf for images
    assert set(vid["scores"]) == {"psnr", "ssim", "ms_ssim", "vmaf"} and vid["frames_scored"] == 4
    assert [f["index"] for f in vid["frames"]] == [0, 1, 2, 3]
    assert vid["frames"][2]["time"] == pytest.approx(0.08)
    assert set(vid["frames"][0]["scores"]) == {"psnr", "ssim", "ms_ssim", "vmaf"}
    assert vid["scores"]["vmaf"] == pytest.approx(np.mean([f["scores"]["vmaf"] for f in vid["frames"]]))


def test_csv_one_row_per_input_and_exit_1_on_failure(tmp_path, make_image, capsys):
    ref = make_image("ref.png")
    good = make_image("good.png", noise=5.0)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out = tmp_path / "s.csv"
    code = main(
        ["score", str(good), str(empty), "--ref", str(ref), "--metric", "psnr", "ssim", "--out", str(out)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "1 scored, 1 failed" in err and "empty file" in err and "Traceback" not in err
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["path", "ref", "kind", "psnr", "ssim", "error", "metric_errors"]
    assert rows[1][0] == str(good) and float(rows[1][3]) > 30 and rows[1][5] == ""
    assert rows[2][0] == str(empty) and rows[2][3] == "" and "empty file" in rows[2][5]


def test_bad_inputs_each_get_an_error_entry_and_the_rest_is_scored(tmp_path, make_image, make_video, capsys):
    ref_dir, dist_dir = tmp_path / "ref", tmp_path / "dist"
    for name in ("ok", "corrupt", "empty", "tiny", "text", "truncated", "small"):
        make_image(f"ref/{name}.png") if name not in ("text", "truncated") else None
    make_video("ref/text.mp4", n=3)
    make_video("ref/truncated.mp4", n=6)
    make_image("dist/ok.png", noise=4.0)
    jpg = make_image("dist/corrupt.jpg").read_bytes()
    (dist_dir / "corrupt.jpg").write_bytes(jpg[: len(jpg) // 3])
    (dist_dir / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(dist_dir / "tiny.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(ref_dir / "tiny.png")
    (dist_dir / "text.mp4").write_text("not a video")
    full = make_video("dist/truncated.mp4", n=6).read_bytes()
    (dist_dir / "truncated.mp4").write_bytes(full[: len(full) // 2])
    make_image("dist/small.png", size=(96, 88))
    make_image("dist/orphan.png")  # no reference with this name
    out = tmp_path / "r.json"
    argv = ["score", str(dist_dir), "--ref", str(ref_dir), "--metric", "psnr,ssim", "--out", str(out)]
    assert main([*argv, "--on-size-mismatch", "error", "--quiet"]) == 1
    results = {r["path"].rsplit("/", 1)[1]: r for r in _strict_json(out.read_text())["results"]}
    assert results["ok.png"]["error"] is None and results["ok.png"]["scores"]["psnr"] > 30
    for name in (
        "corrupt.jpg",
        "empty.png",
        "text.mp4",
        "truncated.mp4",
        "small.png",
        "orphan.png",
    ):
        err = results[name]["error"]
        assert err and "\n" not in err, name
        assert results[name]["scores"] == {}, name
    # 1x1: psnr is scored, ssim (11x11 window) fails for this file only.
    tiny = results["tiny.png"]
    assert (
        tiny["error"] is None
        and list(tiny["scores"]) == ["psnr"]
        and "11x11" in tiny["metric_errors"]["ssim"]
    )
    assert "sizes differ" in results["small.png"]["error"]
    assert results["orphan.png"]["ref"] is None or "reference" in results["orphan.png"]["error"]
    # Default policy scales the smaller image and records it.
    assert main([*argv, "--quiet"]) == 1
    small = {r["path"].rsplit("/", 1)[1]: r for r in _strict_json(out.read_text())["results"]}["small.png"]
    assert small["error"] is None and small["scaled_from"] == [96, 88] and small["notes"]
    assert capsys.readouterr().err == ""


def test_stdout_json_when_piped_and_table_on_request(tmp_path, make_image, capsys):
    ref = make_image("ref.png")
    assert main(["score", str(ref), "--ref", str(ref), "--metric", "psnr", "--quiet"]) == 0
    doc = _strict_json(capsys.readouterr().out)  # capsys stdout is not a tty -> json
    psnr = doc["results"][0]["scores"]["psnr"]
    assert psnr == "Infinity" or psnr >= 100.0
    assert main(["score", str(ref), "--ref", str(ref), "--metric", "ssim", "--format", "table"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["path", "kind", "size", "frames", "ssim", "error"]
    assert "1.0000" in out[2] and "192x176" in out[2]
    assert main(["score", str(ref), "--ref", str(ref), "--metric", "psnr", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("path,ref,kind,psnr,error,metric_errors\n")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metric", "psnr"], "full-reference"),  # FR metric without --ref
        (["--metric", "psnrr", "--ref", "REF"], "did you mean 'psnr'"),
        (["--metric", "psnr", "--ref", "REF", "--out", "x.txt"], "output format"),
        (["--metric", "psnr", "--ref", "REF", "--device", "tpu"], "--device"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, make_image, capsys, argv, message):
    img = str(make_image("a.png"))
    argv = [img if a == "REF" else a for a in argv]
    assert main(["score", img, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_argparse_usage_errors_exit_2(make_image):
    img = str(make_image("a.png"))
    for bad in (["--frame-step", "0"], ["--pool", "median"], ["--size", "12"]):
        with pytest.raises(SystemExit) as exc:
            main(["score", img, "--ref", img, *bad])
        assert exc.value.code == 2


def test_interrupted_write_leaves_no_partial_output(tmp_path, make_image, monkeypatch):
    import qualitas.data.manifest as manifest

    ref = make_image("ref.png")
    out = tmp_path / "scores.json"
    real = manifest.os.replace

    def boom(src, dst):  # the temp file is complete but the rename never happens
        raise KeyboardInterrupt

    monkeypatch.setattr(manifest.os, "replace", boom)
    assert (
        main(["score", str(ref), "--ref", str(ref), "--metric", "psnr", "--out", str(out), "--quiet"]) == 130
    )
    monkeypatch.setattr(manifest.os, "replace", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.png"]  # neither output nor temp file


def test_frame_count_and_fps_mismatch_through_the_cli(tmp_path, make_video, capsys):
    ref = make_video("ref.mp4", n=6, fps=25)
    short = make_video("short.mp4", n=4, fps=25, crf=35)
    other_fps = make_video("fps30.mp4", n=6, fps=30, crf=35)
    out = tmp_path / "v.json"
    argv = [
        "score",
        str(short),
        str(other_fps),
        "--ref",
        str(ref),
        "--metric",
        "psnr",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 1
    r_short, r_fps = _strict_json(out.read_text())["results"]
    assert r_short["error"] is None and r_short["frames_scored"] == 4
    assert (r_short["dist_frames"], r_short["ref_frames"]) == (4, 6)
    assert "frame rates differ" in r_fps["error"]
    assert main([*argv, "--allow-fps-mismatch"]) == 0
    assert _strict_json(out.read_text())["results"][1]["frames_scored"] == 6


def test_pool_option_changes_pooling(tmp_path, make_video):
    ref = make_video("ref.mp4", n=6, crf=0)
    dist = make_video("dist.mp4", n=6, crf=40)
    out = tmp_path / "p.json"
    pooled = {}
    for pool in ("mean", "min", "p5", "harmonic_mean"):
        assert (
            main(
                [
                    "score",
                    str(dist),
                    "--ref",
                    str(ref),
                    "--metric",
                    "psnr",
                    "--pool",
                    pool,
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        doc = _strict_json(out.read_text())
        frames = [f["scores"]["psnr"] for f in doc["results"][0]["frames"]]
        pooled[pool] = doc["results"][0]["scores"]["psnr"]
        assert doc["options"]["pool"] == pool
    assert pooled["mean"] == pytest.approx(np.mean(frames))
    assert pooled["min"] == pytest.approx(min(frames)) and pooled["p5"] == pytest.approx(min(frames))
    assert pooled["min"] <= pooled["harmonic_mean"] <= pooled["mean"]
    assert not any(math.isnan(v) for v in pooled.values())


def test_jobs_and_frame_options(tmp_path, make_video):
    ref = make_video("ref.mp4", n=10, crf=0)
    dists = [make_video(f"d{i}.mp4", n=10, crf=30 + 5 * i) for i in range(2)]
    out = tmp_path / "j.json"
    argv = ["score", *map(str, dists), "--ref", str(ref), "--metric", "psnr", "--frame-step", "2",
            "--max-frames", "3", "--batch-size", "2", "--out", str(out), "--quiet"]  # fmt: skip
    assert main([*argv, "--jobs", "2"]) == 0
    results = _strict_json(out.read_text())["results"]
    assert [r["path"] for r in results] == [str(d) for d in dists]
    assert all([f["index"] for f in r["frames"]] == [0, 2, 4] for r in results)
    assert results[0]["scores"]["psnr"] > results[1]["scores"]["psnr"]


def test_raw_yuv_flags_apply_to_yuv_inputs_only(tmp_path, make_video):
    w, h, n = 192, 176, 3
    rng = np.random.default_rng(1)
    ref = rng.integers(16, 235, size=(n, w * h * 3 // 2), dtype=np.uint8)
    ref.tofile(tmp_path / "ref.yuv")
    np.clip(ref.astype(int) + 2, 0, 255).astype(np.uint8).tofile(tmp_path / "dist.yuv")
    out = tmp_path / "y.json"
    argv = ["score", str(tmp_path / "dist.yuv"), "--ref", str(tmp_path / "ref.yuv"), "--metric", "psnr",
            "--size", f"{w}x{h}", "--fps", "25", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    res = _strict_json(out.read_text())["results"][0]
    assert res["kind"] == "video" and res["frames_scored"] == n and (res["width"], res["height"]) == (w, h)
    assert 35 < res["scores"]["psnr"] < 60
    # Without --size the raw file cannot be read: a per-file error that names the flags.
    assert main([*argv[:6], "--out", str(out), "--quiet"]) == 1
    assert "--size" in _strict_json(out.read_text())["results"][0]["error"]
    # --pix-fmt without --size is a usage error.
    assert main([*argv[:6], "--pix-fmt", "yuv420p", "--quiet"]) == 2


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_shows_the_traceback(tmp_path, make_image, capsys, where):
    from qualitas.errors import ConfigError

    img = str(make_image("a.png"))
    argv = ["score", img, "--ref", img, "--metric", "psnrr", "--quiet"]
    assert main(argv) == 2  # without --debug: one line, no traceback
    err = capsys.readouterr().err
    assert "did you mean 'psnr'" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="psnrr"):
        main(["--debug", *argv] if where == "before" else [*argv, "--debug"])
