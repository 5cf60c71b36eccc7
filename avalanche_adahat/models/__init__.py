"""Ready HAT backbones (Avalanche ``MultiTaskModule``s).

- :class:`HATMLP`: the HAT paper's / AdaHAT Exp. 1 fully connected network;
- :class:`HATAlexNet`: the HAT paper's CNN (no BatchNorm);
- :class:`HATResNet`, :class:`HATResNet18`, :class:`HATResNet34`: CIFAR-style
  ResNets with masks on every conv (shortcuts included) and per-task BatchNorm;
- :func:`convert_to_hat`: the HAT version of a plain ``nn.Sequential`` (or of a
  torchvision ResNet-18/34);
- :class:`TaskBatchNorm`: one BatchNorm per task label, for custom backbones.
"""

from ..core import checkpointing as _checkpointing  # noqa: F401  (dill fix for save_checkpoint)
from ._common import HATBackbone, TaskBatchNorm
from .alexnet import HATAlexNet
from .convert import CONVERTIBLE_LAYERS, HATSequential, convert_to_hat
from .mlp import HATMLP
from .resnet import HATBasicBlock, HATResNet, HATResNet18, HATResNet34

__all__ = [
    "CONVERTIBLE_LAYERS",
    "HATAlexNet",
    "HATBackbone",
    "HATBasicBlock",
    "HATMLP",
    "HATResNet",
    "HATResNet18",
    "HATResNet34",
    "HATSequential",
    "TaskBatchNorm",
    "convert_to_hat",
]
