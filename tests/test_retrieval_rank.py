"""Exact chunked top-k, never dropping a query, and the re-ranking decision."""

import torch
import torch.nn.functional as F
from trafficfm.config import load
from trafficfm.retrieval.rank import (
    block_topk,
    choose_rerank,
    full_argsort_topk,
    kind_codes,
    rank,
    rerank_candidates,
    topk_chunked,
)


def test_topk_equals_full_argsort():
    torch.manual_seed(0)
    queries = F.normalize(torch.randn(300, 32), dim=-1)
    gallery = F.normalize(torch.randn(2000, 32), dim=-1)
    for chunk in (7, 64, 1000):
        _, top = topk_chunked(queries, gallery, 10, chunk)
        assert torch.equal(top, full_argsort_topk(queries, gallery, 10))


def test_block_topk_exact_with_ragged_tail():
    torch.manual_seed(1)
    sims = torch.randn(50, 64 * 50 + 17)
    values, indices = block_topk(sims, 10)
    expected = torch.topk(sims, 10, dim=1)
    assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)


def test_ties_within_top_k_ordered_by_index():
    queries = torch.ones(2, 4)
    gallery = torch.cat([torch.zeros(20, 4), torch.ones(10, 4)])[torch.randperm(30, generator=torch.Generator().manual_seed(0))]
    _, top = topk_chunked(queries, gallery, 10)
    tied = sorted(torch.nonzero(gallery[:, 0]).flatten().tolist())
    assert top.tolist() == [tied, tied]


def test_no_query_dropped_when_queries_exceed_images():
    torch.manual_seed(2)
    queries = F.normalize(torch.randn(50, 8), dim=-1)
    gallery = F.normalize(torch.randn(12, 8), dim=-1)
    top = rank(queries, gallery, k=10, chunk=16)
    assert top.shape == (50, 10)
    assert all(len(set(row)) == 10 for row in top.tolist())
    small = rank(queries, gallery[:4], k=10)
    assert small.shape == (50, 4)


def test_kind_rerank_keeps_one_kind():
    torch.manual_seed(3)
    gallery = F.normalize(torch.randn(40, 8), dim=-1)
    kinds = kind_codes(["vehicle"] * 20 + ["pedestrian"] * 20)
    queries = F.normalize(gallery[:5] + 0.01, dim=-1)  # near vehicle images
    top = rank(queries, gallery, kinds, {"name": "kind"}, k=10)
    assert all(len(set(row)) == 1 for row in kinds[top].tolist())  # one kind per query
    for method in rerank_candidates(load().retrieval.eval.rerank_grid):
        assert rank(queries, gallery, kinds, method, k=10).shape == (5, 10)


def test_choose_rerank_keeps_only_improvements():
    candidates = [{"name": "none"}, {"name": "qe", "qe_n": 3}, {"name": "kind"}]
    scores = {"none": 0.5, "qe": 0.501, "kind": 0.49}
    decision = choose_rerank(lambda m: scores[m["name"]], candidates, min_gain=0.002)
    assert decision["method"] == {"name": "none"} and not decision["kept"]
    scores["qe"] = 0.6
    decision = choose_rerank(lambda m: scores[m["name"]], candidates, min_gain=0.002)
    assert decision["method"] == {"name": "qe", "qe_n": 3} and decision["kept"]
    assert len(decision["candidates"]) == 3
