"""Library chatter stays off the console: torch export logs/graph dumps, Lightning tips and warnings."""

from __future__ import annotations

import logging
import warnings

import pytest


def test_quiet_torch_logs_keeps_tracer_chatter_off_the_console(capfd, caplog):
    from qualitas.export.common import quiet_torch_logs

    with caplog.at_level(logging.DEBUG, logger="qualitas.export"), quiet_torch_logs():
        logging.getLogger("torch.fx.experimental.symbolic_shapes").warning("Unable to find user code")
        print("def forward(self, arg0_1): ...")  # what GraphModule.print_readable does
    out, err = capfd.readouterr()
    assert "forward" not in out + err and "Unable to find" not in out + err
    assert "def forward" in caplog.text  # kept for --debug readers
    logging.getLogger("torch.fx.experimental.symbolic_shapes").error("real problem")
    assert "real problem" in capfd.readouterr().err  # levels restored afterwards


@pytest.mark.slow
def test_training_console_has_no_lightning_tips_or_warnings(tmp_path, capfd):
    import sys
    from pathlib import Path

    sys.path[:0] = [str(Path(__file__).parent / "training")]
    from train_helpers import make_image_dataset, overrides

    from qualitas.training.config import load_config
    from qualitas.training.run import train

    data = make_image_dataset(tmp_path / "data", contents=("astronaut", "coffee", "chelsea"), levels=4)
    ov = overrides(
        data, "data.input_size.size=[32,32]", "data.input_size.resize_short=0", "trainer.max_epochs=1"
    )
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        res = train(load_config("configs/nr_iqa_koniq.yaml", ov), out=tmp_path / "run")
    out, err = capfd.readouterr()
    for chatter in ("Tip:", "GPU available", "deprecated", "`Trainer.fit` stopped", "Restoring states"):
        assert chatter not in out + err, chatter
    log = (res.run_dir / "train.log").read_text()
    assert "GPU available" in log and "Trainer.fit" in log  # captured, not lost
