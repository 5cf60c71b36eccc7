"""Subnormal floats in the HAT training step: why flushing them is safe
(:func:`flush_subnormals_is_on`) and the flush itself (:class:`SubnormalFlush`)."""

from __future__ import annotations

import torch

__all__ = ["SubnormalFlush", "flush_subnormals_is_on"]


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


class SubnormalFlush:
    """Subnormal floats flushed to zero for the length of each training step
    (docs/ALGORITHM.md §5.1), the thread's own mode given back after it.

    The mode is the thread's, not the flush's: :meth:`start` notes it at the start of
    each ``train`` call, :meth:`begin` and :meth:`end` bracket a step, and
    :meth:`guard_epochs` makes an exception inside a step give it back too.
    """

    def __init__(self) -> None:
        self.flushing = False  # inside a training step, subnormals flushed
        self.thread_mode = False  # the thread's subnormal mode before the step

    def start(self) -> None:
        """End a step an exception interrupted, then note the thread's own mode."""
        self.end()
        self.thread_mode = flush_subnormals_is_on()

    def begin(self) -> None:
        """Flush subnormals to zero from now on (the start of a training step)."""
        self.flushing = True
        torch.set_flush_denormal(True)

    def end(self) -> None:
        """Give the thread back its own mode, if a step is flushing."""
        if self.flushing:
            torch.set_flush_denormal(self.thread_mode)
            self.flushing = False

    def guard_epochs(self, strategy) -> None:
        """Wrap ``strategy.training_epoch`` for one ``train`` call so that an exception
        inside a step still ends the flush (Avalanche has no hook for errors).
        :meth:`unguard_epochs` removes the wrapper: checkpoints never hold it."""
        if "training_epoch" in vars(strategy):
            return
        epoch = strategy.training_epoch

        def training_epoch(**kwargs):
            try:
                return epoch(**kwargs)
            finally:
                self.end()

        strategy.training_epoch = training_epoch

    def unguard_epochs(self, strategy) -> None:
        """Remove :meth:`guard_epochs`'s wrapper and end the flush."""
        vars(strategy).pop("training_epoch", None)
        self.end()
