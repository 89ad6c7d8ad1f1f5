"""mAP@10 as the organisers' scorer computes it, checked by hand and by a brute-force copy."""

import numpy as np
import pytest
import torch
from trafficfm.retrieval.metrics import (
    TextOrderError,
    ap_from_hits,
    average_precision,
    hits_for_ranking,
    map_from_hits,
    recall_from_hits,
    scorer_map,
    summarise_by_kind,
)
from trafficfm.retrieval.relevance import AttributeCodec


def brute_force_map(gt_lines, pred):
    """A line-for-line transcription of the scorer's loop (cal_map_json.calculate_map)."""
    gt_text_list = [line.split("$")[0] for line in gt_lines]
    gt_names = [line.split("$")[1:] for line in gt_lines]
    assert gt_text_list == [p["text"] for p in pred]
    total = 0
    for i, p in enumerate(pred):
        truth = {name: 1 for name in gt_names[i]}
        get = 1e-6
        ap = 0
        for j, name in enumerate(p["image_names"]):
            if truth.get(name, -1) != -1:
                get += 1
                ap += get / (j + 1)
        ap /= get
        total += ap
    return total / len(pred)


def test_hand_computed_values():
    e = 1e-6
    # hits at ranks 1 and 3: ((1+e)/1 + (2+e)/3) / (2+e)
    assert average_precision(["a", "x", "b"], {"a", "b"}) == pytest.approx(((1 + e) + (2 + e) / 3) / (2 + e), abs=0)
    assert average_precision(["a", "x", "b"], {"a", "b"}) == pytest.approx(5 / 6, abs=1e-6)
    # single hit at rank 4: ((1+e)/4)/(1+e) = 0.25
    assert average_precision(["x", "y", "z", "a"], {"a"}) == pytest.approx(0.25)
    # no hit scores 0; all hits score 1
    assert average_precision(["x"] * 10, {"a"}) == 0.0
    assert average_precision(list("abcdefghij"), set("abcdefghij")) == pytest.approx(1.0)
    # the quirk: the denominator is the hits in the list, not all relevant images
    assert average_precision(["a"] + ["x"] * 9, {"a", "b", "c"}) == pytest.approx(1.0)


def test_vectorised_equals_brute_force():
    rng = np.random.default_rng(0)
    gallery = [f"img{i}.jpg" for i in range(40)]
    gt_lines, pred, hits = [], [], []
    for q in range(200):
        relevant = set(rng.choice(gallery, size=int(rng.integers(0, 12)), replace=False))
        names = list(rng.choice(gallery, size=10, replace=False))
        gt_lines.append("$".join([f"query {q}", *sorted(relevant)]))
        pred.append({"text": f"query {q}", "image_names": names})
        hits.append([n in relevant for n in names])
    expected = brute_force_map(gt_lines, pred)
    texts = [p["text"] for p in pred]
    assert scorer_map(texts, [set(line.split("$")[1:]) for line in gt_lines], texts,
                      [p["image_names"] for p in pred]) == pytest.approx(expected, abs=1e-12)
    assert map_from_hits(np.array(hits)) == pytest.approx(expected, abs=1e-12)
    per_query = ap_from_hits(np.array(hits))
    # the scorer's 1e-6 can lift a perfect list a hair above 1: (n + 1e-6 * H_n) / (n + 1e-6)
    assert per_query.shape == (200,) and per_query.min() >= 0 and per_query.max() <= 1 + 1e-5


def test_order_check():
    with pytest.raises(TextOrderError):
        scorer_map(["a", "b"], [set(), set()], ["b", "a"], [[], []])
    with pytest.raises(TextOrderError):
        scorer_map(["a", "b"], [set(), set()], ["a"], [[]])


def test_recall():
    hits = np.array([[0, 0, 1, 0, 0, 0, 0, 0, 0, 0], [1] + [0] * 9, [0] * 10], dtype=bool)
    assert recall_from_hits(hits, 1) == pytest.approx(1 / 3)
    assert recall_from_hits(hits, 5) == pytest.approx(2 / 3)
    assert recall_from_hits(hits, 10) == pytest.approx(2 / 3)


def test_hits_through_relation_and_per_kind():
    codec = AttributeCodec()
    ped_q = "0," + ",".join(["1"] + ["0"] * 19)
    ped_img = "0," + ",".join(["1", "1"] + ["0"] * 18)
    gallery = ["A red Audi.", ped_img, "A blue BMW.", ped_q]
    queries = ["A red Audi.", ped_q]
    top = torch.tensor([[0, 1, 2, 3], [3, 0, 1, 2]])
    hits = hits_for_ranking(codec, codec.encode(queries), codec.encode(gallery), top)
    assert hits.tolist() == [[True, False, False, False], [True, False, True, False]]
    result = summarise_by_kind(hits, ["vehicle", "pedestrian"])
    assert result["vehicle"]["map10"] == pytest.approx(1.0)
    assert result["pedestrian"]["recall@1"] == 1.0 and result["overall"]["queries"] == 2
