"""The parameter-sized maths of one training step, readable, compiled when asked.

HAT Eq. 2 and AdaHAT Eq. 8 scale every covered parameter's gradient (or, with
``protect="update"``, the optimizer's change of it) by the parameter's rate, the
outer max of two unit-wise rate vectors (docs/ALGORITHM.md §3). These are the only per-step
operations as large as the model; everything else of HAT's step is a few ops on
unit-sized vectors.

:func:`scale_by_rates` and :func:`blend_by_rates` are written once, readably.
:class:`StepMaths` runs them through ``torch.compile`` (inductor fuses the outer
max into the multiply or the ``lerp``: one pass over each parameter, no
temporaries), or eagerly. The readable versions materialise a parameter-sized
outer max per weight, so the eager path runs the measured hot paths instead,
which ``tests/core/test_step.py`` shows equal to the readable versions bitwise (the
same ATen ops on the same operands): :func:`avalanche_adahat.core.functional.mul_outer_max_all_`
(blocked, ``torch._foreach``) and :func:`avalanche_adahat.core.functional.lerp_outer_max_all_`
(blocked, written into the parameter). Rates and scales are tensors, so one
compilation serves every step and task of a model (one per set of parameter
shapes); the first call's seconds are in :attr:`StepMaths.compile_seconds`.

``protect="update"`` needs each covered parameter's value before the optimizer's
step: :meth:`StepMaths.snapshot` copies them (one ``torch._foreach_copy_``) into
buffers allocated at the first step of a task and reused by every later step
(one float per covered parameter, released by :meth:`StepMaths.release`), instead
of a fresh parameter-sized clone per step. The eager outer maxima are written into
one 1 MiB workspace, made once: allocating them per step cost page faults at every
step (glibc hands blocks of this size back to the system when they are freed).
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import Tensor

from . import functional as F

__all__ = ["StepMaths", "blend_by_rates", "scale_by_rates", "sgd_step_by_rates"]


def _rate(out_rate: Tensor, in_rate: Tensor | None) -> Tensor:
    """A parameter's rate, the outer max of its viewed unit rates (docs/ALGORITHM.md §3)."""
    return out_rate if in_rate is None else torch.maximum(out_rate, in_rate)


def scale_by_rates(tensors: list[Tensor], out_rates: list[Tensor], in_rates: list) -> None:
    """HAT Eq. 2 / AdaHAT Eq. 8: ``t *= max(out_i, in_j)`` in place, for every tensor
    (gradients) with its rates viewed by :func:`avalanche_adahat.core.functional.rate_views`."""
    for t, out_rate, in_rate in zip(tensors, out_rates, in_rates):
        t.mul_(_rate(out_rate, in_rate))


def blend_by_rates(
    params: list[Tensor], befores: list[Tensor], out_rates: list[Tensor], in_rates: list
) -> None:
    """``protect="update"``: ``p = lerp(before, p, rate)``, the optimizer's change of each
    parameter scaled by its rate (exact at rate 0, ``before``, and at rate 1, ``p``).

    The snapshots ``befores`` are consumed: the ``lerp`` runs in place in them (the same
    values as ``torch.lerp``, one parameter-sized allocation fewer per step)."""
    for p, before, out_rate, in_rate in zip(params, befores, out_rates, in_rates):
        p.copy_(before.lerp_(p, _rate(out_rate, in_rate).to(p.dtype)))


def sgd_step_by_rates(
    params: list[Tensor], grads: list[Tensor], out_rates: list[Tensor], in_rates: list, alphas
) -> None:
    """Plain SGD's step with the rates in it: ``p += alpha * (g * rate)`` (``alpha = -lr``,
    ``+lr`` with ``maximize``), what :func:`scale_by_rates` followed by the optimizer's
    ``p.add_(g, alpha=-lr)`` computes, without writing the scaled gradient."""
    for p, g, out_rate, in_rate, alpha in zip(params, grads, out_rates, in_rates, alphas):
        scaled = g * _rate(out_rate, in_rate)
        if isinstance(alpha, Tensor):  # compiled: a tensor, so that a new lr does not recompile
            p.add_(scaled * alpha)
        else:
            p.add_(scaled, alpha=alpha)


class StepMaths:
    """:func:`scale_by_rates` and :func:`blend_by_rates`, compiled or eager.

    ``compile=True``: ``torch.compile`` (inductor, static shapes) on first use; if
    compiling fails (no C++ compiler, an unsupported platform) a warning says why
    and the eager path runs from then on.
    """

    def __init__(self, compile: bool = False):
        self.compile = compile
        self.compile_seconds = 0.0  # spent in first calls (tracing and code generation)
        self._scale = self._scale_eager
        self._blend = self._blend_eager
        self._sgd_step = self._sgd_step_eager
        self._buffers: list[Tensor] = []  # snapshot buffers, see snapshot()
        self._workspace: Tensor | None = None  # the eager outer maxima, see _workspace_for
        self._alphas: tuple | None = None  # the compiled step's learning rates, see sgd_step
        if compile:
            self._scale = self._compiled(scale_by_rates, "_scale", self._scale_eager)
            self._blend = self._compiled(blend_by_rates, "_blend", self._blend_eager)
            self._sgd_step = self._compiled(sgd_step_by_rates, "_sgd_step", self._sgd_step_eager)

    def _scale_eager(self, tensors, out_rates, in_rates) -> None:
        F.mul_outer_max_all_(tensors, out_rates, in_rates, workspace=self._workspace_for(out_rates))

    def _blend_eager(self, params, befores, out_rates, in_rates) -> None:
        workspace = self._workspace_for(out_rates)
        F.lerp_outer_max_all_(params, befores, out_rates, in_rates, workspace=workspace)

    def _sgd_step_eager(self, params, grads, out_rates, in_rates, alphas) -> None:
        workspace = self._workspace_for(out_rates)
        F.sgd_outer_max_all_(params, grads, out_rates, in_rates, alphas, workspace=workspace)

    def _workspace_for(self, rates: list[Tensor]) -> Tensor | None:
        """``F.BLOCK`` elements (1 MiB in float32) that hold the eager path's outer
        maxima, made once: a block allocated per step costs page faults every step."""
        if not rates:
            return None
        like, workspace = rates[0], self._workspace
        if workspace is None or workspace.dtype != like.dtype or workspace.device != like.device:
            self._workspace = workspace = like.new_empty(F.BLOCK)
        return workspace

    def scale(self, tensors: list[Tensor], out_rates: list[Tensor], in_rates: list) -> None:
        self._scale(tensors, out_rates, in_rates)

    def blend(self, params, befores, out_rates, in_rates) -> None:
        """:func:`blend_by_rates`; ``befores`` may be overwritten (the compiled
        version runs the ``lerp`` in them)."""
        self._blend(params, befores, out_rates, in_rates)

    def sgd_step(self, params, grads, out_rates, in_rates, alphas) -> None:
        """:func:`sgd_step_by_rates`; ``grads`` may be overwritten (scaled). Compiled, the
        learning rates are passed as tensors, so that a new one does not recompile."""
        if self._sgd_step is not self._sgd_step_eager:
            alphas = self._alpha_tensors(params, alphas)
        self._sgd_step(params, grads, out_rates, in_rates, alphas)

    def _alpha_tensors(self, params, alphas) -> list[Tensor]:
        """``alphas`` as 0-d tensors like ``params``, made anew only when a learning rate
        (or a parameter's dtype or device) changes, not at every step."""
        key = tuple((a, p.dtype, p.device) for a, p in zip(alphas, params))
        if self._alphas is None or self._alphas[0] != key:
            made = [torch.tensor(a, dtype=p.dtype, device=p.device) for a, p in zip(alphas, params)]
            self._alphas = (key, made)
        return self._alphas[1]

    def snapshot(self, params: list[Tensor]) -> list[Tensor]:
        """The current values of ``params``, copied into this object's buffers (made
        when the parameters' shapes, dtypes or devices change, reused otherwise)."""
        buffers = self._buffers
        if len(buffers) != len(params) or any(
            b.shape != p.shape or b.dtype != p.dtype or b.device != p.device
            for b, p in zip(buffers, params)
        ):
            self._buffers = buffers = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(buffers, params)
        return buffers

    def release(self) -> None:
        """Free the snapshot buffers (the plugin does at the end of each task)."""
        self._buffers = []

    def _compiled(self, fn, slot: str, eager):
        compiled = torch.compile(fn, dynamic=False, fullgraph=True)
        seen: set[tuple] = set()

        def run(*lists):
            key = tuple(tuple(t.shape) if isinstance(t, Tensor) else t for ts in lists for t in ts)
            first = key not in seen
            start = time.perf_counter()
            try:
                compiled(*lists)
            except Exception as error:  # compiling failed: nothing was run
                warnings.warn(
                    f"torch.compile of {fn.__name__} failed ({type(error).__name__}: {error}); "
                    "running it eagerly",
                    stacklevel=3,
                )
                setattr(self, slot, eager)
                eager(*lists)
                return
            if first:
                seen.add(key)
                self.compile_seconds += time.perf_counter() - start

        return run

    def __getstate__(self):  # compiled functions do not pickle: made anew on load
        return {"compile": self.compile}

    def __setstate__(self, state):
        self.__init__(state["compile"])
