"""The optimizer's side of (Ada)HAT: optimizer families, AdaHAT's measured defaults per
family (``adjustment_intensity`` per ``protect`` mode, the first mask and the regulariser
factor), and the caveat of applying rates to gradients under weight decay or an adaptive
optimizer (docs/ALGORITHM.md §6, §8)."""

from __future__ import annotations

import torch

from .modes import AdjustmentMode

__all__ = [
    "ADAPTIVE_OPTIMIZERS",
    "DEFAULT_ADJUSTMENT_INTENSITY",
    "DEFAULT_MASK_SETTINGS",
    "DEFAULT_TASK_INTENSITY",
    "default_adjustment_intensity",
    "default_mask_settings",
    "optimizer_family",
    "gradient_mode_caveat",
    "update_is_scaled_gradient",
]

#: Optimizers that divide each gradient by a running scale of its own.
ADAPTIVE_OPTIMIZERS = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
)

#: AdaHAT's ``adjustment_intensity`` when none is given, by optimizer family and
#: ``protect`` mode, from the sweep in docs/INTENSITY_SWEEP.md
#: (``python benchmarks/intensity_sweep.py``; docs/ALGORITHM.md §8): the highest average accuracy
#: among intensities forgetting less than 0.02 (none does with Adam and
#: ``protect="gradient"``: there the highest average accuracy).
DEFAULT_ADJUSTMENT_INTENSITY = {
    ("sgd", "gradient"): 1e-2,
    ("sgd", "update"): 1e-2,
    ("adaptive", "gradient"): 1e-7,
    ("adaptive", "update"): 1e-2,
}


#: AdaHAT's intensity per task (``intensity_per="task"``, the default with
#: ``protect="update"``) when none is given, by optimizer family: with
#: :data:`DEFAULT_MASK_SETTINGS`, the candidates with the largest worst case over the
#: robustness grid (docs/ROBUSTNESS_GRID.md; docs/ALGORITHM.md §8).
DEFAULT_TASK_INTENSITY = {"sgd": 20.0, "adaptive": 20.0}

#: AdaHAT's ``task_embedding_init_mode`` and ``mask_sparsity_reg_factor`` when none is given,
#: by optimizer family and ``intensity_per``. With the per-task intensity under SGD-like
#: optimizers every unit starts on (``"U01"``) and HAT's factor 0.75 sparsifies the masks
#: (docs/ROBUSTNESS_GRID.md); otherwise the AdaHAT paper's ``"N01"`` and 0.1.
DEFAULT_MASK_SETTINGS = {
    ("sgd", "task"): {"task_embedding_init_mode": "U01", "mask_sparsity_reg_factor": 0.75},
    ("adaptive", "task"): {"task_embedding_init_mode": "N01", "mask_sparsity_reg_factor": 0.1},
    ("sgd", "step"): {"task_embedding_init_mode": "N01", "mask_sparsity_reg_factor": 0.1},
    ("adaptive", "step"): {"task_embedding_init_mode": "N01", "mask_sparsity_reg_factor": 0.1},
}


def optimizer_family(optimizer: torch.optim.Optimizer) -> str:
    """``"adaptive"`` (:data:`ADAPTIVE_OPTIMIZERS`) or ``"sgd"`` (any other optimizer)."""
    return "adaptive" if isinstance(optimizer, ADAPTIVE_OPTIMIZERS) else "sgd"


def default_adjustment_intensity(
    optimizer: torch.optim.Optimizer, protect: str, per: str = "step"
) -> float:
    """The measured default intensity for ``optimizer``'s family: per task
    (:data:`DEFAULT_TASK_INTENSITY`) or per step and ``protect`` mode
    (:data:`DEFAULT_ADJUSTMENT_INTENSITY`)."""
    family = optimizer_family(optimizer)
    if per == "task":
        return DEFAULT_TASK_INTENSITY[family]
    return DEFAULT_ADJUSTMENT_INTENSITY[(family, protect)]


def default_mask_settings(optimizer: torch.optim.Optimizer, per: str) -> dict:
    """AdaHAT's default first mask and regulariser factor for ``optimizer``'s family and
    the intensity unit ``per`` (:data:`DEFAULT_MASK_SETTINGS`)."""
    return dict(DEFAULT_MASK_SETTINGS[(optimizer_family(optimizer), per)])


def gradient_mode_caveat(optimizer, protect: str, mode: AdjustmentMode) -> str | None:
    """Why ``protect="gradient"`` does not mean what it says with ``optimizer`` and
    ``mode``, or ``None``: weight decay moves parameters whose gradient was set to 0;
    an adaptive optimizer divides out a soft mode's constant gradient scale."""
    if protect != "gradient":
        return None
    if any(g.get("weight_decay", 0) for g in optimizer.param_groups):
        return (
            "the optimizer applies weight decay, which moves parameters whose gradient "
            "the adjustment set to 0, so protection is not exact"
        )
    if isinstance(optimizer, ADAPTIVE_OPTIMIZERS) and mode.soft:
        return (
            f"{type(optimizer).__name__} divides out a constant gradient scale, so the soft "
            f"rates of adjustment_mode={mode.name!r} have little effect"
        )
    return None


def update_is_scaled_gradient(optimizer) -> bool:
    """Whether ``optimizer``'s change of every parameter is ``-lr * grad`` (``+lr * grad``
    with ``maximize``): plain ``torch.optim.SGD``, no momentum, no weight decay.

    Then scaling the gradient by a rate scales the change by it, so ``protect="update"``
    needs no snapshot of the parameters, and in either protect mode the plugin applies
    the rates inside the optimizer's step, ``p -= lr * (rate * grad)`` in one pass
    (``training/sgd_step.py``; after any clipping, which under ``protect="update"`` sees
    the gradients unscaled, as the snapshot path's clipping does). The result equals the
    snapshot path's ``lerp(before, before - lr * grad, rate)`` to float rounding,
    exactly where the rate is 0 or 1 (``tests/core/test_step.py``), and the gradient path's
    bits (``tests/training/test_sgd_step.py``)."""
    return type(optimizer) is torch.optim.SGD and all(
        g.get("momentum", 0) == 0 and g.get("weight_decay", 0) == 0 and not g.get("differentiable")
        for g in optimizer.param_groups
    )
