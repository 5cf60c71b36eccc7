"""The rates applied inside plain SGD's step (docs/ALGORITHM.md §5.1, step 5).

Under plain SGD (:func:`~avalanche_adahat.core.optimizers.update_is_scaled_gradient`)
the change of a parameter is ``-lr * grad``, so scaling the gradient by its rate and
letting the optimizer add it is one pass over each covered weight more than adding the
scaled gradient at once. :class:`RatedSGDStep` does the latter: armed in
``before_update``, it runs as the optimizer's step begins (a step pre-hook, so every
plugin's ``before_update`` has run), adds ``-lr * (rate * grad)`` to the covered
parameters (:meth:`.AdjustmentRates.sgd_step`), hides their gradients from the
optimizer for that step and gives them back after it. The same ATen ops on the same
operands as scaling the gradients first: the same bits (``tests/core/test_step.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["RatedSGDStep"]


class RatedSGDStep:
    """One optimizer step's update of the covered parameters, run by the optimizer."""

    def __init__(self) -> None:
        self._handles: list = []
        self._hidden: list[tuple[Tensor, Tensor]] = []  # (parameter, its gradient)

    def arm(self, optimizer: torch.optim.Optimizer, step: Callable[[], list[Tensor]]) -> None:
        """Run ``step`` (which updates some parameters and returns them) when
        ``optimizer.step`` is next called, and have the optimizer skip those parameters."""
        self.disarm()

        def before(opt, args, kwargs):
            with torch.no_grad():
                done = step()
            self._hidden = [(p, p.grad) for p in done]
            for p in done:
                p.grad = None

        self._handles = [
            optimizer.register_step_pre_hook(before),
            optimizer.register_step_post_hook(lambda opt, args, kwargs: self.disarm()),
        ]

    def disarm(self) -> None:
        """Give the hidden gradients back and remove the hooks (also after a step that
        raised, at the next :meth:`arm` or the end of the task)."""
        for p, grad in self._hidden:
            p.grad = grad
        self._hidden = []
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __getstate__(self):  # hooks belong to one step: never in a checkpoint
        return {}

    def __setstate__(self, state) -> None:
        self._handles, self._hidden = [], []
