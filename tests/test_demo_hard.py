"""The demo generator's hard profile: the real datasets' difficulties (tiny configs, seconds)."""

from __future__ import annotations

import collections
import json
import re

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


# --------------------------------------------------------------------------- retrieval

RETRIEVAL_ONLY = {**{f"{t}_{s}": 0 for t in ("cls", "det", "seg") for s in ("train", "val", "test")},
                  "retrieval_train": 240, "retrieval_val": 100, "retrieval_test": 60, "retrieval_test_queries": 20}


def _rows(path):
    return [line.split("$") for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def retrieval_releases(tmp_path_factory):
    """The same seed and sizes drawn with each profile: (release, truth) folders and counts."""
    base = tmp_path_factory.mktemp("hard_retrieval")
    out = {}
    for profile in ("demo", "hard"):
        cfg = {**TINY_HARD, **RETRIEVAL_ONLY, "profile": profile}
        counts = make_demo_release(base / profile, cfg, LAYOUT, truth_dir=base / f"{profile}_truth")
        out[profile] = (base / profile, base / f"{profile}_truth", counts)
    return out


def test_hard_retrieval_release_keeps_names_and_formats(retrieval_releases):
    from trafficfm.data.convert_retrieval import convert_retrieval

    root, truth, counts = retrieval_releases["hard"]
    for split in ("train", "val"):
        for name, attribute, caption in _rows(root / split / f"{split}_label.txt"):
            if name.isdigit():
                assert re.fullmatch(r"\d{6}", name) and (root / split / f"{split}_images" / f"{name}.jpg").exists()
                assert len(attribute.split(",")) == 21 and set(attribute.split(",")) <= {"0", "1"}
            else:
                assert re.fullmatch(r"[a-z]{10}\.jpg", name) and (root / split / f"{split}_images" / name).exists()
                assert re.fullmatch(r"An? \w+ \w+( \w+)?\.", attribute)  # the organisers' attribute form
            assert caption and "$" not in caption
    queries = (root / "test/test_text.txt").read_text().splitlines()
    assert len(queries) == RETRIEVAL_ONLY["retrieval_test_queries"]
    gallery = {a for _, a, _ in _rows(truth / "test_label.txt")}
    assert all(a in gallery for _, a in _rows(truth / "test_query_label.txt"))
    manifest = convert_retrieval(root, root.parent / "hard_canonical", LAYOUT.retrieval, "fail")
    assert manifest["counts"]["train"]["pairs"] == RETRIEVAL_ONLY["retrieval_train"]
    assert manifest["skipped"]["count"] == 0


def test_hard_captions_are_worded_by_other_code_yet_name_the_attributes(retrieval_releases):
    from trafficfm.data.demo import vehicles

    captions = {}
    for profile in ("demo", "hard"):
        root = retrieval_releases[profile][0]
        captions[profile] = [r for s in ("train", "val") for r in _rows(root / s / f"{s}_label.txt")]
    demo_caps = [c for _, _, c in captions["demo"]]
    hard_caps = [c for _, _, c in captions["hard"]]
    assert all(c.endswith(".") and c[0].isupper() for c in demo_caps)
    assert 0.3 < np.mean([not c.endswith(".") for c in hard_caps]) < 0.9  # full stop often missing
    assert 0.3 < np.mean([c[0].islower() for c in hard_caps]) < 0.9  # lower-case starts
    words = " ".join(hard_caps).split()
    for synonym in ("gray", "VW", "Mercedes", "pants", "rucksack"):
        assert any(synonym in w for w in words), synonym
    assert not {c for c in hard_caps} & {c for c in demo_caps}  # no sentence of the demo's templates
    for name, attribute, caption in captions["hard"]:
        if name.isdigit():
            male = attribute.split(",")[0] == "1"
            gendered = ("man", "guy", "male", "boy", "gentleman") if male else ("woman", "lady", "female", "girl")
            assert any(g in caption.lower().replace(",", " ").replace(";", " ").split() for g in gendered), caption
        else:
            colour, brand = attribute.rstrip(".").split()[1:3]
            said = set(re.findall(r"[\w-]+", caption.lower()))
            for word in (colour, brand):
                assert said & {w.lower() for w in vehicles.HARD_SPELLINGS.get(word, (word,))}, caption


def test_hard_retrieval_has_close_shades_more_texts_and_unseen_ones(retrieval_releases):
    from trafficfm.data.demo import vehicles

    def texts(profile, split):
        root = retrieval_releases[profile][0]
        return collections.Counter(a for _, a, _ in _rows(root / split / f"{split}_label.txt"))

    hard_train, demo_train = texts("hard", "train"), texts("demo", "train")
    assert len(hard_train) > 1.8 * len(demo_train)  # more texts, fewer images each
    assert np.mean(list(texts("hard", "val").values())) < 3
    colours = {a.split()[1] for a in hard_train if not a[0].isdigit()}
    assert colours & set(vehicles.HARD_COLOURS) and colours & set(vehicles.VEHICLE_COLOURS)
    val = texts("hard", "val")
    unseen = sum(a not in hard_train for a in val) / len(val)
    assert 0.15 < unseen < 0.6  # texts never seen in training
    assert all(a in demo_train for a in texts("demo", "val"))


def test_hard_retrieval_crops_vary_more_and_test_ones_look_like_a_road_camera(retrieval_releases):
    def stats(profile, split, folder):
        root = retrieval_releases[profile][0]
        ratios, means = [], []
        for p in sorted((root / folder).glob("*.jpg")):
            if not p.stem.isdigit():
                continue  # pedestrians: the demo draws them at about 1:2 in every split
            img = np.asarray(Image.open(p).convert("RGB"), np.float32)
            ratios.append(img.shape[0] / img.shape[1])
            means.append(img.mean())
        return np.array(ratios), np.array(means)

    demo_ratio, demo_mean = stats("demo", "train", "train/train_images")
    hard_ratio, hard_mean = stats("hard", "train", "train/train_images")
    assert np.all(np.abs(demo_ratio - 2) < 0.12)
    assert np.mean(np.abs(hard_ratio - 2) > 0.15) > 0.15  # cut off by the crop
    assert hard_mean.std() > demo_mean.std()  # harsher light
    _, test_mean = stats("hard", "test", "test/test_images")
    assert test_mean.mean() < hard_mean.mean() - 5  # the test split's darker camera


def test_demo_profile_retrieval_text_is_unchanged(retrieval_releases):
    """The default profile draws what it drew before the hard profile existed (text files pinned;
    images come from the same generators, which a JPEG library could re-encode differently)."""
    import hashlib

    root, truth, _ = retrieval_releases["demo"]
    digest = hashlib.sha256()
    for path in (root / "train/train_label.txt", root / "val/val_label.txt", root / "test/test_text.txt",
                 truth / "test_label.txt", truth / "test_query_label.txt"):
        digest.update(path.read_bytes())
    assert digest.hexdigest() == PINNED_DEMO_TEXT


PINNED_DEMO_TEXT = "ade2ee20e5be0904537f2780bc04d018a1e3c5dccb300cb0367be986035d6f16"  # measured on main before the hard retrieval part
