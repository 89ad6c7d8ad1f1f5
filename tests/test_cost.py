"""The cost command's figures: FLOPs as counted by hand, and a GPU-hour estimate that follows from
its own per-image figures."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from workflow_runner import ROOT
from trafficfm.config import load_config
from trafficfm.cost import GPU_PEAK_TFLOPS, measure, report


def test_flops_of_a_convolution_and_a_linear_layer_match_the_formula(one_thread):
    conv, lin = torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.Linear(32, 10)
    x, y = torch.rand(2, 8, 20, 30), torch.rand(5, 32)
    got = measure(lambda: (conv(x), lin(y)), torch.device("cpu"))
    # a multiply-add is 2 FLOPs: conv 2 x N x Cout x H x W x Cin x k x k, linear 2 x N x out x in
    assert got["flops"] == 2 * 2 * 16 * 20 * 30 * 8 * 9 + 2 * 5 * 10 * 32
    assert got["seconds"] > 0


def test_depthwise_convolution_backward_costs_twice_its_forward(one_thread):
    """torch's formula counts the weight gradient of a grouped conv as dense (64x here); ours not."""
    conv = torch.nn.Conv2d(64, 64, 7, padding=3, groups=64)
    x = torch.rand(1, 64, 32, 32, requires_grad=True)
    forward = measure(lambda: conv(x), torch.device("cpu"))["flops"]
    assert forward == 2 * 64 * 32 * 32 * 49
    assert measure(lambda: conv(x).sum().backward(), torch.device("cpu"))["flops"] == 3 * forward


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    """The report of tiny models at small sizes, with the challenge's tiling (1024 px tiles)."""
    overlay = tmp_path_factory.mktemp("cost") / "tiny.yaml"
    overlay.write_text(yaml.safe_dump({
        "allinone": {"model": {"backbone": "tiny", "pretrained": None, "freeze": [], "fuse_bn": False,
                               "fpn_channels": 16, "cls_hidden": 16, "seg_channels": 16, "refine_hidden": 16},
                     "train": {"steps": 1000, "tasks": {"cls": {"batch_size": 4, "size": 64},
                                                        "det": {"batch_size": 2, "crop": 64},
                                                        "seg": {"batch_size": 3, "crop": [64, 96]}}}},
        "retrieval": {"model": {"arch": "trafficfm-tiny", "pretrained": None, "image_size": 32,
                                "context_length": 32, "channels_last": False},
                      "train": {"epochs": 2}},
        "cost": {"gpus": 4, "gpu": "H100", "utilisation": 0.5},
    }))
    cfg = load_config(ROOT / "config.yaml", ROOT / "config" / "challenge.yaml", overlay)
    lines: list[str] = []
    torch.set_num_threads(1)
    return cfg, report(cfg, "cpu", loading=False, out=lines.append), "\n".join(lines)


def test_gpu_hours_follow_from_the_printed_figures(tiny_report):
    cfg, r, text = tiny_report
    rel, tasks = cfg["cost"]["release"], cfg["allinone"]["train"]["tasks"]
    rate = GPU_PEAK_TFLOPS["H100"] * 1e12 * 0.5
    step = sum(tasks[t]["batch_size"] * r[(t, "train")]["flops"] for t in ("cls", "det", "seg"))
    flops = (1000 * step
             + sum(rel[f"{t}_test"] * r[(t, "infer")]["flops"] for t in ("cls", "det", "seg"))
             + 2 * rel["retrieval_train_pairs"] * r[("pair", "train")]["flops"]
             + rel["retrieval_gallery"] * r[("image", "infer")]["flops"]
             + rel["retrieval_queries"] * r[("query", "infer")]["flops"])
    assert math.isclose(r["estimate"]["gpu_hours"], flops / rate / 3600, rel_tol=1e-9)
    assert math.isclose(r["estimate"]["hours"], r["estimate"]["gpu_hours"] / 4, rel_tol=1e-9)
    assert "on 4 x H100" in text and "1,000 steps" in text


def test_training_counts_backward_and_tiles_multiply_detection(tiny_report):
    cfg, r, _ = tiny_report
    for task in ("cls", "det", "seg"):
        assert r[(task, "train")]["flops"] > 0 and r[(task, "infer")]["flops"] > 0
    # a training step of a classification image (64 px) is forward + backward: 2-3x the forward
    from trafficfm.allinone.model import AllInOneModel

    model = AllInOneModel({**cfg["allinone"]["model"]}, {"cls": 196, "det": 45, "seg": 19})
    fwd = measure(lambda: model("cls", torch.zeros(1, 3, 64, 64, dtype=torch.uint8)), torch.device("cpu"))["flops"]
    assert 2.0 * fwd <= r[("cls", "train")]["flops"] <= 3.2 * fwd
    # a 2048 px image at det_scale 1.5 is 16 tiles of 1024 px: at least 16 tile forwards
    tile = measure(lambda: model.det_raw(torch.zeros(1, 3, 1024, 1024)), torch.device("cpu"))["flops"]
    assert r[("det", "infer")]["flops"] >= 16 * tile
