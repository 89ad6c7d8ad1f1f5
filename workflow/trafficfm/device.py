"""Device and precision, the same for both tracks, for training and inference alike.

``device``: ``auto`` (the process's GPU when there is one, else the CPU), ``cpu``, ``cuda`` or
``cuda:<index>``. ``precision``: ``auto`` (bfloat16 autocast on GPU, fp32 on CPU), ``bf16``
(bfloat16 autocast on any device) or ``fp32`` (no autocast).
"""

from __future__ import annotations

import contextlib

import torch


def resolve_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """The device named by the setting; under torchrun ``auto`` takes the process's local GPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if requested in ("auto", "cuda"):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(requested)


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: run in fp32)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, precision: str):
    """Context manager running its block at ``precision`` on ``device``."""
    dtype = amp_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
