"""The whole-tensor data path: an experience's samples as tensors, batched in a few operations.

A :class:`TensorSource` holds one experience's samples as whole tensors and
yields a batch with a few tensor operations instead of Avalanche's per-sample
fetch and collate; :func:`sources_from_flat_datasets` finds sources for a
stream through Avalanche's dataset traversal; :class:`TensorLoader` batches a
source as Avalanche's loaders do; :class:`FastDataPlugin` swaps that loader in
for a strategy wherever the source reproduces the strategy's data exactly. The
benchmarks of :mod:`avalanche_adahat.data.benchmarks` carry their sources as
``benchmark.tensor_sources``.
"""

from __future__ import annotations

import math

import torch
from avalanche.core import SupervisedPlugin
from torch.utils.data import TensorDataset

__all__ = [
    "FastDataPlugin",
    "TensorLoader",
    "TensorSource",
    "sources_from_flat_datasets",
]


class TensorSource:
    """One experience's data as whole tensors: what its Avalanche dataset yields, a batch at a time.

    Avalanche fetches and collates one sample at a time through several dataset
    wrappers (tens to hundreds of microseconds per sample on a CPU). A source
    gives the same ``(x, y)`` for a whole batch of positions with a few tensor
    operations: ``x`` is ``x_rows[indices[pos]]`` (optionally flattened and
    pixel-permuted), converted as ``(x.float() / divisor - mean) / std`` (the
    operations of torchvision's ``ToTensor`` + ``Normalize``, so the values are
    bitwise the same) and reshaped to ``shape``; ``y`` is ``targets[pos]``.

    :class:`FastDataPlugin` (used by ``avalanche-adahat compare``) feeds a
    strategy from sources after checking that they reproduce the strategy's
    adapted dataset; the benchmarks of :mod:`avalanche_adahat.data.benchmarks` carry them as
    ``benchmark.tensor_sources = {"train": [...], "test": [...]}``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        targets: torch.Tensor,
        task_label: int | None = None,
        *,
        indices: torch.Tensor | None = None,
        permutation: torch.Tensor | None = None,
        divisor: float = 1.0,
        mean: float = 0.0,
        std: float = 1.0,
        shape: tuple[int, ...] | None = None,
    ):
        self.x = x
        self.targets = torch.as_tensor(targets, dtype=torch.long)
        self.task_label = task_label
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.long)
        self.permutation = permutation
        self.divisor, self.mean, self.std = divisor, mean, std
        if shape is None:
            shape = (x[0].numel(),) if permutation is not None else tuple(x.shape[1:])
        self.shape = tuple(shape)
        n_rows = len(self.targets) if self.indices is None else len(self.indices)
        if n_rows != len(self.targets):
            raise ValueError(f"{n_rows} rows but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    def transform(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored rows -> model inputs (the per-sample transform, applied to a batch)."""
        n = rows.shape[0]
        if self.permutation is not None:
            rows = rows.reshape(n, -1)[:, self.permutation]
        x = rows.float()
        if self.divisor != 1.0:
            x = x / self.divisor
        if self.mean != 0.0 or self.std != 1.0:
            x = (x - self.mean) / self.std
        elif x.untyped_storage().data_ptr() == self.x.untyped_storage().data_ptr():
            x = x.clone()  # never hand out a view of the stored data
        return x.reshape(n, *self.shape)

    def get(self, positions: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` for a LongTensor of positions or a slice."""
        rows = positions if self.indices is None else self.indices[positions]
        return self.transform(self.x[rows]), self.targets[positions]

    def subset(self, positions) -> TensorSource:
        """The source of ``dataset.subset(positions)``."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        indices = positions if self.indices is None else self.indices[positions]
        return TensorSource(
            self.x, self.targets[positions], self.task_label, indices=indices,
            permutation=self.permutation, divisor=self.divisor, mean=self.mean, std=self.std,
            shape=self.shape,
        )  # fmt: skip

    def with_task_label(self, task_label: int) -> TensorSource:
        """The same data labelled with ``task_label``."""
        return TensorSource(
            self.x, self.targets, task_label, indices=self.indices, permutation=self.permutation,
            divisor=self.divisor, mean=self.mean, std=self.std, shape=self.shape,
        )  # fmt: skip

    def matches(self, dataset, n_checks: int = 3, seed: int = 0) -> bool:
        """Whether this source yields exactly what ``dataset`` (an Avalanche dataset) yields.

        Compares the length and ``n_checks`` samples (the first, the last and random ones)
        element for element, task label included.
        """
        n = len(self)
        if n == 0 or len(dataset) != n:
            return False
        g = torch.Generator().manual_seed(seed)
        picks = {0, n - 1, *torch.randint(n, (max(0, n_checks - 2),), generator=g).tolist()}
        positions = torch.tensor(sorted(picks))
        xs, ys = self.get(positions)
        for k, pos in enumerate(positions.tolist()):
            sample = dataset[pos]
            if len(sample) < 2:
                return False
            x, y = torch.as_tensor(sample[0]), int(sample[1])
            if x.shape != xs[k].shape or not torch.equal(x.float(), xs[k]) or y != int(ys[k]):
                return False
            if len(sample) > 2 and int(sample[-1]) != self.task_label:
                return False
        return True


def sources_from_flat_datasets(stream) -> list[TensorSource | None]:
    """Sources for a stream of Avalanche experiences, found through Avalanche's dataset traversal.

    Handles experiences whose data reduce to one leaf that is a ``TensorDataset``
    (no transforms) or a torchvision MNIST-style dataset (``.data`` uint8) under
    ``ToTensor`` + ``Normalize`` (Avalanche's ``TensorMNIST``: ``Normalize`` alone); ``None`` for any other experience, or where the
    source does not reproduce the experience's samples exactly.
    """
    from avalanche.benchmarks.utils.dataset_traversal_utils import single_flat_dataset

    out: list[TensorSource | None] = []
    for exp in stream:
        source = None
        try:
            flat = single_flat_dataset(exp.dataset)
            if flat is not None:
                leaf, indices, transforms = flat
                source = _source_from_leaf(leaf, indices, transforms, exp)
            if source is not None and not source.matches(exp.dataset):
                source = None
        except Exception:  # an unknown layout: Avalanche's own loaders are used
            source = None
        out.append(source)
    return out


def _source_from_leaf(leaf, indices, transforms, exp) -> TensorSource | None:
    targets = torch.as_tensor(list(exp.dataset.targets), dtype=torch.long)
    task = int(exp.task_label)
    x_transforms = [t for t in (getattr(tr, "transforms", [tr])[0] for tr in transforms) if t]
    if isinstance(leaf, TensorDataset):
        if x_transforms:
            return None
        return TensorSource(leaf.tensors[0], targets, task, indices=indices)
    data = getattr(leaf, "data", None)
    if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.ndim == 3):
        return None
    if len(x_transforms) != 1:
        return None
    steps = getattr(x_transforms[0], "transforms", [x_transforms[0]])
    names = [type(t).__name__ for t in steps]
    if type(leaf).__name__ == "TensorMNIST":  # Avalanche's MNIST: x / 255 before its transforms
        names, steps = ["ToTensor", *names], [None, *steps]
    if names == ["ToTensor"]:
        mean, std = 0.0, 1.0
    elif names == ["ToTensor", "Normalize"] and len(steps[1].mean) == len(steps[1].std) == 1:
        mean, std = float(steps[1].mean[0]), float(steps[1].std[0])
    else:
        return None
    shape = (1, *data.shape[1:])
    return TensorSource(
        data, targets, task, indices=indices, divisor=255.0, mean=mean, std=std, shape=shape
    )


class TensorLoader:
    """Minibatches ``[x, y, task_labels]`` from a :class:`TensorSource`, as Avalanche's loaders.

    ``shuffle=True``: a fresh ``torch.randperm`` (global RNG) on every pass, as
    a shuffling ``DataLoader``; ``False``: in order. The last batch may be short.
    """

    def __init__(self, source: TensorSource, batch_size: int, shuffle: bool):
        self.source, self.batch_size, self.shuffle = source, int(batch_size), shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.source) / self.batch_size)

    def __iter__(self):
        n, b = len(self.source), self.batch_size
        order = torch.randperm(n) if self.shuffle else None
        for start in range(0, n, b):
            pos = order[start : start + b] if order is not None else slice(start, min(start + b, n))
            x, y = self.source.get(pos)
            yield [x, y, torch.full((len(y),), self.source.task_label, dtype=torch.long)]


class FastDataPlugin(SupervisedPlugin):
    """Feed a strategy from :class:`TensorSource` batches instead of per-sample Avalanche loading.

    At the start of every training and evaluation experience (after the
    strategy built its own loader) the loader is replaced by a
    :class:`TensorLoader` only if the strategy's loader is Avalanche's plain one
    (not, e.g., a replay loader) and the experience's source reproduces the
    strategy's adapted dataset (same length, sampled items bitwise equal); in any
    other case (``Cumulative`` after the first task, ``Replay`` with a buffer,
    a benchmark without sources) Avalanche's loader is kept. ``counts`` tells
    how many experiences went each way, as actually iterated: a loader that a
    later plugin replaced (``Replay``'s, once its buffer holds data) counts as
    Avalanche's.

    :param sources: ``{"train": [...], "test": [...]}``, one :class:`TensorSource`
        (or ``None``) per experience of each stream.
    """

    PLAIN_LOADERS = ("TaskBalancedDataLoader", "GroupBalancedDataLoader", "SingleDatasetDataLoader")

    def __init__(self, sources: dict[str, list[TensorSource | None]]):
        super().__init__()
        self.sources = sources
        self.counts = {"tensor": 0, "avalanche": 0}
        self._pending: TensorLoader | None = None  # swapped in, not yet seen iterated

    def before_training_epoch(self, strategy, **kwargs):
        self._settle(strategy)

    def before_eval_iteration(self, strategy, **kwargs):
        self._settle(strategy)

    def _settle(self, strategy) -> None:
        if self._pending is not None and strategy.dataloader is not self._pending:
            self.counts["tensor"] -= 1  # another plugin replaced our loader after us
            self.counts["avalanche"] += 1
        self._pending = None

    def before_training_exp(self, strategy, **kwargs):
        self._swap(strategy, strategy.train_mb_size, shuffle=True)

    def before_eval_exp(self, strategy, **kwargs):
        self._swap(strategy, strategy.eval_mb_size, shuffle=False)

    def _swap(self, strategy, batch_size: int, shuffle: bool) -> None:
        exp = strategy.experience
        name = getattr(getattr(exp, "origin_stream", None), "name", None)
        stream = self.sources.get(name) if name is not None else None
        k = exp.current_experience
        source = stream[k] if stream is not None and k < len(stream) else None
        if (
            source is not None
            and type(strategy.dataloader).__name__ in self.PLAIN_LOADERS
            and source.matches(strategy.adapted_dataset)
        ):
            strategy.dataloader = self._pending = TensorLoader(source, batch_size, shuffle)
            self.counts["tensor"] += 1
        else:
            self._pending = None
            self.counts["avalanche"] += 1
