"""The training engine both tracks share: device and precision, distributed set-up, parameter groups,
the warm-up/cosine schedule, the settings fingerprint, checkpoints with resume, the step loop with
per-part timing, logging, periodic evaluation and hooks. A track brings its model, data, losses and
metrics (``allinone.train``, ``retrieval.train``)."""

from .optim import lr_factor, param_groups, set_lr
from .state import Hooks, PartTimer, TrainState
from .trainer import Trainer, result_settings

__all__ = ["Hooks", "PartTimer", "TrainState", "Trainer", "lr_factor", "param_groups", "result_settings", "set_lr"]
