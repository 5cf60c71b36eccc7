"""CIFAR-style ResNets with HAT masks on every conv and per-task BatchNorm.

Masking design (what makes docs/ALGORITHM.md §6 exactness hold for residual networks)
-----------------------------------------------------------------------
A conv weight ``W[i, j, kh, kw]`` reads input channel ``j`` and writes output
channel ``i``. For HAT's protection to be exact, every channel a conv reads
must be exactly 0 for a task whose mask gates it off, and every channel it
writes must be gated by one mask. A residual add mixes two paths, so the mask
of a block's output is placed *after* the add:

- stem: ``conv -> BN_t -> ReLU -> mask m_stem``;
- :class:`HATBasicBlock` with input ``x`` (whose channels carry the mask
  ``m_in``: the stem's or the previous block's output mask)::

      h   = ReLU(BN1_t(conv1(x))) * m_1            # m_1: mask of conv1's channels
      r   = BN2_t(conv2(h))                        # not masked on its own
      s   = x   or   BNs_t(shortcut(x))            # identity, or 1x1 conv (downsample)
      out = ReLU(r + s) * m_out                    # m_out: the block output's mask

Parameter-wise measure of each conv weight (docs/ALGORITHM.md §3,
``P(W)[i, j] = min(u_out[i], u_in[j])``):

=================  ==================  =================
weight             output units ``i``  input units ``j``
=================  ==================  =================
stem conv          ``m_stem``          (data: ``P = u[i]``)
block conv1        ``m_1``             ``m_in``
block conv2        ``m_out``           ``m_1``
block shortcut     ``m_out``           ``m_in``
=================  ==================  =================

conv2 and the shortcut conv both write the block output's channels, so both
are indexed by ``m_out`` (the shortcut's
:class:`~avalanche_adahat.nn.layers.HATConv2d` shares conv2's mask). The convs have no bias (BN follows). Every conv is
therefore a :class:`~avalanche_adahat.CoveredParameter`, the downsample 1x1
shortcut convs included (the reference leaves them unprotected). The identity
shortcut has no parameters: it carries channel ``i`` of ``x``, already gated
by ``m_in``, into channel ``i`` of the sum, which ``m_out`` gates.

BatchNorm is per task (:class:`~avalanche_adahat.models._common.TaskBatchNorm`):
each task label trains and evaluates with its own BN parameters and running
statistics, so nothing shared drifts.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..core.checks import check_bool, check_one_of, check_positive_int
from ..nn.layers import HATConv2d, apply_gate
from ..nn.mask import HATMask
from ._common import HATBackbone, TaskBatchNorm, check_sizes, make_head

__all__ = ["HATBasicBlock", "HATResNet", "HATResNet18", "HATResNet34"]


class HATBasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with HAT masks and per-task BN.

    See the module docstring for the masking design. ``in_mask`` is the mask of
    the block's input, owned by the layer before (``None``: the block reads the
    data). The convs are :class:`~avalanche_adahat.nn.layers.HATConv2d` layers in
    ``hat_layers`` (conv1, conv2, then the shortcut conv if any).
    """

    expansion = 1
    # Both None when the shortcut is the identity.
    shortcut_conv: nn.Module | None
    shortcut_bn: TaskBatchNorm | None

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, *, in_mask: HATMask | None = None
    ):
        super().__init__()
        conv1 = HATConv2d(
            nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False),
            input_mask=in_mask,
        )
        conv2 = HATConv2d(
            nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False), input_mask=conv1.mask
        )
        self.hat_layers = [conv1, conv2]
        # Registered in this order: it fixes the order of parameters() and the masks.
        self.conv1 = conv1.layer
        self.bn1 = TaskBatchNorm(planes)
        self.mask1 = conv1.mask
        self.conv2 = conv2.layer
        self.bn2 = TaskBatchNorm(planes)
        if stride != 1 or in_planes != planes:
            shortcut = HATConv2d(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                conv2.mask,  # writes the block output's channels too
                input_mask=in_mask,
            )
            self.hat_layers.append(shortcut)
            self.shortcut_conv = shortcut.layer
            self.shortcut_bn = TaskBatchNorm(planes)
        else:
            self.shortcut_conv = None
            self.shortcut_bn = None
        self.out_mask = conv2.mask

    def forward(self, x: Tensor, task_label: int, gates: dict | None) -> Tensor:
        h = apply_gate(self.bn1(self.conv1(x), task_label).relu(), gates, self.mask1)
        r = self.bn2(self.conv2(h), task_label)
        if self.shortcut_conv is None or self.shortcut_bn is None:
            s = x
        else:
            s = self.shortcut_bn(self.shortcut_conv(x), task_label)
        return apply_gate((r + s).relu(), gates, self.out_mask)


class HATResNet(HATBackbone):
    """CIFAR-style ResNet with basic blocks, HAT masks and per-task BatchNorm.

    Stem (``stem="cifar"``): 3x3 conv (stride 1, no max-pooling) so 32x32 inputs
    keep a 4x4 map before the global average pooling; four stages of ``width``,
    ``2 width``, ``4 width``, ``8 width`` channels (strides 1, 2, 2, 2); global
    average pooling; head. Masking and parameter-wise measures: see the module
    docstring of :mod:`avalanche_adahat.models.resnet`.

    :param num_blocks: blocks per stage, four positive integers
        (``(2, 2, 2, 2)``: ResNet-18, ``(3, 4, 6, 3)``: ResNet-34).
    :param in_channels: image channels (3 for RGB, 1 for grey).
    :param num_classes: initial classes per head; default ``None``: heads are sized from
        the experiences as Avalanche's ``MultiHeadClassifier`` / ``IncrementalClassifier``.
    :param width: channels of the stem and first stage (64 in ResNet-18/34);
        small values give tiny networks for tests.
    :param multi_head: ``True`` (default): one head per task label
        (``MultiHeadClassifier``); ``False``: one shared head (not protected).
    :param stem: ``"cifar"`` (default, above) or ``"imagenet"``: torchvision's
        stem, a 7x7 conv of stride 2 and a 3x3 max-pooling of stride 2 (after
        the stem's mask).
    """

    def __init__(
        self,
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        *,
        in_channels: int = 3,
        num_classes: int | None = None,
        width: int = 64,
        multi_head: bool = True,
        stem: str = "cifar",
    ):
        super().__init__()
        num_blocks = check_sizes(
            "num_blocks", num_blocks, "give the blocks of the 4 stages, e.g. (2, 2, 2, 2)", 4
        )
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        check_bool("multi_head", multi_head)
        check_one_of("stem", stem, ("cifar", "imagenet"))
        self.num_blocks = num_blocks
        self.in_channels = in_channels
        self.width = width
        self.multi_head = multi_head
        self.stem = stem

        k, stride, pad = (3, 1, 1) if stem == "cifar" else (7, 2, 3)
        first = HATConv2d(nn.Conv2d(in_channels, width, k, stride, pad, bias=False))
        self.stem_conv = first.layer
        self.stem_bn = TaskBatchNorm(width)
        self.stem_mask = first.mask
        self.stem_pool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(3, 2, 1)
        blocks = []
        in_planes, in_mask = width, first.mask
        for stage, n in enumerate(num_blocks):
            planes = width * 2**stage
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                blocks.append(HATBasicBlock(in_planes, planes, stride, in_mask=in_mask))
                in_planes, in_mask = planes, blocks[-1].out_mask
        self.blocks = nn.ModuleList(blocks)
        self.hat_layers = [first, *(layer for block in blocks for layer in block.hat_layers)]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = in_planes
        self.head = make_head(in_planes, num_classes, multi_head)

    def forward_single_task(self, x: Tensor, task_label: int) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (N, {self.in_channels}, H, W) "
                f"(in_channels={self.in_channels}), got {tuple(x.shape)}"
            )
        gates = self.gate_map(task_label)
        h = self.stem_bn(self.stem_conv(x), task_label).relu()
        h = self.stem_pool(apply_gate(h, gates, self.stem_mask))
        for block in self.blocks:
            h = block(h, task_label, gates)
        h = self.pool(h).flatten(1)
        return self._head_forward(h, task_label)


class HATResNet18(HATResNet):
    """:class:`HATResNet` with ``num_blocks=(2, 2, 2, 2)`` (ResNet-18); the keywords
    (``in_channels``, ``num_classes``, ``width``, ``multi_head``, ``stem``) are HATResNet's."""

    def __init__(self, **kwargs):
        super().__init__((2, 2, 2, 2), **kwargs)


class HATResNet34(HATResNet):
    """:class:`HATResNet` with ``num_blocks=(3, 4, 6, 3)`` (ResNet-34); the keywords
    (``in_channels``, ``num_classes``, ``width``, ``multi_head``, ``stem``) are HATResNet's."""

    def __init__(self, **kwargs):
        super().__init__((3, 4, 6, 3), **kwargs)
