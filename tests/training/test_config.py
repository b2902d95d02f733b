"""Config schema, -o overrides with typed parsing, and errors that suggest the right key."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import make_image_dataset, overrides

from qualitas.errors import ConfigError, UsageError
from qualitas.training.config import TrainConfig, apply_overrides, load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_overrides_are_typed_and_nested():
    cfg = load_config(
        CONFIGS / "nr_iqa_koniq.yaml",
        [
            "trainer.max_epochs=3",
            "data.batch_size=8",
            "optimizer.lr=1e-3",
            "data.input_size.size=[64, 48]",
            "model.backbone=test_resnet",
            "run.finetune_from=null",
            "trainer.devices=[0, 1]",
            "data.split_ratios={train: 0.8, val: 0.2}",
        ],
    )
    assert cfg.trainer.max_epochs == 3 and cfg.data.batch_size == 8
    assert cfg.optimizer.lr == pytest.approx(1e-3)  # YAML 1.1 reads "1e-3" as a string: still a float
    assert cfg.data.input_size.size == [64, 48]
    assert cfg.model == {
        "name": "nr_iqa",
        "backbone": "test_resnet",
        "pretrained": True,
        "hidden": 256,
        "dropout": 0.1,
    }
    assert cfg.trainer.devices == [0, 1]
    assert cfg.data.split_ratios == {"train": 0.8, "val": 0.2}


def test_override_parsing():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=x=y") == (["a"], "x=y")
    assert parse_override("a=") == (["a"], None)
    with pytest.raises(UsageError, match="key.subkey=value"):
        parse_override("trainer.max_epochs")
    raw = {"trainer": {"max_epochs": 1}}
    assert apply_overrides(raw, ["trainer.max_epochs=2"]) == {"trainer": {"max_epochs": 2}}
    assert raw == {"trainer": {"max_epochs": 1}}  # input untouched


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "trainer.max_epoch=3",
            "unknown config key 'trainer.max_epoch' (did you mean 'trainer.max_epochs'?)",
        ),
        ("data.input_size.sise=[1,1]", "did you mean 'data.input_size.size'?"),
        ("optimzer.lr=0.1", "unknown config key 'optimzer' (did you mean 'optimizer'?)"),
        ("data.batch_size=abc", "data.batch_size: expected an integer, got 'abc'"),
        ("trainer.deterministic=3", "trainer.deterministic: expected true or false"),
        ("data.score_range=5", "data.score_range: expected a list"),
    ],
)
def test_bad_keys_and_types_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(CONFIGS / "nr_iqa_koniq.yaml", [override])
    assert message in str(err.value)


def test_unknown_component_and_argument_names_suggest(tmp_path):
    from qualitas.losses import build_loss
    from qualitas.models import build_model

    cfg = load_config(CONFIGS / "nr_iqa_koniq.yaml", ["model.name=nr_iqaa", "loss=l1_rnak"])
    with pytest.raises(ConfigError, match="did you mean 'nr_iqa'"):
        build_model(cfg.model["name"], **cfg.model_kwargs)
    with pytest.raises(ConfigError, match="did you mean 'l1_rank'"):
        build_loss(cfg.loss)
    cfg = load_config(CONFIGS / "nr_iqa_koniq.yaml", ["model.hiden=8"])
    with pytest.raises(ConfigError, match="hidden"):
        build_model(cfg.model["name"], **cfg.model_kwargs)


def test_unknown_dataset_name_suggests(tmp_path):
    from qualitas.training.run import choose_dataset

    with pytest.raises(ConfigError, match="did you mean 'video'"):
        choose_dataset("vidoe", [], tmp_path, "mos")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("model: {backbone: resnet18}\n")
    with pytest.raises(ConfigError, match="'model' must be a mapping with a 'name'"):
        load_config(bad)


def test_example_configs_validate_and_round_trip(tmp_path):
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_config(path)
        assert isinstance(cfg, TrainConfig)
        saved = tmp_path / path.name
        saved.write_text(cfg.to_yaml())
        assert load_config(saved) == cfg, path.name


def test_cli_reports_config_errors_on_one_line(capsys):
    from qualitas.cli.main import main

    code = main(["train", str(CONFIGS / "nr_iqa_koniq.yaml"), "-o", "trainer.max_epoch=3"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "did you mean 'trainer.max_epochs'" in err


def test_unknown_monitor_is_a_config_error(tmp_path):
    from qualitas.training.run import train

    man = make_image_dataset(tmp_path / "d", contents=("astronaut", "coffee", "chelsea"), levels=3, size=32)
    cfg = load_config(CONFIGS / "nr_iqa_koniq.yaml", overrides(man, "trainer.monitor=sroc"))
    with pytest.raises(ConfigError, match="unknown trainer.monitor 'sroc' \\(did you mean 'srocc'\\?\\)"):
        train(cfg, out=tmp_path / "run")
