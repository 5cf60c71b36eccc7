"""Checks that HAT fits the strategy, stream and optimizer it is given, before anything trains.

HAT composes with any Avalanche strategy whose plugins only add loss terms,
project gradients or mix stored samples into minibatches (EWC, SI, LwF, MAS,
Replay, Cumulative, GEM, A-GEM; see the README's composition table). These
checks refuse, with a message naming the problem and the fix, what cannot keep
HAT's guarantee or cannot work at all.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..core import checkpointing as _checkpointing  # noqa: F401  (dill fix for save_checkpoint)
from ..core._warnings import warn_at_caller
from ..core.checks import check_training_schedule

__all__ = [
    "REFUSED_PLUGINS",
    "REPLAYING",
    "AsNewTask",
    "check_experience",
    "check_labels_fit_head",
    "check_optimizer_holds",
    "check_strategy",
    "warn_short_schedule",
    "warn_untrained_tasks",
]

#: Avalanche plugins that cannot run with HAT, by class name, and why.
REFUSED_PLUGINS = {
    "GDumbPlugin": "it re-initialises the model from a copy before every experience, "
    "which deletes the masks of trained tasks",
    "FromScratchTrainingPlugin": "it re-initialises the model before every experience, "
    "which deletes the masks of trained tasks",
    "PackNetPlugin": "it prunes and freezes weights with masks of its own (a PackNetModel), "
    "which HAT's masks cannot share",
}


def _class_names(obj) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


#: Compositions that feed earlier experiences' samples into training minibatches: with
#: ``task_ids="per_experience"`` those samples carry no task label of their own.
REPLAYING = ("ReplayPlugin", "GEMPlugin", "AGEMPlugin", "GSS_greedyPlugin", "Cumulative")


def check_strategy(strategy, hat_plugin_type: type, per_experience: bool = False) -> None:
    """One HAT plugin, no refused plugin, an optimizer whose ``step`` needs no closure,
    at least one epoch of minibatches of at least one sample; with ``per_experience``,
    nothing that replays earlier experiences."""
    check_training_schedule(
        getattr(strategy, "train_mb_size", 1), getattr(strategy, "train_epochs", 1)
    )
    if per_experience:
        for obj in (strategy, *strategy.plugins):
            if _class_names(obj) & set(REPLAYING):
                raise ValueError(
                    f"{type(obj).__name__} replays earlier experiences' samples, which have no "
                    "task label under task_ids='per_experience'; use it with a task-incremental "
                    "stream (task_ids='given')"
                )
    hats = [p for p in strategy.plugins if isinstance(p, hat_plugin_type)]
    if len(hats) > 1:
        names = ", ".join(type(p).__name__ for p in hats)
        raise ValueError(
            f"the strategy has {len(hats)} HAT plugins ({names}); use exactly one: each would "
            "anneal, regularise and adjust the same masks (HAT/AdaHAT strategies already "
            "include theirs: do not add another to plugins=)"
        )
    for p in strategy.plugins:
        refused = _class_names(p) & set(REFUSED_PLUGINS)
        if refused:
            name = refused.pop()
            raise ValueError(
                f"{type(p).__name__} cannot be combined with HAT: {REFUSED_PLUGINS[name]}"
            )
    optimizer = strategy.optimizer
    closure = inspect.signature(type(optimizer).step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise ValueError(
            f"optimizer {type(optimizer).__name__} needs a closure in step(closure), which "
            "Avalanche's training loop does not pass; use an optimizer whose step() takes no "
            "closure (SGD, Adam, AdamW, RMSprop, ...)"
        )


class AsNewTask:
    """A training experience seen as a new task whose label is the experience's
    index (``task_ids="per_experience"``, for streams without task labels)."""

    def __init__(self, experience):
        self._experience = experience

    def __getattr__(self, name):
        return getattr(self._experience, name)

    @property
    def task_labels(self) -> list[int]:
        return [self._experience.current_experience]

    @property
    def task_label(self) -> int:
        return self._experience.current_experience


def check_experience(experience, trained: list[int], per_experience: bool = False) -> None:
    """The experience, and at the first one the whole stream, can be trained by HAT:
    one task label per experience, never trained before, and some samples
    (``per_experience``: each experience's index is its task label)."""
    if not trained:
        stream = getattr(experience, "origin_stream", None)
        if stream is not None and hasattr(stream, "__len__"):
            seen: dict[int, int] = {}
            for exp in stream:
                _check_one(AsNewTask(exp) if per_experience else exp, list(seen), seen)
    _check_one(AsNewTask(experience) if per_experience else experience, trained, {})


def _check_one(experience, trained: list[int], seen: dict[int, int]) -> None:
    index = experience.current_experience
    if len(experience.dataset) == 0:
        raise ValueError(f"experience {index} has no samples to train on")
    labels = sorted({int(t) for t in experience.task_labels})
    if len(labels) != 1:
        raise ValueError(
            f"HAT trains one task at a time: experience {index} has task labels {labels}; give "
            "each training experience a single task label"
        )
    (label,) = labels
    if label in seen:
        raise ValueError(
            f"experience {index} of the training stream has task label {label}, as experience "
            f"{seen[label]} has: HAT learns one mask per task and needs a new task label for "
            "each training experience: use a task-incremental benchmark (task_labels=True / "
            "return_task_id=True), or, for a stream without task labels (class-incremental), "
            "task_ids='per_experience' (each experience a new task, its task predicted at "
            "evaluation)"
        )
    if label in trained:
        raise ValueError(
            f"task label {label} of experience {index} was already trained (trained task "
            f"labels: {trained}); HAT masks are final once stored, so each training experience "
            "needs a new task label (use a task-incremental benchmark, e.g. task_labels=True / "
            "return_task_id=True)"
        )
    seen[label] = index


def _experience_labels(experience) -> list[int]:
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = torch.as_tensor(list(experience.dataset.targets)).unique().tolist()
    return sorted(int(c) for c in classes)


def check_labels_fit_head(experience, model, trained: list[int]) -> None:
    """The experience's class labels (at the first experience: the whole stream's) are
    outputs of a fixed shared head (``multi_head=False`` with ``num_classes``).

    A label beyond it would train silently: Avalanche pads the logits with zeros, and
    the label's class is never learned. Task heads and growing heads
    (``IncrementalClassifier``) are sized from the data and need no check.
    """
    head = getattr(model, "head", None)
    if getattr(model, "multi_head", True) or type(head) is not nn.Linear:
        return
    stream = getattr(experience, "origin_stream", None)
    whole = not trained and stream is not None and hasattr(stream, "__len__")
    for exp in stream if whole and stream is not None else [experience]:
        labels = _experience_labels(exp)
        outside = [c for c in labels if not 0 <= c < head.out_features]
        if outside:
            raise ValueError(
                f"experience {exp.current_experience} has class labels {outside} outside the "
                f"model's fixed head of {head.out_features} outputs (labels 0 to "
                f"{head.out_features - 1}): build the model with num_classes of at least "
                f"{max(labels) + 1}, or with multi_head=True (a head per task, sized from the "
                "data), or leave num_classes out for a shared head that grows with the labels"
            )


def check_optimizer_holds(optimizer: torch.optim.Optimizer, model, task_label: int) -> None:
    """The optimizer updates every trainable covered parameter and the training task's
    embeddings (otherwise HAT trains nothing, or masks that never change)."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    needed = [(cp.name, cp.param) for cp in model.covered_parameters()]
    needed += [
        (f"HAT embedding {i} of task {task_label}", m.embeddings[str(task_label)])
        for i, m in enumerate(model.hat_masks())
    ]
    missing = [name for name, p in needed if p.requires_grad and id(p) not in held]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ValueError(
            f"the optimizer does not hold {len(missing)} of the model's trainable parameters "
            f"({shown}); build it from model.parameters() (Avalanche's make_optimizer adds new "
            "ones for each experience)"
        )


def warn_untrained_tasks(experience, model, training_label: int | None, warned: set) -> None:
    """Warn, once per task label in ``warned``, when an evaluation experience's task was
    never trained (no mask, an untrained head), at the user's ``eval`` line."""
    first = model.hat_masks()[0]
    for label in sorted({int(t) for t in experience.task_labels} - warned):
        if label != training_label and not first.is_stored(label):
            warned.add(label)
            warn_at_caller(
                f"evaluating experience {experience.current_experience}: task label {label} was "
                f"never trained (trained: {model.trained_tasks()}), so its head and masks are "
                "untrained and its accuracy means nothing (about chance level, or 0 where its "
                "labels are beyond the untrained head); evaluate the experiences trained so "
                "far, e.g. strategy.eval(benchmark.test_stream[: experience.current_experience "
                "+ 1]) (said once per task label)"
            )


#: Fewest optimizer steps per task for which HAT's annealed gates were measured to
#: settle. Split Digits, 5 tasks, HAT and AdaHAT against Naive (average accuracy): under
#: SGD lr 0.1 (minibatches of 8, 32 and 64, 1-40 epochs, MLP 100-100; and compare's MLP
#: 256-100-64, 3 seeds) HAT trailed Naive by 0.03-0.17 with 8-64 steps per task, whatever
#: the mix of epochs and minibatches, and matched it (within 0.025) from 80 steps on;
#: under Adam lr 1e-3 (minibatch 32, 3 seeds) by 0.23 and 0.15 at 8 and 16 steps, within
#: 0.005 from 32; under Adam lr 3e-3 (compare's default, minibatch 16) it matched Naive
#: from 16 steps on. A hint, not a rule: compare's default runs and docs/RESULTS.md's all
#: train 160 or more.
SHORT_SCHEDULE_STEPS = 80


def warn_short_schedule(task_label: int, batches: int, epochs: int) -> bool:
    """Warn, at the user's line, when a task is planned for fewer optimizer steps than
    :data:`SHORT_SCHEDULE_STEPS`; return whether it warned."""
    steps = batches * epochs
    if steps >= SHORT_SCHEDULE_STEPS:
        return False
    need = -(-SHORT_SCHEDULE_STEPS // max(batches, 1))
    warn_at_caller(
        f"task {task_label} trains for {steps} optimizer steps ({epochs} epoch(s) of "
        f"{batches} minibatches): HAT's gates anneal from 1/s_max to s_max within each "
        "epoch while the task embeddings learn, and so short a schedule can leave them "
        "unsettled (on Split Digits, HAT trailed Naive by up to 0.23 with fewer steps per "
        f"task: under SGD lr 0.1 up to {SHORT_SCHEDULE_STEPS}, under Adam lr 1e-3 up to 32); "
        f"train at least {SHORT_SCHEDULE_STEPS} "
        f"steps per task: train_epochs={need} at this minibatch size, or smaller minibatches "
        "(said once)"
    )
    return True
