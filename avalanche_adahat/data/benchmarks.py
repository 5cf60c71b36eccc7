"""Offline benchmarks: scikit-learn's bundled digits and local Fashion-MNIST.

``split_digits`` is the embedded default of the demo and of the tests: the 1,797
8x8 images of scikit-learn's bundled digits, split by class into
task-incremental experiences (each with its own task label and class ids
starting from 0, as Avalanche's ``SplitMNIST(return_task_id=True)``).

This module builds benchmarks (digits and Fashion-MNIST readers, split and
permuted builders) and attaches their ``tensor_sources``; the whole-tensor
loading that uses them is :mod:`avalanche_adahat.data.fast_data`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from avalanche.benchmarks import nc_benchmark
from torch.utils.data import TensorDataset

from .fast_data import TensorSource, sources_from_flat_datasets

__all__ = [
    "DataNotFoundError",
    "PermutedTensorDataset",
    "digits_tensors",
    "find_fmnist_files",
    "fmnist_tensors",
    "permuted_digits",
    "permuted_fmnist",
    "split_digits",
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
    ds.targets = y  # type: ignore[attr-defined]  # what Avalanche's generators read
    return ds


def split_digits(
    n_experiences: int = 5,
    *,
    seed: int = 0,
    shuffle_classes: bool = False,
    return_task_id: bool = True,
    test_fraction: float = 0.3,
    class_order: list[int] | None = None,
):
    """Split Digits: the 10 digit classes split into ``n_experiences`` tasks.

    :param n_experiences: a divisor of 10 (2, 5 or 10 gives equal tasks).
    :param seed: seeds the train/test split and, with ``shuffle_classes``, the
        class order.
    :param shuffle_classes: ``False`` (default): tasks are classes
        ``{0,1}, {2,3}, ...``; ``True``: a seeded random class order.
    :param return_task_id: task-incremental (default: one task label per
        experience, class ids from 0 in each) or class-incremental.
    :param class_order: the classes in the order they are split into tasks (a
        permutation of 0..9); overrides ``shuffle_classes``.
    """
    if n_experiences not in (1, 2, 5, 10):
        raise ValueError(
            f"n_experiences must divide the 10 classes (1, 2, 5 or 10), got {n_experiences}"
        )
    x_tr, y_tr, x_te, y_te = digits_tensors(test_fraction, seed)
    order = None if shuffle_classes else list(range(10))
    if class_order is not None:
        order = list(class_order)
    benchmark = nc_benchmark(
        _dataset(x_tr, y_tr),
        _dataset(x_te, y_te),
        n_experiences=n_experiences,
        task_labels=return_task_id,
        seed=seed,
        fixed_class_order=order,
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
