"""Test-only: freeze a process at a chosen call so that a test can SIGKILL it right there.

With this folder on PYTHONPATH, TRAFFICFM_TEST_PAUSE=``module:qualname:N`` makes the N-th call of
``module.qualname`` (e.g. ``torch.optim.adamw:AdamW.step:4``: inside the 4th optimizer step, after
the backward pass, before the update) create the file named by TRAFFICFM_TEST_PAUSED and sleep until
killed. With TRAFFICFM_TEST_PAUSE_HALF=1 the function is taken to be a writer ``f(obj, path)`` of
a torch file and half of that file is written first (a kill in the middle of a write). Nothing is
patched without TRAFFICFM_TEST_PAUSE, and nothing is imported before the module is (Snakemake's own
process, which never imports it, is untouched)."""

import importlib.abc
import importlib.util
import io
import os
import sys
import time

SPEC = os.environ.get("TRAFFICFM_TEST_PAUSE")


def _freeze():
    with open(os.environ["TRAFFICFM_TEST_PAUSED"], "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(1)


def _half_write(obj, path):
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        f.flush()
        os.fsync(f.fileno())


def _patch(module, qualname, n):
    *owner_path, attr = qualname.split(".")
    owner = module
    for part in owner_path:
        owner = getattr(owner, part)
    original = getattr(owner, attr)
    calls = [0]

    def paused(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            if os.environ.get("TRAFFICFM_TEST_PAUSE_HALF"):
                _half_write(*args[-2:])
            _freeze()
        return original(*args, **kwargs)

    setattr(owner, attr, paused)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name, qualname, n):
        self.name, self.qualname, self.n = name, qualname, n

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module, self.qualname, self.n)

        spec.loader.exec_module = exec_module
        return spec


if SPEC:
    _name, _qualname, _n = SPEC.split(":")
    if _name in sys.modules:
        _patch(sys.modules[_name], _qualname, int(_n))
    else:
        sys.meta_path.insert(0, _Finder(_name, _qualname, int(_n)))
