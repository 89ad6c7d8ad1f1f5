"""Sampler, resumable fine-tuning, evaluation outputs and the test-ranking format (tiny model)."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from trafficfm.retrieval.data import AttributeGroupBatchSampler
from trafficfm.retrieval.evaluate import evaluate, validation_queries
from trafficfm.retrieval.predict import COLUMNS, predict
from trafficfm.retrieval.synthetic import make_canonical
from trafficfm.retrieval.train import finetune

from tiny_settings import tiny_retrieval

TINY = tiny_retrieval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_canonical(tmp_path_factory.mktemp("synthetic"), vehicles=40, pedestrians=40,
                          test_images=14, test_queries=25)


def test_sampler_groups_attributes_and_covers_epoch():
    attributes = np.repeat(np.arange(10), 6)
    sampler = AttributeGroupBatchSampler(attributes, batch_size=12, per_attribute=3, seed=1, drop_last=False)
    batches = sampler.epoch_batches(0)
    assert sorted(i for b in batches for i in b) == list(range(60))
    for batch in batches:
        counts = Counter(attributes[batch].tolist())
        assert max(counts.values()) >= 2  # several images of one attribute text together
    assert batches == sampler.epoch_batches(0) and batches != sampler.epoch_batches(1)
    ranks = [AttributeGroupBatchSampler(attributes, 12, 3, 1, False, r, 2).epoch_batches(0) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}
    sampler.set_epoch(0, start_batch=2)
    assert list(sampler) == batches[2:]


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_equals_uninterrupted(dataset, tmp_path):
    straight = finetune(dataset, tmp_path / "a.pt", TINY, tmp_path / "ckpt_a", None, "train")
    interrupted = finetune(dataset, tmp_path / "b.pt", TINY, tmp_path / "ckpt_b", None, "train",
                           stop_after_steps=4)  # past the end of epoch 0 (3 steps)
    assert interrupted == {"interrupted_at_step": 4} and not (tmp_path / "b.pt").exists()
    resumed = finetune(dataset, tmp_path / "b.pt", TINY, tmp_path / "ckpt_b", None, "train")
    assert resumed["steps"] == straight["steps"] == 6
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
    a = torch.load(tmp_path / "a.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b.pt", weights_only=False)["state_dict"]
    assert _states_equal(a, b)
    # the same with the frozen-prefix image cache over two fixed augmented views per image
    cached = tiny_retrieval({"train": {"augment": {"scale_min": 1.0, "hflip": False, "views": 2, "camera": {
        "p": 0.5, "kinds": ["vehicle", "pedestrian"], "blur": [0.3, 1.2], "gain": [0.7, 1.0], "gamma": [0.85, 1.3],
        "cast": 0.08, "grain": [1.0, 6.0], "keystone": None, "lowres": None}}, "cache_frozen_image": True}, "model": {"unlock_image": 2}})
    straight = finetune(dataset, tmp_path / "d.pt", cached, tmp_path / "ckpt_d", None, "train")
    finetune(dataset, tmp_path / "e.pt", cached, tmp_path / "ckpt_e", None, "train", stop_after_steps=2)
    finetune(dataset, tmp_path / "e.pt", cached, tmp_path / "ckpt_e", None, "train")
    d = torch.load(tmp_path / "d.pt", weights_only=False)["state_dict"]
    e = torch.load(tmp_path / "e.pt", weights_only=False)["state_dict"]
    assert _states_equal(d, e) and straight["steps"] == 6
    # a changed result-changing setting does not resume the old run
    changed = finetune(dataset, tmp_path / "c.pt", tiny_retrieval("train.lr=1e-4"), tmp_path / "ckpt_b", None,
                       "train", stop_after_steps=1)
    assert changed == {"interrupted_at_step": 1}


def test_validation_queries_one_per_line(dataset):
    frame = pd.read_csv(dataset / "val.csv", keep_default_na=False)
    assert len(validation_queries(frame, "line")) == len(frame)
    assert len(validation_queries(frame, "caption")) == len(frame.drop_duplicates(["caption", "attribute"]))


def test_evaluate_and_predict_outputs(dataset, tmp_path):
    settings = tiny_retrieval("train.epochs=1")
    finetune(dataset, tmp_path / "model.pt", settings, None, tmp_path / "summary.json", "train")
    result = evaluate(dataset, tmp_path / "model.pt", tmp_path / "val_metrics.json", tmp_path / "per_kind.json",
                      tmp_path / "rerank.json", settings, "val", rankings_out=tmp_path / "val_rankings.csv")
    metrics = json.loads((tmp_path / "val_metrics.json").read_text())
    assert set(metrics) == {"map10", "map10_before", "recall@1", "recall@5", "recall@10"}
    assert all(0 <= v <= 1 + 1e-5 for v in metrics.values())
    per_kind = json.loads((tmp_path / "per_kind.json").read_text())
    assert {"overall", "vehicle", "pedestrian"} <= set(per_kind["after"])
    assert json.loads((tmp_path / "rerank.json").read_text())["method"] == result["rerank"]["method"]
    val = pd.read_csv(dataset / "val.csv", keep_default_na=False)
    val_rankings = pd.read_csv(tmp_path / "val_rankings.csv", keep_default_na=False)
    assert len(val_rankings) == len(val) * 10 and val_rankings["query"].max() == len(val) - 1
    assert val_rankings.groupby("query")["text"].first().tolist() == val["caption"].tolist()

    frame = predict(dataset, tmp_path / "model.pt", tmp_path / "rerank.json", tmp_path / "rankings.csv", settings)
    written = pd.read_csv(tmp_path / "rankings.csv", keep_default_na=False, dtype={"name": str})
    queries = pd.read_csv(dataset / "test_queries.csv", keep_default_na=False)
    images = pd.read_csv(dataset / "test_images.csv", keep_default_na=False, dtype={"name": str})
    assert list(written.columns) == COLUMNS and len(written) == len(frame)
    assert len(queries) > len(images)  # more queries than images: none may be dropped
    assert len(written) == len(queries) * 10
    assert written["query"].drop_duplicates().tolist() == queries["query"].tolist()
    assert written.groupby("query")["text"].first().tolist() == queries["text"].tolist()
    for _, group in written.groupby("query"):
        assert group["rank"].tolist() == list(range(1, 11))
        assert group["name"].nunique() == 10 and set(group["name"]) <= set(images["name"])


def _augment(views, hflip=False, kinds=("vehicle", "pedestrian")):
    """``retrieval.train.augment`` settings: the camera look on every image of ``kinds``."""
    return tiny_retrieval({"train": {"augment": {"scale_min": 1.0, "hflip": hflip, "views": views, "camera": {
        "p": 1.0, "kinds": list(kinds), "blur": [0.3, 1.2], "gain": [0.7, 1.0], "gamma": [0.85, 1.3], "cast": 0.08,
        "grain": [1.0, 6.0], "keystone": None, "lowres": None}}}}).train.augment


def test_augmented_views_repeat_so_they_can_be_cached(dataset):
    from trafficfm.retrieval.data import PairDataset, load_pairs
    from trafficfm.retrieval.relevance import AttributeCodec

    frame = load_pairs(dataset, "train")
    ids = AttributeCodec().encode(frame["attribute"])
    data = PairDataset(frame, ids, 32, seed=0, augment=_augment(views=2, hflip=True))
    assert data.augmenting and not data.fresh_every_epoch
    seen = {}
    for epoch in range(3):
        data.set_epoch(epoch)
        image, _, _, key = data[5]
        seen[epoch] = (key, image)
    assert seen[0][0] == seen[2][0] != seen[1][0]
    assert torch.equal(seen[0][1], seen[2][1]) and not torch.equal(seen[0][1], seen[1][1])
    fresh = PairDataset(frame, ids, 32, seed=0, augment=_augment(views=0))
    assert fresh.fresh_every_epoch


def test_camera_look_limited_to_vehicles_single_view_for_the_rest(dataset):
    from trafficfm.retrieval.data import PairDataset, load_pairs
    from trafficfm.retrieval.relevance import AttributeCodec

    frame = load_pairs(dataset, "train")
    ids = AttributeCodec().encode(frame["attribute"])
    data = PairDataset(frame, ids, 32, seed=0, augment=_augment(views=2, kinds=["vehicle"]))
    vehicle = int((frame["kind"] == "vehicle").to_numpy().argmax())
    pedestrian = int((frame["kind"] == "pedestrian").to_numpy().argmax())
    keys = {}
    for epoch in range(2):
        data.set_epoch(epoch)
        keys[epoch] = (data.key(vehicle), data.key(pedestrian), data[pedestrian][0])
    assert keys[0][0] != keys[1][0]  # two variants of a vehicle
    assert keys[0][1] == keys[1][1] and torch.equal(keys[0][2], keys[1][2])  # one of a pedestrian


def test_keystone_narrows_the_top_as_a_camera_on_a_pole_sees_it():
    """A vertical line a quarter across moves inward at the top and stays put at the bottom; the
    corners repeat the border instead of turning black."""
    from PIL import Image

    from trafficfm.retrieval.data import camera_look, keystone

    array = np.full((100, 100, 3), 90, np.uint8)
    array[:, 24:26] = 255
    warped = np.asarray(keystone(Image.fromarray(array), 0.2))
    assert abs(int(np.argmax(warped[99, :, 0])) - 24) <= 1
    assert abs(int(np.argmax(warped[0, :, 0])) - 35) <= 2  # 0.2 x 100 + 25 x (1 - 2 x 0.2)
    assert warped[0, 0, 0] == 90 and warped[0, 99, 0] == 90
    # camera_look applies it when configured, with nothing else switched on
    still = {"p": 1.0, "blur": [0.0, 0.0], "gain": [1.0, 1.0], "gamma": [1.0, 1.0], "cast": 0.0, "grain": [0.0, 0.0]}
    same = np.asarray(camera_look(Image.fromarray(array), np.random.default_rng(0), still))
    moved = np.asarray(camera_look(Image.fromarray(array), np.random.default_rng(0), {**still, "keystone": [0.2, 0.2]}))
    assert int(np.argmax(same[0, :, 0])) == 24 and abs(int(np.argmax(moved[0, :, 0])) - 35) <= 2


def test_lowres_keeps_the_size_and_loses_the_fine_detail():
    """A one-pixel checkerboard drawn at a quarter of its side and scaled back up: the same size,
    its fine pattern averaged away; the coarse layout (a bright left half) survives."""
    from PIL import Image

    from trafficfm.retrieval.data import camera_look

    array = np.zeros((64, 64, 3), np.uint8)
    array[::2, ::2] = array[1::2, 1::2] = 200
    array[:, :32] = np.maximum(array[:, :32], 120)
    still = {"p": 1.0, "blur": [0.0, 0.0], "gain": [1.0, 1.0], "gamma": [1.0, 1.0], "cast": 0.0, "grain": [0.0, 0.0],
             "keystone": None, "lowres": None}
    sharp = np.asarray(camera_look(Image.fromarray(array), np.random.default_rng(0), still)).astype(float)
    far = np.asarray(camera_look(Image.fromarray(array), np.random.default_rng(0), {**still, "lowres": [0.25, 0.25]}))
    far = far.astype(float)
    assert far.shape == sharp.shape
    detail = lambda a: np.abs(np.diff(a[:, 40:, 0], axis=1)).mean()  # neighbour differences, right half
    assert detail(sharp) > 150 and detail(far) < 20
    assert far[:, :24].mean() > far[:, 40:].mean() + 40


def test_learns_a_dataset_it_has_not_seen(tmp_path):
    """The fine-tuning learns a dataset drawn independently of the demo generator (attributes drawn
    in the pixels by trafficfm.retrieval.synthetic): val mAP@10, computed as the organisers do, rises
    well above the untrained model's."""
    data = make_canonical(tmp_path / "data", vehicles=60, pedestrians=60, test_images=14, test_queries=25)
    settings = tiny_retrieval({"train": {"epochs": 6, "lr": 3e-3, "augment": {"scale_min": 1.0, "hflip": False}},
                                "eval": {"rerank": False}})
    finetune(data, tmp_path / "model.pt", settings, None, tmp_path / "summary.json", "train")
    evaluate(data, tmp_path / "model.pt", tmp_path / "val.json", tmp_path / "kind.json", tmp_path / "rerank.json",
             settings, "val")
    metrics = json.loads((tmp_path / "val.json").read_text())
    assert metrics["map10"] >= metrics["map10_before"] + 0.25, metrics


def test_flip_averages_an_image_and_its_mirror(tmp_path):
    """eval.flip: an image and its mirror get one embedding, the normalised mean of the two plain
    ones, which a single pass does not give (the tower is not mirror-symmetric)."""
    import cv2
    from trafficfm.retrieval.evaluate import encode_images
    from trafficfm.retrieval.model import build_model

    torch.manual_seed(0)
    model = build_model(TINY["model"], "cpu")
    side = model.image_size
    img = np.random.default_rng(5).integers(0, 255, (side, side, 3), dtype=np.uint8)
    paths = [str(tmp_path / "a.png"), str(tmp_path / "mirrored.png")]
    cv2.imwrite(paths[0], img)
    cv2.imwrite(paths[1], np.ascontiguousarray(img[:, ::-1]))
    once = encode_images(model, paths, {"batch_size": 2, "flip": False})
    both = encode_images(model, paths, {"batch_size": 2, "flip": True})
    assert (once[0] - once[1]).abs().max() > 1e-3
    torch.testing.assert_close(both[0], both[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(both[0], torch.nn.functional.normalize(once[0] + once[1], dim=0), atol=1e-5, rtol=0)
