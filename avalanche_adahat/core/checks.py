"""Argument checks shared by the plugins, strategies and backbones.

Every check raises ``ValueError`` with a message naming the parameter, the value
it got and what is allowed, so that bad input fails before anything trains.
Numbers must be finite real numbers (``bool`` is not a number here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = [
    "check_bool",
    "check_non_negative",
    "check_non_negative_int",
    "check_one_of",
    "check_positive",
    "check_positive_int",
    "check_probability",
    "check_training_schedule",
    "check_unit_interval",
]


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_one_of(name: str, value, allowed: Iterable) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_positive(name: str, value) -> None:
    if not _is_real(value) or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_non_negative(name: str, value) -> None:
    if not _is_real(value) or not value >= 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_unit_interval(name: str, value, context: str = "") -> None:
    if not _is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]{context}, got {value!r}")


def check_probability(name: str, value) -> None:
    if not _is_real(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a dropout probability in [0, 1), got {value!r}")


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_non_negative_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_training_schedule(train_mb_size, train_epochs) -> None:
    """A strategy's ``train_mb_size`` and ``train_epochs``: positive integers.

    Avalanche accepts ``train_epochs=0`` (no step is taken, yet a HAT task would
    then count as trained) and fails on ``train_mb_size=0`` with a bare
    ``AssertionError`` inside its data loader.
    """
    for name, value in (("train_mb_size", train_mb_size), ("train_epochs", train_epochs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer (at least 1), got {value!r}")
