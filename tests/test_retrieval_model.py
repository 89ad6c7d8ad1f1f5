"""The offline default model builds from the packaged weights (no network) and encodes a batch."""

import pytest
import torch
from trafficfm.config import load
from trafficfm.retrieval.model import OFFLINE_ARCH, build_model, lite0_weights_file


@pytest.fixture(scope="module")
def default_model():
    torch.manual_seed(0)
    return build_model(load(overrides=[f"retrieval.model.arch={OFFLINE_ARCH}", "retrieval.model.unlock_image=8",
                                       "retrieval.model.unlock_text=0"]).retrieval.model)


def test_default_model_uses_packaged_weights(default_model):
    package = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    trunk = default_model.clip.visual.trunk
    assert torch.equal(trunk.conv_stem.weight, package["_conv_stem.weight"])
    assert torch.equal(trunk.conv_head.weight, package["_conv_head.weight"])
    assert default_model.normalise.mean == (0.5, 0.5, 0.5) and default_model.normalise.std == (0.5, 0.5, 0.5)
    text = default_model.clip.text
    assert text.config.model_type == "bert" and text.config.hidden_size == 384


def test_default_model_encodes_a_batch(default_model):
    default_model.eval()
    with torch.no_grad():
        images = default_model.encode_image(torch.randn(2, 3, 224, 224))
        texts = default_model.encode_text(["This is a white Audi.", "A female pedestrian with a backpack.",
                                           "This is a white Audi."])
    assert images.shape == (2, 512) and texts.shape == (3, 512)
    assert torch.allclose(images.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.equal(texts[0], texts[2])
    # frozen text tower: pooled outputs cached per caption; the projection stays trainable
    assert default_model.text_frozen and len(default_model._text_cache) == 2
    assert default_model.clip.text.proj.weight.requires_grad


def test_partial_unlock(default_model):
    trunk = default_model.clip.visual.trunk
    assert not trunk.conv_stem.weight.requires_grad and not trunk.blocks[3][0].conv_pw.weight.requires_grad
    assert trunk.blocks[4][0].conv_pw.weight.requires_grad and trunk.conv_head.weight.requires_grad
    assert default_model.clip.visual.head.proj.weight.requires_grad
    default_model.train()
    assert not default_model.clip.text.transformer.training  # frozen parts stay in eval mode


def test_locked_tower_computes_the_plain_network(default_model):
    """Locking must not change what the frozen layers compute (open_clip's freeze_bn_stats would
    drop the activations of timm's BatchNormAct2d)."""
    import timm
    from trafficfm.retrieval.model import load_lite0_package_weights

    reference = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    load_lite0_package_weights(reference)
    reference.eval()
    trunk = default_model.clip.visual.trunk
    default_model.train()  # the frozen prefix stays in eval mode even while training
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.blocks[:4](reference.bn1(reference.conv_stem(x)))
        got = trunk.blocks[:4](trunk.bn1(trunk.conv_stem(x)))
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4)
        default_model.eval()
        assert torch.allclose(trunk(x), reference(x), rtol=1e-4, atol=1e-4)
    assert reference(x).abs().max() < 100


def test_frozen_prefix_cache_matches_plain_encoding(default_model):
    default_model.eval()
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        plain = default_model.encode_image(x)
        assert default_model.enable_prefix_cache()
        try:
            first = default_model.encode_image(x, keys=[7, 8, 9])
            again = default_model.encode_image(x[[2, 0]], keys=[9, 7])  # served from the cache
        finally:
            default_model.disable_prefix_cache()
    assert torch.allclose(first, plain, atol=2e-3)  # the cached prefix output is fp16
    assert torch.equal(again, first[[2, 0]])
