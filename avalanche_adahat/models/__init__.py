"""Ready HAT backbones (Avalanche ``MultiTaskModule``s)."""

from .mlp import HATMLP

__all__ = ["HATMLP"]
