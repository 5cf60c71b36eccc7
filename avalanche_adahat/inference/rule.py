"""Task-inference rules as objects: one small class per rule, one registry everyone reads.

A rule scores every trained task for every sample of a test batch (a
:class:`ScoringBatch`); the router (:func:`~.router.infer`) picks the task of the
highest score. Adding a rule is one subclass of :class:`LogitRule` or
:class:`FeatureRule` with a ``name``, in a module the package imports
(:mod:`.logit_rules`, :mod:`.rules`), and one test: defining the class registers it
here, and its description (name, kind) in :mod:`avalanche_adahat.core.task_rules`,
where configurations check names without importing this layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from torch import Tensor

from ..core import task_rules
from ..core.task_rules import RuleDescription

__all__ = [
    "FeatureRule",
    "LogitRule",
    "ScoringBatch",
    "TaskInferenceRule",
    "get_rule",
    "registry",
]


@dataclass(frozen=True)
class ScoringBatch:
    """What a rule scores: a test batch ``x`` and every trained task's view of it.

    - ``tasks``: the trained tasks in training order (``T`` of them);
    - ``active``: ``(T, C)`` booleans, the classes of each task's head;
    - ``logits``: ``(T, B, C)``, every task's logits through its stored mask and head;
    - ``features``: for a feature rule, each task's features in its own space (one
      ``(B, d_t)`` tensor per task, :func:`~.features.forward_with_features`), else ``None``;
    - ``state``: the task-inference state the rule reads (:attr:`TaskInferenceRule.reads`),
      by the model's attribute names; ``None`` where there is none.
    """

    model: Any
    x: Tensor
    tasks: list[int]
    active: Tensor
    logits: Tensor
    features: list[Tensor] | None = None
    state: Mapping[str, Any] = field(default_factory=dict)


class TaskInferenceRule:
    """A task-inference rule. Subclasses with a ``name`` register themselves.

    - ``uses_features``: it scores from statistics of each task's frozen features (the
      router then passes each task's features), or from the heads' logits;
    - ``reads``: the model's task-inference state it scores from (attribute names,
      such as ``"task_statistics"``), handed to it in :attr:`ScoringBatch.state`.
    """

    name: ClassVar[str]
    uses_features: ClassVar[bool] = False
    reads: ClassVar[tuple[str, ...]] = ()
    #: feature rules: which statistics the plugin gathers (:class:`RuleDescription`)
    cascade: ClassVar[bool] = False
    fuses_input_space: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _register(cls())

    @property
    def description(self) -> RuleDescription:
        return RuleDescription(self.name, self.uses_features, self.cascade, self.fuses_input_space)

    def scores(self, batch: ScoringBatch) -> Tensor:
        """``(T, B)``: the score of every trained task for every sample (highest wins)."""
        raise NotImplementedError

    def state(self, model) -> dict[str, Any]:
        """What of ``model`` this rule reads (:attr:`reads`), ``None`` where it has none."""
        return {name: getattr(model, name, None) for name in self.reads}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class LogitRule(TaskInferenceRule):
    """A rule on the heads' logits. Calibration applies: each task's score is shifted by
    the mean of :meth:`own_scores` on its training data (docs/ALGORITHM.md §10)."""

    def task_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        """``(T, B)`` from each task's own logits: ``logits`` ``(T, B, C)``, ``active`` ``(T, C)``."""
        raise ValueError(f"task inference rule {self.name!r} has no score of each task's logits")

    def scores(self, batch: ScoringBatch) -> Tensor:
        return self.task_scores(batch.logits, batch.active)

    def own_scores(self, logits: Tensor, active: Tensor) -> Tensor:
        """``(B,)``: one task's score on its own data (``logits`` ``(1, B, C)``, ``active``
        ``(1, C)``); its mean over the task's training data is the calibration."""
        return self.task_scores(logits, active)[0]


class FeatureRule(TaskInferenceRule):
    """A rule on the Gaussian models of each task's feature space (docs/ALGORITHM.md §10)."""

    uses_features = True
    reads: ClassVar[tuple[str, ...]] = ("task_statistics",)

    def space_models(self, batch: ScoringBatch) -> list:
        """Each trained task's :class:`~avalanche_adahat.nn.statistics.SpaceModel`."""
        statistics = batch.state.get("task_statistics")
        missing = [t for t in batch.tasks if statistics is None or t not in statistics.spaces()]
        if statistics is None or missing:
            raise ValueError(
                f"task_inference={self.name!r} needs the feature statistics of every trained "
                f"task; tasks {missing} have none (train them with this rule)"
            )
        return [statistics.model(t) for t in batch.tasks]


_RULES: dict[str, TaskInferenceRule] = {}


def _register(rule: TaskInferenceRule) -> None:
    if not isinstance(rule, (LogitRule, FeatureRule)):
        raise TypeError(f"a task inference rule subclasses LogitRule or FeatureRule: {rule!r}")
    task_rules.register_description(rule.description)  # raises on a name taken
    _RULES[rule.name] = rule


def registry() -> Mapping[str, TaskInferenceRule]:
    """``{name: rule}`` of every registered rule, in registration order."""
    return MappingProxyType(_RULES)


def get_rule(rule: str | TaskInferenceRule) -> TaskInferenceRule:
    """The registered rule named ``rule`` (a rule is returned as it is)."""
    if isinstance(rule, TaskInferenceRule):
        return rule
    if rule not in _RULES:
        raise ValueError(f"task inference rule must be one of {task_rules.RULES}, got {rule!r}")
    return _RULES[rule]
