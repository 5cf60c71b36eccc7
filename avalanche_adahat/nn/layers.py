"""HAT layers: a weighted layer bound to the HAT mask on its output units.

In the style of PEFT's LoRA layers (one wrapper class per layer type, picked by
a dispatcher, :func:`hat_layer_for`) and of ``torch.nn.utils.parametrize`` (the
wrapped module is kept intact): a :class:`HATLayer` holds

- ``layer``: the wrapped ``nn.Linear`` / ``nn.Conv2d``, unchanged (calling the
  wrapper calls it);
- ``mask``: the :class:`~avalanche_adahat.HATMask` on its output units
  (features or channels), created by the wrapper unless a shared one is given
  (a ResNet shortcut writes the same channels as the block's second conv);
- ``input_mask``: the mask of the units it reads (``None``: it reads the data),
  each unit covering ``in_repeat`` input features (``H*W`` for a Linear after
  a ``Flatten`` of conv channels).

The parameters HAT's gradient adjustment (HAT Eq. 2) protects follow from that
(:meth:`HATLayer.covered_parameters`). The wrapper does not gate: the backbone
applies the gate (HAT Eq. 1) with :func:`apply_gate` where the paper puts it,
e.g. after the ReLU in the HAT paper's networks (``g * relu(h)``, not
``relu(g * h)``: the two differ in their gradient where a gate is exactly 0).

A backbone (:class:`~avalanche_adahat.HATModule`) lists its wrappers, in
forward order, in the plain list ``hat_layers`` and registers each wrapper's
``layer`` and ``mask`` as its own submodules, where they have always been
(e.g. ``layers.0`` and ``masks.0``): the wrappers stay out of the module tree,
so the state_dict keys, the mask names in metrics and the order of
``model.parameters()`` (which ``clip_grad_norm_``'s result depends on, to the
bit) are those of a backbone without wrappers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from .mask import CoveredParameter, HATMask, gate_units

__all__ = [
    "HAT_LAYERS",
    "HATConv2d",
    "HATLayer",
    "HATLinear",
    "apply_gate",
    "hat_chain",
    "hat_layer_for",
]


def apply_gate(
    h: Tensor, gates: dict[HATMask, Tensor] | None, mask: HATMask, repeat: int = 1
) -> Tensor:
    """``h`` with its units (dim 1) multiplied by ``mask``'s gate (HAT Eq. 1's mask).

    ``gates``: :meth:`~avalanche_adahat.HATModule.gate_map` of the task, ``None``
    for a task label never trained (no gating). Channel gates broadcast over
    spatial positions; ``repeat > 1``: each unit covers that many consecutive
    features (a channel after a ``Flatten``).
    """
    if gates is None:
        return h
    return gate_units(h, gates[mask], repeat)


class HATLayer(nn.Module):
    """A weighted layer, the HAT mask on its output units and the mask it reads.

    :param layer: the layer to wrap (kept intact, as ``self.layer``); of type
        :attr:`wraps` exactly.
    :param mask: the mask of its output units; default: a new one.
    :param input_mask: the mask of its input units; ``None``: it reads the data.
        A reference, not a submodule: the layer before owns it.
    :param in_repeat: input features per unit of ``input_mask``.
    """

    #: The layer type this wrapper accepts (exactly, as :func:`hat_layer_for`).
    wraps: type[nn.Module] = nn.Module
    #: The layer's attributes giving its output units and input features (the
    #: sizes of the weight's dimensions 0 and 1).
    unit_attrs: tuple[str, str] = ("", "")

    layer: nn.Module
    mask: HATMask
    input_mask: HATMask | None

    def __init__(
        self,
        layer: nn.Module,
        mask: HATMask | None = None,
        *,
        input_mask: HATMask | None = None,
        in_repeat: int = 1,
    ):
        super().__init__()
        if type(layer) is not self.wraps:
            raise TypeError(
                f"{type(self).__name__} wraps an nn.{self.wraps.__name__}, got "
                f"{type(layer).__name__}"
            )
        if not isinstance(in_repeat, int) or in_repeat < 1:
            raise ValueError(f"in_repeat must be a positive integer, got {in_repeat!r}")
        units, inputs = (getattr(layer, a) for a in self.unit_attrs)
        if mask is not None and mask.num_units != units:
            raise ValueError(f"the mask has {mask.num_units} units, {layer!r} has {units}")
        if input_mask is not None and input_mask.num_units * in_repeat != inputs:
            raise ValueError(
                f"the {inputs} inputs of {layer!r} cannot be read from "
                f"{input_mask.num_units} masked units x in_repeat={in_repeat}"
            )
        self.layer = layer
        self.mask = HATMask(units) if mask is None else mask
        object.__setattr__(self, "input_mask", input_mask)  # not a submodule, see above
        self.in_repeat = in_repeat

    def extra_repr(self) -> str:
        reads = "data" if self.input_mask is None else f"{self.input_mask.num_units} units"
        repeat = f" x{self.in_repeat}" if self.in_repeat > 1 else ""
        return f"units={self.mask.num_units}, reads={reads}{repeat}"

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)

    def covered_parameters(self, names: dict[int, str]) -> list[CoveredParameter]:
        """The weight (output units: ``mask``, input units: ``input_mask``) and the
        bias (output units only); ``names`` maps ``id(parameter)`` to its name in
        the model."""
        covered = []
        for attr, in_mask in (("weight", self.input_mask), ("bias", None)):
            param = getattr(self.layer, attr, None)
            if param is None:
                continue
            if id(param) not in names:
                raise ValueError(
                    f"the {attr} of {self.layer!r} is not a parameter of the model: register "
                    "each HAT layer's layer (and mask) as a submodule of the backbone"
                )
            repeat = self.in_repeat if in_mask is not None else 1
            covered.append(CoveredParameter(names[id(param)], param, self.mask, in_mask, repeat))
        return covered


class HATLinear(HATLayer):
    """An ``nn.Linear`` with the HAT mask on its output features."""

    wraps = nn.Linear
    unit_attrs = ("out_features", "in_features")


class HATConv2d(HATLayer):
    """An ``nn.Conv2d`` with the HAT mask on its output channels (one gate per
    channel, broadcast over positions). Grouped convolutions are refused: their
    weight's dimension 1 is not the input channels."""

    wraps = nn.Conv2d
    unit_attrs = ("out_channels", "in_channels")

    def __init__(self, layer: nn.Conv2d, mask: HATMask | None = None, **kwargs):
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise ValueError(f"grouped convolutions (groups={layer.groups}) are not supported")
        super().__init__(layer, mask, **kwargs)


#: Layer type (exact) -> its HAT wrapper, for :func:`hat_layer_for`.
HAT_LAYERS: dict[type[nn.Module], type[HATLayer]] = {nn.Linear: HATLinear, nn.Conv2d: HATConv2d}


def hat_layer_for(module: nn.Module, mask: HATMask | None = None, **kwargs) -> HATLayer:
    """The HAT wrapper of ``module`` (:data:`HAT_LAYERS`, by exact type), made with
    ``mask`` and the keywords of :class:`HATLayer`.

    :raises TypeError: no wrapper for the type (the message names it and the
        supported ones).
    """
    cls = HAT_LAYERS.get(type(module))
    if cls is None:
        supported = ", ".join(t.__name__ for t in HAT_LAYERS)
        raise TypeError(
            f"no HAT layer for {type(module).__name__}; supported layer types (exact): {supported}"
        )
    return cls(module, mask, **kwargs)


def hat_chain(modules: Iterable[nn.Module], in_repeats: Sequence[int] = ()) -> list[HATLayer]:
    """Wrap weighted layers applied one after another: the first reads the data,
    layer ``k`` the units of layer ``k - 1``, each covering ``in_repeats[k]``
    input features (1 where not given)."""
    chain: list[HATLayer] = []
    for k, module in enumerate(modules):
        repeat = in_repeats[k] if k < len(in_repeats) else 1
        previous = chain[-1].mask if chain else None
        chain.append(hat_layer_for(module, input_mask=previous, in_repeat=repeat))
    return chain
