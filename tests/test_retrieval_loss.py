"""The multi-positive loss: positives from the relation, value, and gathering across ranks."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from trafficfm.retrieval.loss import MultiPositiveLoss
from trafficfm.retrieval.relevance import AttributeCodec


def ped(*ones, gender="0"):
    fields = [gender] + ["0"] * 20
    for i in ones:
        fields[i] = "1"
    return ",".join(fields)


ATTRIBUTES = ["A red Audi.", "A red Audi.", "A blue BMW.", ped(3), ped(3, 5), ped(3, 5, gender="1")]


def test_positives_follow_the_relation():
    codec = AttributeCodec()
    ids = codec.encode(ATTRIBUTES)
    loss = MultiPositiveLoss(codec.table())
    positives = loss.targets(ids, ids).int().tolist()
    assert positives == [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 0],  # caption ped(3) also matches the image with attributes 3 and 5
        [0, 0, 0, 0, 1, 0],  # but not the other way round
        [0, 0, 0, 0, 0, 1],  # other gender
    ]


def test_value_is_soft_target_cross_entropy():
    torch.manual_seed(0)
    codec = AttributeCodec()
    ids = codec.encode(ATTRIBUTES)
    images = F.normalize(torch.randn(6, 16), dim=-1)
    texts = F.normalize(torch.randn(6, 16), dim=-1)
    scale = torch.tensor(2.0)
    value = MultiPositiveLoss(codec.table())(images, texts, ids, scale)
    relation = codec.matrix(ids, ids).float()
    logits = scale.exp() * texts @ images.T
    t2i = -(relation / relation.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    i2t = -(relation.T / relation.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    assert value.item() == pytest.approx(0.5 * (t2i + i2t).item(), rel=1e-6)


def test_same_attribute_images_are_not_pushed_apart():
    """Captions and images sharing an attribute, all embedded at one point: near-minimal loss,
    whereas a one-positive CLIP loss would still be log(2) per row."""
    codec = AttributeCodec()
    ids = codec.encode(["A red Audi.", "A red Audi.", "A blue BMW.", "A blue BMW."])
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    features = torch.stack([a, a, b, b])
    value = MultiPositiveLoss(codec.table())(features, features, ids, torch.tensor(4.6))
    assert value.item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), abs=1e-3)  # entropy of targets
    grad_features = features.clone().requires_grad_(True)
    MultiPositiveLoss(codec.table())(grad_features, features, ids, torch.tensor(4.6)).backward()
    assert grad_features.grad.abs().max() < 1e-3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, images, texts, ids, table, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = images.shape[0] // world
        part = slice(rank * n, (rank + 1) * n)
        local_images = images[part].clone().requires_grad_(True)
        value = MultiPositiveLoss(table)(local_images, texts[part], ids[part], torch.tensor(2.0))
        value.backward()
        out[rank] = torch.cat([value.detach().reshape(1), local_images.grad.flatten()])
    finally:
        dist.destroy_process_group()


def test_gathered_loss_equals_full_batch_loss():
    torch.manual_seed(0)
    codec = AttributeCodec()
    ids = codec.encode(ATTRIBUTES * 2)
    images = F.normalize(torch.randn(12, 8), dim=-1)
    texts = F.normalize(torch.randn(12, 8), dim=-1)
    full_images = images.clone().requires_grad_(True)
    full = MultiPositiveLoss(codec.table())(full_images, texts, ids, torch.tensor(2.0))
    full.backward()
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), images, texts, ids, codec.table(), out), nprocs=2, join=True)
    # DDP averages gradients over ranks; the per-rank losses average to the full-batch loss
    assert (out[0][0] + out[1][0]).item() / 2 == pytest.approx(full.item(), rel=1e-5)
    # gradient of each rank's own image rows, summed over ranks by all_gather's backward, / world
    grads = torch.cat([out[0][1:].view(6, 8), out[1][1:].view(6, 8)])
    assert torch.allclose(grads / 2, full_images.grad, atol=1e-6)
