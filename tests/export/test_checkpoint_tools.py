"""`qualitas checkpoint show|rename|strip` on the Lightning checkpoint of a real tiny run
(tests/export/conftest.py) and on checkpoints in DDP / self-supervised layouts built from it."""

from __future__ import annotations

import json

import pytest
import torch

from qualitas.cli.main import main
from qualitas.errors import UsageError
from qualitas.training.checkpoint_tools import (
    find_state,
    read_checkpoint_file,
    rename_keys,
    strip_state,
    summarize,
)
from qualitas.training.run import load_trained


@pytest.fixture(scope="module")
def ckpt_path(trained_run):
    return trained_run / "checkpoints" / "best.ckpt"


def test_show_json_counts_what_the_file_holds(ckpt_path, capsys):
    assert main(["checkpoint", "show", str(ckpt_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    raw = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    floats = {k: v for k, v in raw["state_dict"].items() if v.is_floating_point()}
    assert doc["kind"] == "qualitas-lightning" and doc["container"] == "state_dict"
    assert doc["num_tensors"] == len(raw["state_dict"])
    assert doc["num_params"] == sum(v.numel() for v in floats.values())
    assert sum(doc["groups"].values()) == doc["num_params"]
    assert set(doc["groups"]) == {"model.features", "model.head"}
    assert {"optimizer_states", "lr_schedulers"} <= set(doc["training_state"])
    assert doc["meta"]["epoch"] == raw["epoch"]
    assert doc["meta"]["hyper_parameters"]["run"]["name"] == "tiny_koniq"
    assert doc["meta"]["qualitas"]["arch"] == raw["qualitas"]["spec"]["arch"]
    first = doc["tensors"][0]
    assert list(raw["state_dict"][first["key"]].shape) == first["shape"]
    assert main(["checkpoint", "show", str(ckpt_path)]) == 0
    text = capsys.readouterr().out
    assert "parameters: " in text and "training state: " in text and "more (--all" in text


def test_strip_ddp_ssl_layout_loads_strictly(ckpt_path, tmp_path, capsys):
    """DDP wrapper + teacher/EMA copies + optimizer state -> exactly the network's weights."""
    model, _ = load_trained(ckpt_path)
    own = model.state_dict()
    raw = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    student = {f"module.{k}": v for k, v in raw["state_dict"].items()}  # module.model.*
    teacher = {f"module.teacher.{k}": v + 1 for k, v in own.items()}
    ema = {f"module.model_ema.{k}": v * 0 for k, v in own.items()}
    layout = {**raw, "state_dict": {**student, **teacher, **ema}}
    src = tmp_path / "ssl.ckpt"
    torch.save(layout, src)
    out = tmp_path / "clean.pt"
    assert main(["checkpoint", "strip", str(src), "--out", str(out)]) == 0
    assert "left out " in capsys.readouterr().out
    clean = torch.load(out, map_location="cpu", weights_only=True)
    assert set(clean) == set(own)
    assert all(torch.equal(clean[k], own[k]) for k in own)  # the student, not the teacher/EMA copy
    fresh, _ = load_trained(ckpt_path)
    fresh.load_state_dict(clean, strict=True)

    backbone = tmp_path / "backbone.safetensors"
    pytest.importorskip("safetensors")
    rc = main(["checkpoint", "strip", str(src), "--out", str(backbone), "--keep", "features.backbone.net."])
    assert rc == 0
    capsys.readouterr()
    bb = read_checkpoint_file(backbone)["state_dict"]
    net = fresh.features.backbone.net
    net.load_state_dict(bb, strict=True)  # a backbone that loads on its own
    assert main(["checkpoint", "show", str(backbone), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "safetensors"


def test_rename_round_trip(ckpt_path, tmp_path, capsys):
    renamed = tmp_path / "renamed.ckpt"
    rc = main(
        [
            "checkpoint",
            "rename",
            str(ckpt_path),
            "--rule",
            "model.head.=model.regressor.",
            "--out",
            str(renamed),
        ]
    )
    assert rc == 0
    ck = torch.load(renamed, map_location="cpu", weights_only=True)
    assert any(k.startswith("model.regressor.") for k in ck["state_dict"])
    assert not any(k.startswith("model.head.") for k in ck["state_dict"])
    assert "optimizer_states" in ck and ck["qualitas"]["spec"]  # the rest of the checkpoint is kept
    with pytest.raises(UsageError, match="weights do not match"):
        load_trained(renamed)
    back = tmp_path / "back.ckpt"
    assert (
        main(
            [
                "checkpoint",
                "rename",
                str(renamed),
                "--rule",
                "model.regressor.=model.head.",
                "--out",
                str(back),
            ]
        )
        == 0
    )
    a, _ = load_trained(ckpt_path)
    b, _ = load_trained(back)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    capsys.readouterr()


def test_pure_functions():
    t = torch.zeros(2)
    state = {"model.a.x": t, "model.b.model.y": t, "model.teacher.a.x": t, "step": 3}
    kept = strip_state(state)
    assert set(kept) == {"a.x", "b.model.y"}  # an inner "model." is part of a name, not a wrapper
    assert set(strip_state(state, drop=())) == {"a.x", "b.model.y", "teacher.a.x"}
    assert set(strip_state(state, keep_prefix="b.")) == {"model.y"}
    with pytest.raises(UsageError, match="no key starts with 'c.'.*a.x"):
        strip_state(state, keep_prefix="c.")
    with pytest.raises(UsageError, match="both 'x.y'"):
        rename_keys({"a.y": t, "b.y": t}, [("a.", "x."), ("b.", "x.")])
    assert find_state({"model": {"w": t}, "epoch": 1})[0] == "model"
    s = summarize({"w": torch.zeros(3, 4), "n": torch.tensor(5)})
    assert s.kind == "state_dict" and s.num_params == 12


@pytest.mark.parametrize(
    "content, name, argv, message",
    [
        (b"not a pickle", "bad.ckpt", ["show"], "not a readable checkpoint"),
        (b"", "empty.pt", ["show"], "empty file, 0 bytes"),
        (
            b"\x00\x00\x00\x00\x00\x00\x01\x00{",
            "bad.safetensors",
            ["show"],
            "not a readable safetensors file",
        ),
        (None, "missing.ckpt", ["show"], "checkpoint not found"),
        (None, "missing.ckpt", ["strip", "--out", "x.pt"], "checkpoint not found"),
    ],
)
def test_bad_files_one_line_errors(tmp_path, capsys, content, name, argv, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    action, *rest = argv
    rest = [str(tmp_path / r) if r.endswith(".pt") else r for r in rest]
    assert main(["checkpoint", action, str(path), *rest]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_rule_and_code_pickle(ckpt_path, tmp_path, capsys):
    assert (
        main(["checkpoint", "rename", str(ckpt_path), "--rule", "noequals", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "expected OLD=NEW" in capsys.readouterr().err
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=2))
    assert main(["checkpoint", "show", str(evil)]) == 2
    out, err = capsys.readouterr()
    assert "pwned" not in out and "holds code rather than weights" in err
