"""The HAT version of a torchvision ResNet with basic blocks (``resnet18``, ``resnet34``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from .resnet import HATBasicBlock, HATResNet

__all__ = ["convert_torchvision_resnet"]

#: The stem pooling after the stem conv (7x7: torchvision's; 3x3: the CIFAR stem).
_STEM_POOLS = {"imagenet": nn.MaxPool2d(3, 2, 1), "cifar": nn.Identity()}
_BN_DEFAULTS = (1e-5, 0.1, True, True)  # eps, momentum, affine, track_running_stats


def _conv_config(conv: nn.Module) -> tuple:
    c = conv
    return (type(c), c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
            c.dilation, c.groups, c.bias is None, c.padding_mode)  # fmt: skip


def _check_batch_norms(model: nn.Module, blocks: list[nn.Module]) -> None:
    bns = [model.bn1]
    for block in blocks:
        bns += [block.bn1, block.bn2]
        # torchvision builds a downsample as an nn.Sequential (typed nn.Module | None)
        downsample = cast("nn.Sequential | None", block.downsample)
        if downsample is not None:
            if len(downsample) != 2:
                raise ValueError(f"a downsample {downsample!r} is not a 1x1 conv and a BN")
            bns.append(downsample[1])
    for bn in bns:
        if type(bn) is not nn.BatchNorm2d:
            raise TypeError(f"a HATResNet's norm layers are BatchNorm2d, got {type(bn).__name__}")
        if (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) != _BN_DEFAULTS:
            raise ValueError(f"{bn!r}: a HATResNet's BatchNorms have the default settings")


def convert_torchvision_resnet(
    model: nn.Module, *, num_classes: int | None = None, multi_head: bool = True
) -> HATResNet:
    """Build the :class:`~avalanche_adahat.models.HATResNet` of a torchvision ResNet
    made of ``BasicBlock``\\ s (``torchvision.models.resnet18`` / ``resnet34``,
    optionally with the CIFAR stem: a 3x3 ``conv1`` and ``maxpool = nn.Identity()``).

    The result has the same stem, depth and widths, with copies of every conv
    weight (the user's module is left untouched); every BatchNorm becomes a
    per-task BatchNorm, freshly initialised for each task (the original BN's
    values are not copied, as :func:`~avalanche_adahat.models.convert_to_hat`
    does); ``fc`` becomes the head: one fresh head per task label
    (``multi_head=True``), or one shared head, a copy of ``fc`` when
    ``num_classes`` equals its ``out_features``. The masks are HATResNet's (see
    :mod:`avalanche_adahat.models.resnet`).

    :param num_classes: classes per head; default: ``fc.out_features``.
    :raises TypeError: not a torchvision ResNet of ``BasicBlock``\\ s (e.g. the
        ``Bottleneck`` blocks of resnet50), or a norm layer other than
        ``BatchNorm2d``.
    :raises ValueError: a conv or stem that a HATResNet does not have.
    """
    from torchvision.models.resnet import BasicBlock, ResNet

    if not isinstance(model, ResNet):
        raise TypeError(f"expected a torchvision ResNet, got {type(model).__name__}")
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    blocks = [block for stage in stages for block in stage]
    for block in blocks:
        if type(block) is not BasicBlock:
            raise TypeError(
                f"convert_to_hat converts torchvision ResNets of BasicBlocks (resnet18, "
                f"resnet34), got a {type(block).__name__}"
            )
    _check_batch_norms(model, blocks)
    stem = "imagenet" if model.conv1.kernel_size == (7, 7) else "cifar"
    if repr(model.maxpool) != repr(_STEM_POOLS[stem]) or type(model.fc) is not nn.Linear:
        raise ValueError(
            f"a HATResNet's stem is a 7x7 conv and {_STEM_POOLS['imagenet']!r} (torchvision's) "
            f"or a 3x3 conv and nn.Identity() (CIFAR), and its classifier an nn.Linear; got "
            f"{model.conv1!r}, {model.maxpool!r} and {type(model.fc).__name__}"
        )
    hat = HATResNet(
        tuple(len(stage) for stage in stages),
        in_channels=model.conv1.in_channels,
        num_classes=model.fc.out_features if num_classes is None else num_classes,
        width=model.conv1.out_channels,
        multi_head=multi_head,
        stem=stem,
    )
    pairs: list[tuple[nn.Module, nn.Module]] = [(hat.stem_conv, model.conv1)]
    for hat_block, block in zip(cast("Iterable[HATBasicBlock]", hat.blocks), blocks):
        pairs += [(hat_block.conv1, block.conv1), (hat_block.conv2, block.conv2)]
        if (hat_block.shortcut_conv is None) != (block.downsample is None):
            raise ValueError(f"{block.downsample!r}: a HATResNet block has no such shortcut")
        if hat_block.shortcut_conv is not None:  # and so block.downsample (checked above)
            pairs.append((hat_block.shortcut_conv, block.downsample[0]))
    param = next(model.parameters())
    hat = hat.to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        for new, old in pairs:
            if _conv_config(new) != _conv_config(old):
                raise ValueError(f"{old!r} differs from the HATResNet conv {new!r}")
            # both nn.Conv2d: the configs compared start with the type
            cast(nn.Conv2d, new).weight.copy_(cast(nn.Conv2d, old).weight)
        if not multi_head and hat.head.out_features == model.fc.out_features:
            hat.head.load_state_dict(model.fc.state_dict())
    return hat
