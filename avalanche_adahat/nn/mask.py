"""The HAT mask mechanism: per-task embeddings, stored binary masks, cumulative
and summative masks, and the map from each backbone parameter to its units.

A :class:`HATMask` sits on the output units (features or channels) of one
weighted layer. A backbone (:class:`~avalanche_adahat.nn.module.HATModule`) lists its weighted layers as HAT
layers (:mod:`avalanche_adahat.nn.layers`: the layer, its mask, the mask it reads),
from which follows, for every parameter protected, which mask indexes its output
dimension and which (if any) its input dimension (:class:`CoveredParameter`).
Everything that must survive a checkpoint lives in parameters or buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.functional import INIT_MODES, gate, outer_max

__all__ = ["CoveredParameter", "HATMask", "gate_units", "init_embedding"]


def gate_units(h: Tensor, g: Tensor, repeat: int = 1) -> Tensor:
    """``h`` with its units (dim 1) multiplied by the gate ``g`` (HAT Eq. 1's mask).

    ``g`` is one value per unit, ``(units,)``, or per sample, ``(N, units)`` (a
    superposition of masks, see :mod:`avalanche_adahat.inference.router`). Channel
    gates broadcast over spatial positions; ``repeat > 1``: each unit covers that
    many consecutive features (a channel after a ``Flatten``).
    """
    if repeat > 1:
        g = g.repeat_interleave(repeat, dim=-1)
    if h.dim() > 2:
        g = g.reshape(*g.shape, *([1] * (h.dim() - 2)))
    return h * g


def init_embedding(embedding: Tensor, mode: str, previous: Tensor | None = None) -> Tensor:
    """Fill ``embedding`` in place by ``task_embedding_init_mode`` (docs/ALGORITHM.md §1)."""
    with torch.no_grad():
        if mode == "N01":
            embedding.normal_(0.0, 1.0)
        elif mode == "U-11":
            embedding.uniform_(-1.0, 1.0)
        elif mode == "U01":
            embedding.uniform_(0.0, 1.0)
        elif mode == "U-10":
            embedding.uniform_(-1.0, 0.0)
        elif mode == "last":
            if previous is None:
                embedding.normal_(0.0, 1.0)  # first task: nothing to inherit
            else:
                embedding.copy_(previous)
        else:
            raise ValueError(f"task_embedding_init_mode must be one of {INIT_MODES}, got {mode!r}")
    return embedding


class HATMask(nn.Module):
    """Attention on the ``num_units`` output units of one layer, for every task.

    - ``embeddings[str(t)]``: the task embedding ``e^t`` (a parameter);
    - buffer ``mask_T{t}``: the stored binary mask ``M^t = 1[e^t > 0]``;
    - buffer ``cumulative``: ``M^{<t} = max_τ M^τ`` (HAT);
    - buffer ``summative``: ``S^{<t} = Σ_τ M^τ`` (AdaHAT Eq. 7).
    """

    cumulative: Tensor
    summative: Tensor

    def __init__(self, num_units: int):
        super().__init__()
        if num_units <= 0:
            raise ValueError(f"num_units must be positive, got {num_units}")
        self.num_units = num_units
        self.embeddings = nn.ParameterDict()
        self.register_buffer("cumulative", torch.zeros(num_units))
        self.register_buffer("summative", torch.zeros(num_units))

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}, tasks={list(self.embeddings.keys())}"

    def has_embedding(self, task_label: int) -> bool:
        return str(task_label) in self.embeddings

    def is_stored(self, task_label: int) -> bool:
        return hasattr(self, f"mask_T{task_label}")

    def stored_mask(self, task_label: int) -> Tensor:
        """``M^t``: the binary mask stored when task ``t`` finished."""
        return getattr(self, f"mask_T{task_label}")

    def add_task(self, task_label: int, init_mode: str) -> None:
        """Create ``e^t`` for a new task label (``last`` copies the newest one)."""
        previous = None
        if len(self.embeddings) > 0:
            previous = self.embeddings[list(self.embeddings.keys())[-1]].detach()
        like = self.cumulative
        e = torch.empty(self.num_units, device=like.device, dtype=like.dtype)
        self.embeddings[str(task_label)] = nn.Parameter(init_embedding(e, init_mode, previous))

    def soft(self, task_label: int, s: float) -> Tensor:
        """``m^t = sigmoid(s e^t)`` (HAT Eq. 1)."""
        return gate(self.embeddings[str(task_label)], s)

    @torch.no_grad()
    def store(self, task_label: int) -> Tensor:
        """Store ``M^t = 1[e^t > 0]`` and fold it into the cumulative and summative masks."""
        mask = (self.embeddings[str(task_label)] > 0).to(self.cumulative.dtype)
        self.register_buffer(f"mask_T{task_label}", mask.clone())
        torch.maximum(self.cumulative, mask, out=self.cumulative)
        self.summative.add_(mask)
        return mask

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Create the per-task entries a checkpoint has and this fresh module lacks,
        # so a state_dict saved after several tasks loads into a new backbone.
        for key, value in state_dict.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            if name.startswith("mask_T") and not hasattr(self, name):
                self.register_buffer(name, torch.zeros_like(value))
            elif name.startswith("embeddings.") and name.count(".") == 1:
                label = name.split(".", 1)[1]
                if label not in self.embeddings:
                    self.embeddings[label] = nn.Parameter(torch.zeros_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@dataclass(frozen=True, eq=False)
class CoveredParameter:
    """A backbone parameter protected by the gradient adjustment (docs/ALGORITHM.md §3).

    ``out_mask`` indexes dimension 0 of ``param``; ``in_mask`` (``None`` for the
    first layer and for biases) indexes dimension 1, each of its units covering
    ``in_repeat`` consecutive input features (``H*W`` for a Linear after a conv).
    """

    name: str
    param: nn.Parameter
    out_mask: HATMask
    in_mask: HATMask | None = None
    in_repeat: int = 1

    def expand_in(self, unit_values: Tensor) -> Tensor:
        """Map unit values of ``in_mask`` to the parameter's input features."""
        if self.in_repeat == 1:
            return unit_values
        return unit_values.repeat_interleave(self.in_repeat)

    def frozen_entries(self) -> Tensor:
        """Booleans of ``param``'s shape: the entries HAT's rate freezes now, those whose
        output and input units an earlier task both uses (HAT Eq. 2, docs/ALGORITHM.md
        §3): later tasks leave them bitwise unchanged (docs/ALGORITHM.md §6.2)."""
        free_in = None if self.in_mask is None else self.expand_in(1 - self.in_mask.cumulative)
        rate = outer_max(1 - self.out_mask.cumulative, free_in, self.param.shape)
        return rate.expand_as(self.param) == 0
