"""Small data made in the tests."""

import torch
from torch.utils.data import TensorDataset


def tensor_benchmark(
    n_tasks=3, n_features=8, per_class=24, n_classes=2, seed=0, task_labels=True, shape=None
):
    """A tiny task-incremental Avalanche benchmark from random, learnable tensors
    (each sample reshaped to ``shape`` if given, e.g. ``(3, 4, 4)`` for 48 features)."""
    from avalanche.benchmarks import nc_benchmark

    g = torch.Generator().manual_seed(seed)
    total = n_tasks * n_classes
    centers = torch.randn(total, n_features, generator=g) * 2
    y = torch.arange(total).repeat_interleave(per_class)
    x = centers[y] + torch.randn(len(y), n_features, generator=g)
    if shape is not None:
        x = x.reshape(len(y), *shape)
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


def protected_entries(model):
    """Per covered parameter, the boolean map of entries whose ``hat`` rate is 0 now."""
    return {cp.name: cp.frozen_entries() for cp in model.covered_parameters()}


def stacked_inputs(dataset):
    """All inputs of an Avalanche dataset as one tensor."""
    return torch.stack([dataset[i][0] for i in range(len(dataset))])
