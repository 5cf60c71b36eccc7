"""Small data made in the tests."""

import torch
from torch.utils.data import TensorDataset


def tensor_benchmark(n_tasks=3, n_features=8, per_class=24, n_classes=2, seed=0, task_labels=True):
    """A tiny task-incremental Avalanche benchmark from random, learnable tensors."""
    from avalanche.benchmarks import nc_benchmark

    g = torch.Generator().manual_seed(seed)
    total = n_tasks * n_classes
    centers = torch.randn(total, n_features, generator=g) * 2
    y = torch.arange(total).repeat_interleave(per_class)
    x = centers[y] + torch.randn(len(y), n_features, generator=g)
    ds = TensorDataset(x, y)
    ds.targets = y
    return nc_benchmark(
        ds,
        ds,
        n_experiences=n_tasks,
        task_labels=task_labels,
        fixed_class_order=list(range(total)),
        class_ids_from_zero_in_each_exp=task_labels,
    )
