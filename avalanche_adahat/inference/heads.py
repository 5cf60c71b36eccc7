"""The trained tasks' heads as task inference reads them: the classes each head was
trained on, and every task's logits through its stored mask and head, padded to all
classes seen with :data:`MASKED_LOGIT`."""

from __future__ import annotations

import torch
from avalanche.models import MultiHeadClassifier
from torch import Tensor

__all__ = ["MASKED_LOGIT", "task_classes", "task_logits", "widen"]

#: Logit of the classes outside the chosen task (finite, so a loss metric stays finite).
MASKED_LOGIT = -1e4


def _multi_head(model) -> MultiHeadClassifier:
    heads = [m for m in model.modules() if isinstance(m, MultiHeadClassifier)]
    if len(heads) != 1:
        raise ValueError(
            "task inference needs a backbone with one MultiHeadClassifier (multi_head=True), "
            f"found {len(heads)}"
        )
    return heads[0]


def task_classes(model, tasks: list[int], width: int) -> Tensor:
    """``(T, width)`` booleans: the classes each task's head was trained on."""
    head = _multi_head(model)
    rows = []
    for t in tasks:
        units = getattr(head, f"active_units_T{t}").to(torch.bool)
        row = torch.zeros(width, dtype=torch.bool, device=units.device)
        row[: units.numel()] = units[:width]
        rows.append(row)
    return torch.stack(rows)


def widen(logits: Tensor, width: int) -> Tensor:
    """One task's logits padded to ``width`` classes with :data:`MASKED_LOGIT`."""
    return torch.nn.functional.pad(logits, (0, width - logits.shape[1]), value=MASKED_LOGIT)


def task_logits(model, x: Tensor, tasks: list[int], width: int) -> Tensor:
    """Every task's logits on ``x`` through its stored mask and head, ``(T, B, width)``."""
    outs = []
    for t in tasks:
        outs.append(widen(model.forward_single_task(x, t), width))
    return torch.stack(outs)
