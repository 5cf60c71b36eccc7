"""The backbone :func:`~avalanche_adahat.models.convert_to_hat` builds from a chain of
layers: :class:`HATSequential`, its gates applied where docs/ALGORITHM.md §1.1 puts them."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from ..nn.layers import HATLayer, apply_gate
from ..nn.mask import HATMask
from ._common import HATBackbone, TaskBatchNorm

__all__ = ["HATSequential"]


class HATSequential(HATBackbone):
    """A HAT backbone built by :func:`~avalanche_adahat.models.convert_to_hat` from an
    ``nn.Sequential``.

    ``layers`` holds the converted body (every layer but the final Linear),
    ``hat_layers`` the HAT layers of its weighted layers
    (:func:`~avalanche_adahat.nn.layers.hat_layer_for`), in order, whose masks are
    in ``masks``, and ``head`` the classifier. Use
    :func:`~avalanche_adahat.models.convert_to_hat` to build one.

    :param gate_points: ``{layer index: (mask index, repeat)}``: after that layer
        of the body, multiply by that mask's gate (each unit covering ``repeat``
        features, after a ``Flatten``).
    """

    def __init__(
        self,
        layers: list[nn.Module],
        hat_layers: list[HATLayer],
        gate_points: dict[int, tuple[int, int]],
        head: nn.Module,
        multi_head: bool,
        input_shape: tuple[int, ...],
    ):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.masks = nn.ModuleList(w.mask for w in hat_layers)
        self.head = head
        self.multi_head = multi_head
        self.input_shape = tuple(input_shape)
        self.hat_layers = list(hat_layers)
        self._mask_points = dict(gate_points)

    def extra_repr(self) -> str:
        points = {
            i: f"mask {m}" + (f" x{r}" if r > 1 else "") for i, (m, r) in self._mask_points.items()
        }
        return f"input_shape={self.input_shape}, masks_after_layers={points}"

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"this converted model expects inputs of shape (N, *{self.input_shape}) "
                f"(the input_shape given to convert_to_hat), got {tuple(x.shape)}"
            )
        gates = self.gate_map(task_label)
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, task_label) if isinstance(layer, TaskBatchNorm) else layer(h)
            point = self._mask_points.get(i)
            if point is not None:
                mask_index, repeat = point
                h = apply_gate(h, gates, cast(HATMask, self.masks[mask_index]), repeat)
        return self._head_forward(h, task_label)
