"""`qualitas metrics`: table and --json list every registered metric with its properties."""

from __future__ import annotations

import json

from qualitas.cli.main import main
from qualitas.metrics import list_metrics


def test_metrics_table_lists_every_metric(capsys):
    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "type", "higher_is_better", "range", "kind", "input"]
    names = [ln.split()[0] for ln in lines[2:]]
    assert names == [i.name for i in list_metrics()]
    row = {ln.split()[0]: ln for ln in lines[2:]}
    assert row["psnr"].split()[1:3] == ["FR", "yes"]
    assert "files" in row["vmaf"] and "[0, 100]" in row["vmaf"]
    assert "[-1, 1]" in row["ssim"]


def test_metrics_json_is_strict_and_complete(capsys):
    assert main(["metrics", "--json"]) == 0
    items = json.loads(capsys.readouterr().out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    by_name = {i["name"]: i for i in items}
    assert set(by_name) >= {"psnr", "psnr_y", "ssim", "ms_ssim", "vmaf"}
    for info in items:
        assert set(info) >= {"name", "full_reference", "higher_is_better", "range", "input", "kind"}
        assert len(info["range"]) == 2
    assert by_name["vmaf"]["kind"] == "files" and by_name["ssim"]["full_reference"] is True
