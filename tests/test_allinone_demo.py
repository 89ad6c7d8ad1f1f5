"""Integration: a tiny demo release in the organisers' layout -> the lead's converter -> training,
evaluation and prediction of the AllInOne stage (tiny backbone, a few steps)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from trafficfm.allinone.evaluate import evaluate  # noqa: E402
from trafficfm.allinone.predict import predict  # noqa: E402
from trafficfm.allinone.synthetic import tiny_config  # noqa: E402
from trafficfm.allinone.train import train  # noqa: E402

TINY_DEMO = yaml.safe_load((Path(__file__).with_name("tiny.yaml")).read_text())["data"]["demo"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    demo_mod = pytest.importorskip("trafficfm.data.demo")
    convert = pytest.importorskip("trafficfm.data.convert_allinone")
    base = tmp_path_factory.mktemp("allinone_demo")
    demo_mod.make_demo_release(base / "release", TINY_DEMO)
    convert.convert_allinone(base / "release", base / "data", num_classes=TINY_DEMO["cls_classes"])
    return base


def test_demo_release_trains_evaluates_and_predicts(converted):
    base = converted
    cfg = tiny_config(steps=3)
    cfg["train"]["tasks"]["det"]["crop"] = 128
    summary = train(base / "data", base / "model.pt", base / "ckpt", cfg, curve_path=base / "curve.png", device="cpu")
    assert summary["finished"]
    predict(base / "model.pt", base / "data", base / "predictions", "val", cfg["inference"], device="cpu")
    metrics = evaluate(base / "predictions", base / "data", base / "val_metrics.json", base)
    assert set(metrics) == {"top1", "map50", "miou", "score"}
    out = base / "predictions"
    predict(base / "model.pt", base / "data", out, "test", cfg["inference"], device="cpu")
    test_list = (base / "release" / "track1_test_data" / "dec" / "test.txt").read_text().split()
    ids = {d["image_id"] for d in json.loads((out / "det_test.json").read_text())}
    assert ids <= set(range(1, len(test_list) + 1))  # 1-based lines of dec/test.txt
    names = set(pd.read_csv(out / "cls_test.csv")["name"])
    assert names == {p.name for p in (base / "release" / "track1_test_data" / "cls" / "test").iterdir()}
    assert len(list((out / "seg_test").glob("*.png"))) == len(
        list((base / "release" / "track1_test_data" / "seg" / "images" / "test").glob("*.jpg")))
