"""The AllInOne recipe's safeguards: classifier priors, diagnostics, schedule from epochs, best
checkpoint and warnings (tiny models, seconds)."""

import json

import numpy as np
import pytest
import torch

from tiny_settings import tiny_allinone
from trafficfm.allinone import recipe
from trafficfm.allinone.diagnostics import Diagnostics
from trafficfm.allinone.model import AllInOneModel
from trafficfm.allinone.synthetic import make_synthetic_allinone
from trafficfm.allinone.train import equal_norms, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    return make_synthetic_allinone(base / "data", base / "root")


def _model(num_cls=196):
    return AllInOneModel(tiny_allinone().model, {"cls": num_cls, "det": 45, "seg": 19})


def test_class_prior_starts_the_heads_at_the_label_frequencies():
    torch.manual_seed(0)
    model = _model()
    counts = np.zeros(196, np.int64)
    counts[[0, 50, 195]] = [30, 60, 10]  # three classes of 196 occur, as in a sparse release
    det = np.zeros(46, np.int64)
    det[[3, 7]] = [5, 15]
    det[45] = 20  # background
    model.set_class_priors({"cls": counts, "refine": det})
    x = torch.full((4, 3, 64, 64), 128.0)
    with torch.no_grad():
        p = torch.softmax(model("cls", x), dim=1).mean(0)
    assert p[[0, 50, 195]].sum() > 0.9  # the absent 193 classes start nearly impossible
    assert p[50] > p[0] > p[195]
    # the uniform start it replaces puts nearly all the mass on absent classes
    assert torch.softmax(_model().cls_head.fc.bias.detach() * 0, 0)[[0, 50, 195]].sum() < 0.02
    assert torch.argmax(model.refine_head.fc.bias) in (7, 45)


def test_diagnostics_and_validation_points_are_logged(dataset, tmp_path):
    cfg = tiny_allinone(steps=4, eval_every=2, eval_limit=4)
    summary = train(dataset, tmp_path / "m.pt", tmp_path / "ckpt", cfg, curve_path=tmp_path / "curve.png",
                    history_path=tmp_path / "h.json")
    history = json.loads((tmp_path / "h.json").read_text())
    diag = [h["diag"] for h in history if "lr" in h]  # log_every 1
    assert len(diag) == 4
    for d in diag:
        assert sum(d[f"share_{t}"] for t in ("cls", "det", "seg")) == pytest.approx(1.0, abs=1e-3)
        assert d["gnorm_det"] > 0 and d["gnorm_seg"] > 0
        assert 0 <= d["cls_alive"] <= 1 and d["cls_spread"] >= 0
    # the classifier starts at the prior with zero weights: no gradient into the features at the
    # first step, the class signal from the second on
    assert diag[0]["gnorm_cls"] == 0 and diag[-1]["gnorm_cls"] > 0
    evals = [h for h in history if "val" in h]
    assert [h["step"] for h in evals] == [2, 4]  # every 2 steps, and the last
    assert sum(1 for h in history if "diag" in h) == 4
    assert set(evals[-1]["cls_accuracy"]) <= {"0", "1", "2"} and "zero_classes" in evals[-1]
    best = max(evals, key=lambda h: h["val"]["score"])
    assert summary["kept_step"] == best["step"]
    blob = torch.load(tmp_path / "m.pt", map_location="cpu", weights_only=False)
    assert blob["kept_step"] == best["step"]
    assert history[-1]["warnings"] == summary["warnings"]


@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_diagnostics_and_warnings_show_a_dead_box_side(activation):
    torch.manual_seed(0)
    model = AllInOneModel({**tiny_allinone().model, "det_box_activation": activation},
                          {"cls": 3, "det": 45, "seg": 19})
    with torch.no_grad():  # the left-distance output below zero everywhere, as release 3 / seed 1 ended
        model.det_reg.bbox_reg.weight[0].zero_()
        model.det_reg.bbox_reg.bias[0] = -3.0
    diag = Diagnostics(model, model.shared_parameters(), {"cls": np.ones(3), "refine": np.ones(46)}, 1)
    targets = [{"boxes": torch.tensor([[10.0, 10, 30, 30]]), "labels": torch.tensor([3])}]
    model("det", torch.rand(1, 3, 64, 64) * 255, targets)["det_box"].backward()
    diag.after_task(None, "det", None)
    zero = diag.window["det_box_zero"][0]
    history = [{"step": 300, "lr": 1e-5, "diag": {"det_box_zero": zero}}]
    warnings = recipe.warnings_from(history, improving=0.02)
    if activation == "relu":  # dead: every location says 0 on that side
        assert zero == 1.0
        assert len(warnings) == 1 and "one box side is zero at 100% of locations" in warnings[0]
    else:  # softplus(-3) = 0.05 strides: short, alive, and no warning
        assert zero == 0.0 and warnings == []


def test_best_keeper_restores_the_best_weights(tmp_path):
    net = torch.nn.Linear(2, 2)
    keeper = recipe.BestKeeper(tmp_path, "fp")
    with torch.no_grad():
        net.weight.fill_(1.0)
    assert keeper.offer(2, 0.7, net)
    with torch.no_grad():
        net.weight.fill_(2.0)
    assert not keeper.offer(4, 0.5, net)
    assert recipe.BestKeeper(tmp_path, "fp").step == 2  # a resumed run still knows it
    assert keeper.restore(net, 4) == 2
    assert torch.equal(net.weight, torch.ones(2, 2))
    assert recipe.BestKeeper(tmp_path, "other").step is None  # another configuration's file is dropped


def test_schedule_follows_the_data():
    tcfg = {"steps": None, "epochs": {"cls": 8, "det": 6, "seg": 8},
            "tasks": {"cls": {"batch_size": 16}, "det": {"batch_size": 8}, "seg": {"batch_size": 8}}}
    assert recipe.schedule_steps(tcfg, {"cls": 600, "det": 400, "seg": 300}) == 300  # the demo
    assert recipe.schedule_steps(tcfg, {"cls": 8144, "det": 400, "seg": 300}) == 4072  # Stanford Cars' size
    assert recipe.schedule_steps({**tcfg, "steps": 7}, {"cls": 600, "det": 400, "seg": 300}) == 7


def test_warnings_name_a_task_still_improving_and_classes_at_zero():
    history = [
        {"step": 100, "val": {"top1": 0.50, "map50": 0.40, "miou": 0.50}},
        {"step": 200, "val": {"top1": 0.60, "map50": 0.41, "miou": 0.50},
         "zero_classes": {"cls": ["12", "40"], "det": [], "seg": []}},
    ]
    warnings = recipe.warnings_from(history, improving=0.02)
    assert len(warnings) == 2
    assert warnings[0].startswith("cls still improving") and "epochs.cls" in warnings[0]
    assert "2 class(es) at 0" in warnings[1] and "12, 40" in warnings[1]
    history[-1]["val"]["top1"] = 0.51
    history[-1]["zero_classes"]["cls"] = []
    assert recipe.warnings_from(history, improving=0.02) == []


def test_equal_norms_gives_every_task_the_same_say_on_the_shared_layers():
    torch.manual_seed(0)
    shared = [0, 1]  # parameters 0 and 1 are shared, 2 is a head
    grads = {"cls": [torch.randn(5) * 0.1, None, torch.randn(3)],
             "det": [torch.randn(5) * 3, torch.randn(4) * 3, None],
             "seg": [torch.randn(5), torch.randn(4), None]}
    heads = grads["cls"][2].clone()
    before = {t: torch.linalg.vector_norm(torch.cat([g[i] for i in shared if g[i] is not None])) for t, g in grads.items()}
    equal_norms(grads, shared)
    after = {t: torch.linalg.vector_norm(torch.cat([g[i] for i in shared if g[i] is not None])) for t, g in grads.items()}
    mean = torch.stack(list(before.values())).mean()
    for t in grads:
        assert after[t] == pytest.approx(float(mean), rel=1e-5)
    assert before["det"] > 20 * before["cls"]  # the drowned task is lifted, the loud one quietened
    assert torch.equal(grads["cls"][2], heads)  # heads keep their own gradient


def test_equal_norms_gives_each_task_a_say_in_proportion_to_its_weight():
    torch.manual_seed(1)
    shared = [0, 1]
    grads = {t: [torch.randn(5) * s, torch.randn(4) * s, None] for t, s in (("cls", 0.1), ("det", 3.0), ("seg", 1.0))}
    norm = lambda g: float(torch.linalg.vector_norm(torch.cat([g[i] for i in shared])))  # noqa: E731
    mean = sum(norm(g) for g in grads.values()) / 3
    equal_norms(grads, shared, {"cls": 1.0, "det": 2.0, "seg": 1.0})
    assert norm(grads["det"]) == pytest.approx(mean * 2 / (4 / 3), rel=1e-5)  # weight / mean weight
    assert norm(grads["cls"]) == pytest.approx(mean * 1 / (4 / 3), rel=1e-5)
    assert norm(grads["seg"]) == pytest.approx(norm(grads["cls"]), rel=1e-5)


def test_equal_norms_with_every_weight_zero_leaves_the_gradients_finite_and_unchanged():
    torch.manual_seed(2)
    shared = [0]
    grads = {t: [torch.randn(5)] for t in ("cls", "det")}
    before = {t: g[0].clone() for t, g in grads.items()}
    equal_norms(grads, shared, {"cls": 0.0, "det": 0.0})
    for t in grads:  # no 0 / 0: the weighted losses gave zero gradients already, nothing to rescale
        assert torch.equal(grads[t][0], before[t])
    equal_norms(grads, shared, {"cls": 0.0, "det": 1.0})  # one task switched off: no say at all
    assert torch.count_nonzero(grads["cls"][0]) == 0 and torch.isfinite(grads["det"][0]).all()


def test_task_balance_changes_the_trained_backbone(dataset, tmp_path):
    runs = {}
    for balance in ("none", "equal_norm"):
        cfg = tiny_allinone(steps=2, eval_every=0, task_balance=balance)
        train(dataset, tmp_path / f"{balance}.pt", tmp_path / f"ckpt-{balance}", cfg)
        runs[balance] = torch.load(tmp_path / f"{balance}.pt", map_location="cpu", weights_only=False)["state_dict"]
    differ = {k for k in runs["none"] if not torch.equal(runs["none"][k], runs["equal_norm"][k])}
    assert any(k.startswith("backbone") for k in differ)
