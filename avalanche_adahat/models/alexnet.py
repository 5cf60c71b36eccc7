"""The HAT paper's AlexNet-like CNN (no BatchNorm)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..core.checks import check_bool, check_positive_int, check_probability
from ..nn.layers import apply_gate, hat_chain
from ._common import HATBackbone, check_sizes, make_head

__all__ = ["HATAlexNet"]


def _alexnet_geometry(input_size: int) -> tuple[tuple[int, int, int], tuple[int, ...]]:
    """Kernel sizes and output sizes (after pooling) of the three conv stages."""
    kernels = (input_size // 8, input_size // 10, 2)
    sizes = []
    s = input_size
    for k in kernels:
        s = (s - k + 1) // 2 if k >= 1 else 0
        sizes.append(s)
    return kernels, tuple(sizes)


class HATAlexNet(HATBackbone):
    """The CNN of the HAT paper (Serra et al., 2018) with a HAT mask on every layer.

    ``x -> [Conv2d -> ReLU -> mask -> MaxPool2d(2) -> Dropout] * 3 -> flatten
    -> [Linear -> ReLU -> mask -> Dropout] * len(fc_sizes) -> head``.

    As in the HAT paper's code, the conv kernels are ``input_size // 8``,
    ``input_size // 10`` and 2, without padding: 4, 3, 2 for 32x32 inputs
    (CIFAR; flattened features 256 x 2 x 2) and 3, 2, 2 for 28x28 inputs
    (MNIST; also 2 x 2). No BatchNorm (as in the paper). Masks multiply each
    layer's units after the ReLU (as :class:`~avalanche_adahat.models.HATMLP`);
    a conv mask is one value per channel, broadcast over positions. The
    first Linear's input feature ``j`` belongs to channel ``j // (H*W)`` of the
    last conv (PyTorch's channel-major flatten): its
    :class:`~avalanche_adahat.nn.layers.HATLinear` has ``in_repeat=H*W``. The HAT
    layers (``hat_layers``: 3 convs, then the FCs) keep their layers in
    ``convs`` / ``fcs`` and their masks in ``conv_masks`` / ``fc_masks``.

    :param in_channels: image channels (3 for RGB, 1 for grey).
    :param input_size: image height = width, at least 12 (32 for CIFAR, 28 for MNIST).
    :param num_classes: initial classes per head; default ``None``: heads are sized from
        the experiences as Avalanche's ``MultiHeadClassifier`` / ``IncrementalClassifier``.
    :param channels: output channels of the three convs. Default ``(64, 128, 256)``.
    :param fc_sizes: units of the fully connected layers. Default ``(2048, 2048)``.
    :param multi_head: ``True`` (default): one head per task label
        (``MultiHeadClassifier``); ``False``: one shared head (not protected).
    :param conv1_dropout: dropout after the first conv stage (HAT paper: 0.2).
    :param dropout: dropout after the other conv stages and every FC layer (HAT paper: 0.5).
    """

    def __init__(
        self,
        in_channels: int = 3,
        input_size: int = 32,
        num_classes: int | None = None,
        *,
        channels: Sequence[int] = (64, 128, 256),
        fc_sizes: Sequence[int] = (2048, 2048),
        multi_head: bool = True,
        conv1_dropout: float = 0.2,
        dropout: float = 0.5,
    ):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("input_size", input_size)
        check_bool("multi_head", multi_head)
        check_probability("conv1_dropout", conv1_dropout)
        check_probability("dropout", dropout)
        channels = check_sizes(
            "channels", channels, "give the output channels of the 3 conv layers", 3
        )
        fc_sizes = check_sizes("fc_sizes", fc_sizes, "list at least one fully connected layer")
        kernels, sizes = _alexnet_geometry(input_size)
        if min(kernels) < 1 or sizes[-1] < 1:
            raise ValueError(
                f"input_size={input_size} is too small: the three conv stages (kernels "
                f"input_size//8, input_size//10, 2, each followed by 2x2 max-pooling) need "
                f"input_size >= 12 to keep a non-empty feature map"
            )
        self.in_channels = in_channels
        self.input_size = input_size
        self.multi_head = multi_head
        self.kernel_sizes = kernels
        self.feature_size = sizes[-1]  # H = W of the last conv stage's output

        ins = (in_channels, *channels[:-1])
        convs: list[nn.Module] = [
            nn.Conv2d(a, b, kernel_size=k) for a, b, k in zip(ins, channels, kernels)
        ]
        fc_in = (channels[-1] * self.feature_size**2, *fc_sizes[:-1])
        fcs: list[nn.Module] = [nn.Linear(a, b) for a, b in zip(fc_in, fc_sizes)]
        # conv -> linear: each channel of the last conv covers H*W flattened features
        repeats = [1] * len(convs) + [self.feature_size**2]
        self.hat_layers = hat_chain(convs + fcs, repeats)
        conv_layers, fc_layers = self.hat_layers[: len(convs)], self.hat_layers[len(convs) :]
        self.convs = nn.ModuleList(w.layer for w in conv_layers)
        self.conv_masks = nn.ModuleList(w.mask for w in conv_layers)
        self.fcs = nn.ModuleList(w.layer for w in fc_layers)
        self.fc_masks = nn.ModuleList(w.mask for w in fc_layers)
        self.pool = nn.MaxPool2d(2)
        self.conv1_dropout = nn.Dropout(conv1_dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = make_head(fc_sizes[-1], num_classes, multi_head)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"HATAlexNet expects images of shape (N, {expected[0]}, {expected[1]}, "
                f"{expected[2]}) (in_channels, input_size), got {tuple(x.shape)}"
            )
        gates = self.gate_map(task_label)
        h = x
        n_convs = len(self.convs)
        for i, conv in enumerate(self.hat_layers[:n_convs]):
            h = apply_gate(conv(h).relu(), gates, conv.mask)
            h = self.pool(h)
            h = self.conv1_dropout(h) if i == 0 else self.dropout(h)
        h = h.flatten(1)
        for fc in self.hat_layers[n_convs:]:
            h = self.dropout(apply_gate(fc(h).relu(), gates, fc.mask))
        return self._head_forward(h, task_label)
