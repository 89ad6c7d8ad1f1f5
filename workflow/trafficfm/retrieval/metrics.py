"""Retrieval metrics: mAP@10 exactly as the organisers' scorer computes it, and Recall@K.

The organisers' scorer (``track2/tools/cal_map_json.py``; the same loop is in ``track2/test.py``)
first checks that the submitted texts are the ground truth's, in the same order, then for each
query walks the submitted names::

    get = 1e-6; ap = 0
    for rank, name in enumerate(names, 1):
        if name is relevant: get += 1; ap += get / rank
    ap /= get

and averages ``ap`` over the queries. Note the quirks kept here on purpose: the 1e-6 is inside
``get`` (so each term is (hits + 1e-6) / rank), the division is by the number of hits *within*
the list (not by the number of relevant images), and a query without a hit scores 0.

:func:`scorer_map` is that loop over names; :func:`map_from_hits` is the same arithmetic for a
(queries, k) boolean hit matrix, which is what evaluation uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from ..errors import TrafficfmError
from .relevance import AttributeCodec

EPS = 1e-6
KINDS = ("vehicle", "pedestrian")


class TextOrderError(TrafficfmError, ValueError):
    """The submission's texts are not the ground truth's texts in the same order."""


def average_precision(names: Iterable[str], relevant: Mapping | set) -> float:
    """One query's AP over the submitted ``names``, as the organisers' loop computes it."""
    get = EPS
    ap = 0.0
    for rank, name in enumerate(names, 1):
        if name in relevant:
            get += 1
            ap += get / rank
    return ap / get


def scorer_map(
    gt_texts: Sequence[str],
    gt_relevant: Sequence[set],
    pred_texts: Sequence[str],
    pred_names: Sequence[Sequence[str]],
) -> float:
    """mAP over a submission, with the organisers' order check (raises :class:`TextOrderError`)."""
    if len(gt_texts) != len(pred_texts) or any(a != b for a, b in zip(gt_texts, pred_texts)):
        raise TextOrderError("The order of texts is wrong.")
    if not pred_names:
        return 0.0
    total = sum(average_precision(names, relevant) for names, relevant in zip(pred_names, gt_relevant))
    return total / len(pred_names)


def ap_from_hits(hits: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-query AP for a (queries, k) boolean hit matrix, same arithmetic as the scorer."""
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be (queries, k), got shape {hits.shape}")
    get = EPS + np.cumsum(hits, axis=1, dtype=np.float64)
    ranks = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    terms = np.where(hits, get / ranks, 0.0)
    ap = np.zeros(len(hits))
    for column in range(hits.shape[1]):  # left to right, like the scorer's loop
        ap += terms[:, column]
    return ap / get[:, -1] if hits.shape[1] else ap


def map_from_hits(hits) -> float:
    ap = ap_from_hits(hits)
    return float(ap.mean()) if len(ap) else 0.0


def recall_from_hits(hits, k: int) -> float:
    """Fraction of queries with at least one relevant image among the first ``k``."""
    hits = np.asarray(hits, dtype=bool)
    if not len(hits):
        return 0.0
    return float(hits[:, :k].any(axis=1).mean())


def hits_for_ranking(
    codec: AttributeCodec, query_ids: torch.Tensor, image_ids: torch.Tensor, top: torch.Tensor
) -> np.ndarray:
    """(queries, k) hits: is gallery image ``top[q, j]`` relevant to query ``q``?

    ``query_ids``/``image_ids`` are attribute ids from ``codec``; the relation is evaluated once
    per (distinct query attribute, distinct image attribute) pair and looked up.
    """
    query_ids = torch.as_tensor(query_ids).cpu()
    image_ids = torch.as_tensor(image_ids).cpu()
    top = torch.as_tensor(top).cpu().long()
    unique_q, q_inverse = torch.unique(query_ids, return_inverse=True)
    unique_i, i_inverse = torch.unique(image_ids, return_inverse=True)
    relation = codec.matrix(unique_q, unique_i)
    return relation[q_inverse[:, None], i_inverse[top]].numpy()


def summarise(hits: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``{"map10", "recall@1", "recall@5", "recall@10", "queries"}`` for a hit matrix."""
    out = {"map10": map_from_hits(hits[:, :10])}
    for k in ks:
        out[f"recall@{k}"] = recall_from_hits(hits, k)
    out["queries"] = len(hits)
    return out


def summarise_by_kind(hits: np.ndarray, kinds: Sequence[str]) -> dict:
    """:func:`summarise` overall and for each kind present (queries of that kind, full gallery)."""
    kinds = np.asarray(kinds)
    result = {"overall": summarise(hits)}
    for kind in KINDS:
        mask = kinds == kind
        if mask.any():
            result[kind] = summarise(hits[mask])
    return result
