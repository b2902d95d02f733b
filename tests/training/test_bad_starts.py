"""Bad checkpoints and bad trainer values: one line each, before anything starts, no run folder left."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import overrides

from qualitas.cli.main import main
from qualitas.errors import ConfigError, UsageError
from qualitas.training.config import load_config
from qualitas.training.run import read_checkpoint, train

NR = "configs/nr_iqa_koniq.yaml"


def _bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_text("garbage\n")
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(64, 64)}, "epoch": 1}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    listed = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], listed)
    return {"garbage": garbage, "empty": empty, "truncated": truncated, "list": listed}


def test_read_checkpoint_refuses_every_bad_file_in_one_line(tmp_path):
    for name, path in _bad_checkpoints(tmp_path).items():
        with pytest.raises(UsageError) as err:
            read_checkpoint(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: not a") and "\n" not in msg, name
        assert "weights_only=False" not in msg and "Unsupported operand" not in msg, name
    with pytest.raises(UsageError, match="empty file"):
        read_checkpoint(tmp_path / "empty.ckpt")


@pytest.mark.parametrize("command", ["score", "eval", "export", "resume"])
def test_commands_given_a_bad_checkpoint_print_one_line(tmp_path, command, capsys, image_data):
    bad = _bad_checkpoints(tmp_path)
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64), (90, 120, 30)).save(img)
    for name, ckpt in bad.items():
        argv = {
            "score": ["score", str(img), "--model", str(ckpt)],
            "eval": ["eval", str(ckpt)],
            "export": ["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "exp")],
            "resume": [
                "train",
                NR,
                "--resume",
                str(ckpt),
                "--out",
                str(tmp_path / "resumed"),
                *(x for o in overrides(image_data) for x in ("-o", o)),
            ],
        }[command]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (name, err)
        assert str(ckpt) in lines[0] and "not a" in lines[0], (name, err)
    assert not (tmp_path / "resumed").exists() and not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("optimizer.lr=-1", "optimizer.lr"),
        ("optimizer.lr=.nan", "optimizer.lr"),
        ("optimizer.weight_decay=-0.1", "optimizer.weight_decay"),
        ("optimizer.betas=[0.9]", "optimizer.betas"),
        ("data.batch_size=0", "data.batch_size"),
        ("scheduler.min_lr=2", "scheduler.min_lr"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches"),
    ],
)
def test_out_of_range_trainer_values_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config(NR, [override])
    assert "\n" not in str(err.value)


def test_cli_refuses_bad_values_before_making_a_run_folder(tmp_path, image_data, capsys):
    runs = tmp_path / "runs"
    for bad in ("trainer.max_epochs=-1", "trainer.max_epochs=0", "optimizer.lr=-1"):
        argv = ["train", NR, *(x for o in overrides(image_data, bad, f"run.out={runs}") for x in ("-o", o))]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and bad.split("=")[0] in err
    assert not runs.exists()


def test_failed_start_removes_the_run_folder_it_made(tmp_path, image_data):
    # A model/data mismatch found after the folder was made (FR flag on an NR model).
    out = tmp_path / "runs" / "r1"
    cfg = load_config(NR, overrides(image_data, "data.full_reference=true"))
    with pytest.raises(ConfigError, match="full_reference"):
        train(cfg, out=out)
    assert not out.exists()
    # A folder the user made beforehand is left alone.
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError):
        train(cfg, out=out)
    assert (out / "mine.txt").read_text() == "keep"
