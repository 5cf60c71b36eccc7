"""Avalanche metrics of HAT and AdaHAT: network capacity, mask usage, sparsity, rates.

Plug them into an ``EvaluationPlugin`` like Avalanche's own metrics::

    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        hat_metrics(),
        loggers=[InteractiveLogger(), TensorboardLogger("runs/hat")],
    )
    strategy = HAT(model=model, optimizer=optimizer, evaluator=evaluator)

Every value is read from the strategy's :class:`~avalanche_adahat.HATPlugin`
(or :class:`~avalanche_adahat.AdaHATPlugin`) and its HAT backbone, during
training only. A metric attached to a strategy without a HAT plugin warns once
and emits nothing, so the same metric list can be given to a baseline.

Names follow Avalanche's ``get_metric_name``
(``{metric}/train_phase/train_stream/Task{t:03}[/Exp{e:03}]``); per-layer values
add the layer's qualified name in the backbone as a last part, as Avalanche's
class accuracy adds the class id (e.g. ``.../Task001/Exp001/masks.0``):

- ``NetworkCapacity_MB`` / ``_Epoch`` / ``_Exp``: the mean adjustment rate over
  all covered backbone weights and biases (AdaHAT Sec. 4.1), after the update of
  the iteration / at the end of the epoch / at the end of the experience;
- ``NetworkSparsity_MB`` / ``_Epoch`` / ``_Exp`` (per layer): ``R_l`` of HAT
  Sec. 2.6, the quantity AdaHAT's Eq. 9 reads;
- ``AdjustmentRate_MB`` / ``_Epoch`` / ``_Exp`` (per layer): the mean rate of the
  layer's covered parameters (weights and bias, whose output units are the
  layer's); the parameter-weighted mean over layers is the network capacity;
- ``MaskUsage_Task``, ``MaskUsage_Cumulative``, ``MaskUsage_Free`` (overall and
  per layer), after each training experience: the fraction of units the task
  just trained uses (its stored mask ``M^t``), used by any task so far
  (``M^{<=t}``), and still free.

``_MB`` and ``_Epoch`` values are plotted at the 0-based index of the training
iteration (``strategy.clock.train_iterations`` before it advances), so the
first value of a task is at the index where the task starts.

:class:`~avalanche.logging.TextLogger` (and the ``InteractiveLogger``) print
values emitted at the end of a training experience with the next block they
print (the next epoch or the next evaluation), as for every Avalanche metric
emitted there.

This module holds the ``PluginMetric`` classes, their factories and
:func:`layer_adjustment_rates`; the plain functions over a backbone or over
recorded values (:func:`mask_usage`, :func:`capacity_curve`,
:func:`accuracy_matrix`, :func:`layer_names`) are in
:mod:`avalanche_adahat.metrics.values` and importable from here.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue
from avalanche.evaluation.metric_utils import get_metric_name

from ..nn.module import HATModule
from ..training.plugin import HATPlugin, _hat_model
from .values import accuracy_matrix, capacity_curve, layer_names, mask_usage

__all__ = [
    "AdjustmentRate",
    "MaskUsage",
    "NetworkCapacity",
    "NetworkSparsity",
    "accuracy_matrix",
    "adjustment_rate_metrics",
    "capacity_curve",
    "hat_metrics",
    "layer_adjustment_rates",
    "layer_names",
    "mask_usage",
    "mask_usage_metrics",
    "network_capacity_metrics",
    "network_sparsity_metrics",
]

EmitAt = Literal["iteration", "epoch", "experience"]
_SUFFIX = {"iteration": "MB", "epoch": "Epoch", "experience": "Exp"}


# ---------------------------------------------------------------- per-layer rates
@torch.no_grad()
def layer_adjustment_rates(plugin: HATPlugin, model: HATModule) -> list[float]:
    """Mean adjustment rate of each masked layer's covered parameters, this step.

    A parameter belongs to the layer of its output mask (a Linear's weight and
    bias). Counted as :meth:`HATPlugin.network_capacity` counts them: all 1
    while nothing is protected, ``hat_random``'s random rates at their
    expectation 0.5. Weighting each layer by its number of covered parameters
    gives the network capacity back.
    """
    masks = model.hat_masks()
    if not plugin.protection_active:
        return [1.0] * len(masks)
    index = {id(m): i for i, m in enumerate(masks)}
    sums: list[list[torch.Tensor]] = [[] for _ in masks]
    counts = [0] * len(masks)
    for covered, rate_sum, n in plugin.rate_sums(model):
        i = index[id(covered.out_mask)]
        sums[i].append(rate_sum.double())
        counts[i] += n
    layer_sums = [torch.stack(s).sum() for s in sums if s]
    values = iter(torch.stack(layer_sums).tolist())  # one device sync
    rates = [next(values) / c if c else float("nan") for c in counts]
    rates = [plugin.mode.counted_rate(r) for r in rates]
    return rates


# ---------------------------------------------------------------- plugin metrics
def _find_hat(strategy) -> tuple[HATPlugin, HATModule] | None:
    for p in strategy.plugins:
        if isinstance(p, HATPlugin):
            return p, _hat_model(strategy.model)
    return None


class _HATMetric(PluginMetric[dict]):
    """Base of the metrics here: reads the HAT plugin, emits one value per key."""

    prefix = "HAT"

    def __init__(self) -> None:
        super().__init__()
        self._value: dict[str, float] = {}
        self._warned = False

    def reset(self) -> None:
        self._value = {}

    def result(self) -> dict[str, Any]:
        """The last values read: ``{layer name or "": value}``."""
        return dict(self._value)

    def _hat(self, strategy) -> tuple[HATPlugin, HATModule] | None:
        found = _find_hat(strategy)
        if found is None and not self._warned:
            self._warned = True
            warnings.warn(
                f"{self}: the strategy has no HATPlugin/AdaHATPlugin, so this metric emits nothing",
                stacklevel=2,
            )
        return found

    def _package(self, strategy, add_experience: bool, prefix: str | None = None):
        name = get_metric_name(
            prefix or str(self), strategy, add_experience=add_experience, add_task=True
        )
        x = strategy.clock.train_iterations
        return [
            MetricValue(self, f"{name}/{key}" if key else name, value, x)
            for key, value in self._value.items()
        ]


class _TrainingValue(_HATMetric):
    """A value read during training, emitted per iteration, epoch or experience.

    ``experience`` reads the value at the end of every epoch (no cost per
    iteration) and emits the last one when the experience ends: the value of the
    last training iteration, before the plugin stores the task's masks.
    """

    def __init__(self, emit_at: EmitAt = "iteration"):
        super().__init__()
        if emit_at not in _SUFFIX:
            raise ValueError(f"emit_at must be one of {tuple(_SUFFIX)}, got {emit_at!r}")
        self.emit_at = emit_at

    def __str__(self) -> str:
        return f"{self.prefix}_{_SUFFIX[self.emit_at]}"

    def compute(self, plugin: HATPlugin, model: HATModule) -> dict[str, float]:
        raise NotImplementedError

    def _read(self, strategy) -> bool:
        found = self._hat(strategy)
        if found is None:
            return False
        self._value = self.compute(*found)
        return True

    def before_training_exp(self, strategy):
        self.reset()

    def after_training_iteration(self, strategy):
        if self.emit_at == "iteration" and self._read(strategy):
            return self._package(strategy, add_experience=False)
        return None

    def after_training_epoch(self, strategy):
        if self.emit_at == "iteration":
            return None
        if self._read(strategy) and self.emit_at == "epoch":
            return self._package(strategy, add_experience=False)
        return None

    def after_training_exp(self, strategy):
        if self.emit_at == "experience" and self._value:
            return self._package(strategy, add_experience=True)
        return None


class NetworkCapacity(_TrainingValue):
    """Network capacity (AdaHAT Sec. 4.1): the mean adjustment rate of the step.

    ``HATPlugin.network_capacity``: the mean of the rate ``a`` over every covered
    backbone weight and bias; 1 while training the first task; for
    ``hat_random``, random rates counted at their expectation 0.5. Emitted as
    ``NetworkCapacity_MB`` (after each update), ``NetworkCapacity_Epoch`` or
    ``NetworkCapacity_Exp`` (the value of the experience's last iteration).
    Each reading costs one device sync.
    """

    prefix = "NetworkCapacity"

    def compute(self, plugin, model):
        return {"": float(plugin.network_capacity(model))}


class NetworkSparsity(_TrainingValue):
    """Per-layer network sparsity ``R_l`` of the last batch (HAT Sec. 2.6).

    The ratio the mask sparsity regulariser uses and AdaHAT's Eq. 9 reads
    (``HATPlugin.layer_sparsity``), one value per layer:
    ``NetworkSparsity_MB/.../<layer name>``.
    """

    prefix = "NetworkSparsity"

    def compute(self, plugin, model):
        if plugin.layer_sparsity is None:
            return {}
        values = plugin.layer_sparsity.detach().float().tolist()
        return dict(zip(layer_names(model), values))


class AdjustmentRate(_TrainingValue):
    """Per-layer mean adjustment rate of the step (see :func:`layer_adjustment_rates`).

    One value per layer: ``AdjustmentRate_MB/.../<layer name>``.
    """

    prefix = "AdjustmentRate"

    def compute(self, plugin, model):
        return dict(zip(layer_names(model), layer_adjustment_rates(plugin, model)))


class MaskUsage(_HATMetric):
    """Unit usage of the stored masks after each training experience (see :func:`mask_usage`).

    Emits ``MaskUsage_Task``, ``MaskUsage_Cumulative`` and ``MaskUsage_Free``
    (``.../Task{t:03}/Exp{e:03}`` for all layers together and, with
    ``per_layer``, ``.../<layer name>`` for each layer).

    :param per_layer: also emit one value per masked layer. Default ``True``.
    """

    KINDS = ("task", "cumulative", "free")

    def __init__(self, per_layer: bool = True):
        super().__init__()
        self.per_layer = per_layer
        self._usage: dict[str, dict[str, float]] = {}

    def __str__(self) -> str:
        return "MaskUsage"

    def reset(self) -> None:
        self._usage = {}

    def result(self) -> dict[str, dict[str, float]]:
        """``{"task" | "cumulative" | "free": {layer name or "": fraction}}``."""
        return {k: dict(v) for k, v in self._usage.items()}

    def after_training_exp(self, strategy):
        found = self._hat(strategy)
        if found is None:
            return None
        plugin, model = found
        # The HAT plugin runs before the evaluator, so the task's mask is stored.
        label = plugin.task_label
        if label is None or not model.hat_masks()[0].is_stored(label):
            return None
        self._usage = mask_usage(model, label)
        values = []
        for kind in self.KINDS:
            self._value = {k: v for k, v in self._usage[kind].items() if self.per_layer or k == ""}
            values += self._package(strategy, True, prefix=f"MaskUsage_{kind.capitalize()}")
        self._value = {}
        return values


# ---------------------------------------------------------------- helpers
def network_capacity_metrics(
    *, minibatch: bool = False, epoch: bool = False, experience: bool = False
) -> list[PluginMetric]:
    """Network capacity after each iteration, epoch and/or training experience."""
    return _variants(NetworkCapacity, minibatch, epoch, experience)


def network_sparsity_metrics(
    *, minibatch: bool = False, epoch: bool = False, experience: bool = False
) -> list[PluginMetric]:
    """Per-layer network sparsity ``R_l`` after each iteration, epoch and/or experience."""
    return _variants(NetworkSparsity, minibatch, epoch, experience)


def adjustment_rate_metrics(
    *, minibatch: bool = False, epoch: bool = False, experience: bool = False
) -> list[PluginMetric]:
    """Per-layer mean adjustment rate after each iteration, epoch and/or experience."""
    return _variants(AdjustmentRate, minibatch, epoch, experience)


def mask_usage_metrics(*, per_layer: bool = True) -> list[PluginMetric]:
    """Mask usage (task, cumulative, free) after each training experience."""
    return [MaskUsage(per_layer=per_layer)]


def hat_metrics(
    *,
    capacity: bool = True,
    mask_usage: bool = True,
    sparsity: bool = True,
    rates: bool = True,
    minibatch: bool = True,
    epoch: bool = False,
    experience: bool = True,
    per_layer: bool = True,
) -> list[PluginMetric]:
    """All HAT/AdaHAT metrics in one list, for ``EvaluationPlugin(hat_metrics(), ...)``.

    :param capacity: network capacity (``NetworkCapacity_*``).
    :param mask_usage: mask usage after each experience (``MaskUsage_*``).
    :param sparsity: per-layer ``R_l`` (``NetworkSparsity_*``).
    :param rates: per-layer mean adjustment rate (``AdjustmentRate_*``).
    :param minibatch: emit capacity / sparsity / rates after every iteration
        (one device sync per metric and iteration).
    :param epoch: ... at the end of every epoch.
    :param experience: ... at the end of every training experience.
    :param per_layer: mask usage per layer as well as overall.
    """
    when = dict(minibatch=minibatch, epoch=epoch, experience=experience)
    metrics: list[PluginMetric] = []
    if capacity:
        metrics += network_capacity_metrics(**when)
    if mask_usage:
        metrics += mask_usage_metrics(per_layer=per_layer)
    if sparsity:
        metrics += network_sparsity_metrics(**when)
    if rates:
        metrics += adjustment_rate_metrics(**when)
    return metrics


def _variants(cls, minibatch: bool, epoch: bool, experience: bool) -> list[PluginMetric]:
    flags = (("iteration", minibatch), ("epoch", epoch), ("experience", experience))
    return [cls(emit_at) for emit_at, on in flags if on]
