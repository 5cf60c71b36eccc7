"""The HAT paper's fully connected backbone."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..core.checks import check_bool, check_positive_int, check_probability
from ..nn.layers import apply_gate, hat_chain
from ..nn.module import HATModule
from ._common import check_sizes, make_head

__all__ = ["HATMLP"]


class HATMLP(HATModule):
    """MLP with a HAT mask on every hidden layer.

    ``x -> [Linear -> ReLU -> mask -> Dropout] * len(hidden_sizes) -> head``.
    The mask multiplies each hidden layer's output after the nonlinearity, as
    in the HAT paper's MLP (HAT Eq. 1: ``h' = m^t * relu(W h + b)``). Each
    Linear is a :class:`~avalanche_adahat.nn.layers.HATLinear` in ``hat_layers``;
    ``layers[i]`` and ``masks[i]`` are its Linear and mask.

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
        hidden_sizes = check_sizes("hidden_sizes", hidden_sizes, "list at least one hidden layer")
        check_bool("multi_head", multi_head)
        check_probability("dropout", dropout)
        check_probability("input_dropout", input_dropout)
        self.input_size = input_size
        self.multi_head = multi_head
        sizes = [input_size, *hidden_sizes]
        self.hat_layers = hat_chain(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.layers = nn.ModuleList(w.layer for w in self.hat_layers)
        self.masks = nn.ModuleList(w.mask for w in self.hat_layers)
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
        gates = self.gate_map(task_label)
        h = self.input_dropout(h)
        for layer in self.hat_layers:
            h = self.dropout(apply_gate(layer(h).relu(), gates, layer.mask))
        return self.head(h, task_label) if self.multi_head else self.head(h)
