"""Offline benchmarks built from data that ships with scikit-learn.

``split_digits`` is the embedded default of the demo and of the tests: the 1,797
8x8 images of scikit-learn's bundled digits, split by class into
task-incremental experiences (each with its own task label and class ids
starting from 0, as Avalanche's ``SplitMNIST(return_task_id=True)``).
"""

from __future__ import annotations

import torch
from avalanche.benchmarks import nc_benchmark
from torch.utils.data import TensorDataset

__all__ = ["digits_tensors", "split_digits"]


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
    return nc_benchmark(
        _dataset(x_tr, y_tr),
        _dataset(x_te, y_te),
        n_experiences=n_experiences,
        task_labels=return_task_id,
        seed=seed,
        fixed_class_order=None if shuffle_classes else list(range(10)),
        class_ids_from_zero_in_each_exp=return_task_id,
    )
