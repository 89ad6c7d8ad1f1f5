"""The demo generator's hard profile: the real datasets' difficulties (tiny configs, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trafficfm.config import load
from trafficfm.data.demo import hard, label_space, make_demo_release
from trafficfm.data.demo.release import resolve_config

LAYOUT = load().data.layout  # the organisers' names

TINY_HARD = {
    "seed": 3, "profile": "hard",
    "cls_classes": 8, "cls_train": 12, "cls_val": 4, "cls_test": 2, "cls_width": [176, 320],
    "det_train": 10, "det_val": 3, "det_test": 2, "det_size": [192, 320], "det_sign_px": [8, 64],
    "seg_train": 6, "seg_val": 3, "seg_test": 2, "seg_size": [128, 72],
    "retrieval_train": 40, "retrieval_val": 20, "retrieval_test": 20, "retrieval_test_queries": 8,
}


def test_class_ids_spread_over_the_whole_label_space():
    ids = hard.class_ids(50)
    assert len(set(ids)) == 50 and ids == sorted(ids)
    assert ids[0] == 0 and ids[-1] == 195
    assert max(np.diff(ids)) <= 5  # evenly spread, no crowding at the low ids
    assert label_space({"profile": "hard", "cls_classes": 50}) == 196
    assert label_space({"profile": "demo", "cls_classes": 10}) == 10


def test_models_come_in_groups_that_differ_in_one_detail():
    specs = hard.class_specs(0, 60)
    assert len(specs) == 60
    groups: dict[int, list[dict]] = {}
    for s in specs:
        groups.setdefault(s["group"], []).append(s)
    assert all(2 <= len(g) <= 3 for g in list(groups.values())[:-1])  # the last may be a leftover single
    kinds = set()
    for members in groups.values():
        for a, b in zip(members, members[1:]):
            assert a["shape"] == b["shape"]  # same body
            diff = {"wheel": a["wheel"] != b["wheel"], "spoiler": a["spoiler"] != b["spoiler"],
                    "shade": not np.allclose(a["paint"], b["paint"])}
            assert sum(diff.values()) >= 1
            kinds |= {k for k, v in diff.items() if v}
    assert kinds == {"wheel", "spoiler", "shade"}
    keys = {(s["shape"]["family"], round(s["shape"]["length"], 4), tuple(s["paint"].round(1)), s["wheel"], s["spoiler"])
            for s in specs}
    assert len(keys) == 60  # no two models look alike


def test_sign_sizes_follow_tt100k():
    rng = np.random.default_rng(0)
    sizes = np.array([hard.sign_size(rng, 8.0, 64.0) for _ in range(4000)])
    assert sizes.min() >= 8.0 and sizes.max() <= 64.0
    assert (sizes < 32).mean() > 0.75  # most under 32 px
    assert 0.15 < (sizes <= 12).mean() < 0.3  # many 8-12 px


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    base = tmp_path_factory.mktemp("hard")
    counts = make_demo_release(base / "release", TINY_HARD, LAYOUT)
    return base / "release", counts


def test_release_labels_use_the_spread_ids(release):
    root, counts = release
    ids = set(hard.class_ids(8))
    assert counts["cls"]["class_ids"] == hard.class_ids(8)
    labels = []
    for split in ("train", "val"):
        text = (root / "track1_train_data" / "cls" / f"{split}.txt").read_text()
        labels += [int(line.split()[1]) for line in text.splitlines() if line.strip()]
    assert set(labels) == ids and len(labels) == 16  # 0 and 195 included
    widths = [Image.open(p).size[0] for p in (root / "track1_train_data" / "cls" / "train").glob("*.jpg")]
    assert min(widths) >= 220 and max(widths) <= 420


def test_release_signs_are_small_and_segmentation_has_the_hood(release):
    root, _ = release
    sides = []
    for split in ("train", "val"):
        coco = json.loads((root / "track1_train_data" / "dec" / f"{split}.json").read_text())
        sides += [max(a["bbox"][2], a["bbox"][3]) for a in coco["annotations"]]
    assert sides and np.median(sides) < 32
    values = set()
    for p in (root / "track1_train_data" / "seg" / "label" / "train").glob("*.png"):
        values |= set(np.unique(np.asarray(Image.open(p))).tolist())
    assert 255 in values


def test_profile_settings_are_checked():
    with pytest.raises(ValueError, match="profile"):
        resolve_config({**TINY_HARD, "profile": "easy"}, LAYOUT)
    with pytest.raises(ValueError, match="cls_classes"):
        resolve_config({**TINY_HARD, "cls_classes": 300}, LAYOUT)
    assert load(overrides=["data.demo.profile=hard"]).data.demo.profile == "hard"
