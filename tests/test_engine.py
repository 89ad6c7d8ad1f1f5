"""The shared training engine: schedule, parameter groups, and the hooks a recipe builds on."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tiny_settings import tiny_allinone
from trafficfm.allinone.synthetic import make_synthetic_allinone
from trafficfm.allinone.train import train
from trafficfm.engine import Hooks, lr_factor, param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedule_warms_up_then_follows_the_cosine():
    assert [lr_factor(s, 10, 2, 0.1) for s in (0, 1)] == [0.5, 1.0]
    assert lr_factor(2, 10, 2, 0.1) == pytest.approx(1.0)
    assert lr_factor(6, 10, 2, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(10, 10, 2, 0.1) == pytest.approx(0.1) == lr_factor(50, 10, 2, 0.1)


def test_parameter_groups_by_part_and_decay():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[1].weight.requires_grad = False
    groups = param_groups(model, lambda name: "head" if name.startswith("2.") else "body", {"body": 1e-3, "head": 1e-2},
                          0.05)
    assert [(g["name"], g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == [
        ("body_no_decay", 1e-3, 0.0, 2), ("body", 1e-3, 0.05, 1), ("head_no_decay", 1e-2, 0.0, 1),
        ("head", 1e-2, 0.05, 1)]


def test_hooks_see_each_task_every_step_and_each_evaluation(tmp_path):
    data = make_synthetic_allinone(tmp_path / "data", tmp_path / "root")
    seen = {"task": [], "step": [], "eval": []}

    def task_hook(state, task, grads):  # e.g. per-task gradient norms on the shared backbone
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        seen["task"].append((state.step, task))
        state.note(**{f"grad_{task}": float(norm)})

    def eval_hook(state, metrics):  # e.g. keep the best weights by validation score
        seen["eval"].append((state.step, metrics["score"]))

    hooks = Hooks(task=[task_hook], step=[lambda state, figures: seen["step"].append(sorted(figures))],
                  evaluate=[eval_hook])
    cfg = tiny_allinone(steps=3, eval_every=2, eval_limit=2)
    train(data, tmp_path / "model.pt", tmp_path / "ckpt", cfg, history_path=tmp_path / "history.json", hooks=hooks)
    assert seen["task"] == [(s, t) for s in range(3) for t in ("cls", "det", "seg")]
    assert len(seen["step"]) == 3 and "samples" in seen["step"][0] and "cls" in seen["step"][0]
    # every eval_every steps, and the AllInOne recipe always validates the last step too
    assert [s for s, _ in seen["eval"]] == [2, 3] and 0 <= seen["eval"][0][1] <= 1
    history = json.loads((tmp_path / "history.json").read_text())
    logged = [h for h in history if "lr" in h]
    assert [h["step"] for h in logged] == [1, 2, 3]
    assert all({"grad_cls", "grad_det", "grad_seg"} <= set(h) for h in logged)  # the hook's figures are recorded
    assert [(h["step"], h["val"]["score"]) for h in history if "val" in h] == seen["eval"]
