"""The layers :func:`~avalanche_adahat.models.convert_to_hat` converts, and their
functional forms.

:data:`CONVERTIBLE_LAYERS`: the module types a converted chain may hold (weighted
layers with a HAT wrapper, BatchNorms, activations, pooling, dropout, flatten);
:data:`FUNCTIONAL_FORMS`: the calls of a traced forward (``F.relu``, ``F.max_pool2d``,
``torch.flatten(x, 1)``, ...) that :func:`~avalanche_adahat.models.chain.layer_chain`
turns into those modules. The masks then sit where docs/ALGORITHM.md §1.1 puts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.layers import HAT_LAYERS

__all__ = ["CONVERTIBLE_LAYERS", "FUNCTIONAL_FORMS"]

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

#: The layer types :func:`~avalanche_adahat.models.convert_to_hat` accepts (exact types,
#: not subclasses).
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
#: between layers (:func:`~avalanche_adahat.models.chain.layer_chain`), each the functional
#: form of a module in :data:`CONVERTIBLE_LAYERS`.
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
