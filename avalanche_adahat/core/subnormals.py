"""Subnormal floats in the HAT training step."""

from __future__ import annotations

import torch

__all__ = ["flush_subnormals_is_on"]


def flush_subnormals_is_on() -> bool:
    """Whether this thread's CPU now flushes subnormal floats to zero (FTZ/DAZ).

    Why the plugin flushes them during each training step: once the annealed
    ``s`` is large, gates ``sigmoid(s e)`` of negative embeddings, the activations
    they multiply and their gradients fall below float32's smallest normal number,
    where x86 kernels run tens of times slower. Flushing changes only values below
    ``2**-126``: a gate there has ``s e < -87``, and even after the embedding-gradient
    compensation (whose clamp stops at ``cosh(50)``) its gradient is below ``e**-37``
    of an unclamped unit's, far under float32 rounding (``2**-24``); such values
    only ever add to normal ones. Exact zeros stay exact, so every bitwise
    guarantee holds. Evaluation (binary masks) is untouched.
    """
    return (torch.tensor([2.0**-100]) * 2.0**-40).item() == 0.0
