"""Make Avalanche's checkpoint helpers work for HAT strategies (and others).

``avalanche.checkpointing.save_checkpoint`` pickles the whole strategy with
dill. With recent PyTorch releases dill fails on every optimizer class
("Can't pickle sentinel: it's not the same object as
typing_extensions.sentinel"), so no Avalanche strategy can be checkpointed.
Importing this module (``avalanche_adahat`` does) registers, for each
``torch.optim.Optimizer`` subclass, a dill reducer that stores the class by its
import path plus the optimizer's own ``__getstate__`` (defaults, state and
parameter groups); parameters stay shared with the model in the same pickle.

Everything else a HAT run needs is already in the strategy: masks,
embeddings, cumulative and summative masks live in the model's parameters and
buffers, and the plugin's per-task state is plain attributes.
"""

from __future__ import annotations

import importlib

import dill
import torch

__all__ = ["register_optimizer_pickling"]


def _restore_optimizer(class_path: str, state: dict) -> torch.optim.Optimizer:
    module, _, name = class_path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    optimizer = cls.__new__(cls)
    optimizer.__setstate__(state)
    return optimizer


def _save_optimizer(pickler, optimizer: torch.optim.Optimizer) -> None:
    cls = type(optimizer)
    pickler.save_reduce(
        _restore_optimizer,
        (f"{cls.__module__}:{cls.__qualname__}", optimizer.__getstate__()),
        obj=optimizer,
    )


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def register_optimizer_pickling(*extra: type) -> None:
    """Register the reducer for all loaded ``Optimizer`` subclasses (and ``extra`` ones).

    Call it again after defining a custom optimizer class.
    """
    for cls in _subclasses(torch.optim.Optimizer) | set(extra):
        if "<locals>" not in cls.__qualname__:
            dill.register(cls)(_save_optimizer)


register_optimizer_pickling()
