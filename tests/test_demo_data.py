"""The demo generator: organisers' layout, determinism, formats, quirks (tiny configs, seconds)."""

from __future__ import annotations

import collections
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trafficfm.data.classes import BDD100K_CLASSES, IGNORE_INDEX, TT100K_CATEGORIES, VEHICLE_TYPES
from trafficfm.data.demo import PEDESTRIAN_ATTRIBUTES, archive_folders, make_demo_release, pack_archives
from trafficfm.config import ConfigError, load
from trafficfm.data.demo import retrieval as demo_retrieval

TINY = {
    "seed": 5, "profile": "demo",
    "cls_classes": 6, "cls_train": 10, "cls_val": 6, "cls_test": 4, "cls_width": [150, 200],
    "det_train": 8, "det_val": 4, "det_test": 4, "det_size": [192, 320], "det_sign_px": [10, 40],
    "seg_train": 6, "seg_val": 4, "seg_test": 3, "seg_size": [128, 72],
    "retrieval_train": 40, "retrieval_val": 20, "retrieval_test": 20, "retrieval_test_queries": 8,
}
LAYOUT = load().data.layout  # the organisers' names
ARCHIVES = {
    "track1_train_data": {"file": "track1_train_data.tar", "url": None, "sha256": None},
    "track1_test_data": {"file": "track1_test_data.tar", "url": None, "sha256": None},
    "track2_train": {"file": "track2_train.tar", "url": None, "sha256": None},
    "track2_val": {"file": "track2_val.tar", "url": None, "sha256": None},
    "track2_test": {"file": "track2_test.tar", "url": None, "sha256": None},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    counts = make_demo_release(base / "release", TINY, LAYOUT)
    sums = pack_archives(base / "release", base / "archives", ARCHIVES, archive_folders(LAYOUT))
    return base, counts, sums


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def label_lines(path: Path) -> list[list[str]]:
    return [line.split("$") for line in path.read_text().splitlines() if line.strip()]


def test_layout_has_every_folder_and_file(demo):
    base, counts, _ = demo
    r = base / "release"
    assert names(r) == ["test", "track1_test_data", "track1_train_data", "train", "val"]
    t1, t1t = r / "track1_train_data", r / "track1_test_data"
    for split in ("train", "val"):
        n_cls = TINY[f"cls_{split}"]
        assert names(t1 / "cls" / split) == [f"{i:05d}.jpg" for i in range(1, n_cls + 1)]
        for name in names(t1 / "cls" / split):
            with Image.open(t1 / "cls" / split / name) as im:
                assert TINY["cls_width"][0] <= im.width <= TINY["cls_width"][1]
        assert (t1 / "cls" / f"{split}.txt").is_file() and (t1 / "dec" / f"{split}.json").is_file()
        assert len(names(t1 / "dec" / split)) == TINY[f"det_{split}"]
        jpgs, pngs = names(t1 / "seg/images" / split), names(t1 / "seg/label" / split)
        assert len(jpgs) == TINY[f"seg_{split}"] and [Path(n).stem for n in jpgs] == [Path(n).stem for n in pngs]
        assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}\.jpg", n) for n in jpgs)
    assert len(names(t1t / "cls/test")) == TINY["cls_test"]
    assert len(names(t1t / "dec/test")) == TINY["det_test"] and (t1t / "dec/test.txt").is_file()
    assert len(names(t1t / "seg/images/test")) == TINY["seg_test"]
    assert not (t1t / "seg/label").exists() and not (t1t / "cls/test.txt").exists()
    for split in ("train", "val"):
        assert len(names(r / split / f"{split}_images")) == TINY[f"retrieval_{split}"]
        assert (r / split / f"{split}_label.txt").is_file()
    assert len(names(r / "test/test_images")) == TINY["retrieval_test"] and (r / "test/test_text.txt").is_file()
    assert counts["cls"]["train"] == TINY["cls_train"] and counts["retrieval"]["test"]["queries"] == TINY["retrieval_test_queries"]
    assert Path(counts["truth_dir"]) == base / "demo_truth"
    json.dumps(counts)  # the counts go into logs and manifests


def test_same_seed_gives_identical_archives(demo, tmp_path):
    base, _, sums = demo
    make_demo_release(tmp_path / "release", TINY, LAYOUT)
    again = pack_archives(tmp_path / "release", tmp_path / "archives", ARCHIVES, archive_folders(LAYOUT))
    assert again.read_text() == sums.read_text()
    for spec in ARCHIVES.values():
        assert (tmp_path / "archives" / spec["file"]).read_bytes() == (base / "archives" / spec["file"]).read_bytes()
    repacked = pack_archives(base / "release", tmp_path / "repacked", ARCHIVES, archive_folders(LAYOUT))
    assert repacked.read_text() == sums.read_text()
    other = make_demo_release(tmp_path / "other", dict(TINY, seed=6, retrieval_train=4, retrieval_val=2, retrieval_test=2), LAYOUT)
    assert other["seed"] == 6
    first = sorted((tmp_path / "other/track1_train_data/cls/train").iterdir())[0]
    assert first.read_bytes() != (base / "release/track1_train_data/cls/train" / first.name).read_bytes()


def test_archives_hold_their_folder_and_sums_match(demo):
    base, _, sums = demo
    lines = sums.read_text().splitlines()
    assert [ln.split("  ")[1] for ln in lines] == sorted(s["file"] for s in ARCHIVES.values())
    assert all(re.fullmatch(r"[0-9a-f]{64}  \S+", ln) for ln in lines)
    folders = archive_folders(LAYOUT)
    for key, spec in ARCHIVES.items():
        with tarfile.open(base / "archives" / spec["file"]) as tar:
            members = tar.getmembers()
        assert {m.name.split("/")[0] for m in members} == {folders[key]}
        assert all(m.mtime == members[0].mtime and m.uid == 0 and "truth" not in m.name for m in members)
        assert [m.name for m in members] == sorted([m.name for m in members], key=lambda n: n.split("/"))
    assert not list((base / "archives").glob(".*partial"))


def test_classification_lists_have_the_quirks(demo):
    base, counts, _ = demo
    cls = base / "release/track1_train_data/cls"
    train, val = (cls / "train.txt").read_bytes(), (cls / "val.txt").read_bytes()
    assert b"\r\n" in train and b"\r\n\r\n" in train and train.endswith(b"\r\n")
    assert b"\r\n" not in val and b"\n\n" in val and not val.endswith(b"\n")
    assert b"\t" in train + val and b" " in train + val
    for split, raw in (("train", train), ("val", val)):
        rows = [line.split() for line in raw.decode().splitlines() if line.strip()]
        assert [r[0] for r in rows] == names(cls / split)
        assert all(0 <= int(r[1]) < TINY["cls_classes"] for r in rows)
    assert len(counts["cls"]["class_names"]) == TINY["cls_classes"]
    with Image.open(cls / "train/00001.jpg") as im:
        assert im.format == "JPEG" and 160 <= im.width <= 320


def test_detection_coco_loads_and_boxes_fit(demo):
    from pycocotools.coco import COCO

    base, _, _ = demo
    t1 = base / "release/track1_train_data"
    sizes = []
    for split in ("train", "val"):
        raw = json.loads((t1 / f"dec/{split}.json").read_text())
        assert set(raw) == {"images", "annotations", "categories"}
        assert [c["id"] for c in raw["categories"]] == list(range(45))
        assert [c["name"] for c in raw["categories"]] == TT100K_CATEGORIES
        assert {c["supercategory"] for c in raw["categories"]} == {"traffic_sign"}
        coco = COCO(str(t1 / f"dec/{split}.json"))
        assert len(coco.getImgIds()) == TINY[f"det_{split}"]
        for img in raw["images"]:
            assert set(img) == {"file_name", "id", "width", "height"}
            with Image.open(t1 / "dec" / split / img["file_name"]) as im:
                assert im.size == (img["width"], img["height"])
            assert TINY["det_size"][0] <= min(im.size) and max(im.size) <= TINY["det_size"][1]
        images = {i["id"]: i for i in raw["images"]}
        for a in raw["annotations"]:
            x, y, w, h = a["bbox"]
            img = images[a["image_id"]]
            assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
            lo, hi = TINY["det_sign_px"]
            assert lo <= w <= hi and lo <= h <= hi
            assert a["iscrowd"] == 0 and a["area"] == pytest.approx(w * h, abs=0.05)
            assert a["segmentation"] == [[x, y, pytest.approx(x + w), y, pytest.approx(x + w), pytest.approx(y + h), x, pytest.approx(y + h)]]
            assert 0 <= a["category_id"] < 45
            sizes.append(max(w, h))
        assert [a["id"] for a in raw["annotations"]] == list(range(1, len(raw["annotations"]) + 1))
    assert sizes and min(sizes) < 32
    listed = (base / "release/track1_test_data/dec/test.txt").read_bytes()
    assert b"\r\n" in listed and not listed.endswith(b"\n")
    lines = listed.decode().splitlines()
    assert all(lines) and sorted(lines) == names(base / "release/track1_test_data/dec/test")


def test_segmentation_labels_match_images_and_cover_all_classes(demo):
    base, counts, _ = demo
    seg = base / "release/track1_train_data/seg"
    allowed = set(range(len(BDD100K_CLASSES))) | {IGNORE_INDEX}
    for split in ("train", "val"):
        seen = set()
        for jpg in sorted((seg / "images" / split).iterdir()):
            with Image.open(jpg) as im, Image.open(seg / "label" / split / (jpg.stem + ".png")) as lab:
                assert lab.mode == "L" and lab.size == im.size
                w, h = im.size
                assert abs(w - TINY["seg_size"][0]) <= 0.12 * TINY["seg_size"][0]
                assert abs(h - TINY["seg_size"][1]) <= 0.12 * TINY["seg_size"][1]
                values = set(np.unique(np.asarray(lab)).tolist())
            assert values <= allowed
            seen |= values
        assert set(range(19)) <= seen, f"{split}: missing {sorted(set(range(19)) - seen)}"
        assert counts["seg"][f"{split}_classes"] == list(BDD100K_CLASSES)


def test_retrieval_label_files(demo):
    base, _, _ = demo
    r = base / "release"
    for split in ("train", "val"):
        raw = (r / split / f"{split}_label.txt").read_text()
        assert raw.endswith("\n") == (split == "train")
        rows = label_lines(r / split / f"{split}_label.txt")
        assert all(len(row) == 3 and all(row) for row in rows)
        kinds = ["pedestrian" if row[0].isdigit() else "vehicle" for row in rows]
        assert kinds == sorted(kinds, key=lambda k: k != "vehicle"), "vehicles must come first"
        assert "vehicle" in kinds and "pedestrian" in kinds
        on_disk = set(names(r / split / f"{split}_images"))
        for (name, attribute, caption), kind in zip(rows, kinds):
            if kind == "vehicle":
                assert re.fullmatch(r"[a-z]{10}\.jpg", name) and name in on_disk
                assert re.fullmatch(r"An? \w+ \w+( \w+)?\.", attribute)
                assert caption.endswith(".")
            else:
                assert re.fullmatch(r"\d{6}", name) and name + ".jpg" in on_disk
                vector = attribute.split(",")
                assert len(vector) == len(PEDESTRIAN_ATTRIBUTES) == 21 and set(vector) <= {"0", "1"}
                assert "," in caption and "'" in caption and caption.endswith(".")
        assert len(set(r[0] for r in rows)) == len(rows)
    train_names = {row[0] for row in label_lines(r / "train/train_label.txt")}
    val_names = {row[0] for row in label_lines(r / "val/val_label.txt")}
    assert not train_names & val_names


def test_retrieval_test_split_and_hidden_truth(demo):
    base, counts, _ = demo
    r, truth = base / "release", base / "demo_truth"
    images = names(r / "test/test_images")
    vehicles = [n for n in images if n.startswith("vehicle_")]
    assert vehicles and all(re.fullmatch(r"vehicle_\d{7}\.jpg", n) for n in vehicles)
    assert all(re.fullmatch(r"\d{6}\.jpg", n) for n in images if n not in vehicles)
    queries = (r / "test/test_text.txt").read_text().splitlines()
    assert len(queries) == TINY["retrieval_test_queries"] and all(q and "$" not in q for q in queries)
    truth_rows = label_lines(truth / "test_label.txt")
    assert sorted(row[0] if row[0].startswith("vehicle_") else row[0] + ".jpg" for row in truth_rows) == images
    query_rows = label_lines(truth / "test_query_label.txt")
    assert [q for q, _ in query_rows] == queries
    kinds = ["pedestrian" if "," in a else "vehicle" for _, a in query_rows]
    assert kinds == sorted(kinds, key=lambda k: k != "vehicle") and "vehicle" in kinds
    gallery = {a for _, a, _ in truth_rows}
    assert all(a in gallery for _, a in query_rows), "every query has an exact match"
    assert not (r / "test/test_label.txt").exists()


def test_pedestrian_attribute_list():
    assert len(PEDESTRIAN_ATTRIBUTES) == 21 and PEDESTRIAN_ATTRIBUTES[0] == "male"
    assert len(set(PEDESTRIAN_ATTRIBUTES)) == 21


def test_every_attribute_text_has_several_images_at_a_moderate_size():
    sizes = {"train": 600, "val": 200, "test": 200}
    pools = demo_retrieval.pools_for(0, sizes["train"])
    book = demo_retrieval.NameBook(0, sum(sizes.values()))
    for split, n in sizes.items():
        items = demo_retrieval.plan_split(0, split, n, pools, book)
        per_text = collections.Counter(it.attribute for it in items)
        assert min(per_text.values()) > 1, split
        assert len(per_text) >= 10
        kinds = [it.kind for it in items]
        assert kinds == sorted(kinds, key=lambda k: k != "vehicle")
    texts = {vt for _, vt, _ in pools[0] if vt}
    assert texts <= set(VEHICLE_TYPES)


def test_rejects_bad_settings_and_foreign_folders(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.demo: Additional properties .*'cls_trian'"):
        load(overrides=["data.demo.cls_trian=3"])
    with pytest.raises(ValueError, match="det_size"):
        make_demo_release(tmp_path / "r", dict(TINY, det_size=[64, 32]), LAYOUT)
    with pytest.raises(ValueError, match="retrieval_test"):
        make_demo_release(tmp_path / "r", dict(TINY, retrieval_test=0), LAYOUT)
    with pytest.raises(ValueError, match="outside the release"):
        make_demo_release(tmp_path / "r", TINY, LAYOUT, truth_dir=tmp_path / "r" / "truth")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious.txt").write_text("x")
    small = dict(TINY, cls_train=1, cls_val=1, cls_test=1, det_train=1, det_val=1, det_test=1,
                 seg_train=1, seg_val=1, seg_test=1, retrieval_train=2, retrieval_val=2, retrieval_test=2,
                 retrieval_test_queries=1)
    with pytest.raises(FileExistsError):
        make_demo_release(tmp_path / "keep", small, LAYOUT)
    assert (tmp_path / "keep" / "precious.txt").exists()
    counts = make_demo_release(tmp_path / "r", small, LAYOUT)
    assert make_demo_release(tmp_path / "r", small, LAYOUT)["cls"] == counts["cls"]  # a rerun replaces its own release
    assert counts["seconds"] < 10
