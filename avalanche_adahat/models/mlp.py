"""The HAT paper's fully connected backbone."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..checks import check_bool, check_positive_int, check_probability
from ..masking import CoveredParameter, HATMask, HATModule, gate_units
from ._common import make_head

__all__ = ["HATMLP"]


class HATMLP(HATModule):
    """MLP with a HAT mask on every hidden layer.

    ``x -> [Linear -> ReLU -> mask -> Dropout] * len(hidden_sizes) -> head``.
    The mask multiplies each hidden layer's output after the nonlinearity, as
    in the HAT paper's MLP.

    :param input_size: number of input features (inputs are flattened).
    :param hidden_sizes: units of each hidden layer, e.g. ``(256, 100, 64)``
        (AdaHAT Exp. 1) or ``(2000, 2000)`` (HAT paper).
    :param num_classes: initial classes per head; default ``None``: each head is
        sized from its experience's classes, as Avalanche's ``MultiHeadClassifier``
        (and a shared head as its ``IncrementalClassifier``).
    :param multi_head: ``True`` (default): one head per task label
        (task-incremental, Avalanche's ``MultiHeadClassifier``); ``False``: one
        shared head (domain-incremental; the shared head is not protected).
    :param dropout: dropout after each hidden layer (HAT paper: 0.5).
    :param input_dropout: dropout on the input (HAT paper: 0.2).
    """

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (256, 100, 64),
        num_classes: int | None = None,
        *,
        multi_head: bool = True,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        check_positive_int("input_size", input_size)
        if len(hidden_sizes) == 0:
            raise ValueError("hidden_sizes must list at least one hidden layer, got []")
        for size in hidden_sizes:
            check_positive_int("hidden_sizes", size)
        check_bool("multi_head", multi_head)
        check_probability("dropout", dropout)
        check_probability("input_dropout", input_dropout)
        self.input_size = input_size
        self.multi_head = multi_head
        sizes = [input_size, *hidden_sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.masks = nn.ModuleList(HATMask(b) for b in hidden_sizes)
        self.input_dropout = nn.Dropout(input_dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = make_head(sizes[-1], num_classes, multi_head)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        h = x.reshape(x.shape[0], -1)
        if h.shape[1] != self.input_size:
            raise ValueError(
                f"HATMLP expects {self.input_size} input features per sample "
                f"(input_size), got input of shape {tuple(x.shape)}"
            )
        gates = self.task_gates(task_label)
        h = self.input_dropout(h)
        for i, layer in enumerate(self.layers):
            h = layer(h).relu()
            if gates is not None:
                h = gate_units(h, gates[i])
            h = self.dropout(h)
        return self.head(h, task_label) if self.multi_head else self.head(h)

    def covered_parameters(self) -> list[CoveredParameter]:
        covered = []
        previous = None
        for i, (layer, mask) in enumerate(zip(self.layers, self.masks)):
            covered.append(CoveredParameter(f"layers.{i}.weight", layer.weight, mask, previous))
            if layer.bias is not None:
                covered.append(CoveredParameter(f"layers.{i}.bias", layer.bias, mask))
            previous = mask
        return covered
