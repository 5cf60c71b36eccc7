"""Turn a plain ``nn.Sequential`` into an equivalent HAT backbone."""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.checks import check_bool, check_positive_int
from ..nn.layers import HAT_LAYERS, HATLayer, apply_gate, hat_chain
from ._common import HATBackbone, TaskBatchNorm, make_head
from .resnet import HATResNet
from .torchvision_resnet import convert_torchvision_resnet

__all__ = [
    "CONVERTIBLE_LAYERS",
    "FUNCTIONAL_FORMS",
    "HATSequential",
    "convert_to_hat",
    "layer_chain",
]

_WEIGHTED = tuple(HAT_LAYERS)  # the layer types with a HAT wrapper
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Softsign,
)
_POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_OTHER = (nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Identity)

#: The layer types :func:`convert_to_hat` accepts (exact types, not subclasses).
CONVERTIBLE_LAYERS: tuple[type[nn.Module], ...] = (
    _WEIGHTED + _BATCH_NORMS + _ACTIVATIONS + _POOLING + _OTHER
)


def _supported_text() -> str:
    groups = [
        ("weighted", _WEIGHTED),
        ("batch norm", _BATCH_NORMS),
        ("activations", _ACTIVATIONS),
        ("pooling", _POOLING),
        ("other", _OTHER),
    ]
    return "; ".join(f"{g}: {', '.join(t.__name__ for t in ts)}" for g, ts in groups)


def _layer_error(index: int, layer: nn.Module, reason: str, exc=ValueError) -> Exception:
    return exc(
        f"convert_to_hat cannot convert layer {index} ({type(layer).__name__}: {layer!r}): "
        f"{reason}. Supported layers (exact types, in one flat nn.Sequential) are {_supported_text()}"
    )


class HATSequential(HATBackbone):
    """A HAT backbone built by :func:`convert_to_hat` from an ``nn.Sequential``.

    ``layers`` holds the converted body (every layer but the final Linear),
    ``hat_layers`` the HAT layers of its weighted layers
    (:func:`~avalanche_adahat.nn.layers.hat_layer_for`), in order, whose masks are
    in ``masks``, and ``head`` the classifier. Use :func:`convert_to_hat` to
    build one.

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
                h = apply_gate(h, gates, self.masks[mask_index], repeat)
        return self._head_forward(h, task_label)


# ---------------------------------------------------------------- tracing a forward
# Functional forms of the layers above: each builder takes a call's arguments as the
# function does (the input first, then constants) and returns the module form.
def _activation(cls: type[nn.Module]):
    def build(input, inplace=False):
        return cls()

    return build


def _leaky_relu(input, negative_slope=0.01, inplace=False):
    return nn.LeakyReLU(negative_slope)


def _elu(input, alpha=1.0, inplace=False):
    return nn.ELU(alpha)


def _celu(input, alpha=1.0, inplace=False):
    return nn.CELU(alpha)


def _gelu(input, approximate="none"):
    return nn.GELU(approximate)


def _hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return nn.Hardtanh(min_val, max_val)


def _softplus(input, beta=1.0, threshold=20.0):
    return nn.Softplus(beta, threshold)


def _max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    return nn.MaxPool2d(kernel_size, stride, padding, dilation, return_indices, ceil_mode)


def _avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    return nn.AvgPool2d(
        kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


def _adaptive_avg_pool2d(input, output_size):
    return nn.AdaptiveAvgPool2d(output_size)


def _adaptive_max_pool2d(input, output_size, return_indices=False):
    return nn.AdaptiveMaxPool2d(output_size, return_indices)


# ``training=`` is ignored: the module form drops in training mode only, which is what
# ``F.dropout(x, p, self.training)`` means (traced, ``self.training`` is a constant).
def _dropout(input, p=0.5, training=True, inplace=False):
    return nn.Dropout(p)


def _dropout2d(input, p=0.5, training=True, inplace=False):
    return nn.Dropout2d(p)


def _flatten(input, start_dim=0, end_dim=-1):
    if (start_dim, end_dim) != (1, -1):
        raise ValueError(
            f"start_dim={start_dim}, end_dim={end_dim} do not flatten each sample into one vector"
        )
    return nn.Flatten()


def _reshape(input, *shape):
    return nn.Flatten()  # checked to give (batch, features) by the shape check


#: ``{function, or Tensor method name: builder}``: what a traced forward may call
#: between layers (:func:`layer_chain`), each the functional form of a module in
#: :data:`CONVERTIBLE_LAYERS`.
FUNCTIONAL_FORMS = {
    F.relu: _activation(nn.ReLU),
    torch.relu: _activation(nn.ReLU),
    "relu": _activation(nn.ReLU),
    F.relu6: _activation(nn.ReLU6),
    F.leaky_relu: _leaky_relu,
    F.elu: _elu,
    F.selu: _activation(nn.SELU),
    torch.selu: _activation(nn.SELU),
    F.celu: _celu,
    F.gelu: _gelu,
    F.silu: _activation(nn.SiLU),
    F.mish: _activation(nn.Mish),
    F.tanh: _activation(nn.Tanh),
    torch.tanh: _activation(nn.Tanh),
    "tanh": _activation(nn.Tanh),
    F.sigmoid: _activation(nn.Sigmoid),
    torch.sigmoid: _activation(nn.Sigmoid),
    "sigmoid": _activation(nn.Sigmoid),
    F.hardtanh: _hardtanh,
    F.hardswish: _activation(nn.Hardswish),
    F.hardsigmoid: _activation(nn.Hardsigmoid),
    F.softplus: _softplus,
    F.softsign: _activation(nn.Softsign),
    F.max_pool2d: _max_pool2d,
    F.avg_pool2d: _avg_pool2d,
    F.adaptive_avg_pool2d: _adaptive_avg_pool2d,
    F.adaptive_max_pool2d: _adaptive_max_pool2d,
    F.dropout: _dropout,
    F.dropout2d: _dropout2d,
    torch.flatten: _flatten,
    "flatten": _flatten,
    "view": _reshape,
    "reshape": _reshape,
}
#: Calls that read a tensor's size, not its values (``x.view(x.size(0), -1)``).
_SIZE_READS = {"size", "dim", "numel"}
#: Calls that change nothing a layer sees.
_NEUTRAL = {"contiguous"}
#: What to write instead of a call :func:`layer_chain` refuses, by its name.
_INSTEAD = {
    "log_softmax": "remove it: the HAT head returns logits, and the strategies' default "
    "CrossEntropyLoss applies the (log-)softmax itself",
    "softmax": "remove it: the HAT head returns logits, and the strategies' default "
    "CrossEntropyLoss applies the softmax itself",
    "add": "a residual addition cannot be a chain of layers: for a torchvision ResNet-18/34 "
    "pass the torchvision model, otherwise build a HATModule from avalanche_adahat.nn.layers "
    "(CONTRIBUTING.md, 'Adding a backbone')",
    "iadd": "a residual addition cannot be a chain of layers: for a torchvision ResNet-18/34 "
    "pass the torchvision model, otherwise build a HATModule from avalanche_adahat.nn.layers "
    "(CONTRIBUTING.md, 'Adding a backbone')",
    "cat": "branches joined by a concatenation cannot be a chain of layers: build a "
    "HATModule from avalanche_adahat.nn.layers (CONTRIBUTING.md, 'Adding a backbone')",
}


def _name(target) -> str:
    return getattr(target, "__name__", str(target))


def _call_text(node) -> str:
    name = _name(node.target)
    module = getattr(node.target, "__module__", None) or ""
    if node.op == "call_method":
        return f"x.{name}()"
    if module in ("_operator", "operator"):
        return f"the operator {name!r}"
    if node.target in FUNCTIONAL_FORMS or name in _INSTEAD:
        prefix = "F." if "functional" in module or module == "torch._C._nn" else "torch."
        return f"{prefix}{name}()"
    return f"{node.op} {name!r}"


def _refusal(model: nn.Module, node, reason: str, instead: str | None = None) -> TypeError:
    name = _name(node.target).strip("_")
    instead = (
        instead
        or _INSTEAD.get(name)
        or (
            "write the forward as layers applied one after another: modules of "
            f"{_supported_text()}, or their functional forms (F.relu, F.max_pool2d, F.dropout, "
            "torch.flatten(x, 1), x.view(x.size(0), -1), ...)"
        )
    )
    return TypeError(
        f"convert_to_hat converts a chain of layers; {type(model).__name__}'s forward has "
        f"{_call_text(node)} on {[str(a) for a in node.all_input_nodes]} ({reason}): {instead}"
    )


def layer_chain(model: nn.Module, input_shape: Sequence[int] | None = None) -> list[nn.Module]:
    """The layers ``model``'s forward applies one after another, in order.

    A flat ``nn.Sequential`` is its own chain. Any other module tree (nested
    containers, a module with its own ``forward`` such as Avalanche's
    ``SimpleMLP`` or the PyTorch tutorials' CNNs) is traced with ``torch.fx``:
    every call of a leaf module must read the output of the previous call. The
    functional forms of the supported layers (:data:`FUNCTIONAL_FORMS`:
    ``F.relu``, ``torch.relu``, ``x.relu()``, ``F.gelu``, ``F.max_pool2d``,
    ``F.avg_pool2d``, ``F.dropout``, ...) become their modules, and a reshape of
    each sample into a vector (``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``,
    ``x.reshape(-1, n)``) becomes ``nn.Flatten``; with ``input_shape`` a reshape is
    checked to give ``(batch, features)``. Anything else (a residual addition, a
    branch, a concatenation, a softmax) is refused with what to write instead.
    """
    if isinstance(model, nn.Sequential) and not any(len(list(m.children())) for m in model):
        return list(model)
    if not list(model.children()):
        return [model]  # one layer
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as e:  # a data-dependent forward cannot be traced
        raise TypeError(
            f"convert_to_hat converts a module whose forward applies its layers one after "
            f"another; {type(model).__name__} could not be traced with torch.fx ({e}): write "
            "the forward without Python control flow on tensors or their sizes (e.g. "
            "torch.flatten(x, 1) rather than a loop over x.size())"
        ) from None
    modules = dict(model.named_modules())
    layers: list[nn.Module] = []
    reshapes = []  # the reshape nodes, checked by shape below
    called: set[int] = set()
    sizes: set = set()  # nodes holding sizes (x.size(0), x.shape[0], their arithmetic)
    current = None
    for node in graph.nodes:
        first = node.args[0] if node.args else None
        if node.op == "placeholder":
            current = node if current is None else current
        elif node.op == "output":
            if node.args[0] is not current:
                raise TypeError(f"{type(model).__name__}'s output is not its last layer's output")
        elif (node.op == "call_method" and node.target in _SIZE_READS) or (
            node.target is getattr and node.args[1:] == ("shape",)
        ):
            sizes.add(node)
        elif (
            node.op != "call_module" and node.all_input_nodes and set(node.all_input_nodes) <= sizes
        ):
            sizes.add(node)  # arithmetic on sizes, x.size()[1:], ...
        elif node.op == "call_method" and node.target in _NEUTRAL and first is current:
            current = node
        elif node.op == "call_module" and node.all_input_nodes == [current]:
            module = modules[node.target]
            if id(module) in called and any(True for _ in module.parameters()):
                raise _refusal(
                    model,
                    node,
                    f"module {node.target!r} is called a second time, sharing its weights",
                    "give each use of a weighted layer its own module",
                )
            called.add(id(module))
            layers.append(module)
            current = node
        elif set(node.all_input_nodes) - {current, *sizes} or first is not current:
            raise _refusal(
                model,
                node,
                "it reads something other than the previous layer's output: a branch or a "
                "residual addition",
            )
        elif node.target not in FUNCTIONAL_FORMS or node.op == "call_module":
            raise _refusal(model, node, "not a layer convert_to_hat knows")
        else:
            is_reshape = node.target in ("view", "reshape")
            if not is_reshape and set(node.all_input_nodes) != {current}:
                raise _refusal(
                    model,
                    node,
                    "an argument computed in the forward",
                    "give it constant arguments, as the module form takes",
                )
            try:
                layers.append(FUNCTIONAL_FORMS[node.target](*node.args, **node.kwargs))
            except ValueError as e:  # a flatten of more or less than each sample
                raise _refusal(model, node, str(e), "write torch.flatten(x, 1)") from None
            except TypeError as e:  # arguments the function does not take
                raise _refusal(model, node, str(e)) from None
            if is_reshape:
                reshapes.append((node, len(layers) - 1))
            current = node
    if reshapes and input_shape is not None:
        _check_reshapes(model, graph, reshapes, tuple(input_shape))
    return layers


class _ShapeRecorder(torch.fx.Interpreter):
    """Runs a traced forward, keeping the shape of every node's tensor output."""

    def __init__(self, module):
        super().__init__(module)
        self.shapes: dict = {}

    def run_node(self, node):
        result = super().run_node(node)
        if isinstance(result, Tensor):
            self.shapes[node] = tuple(result.shape)
        return result


@torch.no_grad()
def _check_reshapes(model: nn.Module, graph, reshapes: list, input_shape: tuple) -> None:
    """Each ``view`` / ``reshape`` of the traced forward gives ``(batch, features)`` of
    the ``(batch, ...)`` it reads: an ``nn.Flatten`` (on a copy of the model, in eval mode)."""
    probe = torch.fx.GraphModule(copy.deepcopy(model).eval(), graph)
    param = next(probe.parameters(), None)
    kwargs = {} if param is None else {"device": param.device, "dtype": param.dtype}
    recorder = _ShapeRecorder(probe)
    try:
        recorder.run(torch.zeros(3, *input_shape, **kwargs))
    except Exception:
        pass  # a shape that does not fit: convert_to_hat names the layer; check what ran
    for node, index in reshapes:
        before, after = recorder.shapes.get(node.args[0]), recorder.shapes.get(node)
        if before is None or after is None:
            continue
        want = (before[0], math.prod(before[1:]))
        if after != want:
            raise _refusal(
                model,
                node,
                f"it reshapes {before} to {after}, not each sample into one vector {want} "
                f"(layer {index} of the chain)",
                "only a flatten of each sample into a vector converts: write "
                "torch.flatten(x, 1); for another reshape, feed the data in the shape the "
                "layers expect (and give that input_shape)",
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
    units = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
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
    kwargs = {} if param is None else {"device": param.device, "dtype": param.dtype}
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
