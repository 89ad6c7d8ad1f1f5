"""The trafficfm command runs one stage with the workflow's settings, paths and overlays."""

from __future__ import annotations

import json

import pytest
from tiny_settings import OVERLAYS
from trafficfm.allinone.synthetic import make_synthetic_allinone
from trafficfm.cli import main
from trafficfm.config import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


def test_stages_by_hand_read_and_write_the_workflow_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_synthetic_allinone(tmp_path / "results/data/allinone", tmp_path / "root")
    common = [*(a for overlay in OVERLAYS for a in ("--configfile", str(overlay))), "--threads", "1"]
    assert main([*common, "--set", "allinone.train.steps=2", "train-allinone"]) == 0
    base = tmp_path / "results/allinone/experiments/base"  # the default experiment's folder
    blob = json.loads((base / "training_history.json").read_text())
    assert [h["step"] for h in blob] == [1, 2]  # the --set override reached the training
    assert main([*common, "predict-allinone", "--split", "val"]) == 0
    assert main([*common, "evaluate-allinone"]) == 0
    metrics = json.loads((base / "val_metrics.json").read_text())
    assert set(metrics) == {"top1", "map50", "miou", "score"}
    with pytest.raises(ConfigError, match=r"allinone\.train: Additional properties .*'stepz'"):
        main([*common, "--set", "allinone.train.stepz=2", "train-allinone"])
    # trafficfm validate = trafficfm-validate (exit 2: nothing to check there)
    assert main(["validate", "allinone", str(tmp_path / "none.zip")]) == 2
