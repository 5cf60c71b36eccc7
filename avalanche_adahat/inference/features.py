"""The features of a task's masked network, and their statistics at a task's end.

The feature of task ``j`` for a sample is, for every HAT layer in forward order,
the output (before the nonlinearity and the gate) of the units active in
``j``'s stored mask ``M^j``; a convolution's channels are averaged over
positions. Under HAT these values are a function of parameters that task ``j``
uses and later tasks never change, so they are the same whenever computed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from ..nn.statistics import FeatureStatistics

__all__ = ["INPUT_SPACE", "forward_with_features", "update_statistics"]

#: The key of the input space in its own :class:`FeatureStatistics`: one space of every
#: class seen, on the raw (flattened) inputs.
INPUT_SPACE = 0


def forward_with_features(model, x: Tensor, task_label: int) -> tuple[Tensor, Tensor]:
    """``(logits, features)`` of ``x`` through task ``task_label``'s stored mask and
    head: one forward pass, the features read by hooks on the HAT layers."""
    layers = list(model.hat_layers)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} lists no HAT layers (hat_layers): feature-statistics "
            "task inference reads their outputs"
        )
    outputs: dict[int, Tensor] = {}

    def keep(index):
        def hook(_module, _inputs, output):
            outputs[index] = output

        return hook

    handles = [w.layer.register_forward_hook(keep(i)) for i, w in enumerate(layers)]
    try:
        logits = model.forward_single_task(x, task_label)
    finally:
        for handle in handles:
            handle.remove()
    parts = []
    for i, w in enumerate(layers):
        h = outputs[i]
        if h.dim() > 2:
            h = h.flatten(2).mean(dim=2)
        parts.append(h[:, w.mask.stored_mask(task_label) > 0])
    return logits, torch.cat(parts, dim=1)


def _eval_view(dataset):
    """The dataset with its evaluation transforms (no augmentation), where it has them."""
    return dataset.eval() if hasattr(dataset, "eval") else dataset


@torch.no_grad()
def update_statistics(
    model,
    statistics: FeatureStatistics,
    dataset,
    task_label: int,
    spaces: list[int],
    batch_size: int = 256,
    input_statistics: FeatureStatistics | None = None,
) -> None:
    """End of task ``task_label``: add its training ``dataset`` (forward passes only, no
    sample kept) to the statistics of every space in ``spaces``, and its raw inputs
    (flattened) to ``input_statistics``' one space (``0``) where given.

    Under ``torch.distributed`` each process reads its share of the samples and the
    sums are added up across processes, so every process holds the same statistics.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    data = _eval_view(dataset)
    indices = range(len(data))
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        indices = range(dist.get_rank(), len(data), dist.get_world_size())
    subset = torch.utils.data.Subset(data, list(indices))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size)
    classes = torch.as_tensor(sorted({int(y) for y in data.targets}), device=device)

    def task_features(j: int, x: Tensor) -> Tensor:
        return forward_with_features(model, x, j)[1]

    targets: list[tuple[FeatureStatistics, int, Callable[[int, Tensor], Tensor]]]
    targets = [(statistics, j, task_features) for j in spaces]
    if input_statistics is not None:
        targets.append((input_statistics, INPUT_SPACE, lambda _, x: x.flatten(1)))
    sums: dict[int, list[Tensor]] = {}
    try:
        for batch in loader:
            x, y = batch[0].to(device), batch[1].to(device)
            onehot = (y[:, None] == classes[None]).to(torch.float64)
            for index, (_, j, features) in enumerate(targets):
                f = features(j, x).to(torch.float64)
                part = [onehot.sum(dim=0), onehot.t() @ f, f.t() @ f]
                if index not in sums:
                    sums[index] = part
                else:
                    for total, value in zip(sums[index], part):
                        total.add_(value)
    finally:
        model.train(was_training)
    for index, (target, j, _) in enumerate(targets):
        if distributed:
            for tensor in sums[index]:
                dist.all_reduce(tensor)
        target.add_sums(j, classes, task_label, *sums[index])
