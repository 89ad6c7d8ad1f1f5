"""Exact top-k ranking of a gallery for many queries, and the optional re-ranking steps.

Queries and gallery are encoded independently (the organisers' baseline encodes them in
lock-step batches and silently drops queries beyond the number of images); every query gets a
ranking. Top-k is exact: cosine similarities by a matrix product over query chunks, then
``torch.topk`` on the best blocks of each row (linear in the gallery size, unlike a full
argsort). Within the top k, equal scores are ordered by gallery index; which of several images
tied exactly at the k-th score gets in is ``torch.topk``'s (deterministic) choice.

Re-ranking candidates (each is kept on only when it improves validation mAP@10; see
:func:`choose_rerank`):

* ``qe``   - average query expansion: the query moves towards the mean of its ``n`` best images
  (``q' = q + alpha * mean(top-n)``), then the gallery is ranked again;
* ``dba``  - database-side augmentation: each gallery embedding is averaged with its ``n`` nearest
  gallery neighbours before ranking;
* ``kind`` - kind consistency: a query's matches are all of one kind (vehicle or pedestrian), so
  the ranking keeps only images of the kind that dominates the query's ``n`` best images.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

KIND_CODES = {"vehicle": 0, "pedestrian": 1}
COLUMNS = ["query", "text", "rank", "name"]  # the rankings table (docs/data-contract.md)


@torch.no_grad()
def topk_chunked(queries: torch.Tensor, gallery: torch.Tensor, k: int = 10, chunk: int = 2048,
                 gallery_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` (scores, indices) of ``queries @ gallery.T``, ``k`` capped at the gallery size.

    ``gallery_mask``: optional (queries, gallery) boolean or a callable(start, stop) giving it per
    chunk; masked-out images are never returned unless fewer than ``k`` remain.
    """
    n_query, n_gallery = queries.shape[0], gallery.shape[0]
    k = min(k, n_gallery)
    scores_out = torch.empty(n_query, k, dtype=torch.float32, device=queries.device)
    index_out = torch.empty(n_query, k, dtype=torch.long, device=queries.device)
    gallery_t = gallery.T.contiguous()
    for start in range(0, n_query, chunk):
        stop = min(start + chunk, n_query)
        sims = queries[start:stop] @ gallery_t
        if gallery_mask is not None:
            mask = gallery_mask(start, stop) if callable(gallery_mask) else gallery_mask[start:stop]
            sims = sims.masked_fill(~mask.to(sims.device), float("-inf"))
        values, indices = block_topk(sims, k)
        values, indices = _break_ties(values, indices)
        scores_out[start:stop] = values.float()
        index_out[start:stop] = indices
    return scores_out, index_out


def block_topk(sims: torch.Tensor, k: int, block: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``torch.topk(sims, k)`` per row, faster for long rows.

    The columns are cut into blocks of ``block``; the k blocks with the largest maxima hold the
    row's k largest values (a block holding one of them has a maximum at least the k-th value, and
    at most k blocks do), so ``topk`` runs on k * block candidates instead of the whole row.
    """
    n, m = sims.shape
    blocks = m // block
    if blocks <= 4 * k:
        return torch.topk(sims, k, dim=1, largest=True, sorted=True)
    maxima = sims[:, : blocks * block].unflatten(1, (blocks, block)).amax(dim=2)
    best_blocks = torch.topk(maxima, k, dim=1, sorted=False).indices
    offsets = torch.arange(block, device=sims.device)
    candidates = (best_blocks[:, :, None] * block + offsets).reshape(n, k * block)
    if blocks * block < m:  # the ragged tail is always a candidate
        tail = torch.arange(blocks * block, m, device=sims.device).expand(n, -1)
        candidates = torch.cat([candidates, tail], dim=1)
    values, picked = torch.topk(sims.gather(1, candidates), k, dim=1, largest=True, sorted=True)
    return values, candidates.gather(1, picked)


def _break_ties(values: torch.Tensor, indices: torch.Tensor):
    """Within the top k, order equal scores by gallery index (stable sort on index, then score)."""
    if values.shape[1] < 2:
        return values, indices
    if not bool((values[:, 1:] == values[:, :-1]).any()):
        return values, indices
    order = torch.argsort(indices, dim=1, stable=True)
    values, indices = values.gather(1, order), indices.gather(1, order)
    order = torch.argsort(-values, dim=1, stable=True)
    return values.gather(1, order), indices.gather(1, order)


def full_argsort_topk(queries: torch.Tensor, gallery: torch.Tensor, k: int = 10) -> torch.Tensor:
    """The baseline (and test oracle): full stable argsort of every similarity row."""
    sims = queries @ gallery.T
    return torch.argsort(-sims, dim=1, stable=True)[:, :k]


# ------------------------------------------------------------------------------------ re-ranking
@torch.no_grad()
def query_expansion(queries: torch.Tensor, gallery: torch.Tensor, n: int = 5, alpha: float = 1.0,
                    chunk: int = 2048) -> torch.Tensor:
    _, top = topk_chunked(queries, gallery, n, chunk)
    expanded = queries + alpha * gallery[top].mean(dim=1)
    return F.normalize(expanded, dim=-1)


@torch.no_grad()
def database_augmentation(gallery: torch.Tensor, n: int = 3, chunk: int = 2048) -> torch.Tensor:
    _, top = topk_chunked(gallery, gallery, n + 1, chunk)  # includes the image itself
    return F.normalize(gallery[top].mean(dim=1), dim=-1)


# The kind re-ranking: a query's kind is the majority kind of its this many nearest images.
KIND_VOTERS = 10


def kind_codes(kinds: Sequence[str]) -> torch.Tensor:
    return torch.tensor([KIND_CODES[k] for k in kinds], dtype=torch.long)


@torch.no_grad()
def rank(queries: torch.Tensor, gallery: torch.Tensor, gallery_kinds: torch.Tensor | None = None,
         method: dict | None = None, k: int = 10, chunk: int = 2048) -> torch.Tensor:
    """(queries, k) gallery indices after the re-ranking ``method`` (``{"name": "none"}`` = plain)."""
    method = dict(method or {"name": "none"})
    steps = method["name"].split("+")
    if "dba" in steps:
        gallery = database_augmentation(gallery, int(method["dba_n"]), chunk)
    if "qe" in steps:
        queries = query_expansion(queries, gallery, int(method["qe_n"]), float(method["qe_alpha"]),
                                  chunk)
    mask = None
    if "kind" in steps:
        if gallery_kinds is None:
            raise ValueError("the 'kind' re-ranking needs the gallery's kinds")
        gallery_kinds = gallery_kinds.to(queries.device)
        _, top = topk_chunked(queries, gallery, KIND_VOTERS, chunk)
        votes = gallery_kinds[top].float().mean(dim=1)
        query_kind = (votes > 0.5).long()
        counts = torch.bincount(gallery_kinds, minlength=2)

        def mask(start, stop):
            wanted = query_kind[start:stop]
            keep = gallery_kinds[None, :] == wanted[:, None]
            # never leave a query with fewer than k candidates
            short = counts[wanted] < k
            return keep | short[:, None]

    return topk_chunked(queries, gallery, k, chunk, gallery_mask=mask)[1]


def rerank_candidates(grid) -> list[dict]:
    """The re-ranking methods :func:`choose_rerank` tries (``none`` always first); ``grid``: the
    ``retrieval.eval.rerank_grid`` settings."""
    qe_n, qe_alpha, dba_n = grid["qe_n"], grid["qe_alpha"], grid["dba_n"]
    out = [{"name": "none"}, {"name": "kind"}]
    for n, alpha in itertools.product(qe_n, qe_alpha):
        out.append({"name": "qe", "qe_n": n, "qe_alpha": alpha})
        out.append({"name": "kind+qe", "qe_n": n, "qe_alpha": alpha})
    for n in dba_n:
        out.append({"name": "dba", "dba_n": n})
    return out


def choose_rerank(score_fn, candidates: list[dict], min_gain: float = 0.002) -> dict:
    """Score every candidate with ``score_fn(method) -> val mAP@10``; keep the best if it beats
    the plain ranking by at least ``min_gain``, else ``none``. Returns the recorded decision."""
    scores = []
    for method in candidates:
        value = float(score_fn(method))
        scores.append({**method, "map10": value})
        log.info("re-ranking %s: val mAP@10 %.4f", method, value)
    plain = next(s["map10"] for s in scores if s["name"] == "none")
    best = max(scores, key=lambda s: s["map10"])
    keep = best["name"] != "none" and best["map10"] >= plain + min_gain
    chosen = {k: v for k, v in best.items() if k != "map10"} if keep else {"name": "none"}
    return {
        "method": chosen,
        "kept": bool(keep),
        "val_map10_plain": plain,
        "val_map10_chosen": best["map10"] if keep else plain,
        "min_gain": min_gain,
        "candidates": scores,
        "reason": (f"{best['name']} improves val mAP@10 by {best['map10'] - plain:+.4f} (>= {min_gain})" if keep
                   else f"no candidate improves val mAP@10 by >= {min_gain} over the plain ranking"),
    }


def rankings_frame(queries: pd.DataFrame, names: list[str], top: np.ndarray) -> pd.DataFrame:
    """Long table of ``top`` (queries x k gallery indices)."""
    n_query, k = top.shape
    if n_query != len(queries):
        raise AssertionError(f"{n_query} rankings for {len(queries)} queries")
    names = np.asarray(names, dtype=object)
    return pd.DataFrame({
        "query": np.repeat(queries["query"].to_numpy(), k),
        "text": np.repeat(queries["text"].to_numpy(dtype=object), k),
        "rank": np.tile(np.arange(1, k + 1), n_query),
        "name": names[top.reshape(-1)],
    }, columns=COLUMNS)
