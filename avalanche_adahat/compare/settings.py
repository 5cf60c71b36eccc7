"""The settings of a ``compare`` run: :class:`CompareConfig`, a frozen dataclass.

A module of its own, importing no sibling, so that the strategy specs can name the type
that :mod:`.config` builds and validates (:func:`~.config.build_config`) without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["OLD_DEFAULTS", "CompareConfig"]

#: The value of a setting in results older than its option.
OLD_DEFAULTS: dict[str, Any] = {"scenario": "task", "class_order": "natural"}


@dataclass(frozen=True)
class CompareConfig:
    """The settings of a ``compare`` run (:func:`~.config.build_config` makes and validates one).

    The fields are the long options with ``_`` for ``-`` (and the keys of a ``--config``
    file), their defaults those of a run given no option. ``params`` (strategy name ->
    hyperparameters) and ``model_params`` stay free-form dicts. :meth:`to_dict` is the
    ``config`` section of ``results.json``; :meth:`from_dict` reads one back.
    """

    benchmark: str = "split_digits"
    scenario: str = "task"
    #: ``"natural"``, ``"seed"`` or a non-negative integer seed (``--class-order``).
    class_order: str | int = "natural"
    n_experiences: int | None = None
    strategies: tuple[str, ...] = ("adahat", "hat", "naive", "ewc")
    model: str = "mlp"
    model_params: dict[str, Any] = field(default_factory=dict)
    #: None: the benchmark's training settings (registry.BenchmarkSpec.training)
    epochs: int | None = None
    batch_size: int | None = None
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    lr: float | None = None
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    data_root: str | None = None
    train_per_task: int | None = None
    test_per_task: int | None = None
    threads: int | None = None
    fast_data: bool = True
    progress: str = "auto"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: str = "compare-results"

    def to_dict(self) -> dict[str, Any]:
        """The settings as ``results.json`` keeps them: in field order, lists for sequences,
        copies of the nested dicts."""
        data = asdict(self)
        data["strategies"], data["seeds"] = list(self.strategies), list(self.seeds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareConfig:
        """The settings of a ``config`` dict (a ``results.json``'s): keys that are no field
        (``command``, ``merged_from``) are left out, missing ones are
        :data:`OLD_DEFAULTS` (results older than the option), else the field's default.
        Nothing is validated (:func:`build_config` does)."""
        names = {f.name for f in fields(cls)}
        values = {**OLD_DEFAULTS, **{k: v for k, v in data.items() if k in names}}
        for key in ("strategies", "seeds"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)
