"""The layer chain of a plain classifier: :func:`layer_chain`.

A flat ``nn.Sequential`` is its own chain; any other module is traced with
``torch.fx`` and its forward read as layers applied one after another, the
functional forms of the supported layers (:data:`~.layer_types.FUNCTIONAL_FORMS`)
becoming their modules. What is not a chain (a branch, a residual addition, a
softmax) is refused with what to write instead. :func:`~.convert.convert_to_hat`
converts the chain.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx
from torch import Tensor, nn

from .layer_types import FUNCTIONAL_FORMS, _supported_text

__all__ = ["layer_chain"]

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
    kwargs: dict[str, Any] = {} if param is None else {"device": param.device, "dtype": param.dtype}
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
