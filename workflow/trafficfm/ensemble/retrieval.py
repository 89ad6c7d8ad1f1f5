"""Fusion of retrieval ensemble members: every member's query x gallery cosine similarities are
normalised per query (zero mean, unit standard deviation over the gallery: members' similarity
scales differ, a fine-tuned model's logit scale spreads them more) and averaged, then the exact
top k is taken. Similarities are computed by blocks of ``chunk`` queries, so memory stays at
members x chunk x gallery floats whatever the number of queries."""

from __future__ import annotations

import hashlib

import torch

from ..retrieval.rank import _break_ties, block_topk


def _normalised(sims: torch.Tensor) -> torch.Tensor:
    mean = sims.mean(dim=1, keepdim=True)
    std = sims.std(dim=1, keepdim=True).clamp(min=1e-6)
    return (sims - mean) / std


def _fingerprint(member: tuple[torch.Tensor, torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in member:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def fuse_topk(members: list[tuple[torch.Tensor, torch.Tensor]], k: int = 10,
              chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, gallery indices) of the top ``k`` per query of the mean normalised similarity.

    ``members``: (query embeddings (Q, D_m), gallery embeddings (G, D_m)) per member, L2-normalised;
    members may have different embedding sizes but must embed the same queries and gallery.
    """
    n_query, n_gallery = members[0][0].shape[0], members[0][1].shape[0]
    for q, g in members:
        if q.shape[0] != n_query or g.shape[0] != n_gallery:
            raise ValueError("ensemble members rank different queries or galleries")
    k = min(k, n_gallery)
    scores = torch.empty(n_query, k)
    index = torch.empty(n_query, k, dtype=torch.long)
    # one canonical summation order (by the members' content), so the order in which members are
    # listed never changes a float sum, hence never the ranking
    members = sorted(members, key=_fingerprint)
    galleries = [g.float().T.contiguous() for _, g in members]
    for start in range(0, n_query, chunk):
        stop = min(start + chunk, n_query)
        fused = None
        for (q, _), g in zip(members, galleries):
            part = _normalised(q[start:stop].float() @ g)
            fused = part if fused is None else fused.add_(part)
        fused /= len(members)
        values, indices = block_topk(fused, k)
        values, indices = _break_ties(values, indices)
        scores[start:stop], index[start:stop] = values, indices
    return scores, index
