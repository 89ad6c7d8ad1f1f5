"""The demo's hidden test truth scores the leaderboard zips as the organisers would (tiny release)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from test_demo_data import LAYOUT, TINY
from trafficfm.data.convert_allinone import convert_allinone
from trafficfm.data.convert_retrieval import convert_retrieval
from trafficfm.data.demo import label_space, make_demo_release, truth
from trafficfm.retrieval.relevance import is_relevant
from trafficfm.submission.allinone import build_allinone
from trafficfm.submission.reference import AllInOneReference, RetrievalReference
from trafficfm.submission.score import score_allinone, score_retrieval


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("truth")
    make_demo_release(base / "release", TINY, LAYOUT, truth_dir=base / "truth")
    convert_allinone(base / "release", base / "allinone", LAYOUT.allinone, label_space(TINY), "fail")
    convert_retrieval(base / "release", base / "retrieval", LAYOUT.retrieval, "fail")
    return base


def _allinone_predictions(out, labels, coco, seg_dir, *, cls_shift=0, det_ids=None):
    """Prediction files in the contract's form made from the truth (perfect unless shifted)."""
    out.mkdir()
    classes = sorted(set(labels.values()))
    shifted = {n: classes[(classes.index(v) + cls_shift) % len(classes)] for n, v in labels.items()}
    pd.DataFrame({"name": list(shifted), "label": list(shifted.values())}).to_csv(out / "cls.csv", index=False)
    ids = det_ids or {}
    (out / "det.json").write_text(json.dumps([
        {"image_id": ids.get(a["image_id"], a["image_id"]), "category_id": a["category_id"], "bbox": a["bbox"],
         "score": 0.9} for a in coco["annotations"]]))
    (out / "seg").mkdir()
    for png in seg_dir.glob("*.png"):
        label = np.array(Image.open(png))
        label[label == 255] = 0  # a prediction names a class everywhere; the truth's 255 is not scored
        Image.fromarray(label).save(out / "seg" / png.name)
    return out / "cls.csv", out / "det.json", out / "seg"


def test_allinone_truth_scores_a_perfect_zip_at_one_and_a_wrong_one_lower(demo, tmp_path):
    assert not truth.missing(demo / "truth", "allinone")
    ref = AllInOneReference.from_dataset(demo / "allinone", "test").with_truth(demo / "truth")
    labels, coco, seg_dir = truth.allinone_labels(demo / "truth")
    assert coco["annotations"], "the tiny release's test split has signs"
    # the truth's class ids are the release's ids, one per test image, in the converted split's order
    assert list(labels) == ref.cls_names and set(labels.values()) <= set(range(TINY["cls_classes"]))

    perfect = build_allinone(*_allinone_predictions(tmp_path / "p", labels, coco, seg_dir), ref)
    scores = score_allinone(json.loads(perfect.to_json()), ref)
    assert (scores["cls_top1"], scores["det_map50"], scores["seg_miou_present"]) == (1.0, 1.0, 1.0)

    # every class shifted by one and the boxes put on the next image: both must be seen as wrong
    ids = sorted(ref.det_images)
    shifted = build_allinone(*_allinone_predictions(tmp_path / "w", labels, coco, seg_dir, cls_shift=1,
                                                    det_ids={i: ids[(k + 1) % len(ids)] for k, i in enumerate(ids)}), ref)
    scores = score_allinone(json.loads(shifted.to_json()), ref)
    assert scores["cls_top1"] == 0.0 and scores["det_map50"] < 0.5

    # the same by hand, as a user scores a test zip of the demo: trafficfm-validate --truth
    (tmp_path / "perfect.json").write_bytes(perfect.to_json())
    cmd = [sys.executable, "-m", "trafficfm.submission.cli", "allinone", str(tmp_path / "perfect.json"),
           "--data", str(demo / "allinone"), "--no-report"]
    done = subprocess.run([*cmd, "--truth", str(demo / "truth")], capture_output=True, text=True)
    assert done.returncode == 0 and "cls_top1 1.0" in done.stdout, done.stdout + done.stderr
    unlabelled = subprocess.run([*cmd, "--score"], capture_output=True, text=True)
    assert unlabelled.returncode == 2 and "the test split has no labels" in unlabelled.stderr


def test_truth_boxes_sit_on_the_image_their_id_names(demo):
    """Image id k of the truth is the k-th line of dec/test.txt (the submission's numbering), and its
    boxes lie inside that image: the sizes match the converted test split's."""
    ref = AllInOneReference.from_dataset(demo / "allinone", "test").with_truth(demo / "truth")
    lines = (demo / "release" / "track1_test_data" / "dec" / "test.txt").read_text().splitlines()
    _, coco, _ = truth.allinone_labels(demo / "truth")
    for im in coco["images"]:
        assert lines[im["id"] - 1] == im["file_name"]
        with Image.open(demo / "release" / "track1_test_data" / "dec" / "test" / im["file_name"]) as image:
            assert ref.det_images[im["id"]] == image.size == (im["width"], im["height"])
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        width, height = ref.det_images[a["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= width + 1 and y + h <= height + 1


def test_retrieval_truth_scores_relevant_first_at_one(demo):
    ref = RetrievalReference.from_dataset(demo / "retrieval", "test").with_truth(demo / "truth")
    results, reversed_results = [], []
    for text, attribute in zip(ref.queries, ref.query_attributes):
        hits = [n for n in ref.gallery if is_relevant(attribute, ref.image_attributes[n])]
        misses = [n for n in ref.gallery if n not in hits]
        assert hits
        results.append({"text": text, "image_names": (hits + misses)[:10]})
        reversed_results.append({"text": text, "image_names": (misses + hits)[:10]})
    assert score_retrieval({"results": results}, ref)["map10"] == pytest.approx(1.0)
    assert score_retrieval({"results": reversed_results}, ref)["map10"] < 0.5


def test_truth_of_another_release_is_refused(demo, tmp_path):
    make_demo_release(tmp_path / "other", dict(TINY, seed=TINY["seed"] + 1, det_test=TINY["det_test"] + 1),
                      LAYOUT, truth_dir=tmp_path / "other_truth")
    with pytest.raises(ValueError, match=r"other_truth: the hidden truth's .* truth of another release"):
        AllInOneReference.from_dataset(demo / "allinone", "test").with_truth(tmp_path / "other_truth")
    with pytest.raises(ValueError, match="other_truth: the hidden truth's queries"):
        RetrievalReference.from_dataset(demo / "retrieval", "test").with_truth(tmp_path / "other_truth")
    assert np.array_equal(truth.missing(tmp_path, "allinone"), [truth.AIO_CLS, truth.AIO_DET, truth.AIO_SEG])


def test_truth_class_of_each_test_image_is_the_model_it_was_drawn_as(demo, tmp_path):
    """Redraw test image k as the class its truth names (the generator is deterministic per image):
    the very file of the release comes back; drawn as any other class it does not."""
    from trafficfm.data.demo import classification, draw

    labels, _, _ = truth.allinone_labels(demo / "truth")
    specs = classification.class_specs(TINY["seed"], TINY["cls_classes"])
    folder = demo / "release" / "track1_test_data" / "cls" / "test"
    for name, label in labels.items():
        drawn = {}
        for cls in range(TINY["cls_classes"]):
            rng = draw.rng_for(TINY["seed"], "cls", "test", int(name.split(".")[0]) - 1)
            img = classification.make_image(rng, specs[cls], width=TINY["cls_width"])
            draw.save_jpeg(tmp_path / f"{cls}.jpg", img, int(rng.integers(70, 96)))
            drawn[cls] = (tmp_path / f"{cls}.jpg").read_bytes()
        same = [cls for cls, data in drawn.items() if data == (folder / name).read_bytes()]
        assert same == [label], name
