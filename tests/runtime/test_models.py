"""``qualitas.load_model`` and ``qualitas score --model``: formats, video models, FR models,
and the card/input mismatches that must be clear errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))

from helpers import make_checkpoint, photo, save_png, write_clip  # noqa: E402

import qualitas  # noqa: E402
from qualitas.cli.main import main  # noqa: E402
from qualitas.errors import MediaError, UsageError  # noqa: E402
from qualitas.export.pipeline import export_model  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models_media")
    for name, size in (("astronaut", 64), ("coffee", 80)):
        save_png(photo(size, name), root / "images" / f"{name}.png")
        save_png(photo(size, name)[::-1].copy(), root / "refs" / f"{name}.png")  # a different "reference"
    return {
        "images": root / "images",
        "refs": root / "refs",
        "clip": write_clip(root / "clip.mp4"),
        "root": root,
    }


@pytest.fixture(scope="module")
def nr_image(tmp_path_factory) -> Path:
    """NR image model (distribution head over 5 bins), exported to TorchScript."""
    run = make_checkpoint(tmp_path_factory.mktemp("nr_img"), "nr_iqa", head="distribution", num_bins=5)
    out = tmp_path_factory.mktemp("nr_img_ts")
    export_model(run, "torchscript", out, verify=True)
    return out


@pytest.fixture(scope="module")
def nr_video(tmp_path_factory) -> tuple[Path, Path]:
    """TSM NR video model (clips of 4 frames, 2 clips per video): (run, torch.export folder)."""
    run = make_checkpoint(
        tmp_path_factory.mktemp("nr_vid"),
        "nr_vqa",
        tsm=True,
        num_segments=4,
        temporal_pool="attention",
        input_size={"mode": "resize", "size": [64, 64]},
        sampling={"mode": "uniform", "num_frames": 4, "step": 1},
        eval_clips=2,
    )
    out = tmp_path_factory.mktemp("nr_vid_pt2")
    export_model(run, "exported_program", out, verify=True)
    return run, out


@pytest.fixture(scope="module")
def fr_image(tmp_path_factory) -> Path:
    """FR image model at native size (dynamic height/width), a PyTorch run directory."""
    return make_checkpoint(
        tmp_path_factory.mktemp("fr_img"), "fr_iqa", fusion="diff6", input_size={"mode": "none"}
    )


# ---------------------------------------------------------------------------- API


def test_distribution_model_scores_are_expected_bins(nr_image, files):
    model = qualitas.load_model(nr_image)
    x = torch.rand(3, 64, 64)
    probs = model.runner(x[None])
    assert probs.shape == (1, 5) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert model.score(x) == pytest.approx(float(probs[0] @ torch.arange(1.0, 6.0)), abs=1e-5)
    assert model.info.range == (1.0, 5.0)
    paths = sorted(files["images"].iterdir())
    batch = model.score_batch(paths + [x])  # different sizes, paths and tensors mixed
    assert batch[2] == pytest.approx(model.score(x), abs=1e-6)
    assert batch[0] == pytest.approx(model.score(paths[0]), abs=1e-6)


def test_video_model_scores_clips_from_the_card(nr_video, files):
    run, exported = nr_video
    model, pytorch = qualitas.load_model(exported), qualitas.load_model(run)
    res = model.score_files(files["clip"])
    # 12 frames, uniform sampling of 4, 2 clips: segment [3i, 3i+3), clip j picks 3i + (2j+1)*3//4
    assert res.clip_indices == [[0, 3, 6, 9], [2, 5, 8, 11]]
    assert [f.index for f in res.frames] == [0, 2]
    assert res.frames[1].time == pytest.approx(0.2)
    assert res.pooled == pytest.approx(sum(f.score for f in res.frames) / 2)
    assert model.score(files["clip"]) == pytest.approx(pytorch.score(files["clip"]), abs=1e-4)
    clip = torch.rand(4, 3, 50, 70)
    assert model.score(clip) == pytest.approx(pytorch.score(clip), abs=1e-4)


def test_full_reference_model(fr_image, files):
    model = qualitas.load_model(fr_image)
    d, r = files["images"] / "coffee.png", files["refs"] / "coffee.png"
    s = model.score(d, r)
    assert s != pytest.approx(model.score(r, r))
    with pytest.raises(UsageError, match="full-reference: give a reference"):
        model.score(d)


def test_mismatches_are_clear_errors(nr_image, nr_video, files, tmp_path):
    image_model = qualitas.load_model(nr_image)
    video_model = qualitas.load_model(nr_video[1])
    with pytest.raises(MediaError, match="is a video model .clips of 4 frames.; it cannot score an image"):
        video_model.score(files["images"] / "astronaut.png")
    with pytest.raises(UsageError, match="no-reference: it takes no reference"):
        image_model.score(files["images"] / "astronaut.png", files["refs"] / "astronaut.png")
    with pytest.raises(UsageError, match=r"takes a \(3,H,W\) image input, got \(2, 3, 8, 8\)"):
        image_model.score(torch.rand(2, 3, 8, 8))
    with pytest.raises(UsageError, match="clips of exactly 4 frames, got 5"):
        video_model.score(torch.rand(5, 3, 64, 64))


def test_load_errors(nr_image, tmp_path):
    with pytest.raises(UsageError, match="model not found"):
        qualitas.load_model(tmp_path / "missing.onnx")
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    shutil.copy(nr_image / "model.pt", lone)
    with pytest.raises(UsageError, match="no model.json beside it"):
        qualitas.load_model(lone)
    (lone.parent / "model.json").write_text((nr_image / "model.json").read_text())
    assert qualitas.load_model(lone).card.name == "tiny_nr_iqa"
    fake = lone.parent / "model.pt2"
    fake.write_bytes(b"x")
    with pytest.raises(UsageError, match="describes a torchscript export"):
        qualitas.load_model(fake)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps({"card_version": 99}))
    with pytest.raises(UsageError, match="card_version 99 is not supported"):
        qualitas.load_model(bad)
    (tmp_path / "x.bin").write_bytes(b"0")
    with pytest.raises(UsageError, match="unknown model file type"):
        qualitas.load_model(tmp_path / "x.bin")


# ---------------------------------------------------------------------------- CLI


def _score(capsys, *argv: str) -> tuple[int, dict, str]:
    rc = main(["score", *argv, "--format", "json", "--quiet"])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if out.strip() else {}, err


def test_cli_image_model_on_folder_and_clip(nr_image, files, capsys):
    model = qualitas.load_model(nr_image)
    rc, doc, _ = _score(capsys, str(files["images"]), str(files["clip"]), "--model", str(nr_image))
    assert rc == 0
    assert doc["metrics"]["tiny_nr_iqa"]["range"] == [1.0, 5.0]
    by_path = {Path(r["path"]).name: r for r in doc["results"]}
    for name in ("astronaut.png", "coffee.png"):
        assert by_path[name]["scores"]["tiny_nr_iqa"] == pytest.approx(
            model.score(files["images"] / name), abs=1e-5
        )
    clip = by_path["clip.mp4"]
    assert clip["frames_scored"] == 12 and len(clip["frames"]) == 12  # an image model scores every frame
    per_frame = [f["scores"]["tiny_nr_iqa"] for f in clip["frames"]]
    assert clip["scores"]["tiny_nr_iqa"] == pytest.approx(sum(per_frame) / 12)


def test_cli_video_model_clip_entries_and_image_refusal(nr_video, files, capsys):
    _, exported = nr_video
    rc, doc, _ = _score(
        capsys, str(files["clip"]), str(files["images"] / "astronaut.png"), "--model", str(exported)
    )
    assert rc == 1  # the image failed, the clip was scored
    clip, image = doc["results"]
    assert clip["error"] is None and [f["index"] for f in clip["frames"]] == [0, 2]
    assert clip["scores"]["tiny_nr_vqa"] == pytest.approx(
        qualitas.load_model(exported).score(files["clip"]), abs=1e-6
    )
    assert "is a video model" in image["error"] and image["scores"] == {}


def test_cli_full_reference_model_needs_ref(fr_image, files, capsys):
    rc, _, err = _score(capsys, str(files["images"]), "--model", str(fr_image))
    assert rc == 2 and "is full-reference: give --ref REF" in err
    rc, doc, _ = _score(capsys, str(files["images"]), "--ref", str(files["refs"]), "--model", str(fr_image))
    assert rc == 0
    model = qualitas.load_model(fr_image)
    r = doc["results"][0]
    assert r["scores"]["tiny_fr_iqa"] == pytest.approx(model.score(r["path"], r["ref"]), abs=1e-5)
