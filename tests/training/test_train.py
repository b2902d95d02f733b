"""End-to-end training on tiny generated blur datasets (CPU, 0.4M-parameter backbone)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from train_helpers import overrides, write_jsonl

from qualitas.cli.main import main
from qualitas.data.datasets import DataError
from qualitas.training.config import load_config
from qualitas.training.run import load_matching_weights, load_trained, prepare_data, read_checkpoint, train

NR = "configs/nr_iqa_koniq.yaml"
FAST = [
    "data.input_size.size=[40,40]",
    "data.input_size.resize_short=0",
    "data.batch_size=8",
    "loss=l1",
    "optimizer.lr=2.0e-3",
    "optimizer.backbone_lr_mult=1.0",
    "scheduler.warmup_epochs=0",
    "data.split_ratios={train: 0.6, val: 0.2, test: 0.2}",
]


@pytest.fixture(scope="module")
def trained_run(image_data, tmp_path_factory) -> Path:
    """A 10-epoch NR run on 3 contents x 8 blur levels (val/test: one unseen content each)."""
    torch.set_num_threads(1)
    cfg = load_config(NR, overrides(image_data, *FAST, "trainer.max_epochs=10"))
    out = tmp_path_factory.mktemp("runs") / "nr"
    train(cfg, out=out)
    return out


@pytest.mark.slow
def test_short_training_learns_blur_ranking(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    # Score = known function of blur strength: an unseen content must rank almost perfectly.
    assert metrics["val"]["srocc"] > 0.9
    assert metrics["val"]["n"] == 8 and metrics["test"]["n"] == 8
    assert metrics["epochs"] == 10
    for name in (
        "config.yaml",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
        "history.json",
        "splits.json",
        "predictions_val.jsonl",
        "training_curves.png",
        "train.log",
    ):
        assert (trained_run / name).is_file(), name
    assert list((trained_run / "tb").glob("events.out.tfevents.*"))
    # No content in two splits.
    splits = json.loads((trained_run / "splits.json").read_text())
    contents = {s: {p.split("/")[1].rsplit("_", 1)[0] for p in v} for s, v in splits.items()}
    assert not (contents["train"] & contents["val"]) and not (contents["train"] & contents["test"])


@pytest.mark.slow
def test_saved_config_reloads_to_the_same_config(trained_run, image_data):
    saved = load_config(trained_run / "config.yaml")
    assert saved == load_config(NR, overrides(image_data, *FAST, "trainer.max_epochs=10"))
    assert yaml.safe_load((trained_run / "config.yaml").read_text())["trainer"]["max_epochs"] == 10


@pytest.mark.slow
def test_load_trained_reproduces_validation_predictions(trained_run, image_data):
    model, info = load_trained(trained_run)
    assert not model.training
    assert info["spec"]["arch"] == "nr_iqa" and info["score_norm"]["kind"] == "minmax"
    assert info["input_size"]["mode"] == "crop" and info["input_size"]["size"] == [40, 40]
    assert info["metrics"]["val"]["srocc"] > 0.9
    from qualitas.io.image import read_image

    rows = [json.loads(line) for line in (trained_run / "predictions_val.jsonl").read_text().splitlines()]
    root = image_data.parent
    x = torch.stack([read_image(root / r["path"]).data[:, 4:44, 4:44] for r in rows])  # centre crop
    with torch.no_grad():
        pred = model(x) * info["score_norm"]["scale"] + info["score_norm"]["shift"]
    assert torch.allclose(
        pred.double(), torch.tensor([r["pred"] for r in rows], dtype=torch.float64), atol=1e-4
    )


@pytest.mark.slow
def test_eval_cli_writes_metrics_predictions_and_plot(trained_run, tmp_path, capsys, monkeypatch):
    from qualitas.evaluation import plots

    titles = []
    scatter = plots.scatter
    monkeypatch.setattr(
        plots, "scatter", lambda *a, **k: (titles.append(k.get("title")), scatter(*a, **k))[1]
    )
    out = tmp_path / "results.json"
    assert main(["eval", str(trained_run), "--out", str(out)]) == 0
    assert titles and titles[0].endswith("test split (n=8)")  # the figure says what it shows
    res = json.loads(out.read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert res["split"] == "test" and res["n"] == 8 and len(res["predictions"]) == 8
    assert res["metrics"]["srocc"] == pytest.approx(metrics["test"]["srocc"], abs=1e-6)
    assert out.with_suffix(".png").stat().st_size > 1000
    # Another manifest: every row scored.
    out2 = tmp_path / "all.json"
    man = Path(res["manifest"])
    assert (
        main(
            [
                "eval",
                str(trained_run / "checkpoints" / "best.ckpt"),
                "--manifest",
                str(man),
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert json.loads(out2.read_text())["n"] == 40


class _StateProbe(L.Callback):
    """Records the state the trainer starts from (after any checkpoint restore)."""

    def on_train_start(self, trainer, pl_module):
        self.epoch = trainer.current_epoch
        self.step = trainer.global_step
        self.weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        self.opt = copy.deepcopy(trainer.optimizers[0].state_dict())  # live tensors otherwise
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]


@pytest.mark.slow
def test_resume_continues_weights_optimizer_scheduler_and_epoch(image_data, tmp_path):
    ov = overrides(image_data, *FAST, "trainer.max_epochs=2", "scheduler.name=cosine")
    first = train(load_config(NR, ov), out=tmp_path / "run")
    last = read_checkpoint(first.run_dir / "checkpoints" / "last.ckpt")
    probe = _StateProbe()
    ov3 = [*ov, "trainer.max_epochs=3"]
    from qualitas.training.run import config_for_resume

    cfg = config_for_resume(None, first.run_dir, ["trainer.max_epochs=3"])
    assert cfg == load_config(NR, ov3)
    res = train(cfg, resume=first.run_dir, callbacks=[probe])
    assert res.run_dir == first.run_dir
    assert probe.epoch == 2 and probe.step == last["global_step"] > 0
    for k, v in last["state_dict"].items():
        assert torch.equal(probe.weights[k], v), k
    saved = last["optimizer_states"][0]["state"]
    assert probe.opt["state"].keys() == saved.keys()
    for k in saved:
        assert torch.equal(probe.opt["state"][k]["exp_avg"], saved[k]["exp_avg"])
        assert float(probe.opt["state"][k]["step"]) == float(saved[k]["step"])
    # The cosine schedule continues from its step instead of restarting at the base lr.
    assert probe.lr == pytest.approx(last["optimizer_states"][0]["param_groups"][0]["lr"])
    assert probe.lr < 2.0e-3
    final = read_checkpoint(first.run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == last["global_step"] * 3 // 2  # one more epoch of steps
    history = json.loads((first.run_dir / "history.json").read_text())
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]


@pytest.mark.slow
def test_finetune_loads_matching_weights_and_lists_mismatched(trained_run):
    from qualitas.models import build_model

    src = read_checkpoint(trained_run / "checkpoints" / "best.ckpt")["state_dict"]
    model = build_model("nr_iqa", backbone="test_resnet", hidden=8)  # head shapes differ
    report = load_matching_weights(model, trained_run)
    assert any(k.startswith("features.backbone") for k in report["loaded"])
    assert report["mismatched"] and all(m.startswith("head.") for m in report["mismatched"])
    sd = model.state_dict()
    for k in report["loaded"]:
        assert torch.equal(sd[k], src["model." + k])


def _bad_manifest(image_data: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    shutil.copytree(image_data.parent, root)
    (root / "dist" / "not_an_image.png").write_text("hello")
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rows[0]["path"] = "dist/missing_1.png"
    rows[1]["path"] = "dist/missing_2.png"
    rows[2]["mos"] = float("nan")
    rows[3]["mos"] = 7.0
    rows[4]["path"] = "dist/not_an_image.png"
    rows[5]["path"] = "../escape.png"
    return write_jsonl(rows, root / "manifest.jsonl")


def test_bad_rows_are_all_reported_before_training(image_data, tmp_path):
    man = _bad_manifest(image_data, tmp_path)
    cfg = load_config(NR, overrides(man))
    with pytest.raises(DataError) as err:
        prepare_data(cfg.data, full_reference=False, target="mos", run_dir=tmp_path)
    msg = str(err.value)
    assert "6 of 40 rows are bad" in msg and "\n" not in msg
    for part in (
        "missing file 2",
        "bad score 2",
        "unreadable media 1",
        "path outside root 1",
        "data.on_error=skip",
    ):
        assert part in msg
    problems = json.loads((tmp_path / "data_problems.json").read_text())
    assert problems["counts"] == {
        "missing file": 2,
        "bad score": 2,
        "unreadable media": 1,
        "path outside root": 1,
    }
    cfg = load_config(NR, overrides(man, "data.on_error=skip"))
    data = prepare_data(cfg.data, full_reference=False, target="mos")
    assert len(data.records) == 34
    assert sum(len(v) for v in data.splits.values()) == 34


@pytest.mark.slow
def test_sample_that_fails_to_decode_is_skipped_and_counted(image_data, tmp_path):
    root = tmp_path / "trunc"
    shutil.copytree(image_data.parent, root)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["split"] = "val" if r["group"] == "rocket" else "train"
    victim = root / rows[0]["path"]  # a training image: header fine, pixel data cut off
    victim.write_bytes(victim.read_bytes()[:200])
    man = write_jsonl(rows, root / "manifest.jsonl")
    res = train(load_config(NR, overrides(man, *FAST, "trainer.max_epochs=2")), out=tmp_path / "run")
    assert res.metrics["skipped_samples"] == 2  # once per epoch
    assert res.metrics["val"]["n"] == 8


@pytest.mark.slow
def test_bf16_mixed_precision_runs_on_cpu(image_data, tmp_path):
    res = train(
        load_config(
            NR,
            overrides(
                image_data,
                *FAST,
                "trainer.max_epochs=1",
                "trainer.precision=bf16-mixed",
                "trainer.limit_train_batches=2",
            ),
        ),
        out=tmp_path / "bf16",
    )
    assert res.metrics["val"]["n"] == 8
    assert all(v == v for v in res.metrics["val"].values())  # no NaN


@pytest.mark.slow
def test_repeated_splits_report_median_mean_std(image_data, tmp_path, capsys):
    args = ["train", NR, "--splits", "2", "--out", str(tmp_path / "splits")]
    for o in overrides(image_data, *FAST, "trainer.max_epochs=1", "trainer.limit_train_batches=1"):
        args += ["-o", o]
    assert main(args) == 0
    summary = json.loads((tmp_path / "splits" / "splits_summary.json").read_text())
    assert summary["n"] == 2 and len(summary["runs"]) == 2
    assert {r["split_seed"] for r in summary["runs"]} == {0, 1}
    s = summary["srocc"]
    assert min(s["values"]) <= s["median"] <= max(s["values"]) and s["std"] >= 0
    assert "SROCC: median" in capsys.readouterr().out
