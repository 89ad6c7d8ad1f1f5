"""AdamW with parameter groups and the linear warm-up / cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate factor of ``step``: linear warm-up over ``warmup`` steps, then cosine from 1 to
    ``min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def default_decays(name: str, param: nn.Parameter) -> bool:
    """Weight decay on matrices and kernels, not on biases and norms."""
    return param.ndim > 1


def param_groups(model: nn.Module, part_of: Callable[[str], str], lrs: Mapping[str, float], weight_decay: float,
                 decays: Callable[[str, nn.Parameter], bool] = default_decays) -> list[dict]:
    """AdamW groups of the trainable parameters: one per (part, decay or not), ``part_of(name)``
    naming a key of ``lrs`` (its learning rate); ordered by ``lrs``' order, then without decay first."""
    order = list(lrs)
    groups: dict[tuple[int, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((order.index(part_of(name)), decays(name, param)), []).append(param)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = lrs[order[part]]
        out.append({"params": params, "lr": lr, "base_lr": lr, "weight_decay": weight_decay if decay else 0.0,
                    "name": f"{order[part]}{'' if decay else '_no_decay'}"})
    return out


def adamw(groups: list[dict], train) -> torch.optim.AdamW:
    """AdamW over ``groups`` with the ``train`` settings' betas and epsilon."""
    return torch.optim.AdamW(groups, betas=tuple(float(b) for b in train["adam_betas"]), eps=float(train["adam_eps"]))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
