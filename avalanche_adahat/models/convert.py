"""Turn a plain ``nn.Sequential`` into an equivalent HAT backbone: :func:`convert_to_hat`.

Its parts, one concern each: :mod:`.layer_types` (the layers it converts,
:data:`CONVERTIBLE_LAYERS`, and their functional forms, :data:`FUNCTIONAL_FORMS`),
:mod:`.chain` (a module's forward read as a chain of layers, :func:`layer_chain`),
:mod:`.sequential` (the backbone it builds, :class:`HATSequential`) and
:mod:`.torchvision_resnet` (torchvision's ResNet-18/34). Here: the checks of each
layer and shape, and where each mask's gate sits (docs/ALGORITHM.md §1.1, §3).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from ..core.checks import check_bool, check_positive_int
from ..nn.layers import hat_chain
from ._common import TaskBatchNorm, make_head
from .chain import layer_chain
from .layer_types import (
    _BATCH_NORMS,
    _WEIGHTED,
    CONVERTIBLE_LAYERS,
    FUNCTIONAL_FORMS,
    _supported_text,
)
from .resnet import HATResNet
from .sequential import HATSequential
from .torchvision_resnet import convert_torchvision_resnet

__all__ = [
    "CONVERTIBLE_LAYERS",
    "FUNCTIONAL_FORMS",
    "HATSequential",
    "convert_to_hat",
    "layer_chain",
]


def _layer_error(index: int, layer: nn.Module, reason: str, exc=ValueError) -> Exception:
    return exc(
        f"convert_to_hat cannot convert layer {index} ({type(layer).__name__}: {layer!r}): "
        f"{reason}. Supported layers (exact types, in one flat nn.Sequential) are {_supported_text()}"
    )


def convert_to_hat(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    num_classes: int | None = None,
    multi_head: bool = True,
) -> HATSequential | HATResNet:
    """Build the HAT version of a plain classifier: an ``nn.Sequential``, or any module
    whose forward applies its layers one after another (:func:`layer_chain`), such as
    Avalanche's ``SimpleMLP``. A torchvision ResNet of basic blocks (``resnet18``,
    ``resnet34``) becomes a :class:`~avalanche_adahat.models.HATResNet`
    (:func:`~avalanche_adahat.models.torchvision_resnet.convert_torchvision_resnet`).

    The result has the same layers with copied (deep-copied, never shared)
    weights, plus:

    - a HAT layer (:func:`~avalanche_adahat.nn.layers.hat_layer_for`: a
      :class:`~avalanche_adahat.HATMask` on the output units, features or
      channels) for every ``Linear`` and ``Conv2d`` except the last layer. The
      mask multiplies the units where they enter the next weighted layer (or
      the head), i.e. after whatever BatchNorm, activation, pooling, dropout
      and ``Flatten`` follow the layer. A gated-off unit is then exactly 0
      where the next layer reads it, whatever the activation (``sigmoid(0)``
      is not 0) -- the condition for HAT's exact protection. Applied after
      a ``Flatten``, a channel's gate covers its ``H*W`` features;
    - every ``BatchNorm1d``/``BatchNorm2d`` becomes a per-task BatchNorm
      (:class:`~avalanche_adahat.models._common.TaskBatchNorm`) with the same
      ``eps``, ``momentum``, ``affine`` and ``track_running_stats``; each
      task's BN starts freshly initialised (the original BN's learned values
      are not copied);
    - **the last layer, which must be a** ``Linear``, **becomes the head**:
      a ``MultiHeadClassifier`` with one fresh head per task label
      (``multi_head=True``, task-incremental), or one shared ``Linear``
      (``multi_head=False``; a copy of the last layer when ``num_classes``
      equals its ``out_features``, otherwise a fresh one). Heads are not
      protected, as in HAT.

    Parameter-wise measures (docs/ALGORITHM.md §3): a weighted layer's weight is indexed by
    its own mask (output units) and by the previous weighted layer's mask
    (input units; none for the first weighted layer); a Linear after a conv
    has ``in_repeat = H*W`` of the conv's output at the flatten.

    :param model: an ``nn.Sequential`` of the layers in
        :data:`CONVERTIBLE_LAYERS` (exact types), or a module whose forward
        applies them one after another, as modules or in their functional forms
        (:data:`FUNCTIONAL_FORMS`: ``F.relu``, ``F.max_pool2d``, ``F.dropout``,
        ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``, ...;
        :func:`layer_chain`), ending with the classifier ``Linear``; left
        untouched. ``F.dropout`` becomes ``nn.Dropout``, which drops in training
        mode only, whatever its ``training=`` argument.
    :param input_shape: shape of one input sample without the batch
        dimension, e.g. ``(3, 32, 32)`` or ``(784,)``; needed to compute the
        feature-map sizes (a conv->Linear transition's ``H*W``).
    :param num_classes: classes per head; default: the last Linear's ``out_features``.
    :param multi_head: one head per task label (default) or one shared head.
    :raises TypeError: ``model``'s forward is not a chain of supported layers
        (a branch, a residual addition, a softmax; the message names the call
        and what to write instead), or it contains a layer type that cannot be
        converted (the message names its index and type and lists the supported
        layers).
    :raises ValueError: a supported layer in an unsupported configuration
        (grouped conv, partial ``Flatten``, ...), a shape that does not fit,
        or a model without a hidden weighted layer or final ``Linear``.
    """
    check_bool("multi_head", multi_head)
    try:
        input_shape = tuple(int(d) for d in input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be the shape of one sample without the batch dimension, "
            f"e.g. (3, 32, 32), got {input_shape!r}"
        ) from None
    if len(input_shape) == 0 or min(input_shape) <= 0:
        raise ValueError(
            f"input_shape must be a non-empty sequence of positive integers (one sample, no "
            f"batch dimension), got {input_shape!r}"
        )
    resnets = sys.modules.get("torchvision.models.resnet")  # imported if model is one
    if resnets is not None and isinstance(model, resnets.ResNet):
        if len(input_shape) != 3 or input_shape[0] != model.conv1.in_channels:
            raise ValueError(
                f"input_shape {input_shape} is not (channels, H, W) of this ResNet's "
                f"{model.conv1.in_channels} input channels"
            )
        return convert_torchvision_resnet(model, num_classes=num_classes, multi_head=multi_head)
    layers = layer_chain(model, input_shape)
    if len(layers) == 0:
        raise ValueError("convert_to_hat needs a non-empty nn.Sequential ending with a Linear")
    for i, layer in enumerate(layers):
        _check_layer(i, layer)
    if type(layers[-1]) is not nn.Linear:
        raise ValueError(
            f"the last layer of the model becomes the HAT head and must be an nn.Linear (the "
            f"classifier), got layer {len(layers) - 1} ({type(layers[-1]).__name__})"
        )
    last = layers[-1]
    if num_classes is None:
        num_classes = last.out_features
    check_positive_int("num_classes", num_classes)
    body = layers[:-1]
    weighted_indices = [i for i, layer in enumerate(body) if isinstance(layer, _WEIGHTED)]
    if not weighted_indices:
        raise ValueError(
            "convert_to_hat needs at least one Linear or Conv2d before the final Linear (the "
            "head): HAT masks sit on the hidden layers"
        )

    shapes = _trace_shapes(nn.Sequential(*layers), input_shape)  # input of each layer, then output
    for i, layer in enumerate(layers):
        need = 2 if isinstance(layer, nn.Linear) else 4 if isinstance(layer, nn.Conv2d) else None
        if need is not None and len(shapes[i]) != need:
            raise _layer_error(
                i,
                layer,
                f"it receives inputs of shape {shapes[i]}, but a HAT "
                f"{type(layer).__name__} must receive {need}-d inputs "
                f"({'(N, features): add nn.Flatten() before it' if need == 2 else '(N, C, H, W)'})",
            )

    converted: list[nn.Module] = []
    for layer in body:
        if isinstance(layer, _BATCH_NORMS):
            converted.append(
                TaskBatchNorm(
                    layer.num_features,
                    spatial=isinstance(layer, nn.BatchNorm2d),
                    eps=layer.eps,
                    momentum=layer.momentum,
                    affine=layer.affine,
                    track_running_stats=layer.track_running_stats,
                )
            )
        else:
            converted.append(copy.deepcopy(layer))

    # Each weighted layer's gate sits where its units enter the next weighted layer
    # (or the head): at layer index j - 1, j that next layer.
    gate_points, repeats = {}, []
    next_weighted = [*weighted_indices[1:], len(body)]  # the head is at index len(body)
    for m, (i, j) in enumerate(zip(weighted_indices, next_weighted)):
        repeats.append(_gate_repeat(i, body[i], shapes[j]))
        gate_points[j - 1] = (m, repeats[-1])
    # layer k reads the units of layer k - 1, each covering repeats[k - 1] features
    hat_layers = hat_chain([converted[i] for i in weighted_indices], [1, *repeats])

    if multi_head:
        head = make_head(last.in_features, num_classes, True)
    elif num_classes == last.out_features:
        head = copy.deepcopy(last)
    else:
        head = nn.Linear(last.in_features, num_classes, bias=last.bias is not None)
    hat = HATSequential(converted, hat_layers, gate_points, head, multi_head, input_shape)
    param = next(model.parameters(), None)
    if param is None:
        return hat
    return hat.to(device=param.device, dtype=param.dtype) if param.is_floating_point() else hat


def _gate_repeat(index: int, layer: nn.Module, point_shape: tuple[int, ...]) -> int:
    """Features per unit of weighted layer ``index`` where the next weighted layer
    reads them (``point_shape``): 1, or ``H*W`` after a ``Flatten`` of its channels."""
    units = (
        layer.out_features if isinstance(layer, nn.Linear) else cast(nn.Conv2d, layer).out_channels
    )
    if point_shape[1] == units:
        return 1
    if len(point_shape) == 2 and point_shape[1] % units == 0:
        return point_shape[1] // units  # a Flatten of (units, H, W): channel c owns c*H*W ...
    if len(point_shape) == 2:
        reason = (
            f"its {units} output units reach the next weighted layer as {point_shape[1]} "
            "features, which is not a flattened (units, H, W) map"
        )
    else:
        reason = f"its {units} channels reach the next layer as {point_shape[1]}"
    raise _layer_error(index, layer, reason)


def _check_layer(index: int, layer: nn.Module) -> None:
    if type(layer) not in CONVERTIBLE_LAYERS:
        if isinstance(layer, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) or (
            len(list(layer.children())) > 0
        ):
            reason = (
                "nested modules (containers, blocks with branches) are not supported; "
                "flatten them into the one nn.Sequential"
            )
        else:
            reason = "this layer type is not supported"
        raise _layer_error(index, layer, reason, TypeError)
    if isinstance(layer, nn.Conv2d) and layer.groups != 1:
        raise _layer_error(
            index, layer, f"grouped convolutions (groups={layer.groups}) are not supported"
        )
    if isinstance(layer, nn.Flatten) and (layer.start_dim != 1 or layer.end_dim != -1):
        raise _layer_error(
            index,
            layer,
            f"only nn.Flatten(start_dim=1, end_dim=-1) is supported, got start_dim="
            f"{layer.start_dim}, end_dim={layer.end_dim}",
        )
    if isinstance(layer, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) and layer.return_indices:
        raise _layer_error(index, layer, "return_indices=True is not supported")


@torch.no_grad()
def _trace_shapes(model: nn.Sequential, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes (batch dimension included) entering each layer, then the output's."""
    probe = copy.deepcopy(model).eval()  # eval: BN statistics of the copy only, no dropout
    param = next(probe.parameters(), None)
    kwargs: dict[str, Any] = {} if param is None else {"device": param.device, "dtype": param.dtype}
    h = torch.zeros(2, *input_shape, **kwargs)
    shapes = []
    for i, layer in enumerate(probe):
        shapes.append(tuple(h.shape))
        try:
            h = layer(h)
        except Exception as e:  # a shape that does not fit
            raise _layer_error(
                i, layer, f"input_shape {input_shape} does not fit it (input {tuple(h.shape)}: {e})"
            ) from e
    shapes.append(tuple(h.shape))
    return shapes
