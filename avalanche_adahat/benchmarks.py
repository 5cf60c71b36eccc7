"""Offline benchmarks: scikit-learn's bundled digits and local Fashion-MNIST.

``split_digits`` is the embedded default of the demo and of the tests: the 1,797
8x8 images of scikit-learn's bundled digits, split by class into
task-incremental experiences (each with its own task label and class ids
starting from 0, as Avalanche's ``SplitMNIST(return_task_id=True)``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.core import SupervisedPlugin
from torch.utils.data import TensorDataset

__all__ = [
    "DataNotFoundError",
    "FastDataPlugin",
    "PermutedTensorDataset",
    "TensorLoader",
    "TensorSource",
    "digits_tensors",
    "find_fmnist_files",
    "fmnist_tensors",
    "permuted_digits",
    "permuted_fmnist",
    "split_digits",
    "sources_from_flat_datasets",
    "split_fmnist",
    "torchvision_fmnist_root",
]


def digits_tensors(test_fraction: float = 0.3, seed: int = 0):
    """scikit-learn's digits as float tensors in [0, 1], split stratified by class.

    Returns ``(x_train, y_train, x_test, y_test)``; ``x`` has shape ``(N, 64)``.
    """
    from sklearn.datasets import load_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
    return x[tr], y[tr], x[te], y[te]


def _dataset(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    ds = TensorDataset(x, y)
    ds.targets = y  # what Avalanche's generators read
    return ds


def split_digits(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    shuffle_classes: bool = False,
    return_task_id: bool = True,
    test_fraction: float = 0.3,
):
    """Split Digits: the 10 digit classes split into ``n_experiences`` tasks.

    :param n_experiences: a divisor of 10 (2, 5 or 10 gives equal tasks).
    :param seed: seeds the train/test split and, with ``shuffle_classes``, the
        class order.
    :param shuffle_classes: ``False`` (default): tasks are classes
        ``{0,1}, {2,3}, ...``; ``True``: a seeded random class order.
    :param return_task_id: task-incremental (default: one task label per
        experience, class ids from 0 in each) or class-incremental.
    """
    if n_experiences not in (1, 2, 5, 10):
        raise ValueError(
            f"n_experiences must divide the 10 classes (1, 2, 5 or 10), got {n_experiences}"
        )
    x_tr, y_tr, x_te, y_te = digits_tensors(test_fraction, seed)
    benchmark = nc_benchmark(
        _dataset(x_tr, y_tr),
        _dataset(x_te, y_te),
        n_experiences=n_experiences,
        task_labels=return_task_id,
        seed=seed,
        fixed_class_order=None if shuffle_classes else list(range(10)),
        class_ids_from_zero_in_each_exp=return_task_id,
    )
    return _with_sources(benchmark)


def _with_sources(benchmark):
    """Attach ``benchmark.tensor_sources`` (see :class:`TensorSource`) found by traversal."""
    benchmark.tensor_sources = {
        "train": sources_from_flat_datasets(benchmark.train_stream),
        "test": sources_from_flat_datasets(benchmark.test_stream),
    }
    return benchmark


# --------------------------------------------------------------------------- tensor sources
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
    adapted dataset; benchmarks built here carry them as
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
    ``ToTensor`` + ``Normalize``; ``None`` for any other experience, or where the
    source does not reproduce the experience's samples exactly.
    """
    from avalanche.benchmarks.utils.dataset_traversal_utils import single_flat_dataset

    out: list[TensorSource | None] = []
    for exp in stream:
        source = None
        try:
            flat = single_flat_dataset(exp.dataset)
            if flat is not None:
                source = _source_from_leaf(*flat, exp)
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
        stream = self.sources.get(getattr(getattr(exp, "origin_stream", None), "name", None))
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


# --------------------------------------------------------------------------- permuted
class PermutedTensorDataset(torch.utils.data.Dataset):
    """``(x[i][perm], y[i])``: one pixel permutation applied lazily to shared tensors.

    ``x`` is kept once (``uint8`` images are converted on access as
    ``(x / divisor - mean) / std``), so 50 permuted tasks of Fashion-MNIST cost
    one copy of the data, not 50. ``source`` is the same data as a
    :class:`TensorSource` (batches in a few tensor operations, bitwise equal).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        permutation: torch.Tensor | None,
        *,
        divisor: float = 1.0,
        mean: float = 0.0,
        std: float = 1.0,
    ):
        self.x = x.reshape(x.shape[0], -1)
        self.targets = y
        self.permutation = permutation
        self.source = TensorSource(
            self.x, y, permutation=permutation, divisor=divisor, mean=mean, std=std,
            shape=(self.x.shape[1],),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        return self.source.transform(self.x[i : i + 1])[0], self.targets[i]


def _permuted_benchmark(x_tr, y_tr, x_te, y_te, n_experiences, seed, **norm):
    """One experience per seeded permutation, built with ``dataset_benchmark``.

    Avalanche's ``nc_benchmark`` walks every sample's target and task label
    through its dataset wrappers (about 2 s per 70,000-image task);
    ``dataset_benchmark`` over datasets whose targets and task labels are
    given as tensors does not.
    """
    from avalanche.benchmarks import dataset_benchmark
    from avalanche.benchmarks.utils import _make_taskaware_classification_dataset

    if not isinstance(n_experiences, int) or n_experiences < 1:
        raise ValueError(f"n_experiences must be a positive integer, got {n_experiences!r}")
    g = torch.Generator().manual_seed(seed)
    n_features = x_tr[0].numel()
    train, test, sources = [], [], {"train": [], "test": []}
    for task in range(n_experiences):
        perm = torch.randperm(n_features, generator=g)
        for xs, ys, out, stream in ((x_tr, y_tr, train, "train"), (x_te, y_te, test, "test")):
            ds = PermutedTensorDataset(xs, ys, perm, **norm)
            out.append(_make_taskaware_classification_dataset(ds, task_labels=task))
            sources[stream].append(ds.source.with_task_label(task))
    benchmark = dataset_benchmark(train, test)
    benchmark.tensor_sources = sources
    return benchmark


def permuted_digits(n_experiences: int = 5, seed: int = 0, *, test_fraction: float = 0.3):
    """Permuted Digits: scikit-learn's digits under ``n_experiences`` seeded pixel permutations.

    Every experience holds all 10 classes with its own task label
    (task-incremental, like Avalanche's ``PermutedMNIST(return_task_id=True)``).
    """
    x_tr, y_tr, x_te, y_te = digits_tensors(test_fraction, seed)
    return _permuted_benchmark(x_tr, y_tr, x_te, y_te, n_experiences, seed)


# --------------------------------------------------------------------------- Fashion-MNIST
DEBIAN_FMNIST = "/usr/share/datasets/fashion-mnist"
FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530  # Avalanche's SplitFMNIST normalisation


class DataNotFoundError(FileNotFoundError):
    """A benchmark's data is not where it is looked for (the message says how to get it)."""


def find_fmnist_files(data_root: str | os.PathLike) -> dict[str, Path]:
    """The four Fashion-MNIST idx files under ``data_root`` (``.gz`` or not).

    Looks in ``data_root`` itself (Debian's layout) and in
    ``data_root/FashionMNIST/raw`` (torchvision's). Raises
    :class:`DataNotFoundError` with a one-line hint when a file is missing.
    """
    root = Path(data_root).expanduser()
    found = {}
    for name in FMNIST_FILES:
        for folder in (root, root / "FashionMNIST" / "raw"):
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    found[name] = candidate
                    break
            if name in found:
                break
        else:
            raise DataNotFoundError(
                f"Fashion-MNIST not found: looked for {name}[.gz] in {root} and "
                f"{root / 'FashionMNIST' / 'raw'}; install it with "
                "`apt-get install dataset-fashion-mnist` (puts it in "
                f"{DEBIAN_FMNIST}) or pass --data-root DIR holding the four idx files"
            )
    return found


def _read_idx(path: Path) -> torch.Tensor:
    import gzip

    import numpy as np

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(array.copy())


def fmnist_tensors(data_root: str | os.PathLike = DEBIAN_FMNIST):
    """Fashion-MNIST as ``uint8`` tensors ``(x_train, y_train, x_test, y_test)``."""
    files = find_fmnist_files(data_root)
    return tuple(_read_idx(files[name]).long() if "labels" in name else _read_idx(files[name])
                 for name in FMNIST_FILES)  # fmt: skip


def torchvision_fmnist_root(
    data_root: str | os.PathLike = DEBIAN_FMNIST, cache_dir: str | os.PathLike | None = None
) -> Path:
    """A folder that torchvision's ``FashionMNIST(root)`` (and so Avalanche's ``SplitFMNIST``) reads.

    If ``data_root/FashionMNIST/raw`` already holds the un-gzipped files it is
    returned as is; otherwise the files found by :func:`find_fmnist_files` are
    un-gzipped into ``cache_dir/FashionMNIST/raw`` (default
    ``~/.cache/avalanche-adahat/data``). ``data_root`` is never written to.
    """
    import gzip
    import shutil

    files = find_fmnist_files(data_root)
    if all(p.suffix != ".gz" and p.parent.name == "raw" for p in files.values()):
        return next(iter(files.values())).parent.parent.parent
    cache = Path(cache_dir or Path.home() / ".cache" / "avalanche-adahat" / "data")
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        dst = raw / name
        if dst.is_file() and dst.stat().st_size > 0:
            continue
        tmp = dst.with_suffix(".tmp")
        with gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb") as f_in:
            with open(tmp, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
        tmp.replace(dst)
    return cache


def permuted_fmnist(
    n_experiences: int = 10, seed: int = 0, *, data_root: str | os.PathLike = DEBIAN_FMNIST
):
    """Permuted Fashion-MNIST from local idx files (never downloads).

    Each experience is the whole of Fashion-MNIST (60,000 train, 10,000 test
    images, normalised as Avalanche's ``SplitFMNIST``) under its own seeded
    pixel permutation and task label.
    """
    x_tr, y_tr, x_te, y_te = fmnist_tensors(data_root)
    norm = dict(divisor=255.0, mean=FMNIST_MEAN, std=FMNIST_STD)
    return _permuted_benchmark(x_tr, y_tr, x_te, y_te, n_experiences, seed, **norm)


def split_fmnist(
    n_experiences: int = 5,
    seed: int = 0,
    *,
    data_root: str | os.PathLike = DEBIAN_FMNIST,
    cache_dir: str | os.PathLike | None = None,
):
    """Avalanche's own ``SplitFMNIST(return_task_id=True)`` reading a local copy (never downloads).

    Classes are taken in their natural order (``{0,1}, {2,3}, ...`` for 5
    tasks), with class ids from 0 in each task. The benchmark is Avalanche's,
    unchanged: its datasets still go through torchvision's PIL images and
    ``ToTensor`` + ``Normalize`` (about 0.5 ms per sample on one CPU thread).
    ``benchmark.tensor_sources`` holds the same samples as tensors (checked
    bitwise against the datasets), which ``avalanche-adahat compare`` uses to
    feed a strategy whose data are exactly one experience's.
    """
    from avalanche.benchmarks.classic import SplitFMNIST

    root = torchvision_fmnist_root(data_root, cache_dir)
    benchmark = SplitFMNIST(
        n_experiences,
        return_task_id=True,
        seed=seed,
        fixed_class_order=list(range(10)),
        class_ids_from_zero_in_each_exp=True,
        dataset_root=root,
    )
    return _with_sources(benchmark)
