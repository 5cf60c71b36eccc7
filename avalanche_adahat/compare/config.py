"""The configuration of a ``compare`` run: defaults < ``--config`` file < options, validated.

:func:`build_config` makes the :class:`~.settings.CompareConfig` of a run (re-exported here).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as a package (a dependency there)
    import tomli as tomllib

from .errors import CompareError
from .registry import BENCHMARKS, MODELS, SCENARIOS, data_root_error
from .settings import OLD_DEFAULTS, CompareConfig
from .strategy_specs import STRATEGIES

__all__ = [
    "DEFAULTS",
    "OLD_DEFAULTS",
    "CompareConfig",
    "build_config",
    "progress_mode",
    "strategy_params",
]


#: The defaults of every setting, as a ``config`` dict (:meth:`CompareConfig.to_dict`).
DEFAULTS: dict[str, Any] = CompareConfig().to_dict()


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def _load_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise CompareError(f"config file {path} not found")
    try:
        if p.suffix == ".toml":
            with open(p, "rb") as f:
                data = tomllib.load(f)
        else:
            data = json.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise CompareError(f"cannot parse config file {path}: {e}") from None
    data = data.get("config", data)  # a results.json is a config file too
    unknown = sorted(set(data) - set(DEFAULTS) - {"command"})
    if unknown:
        raise CompareError(
            f"unknown key(s) {', '.join(unknown)} in {path}; allowed: {', '.join(DEFAULTS)}"
        )
    return data


def _split_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _seeds(text) -> list[int]:
    if isinstance(text, list):
        return [int(s) for s in text]
    try:
        return [int(s) for s in _split_list(str(text))]
    except ValueError:
        raise CompareError(f"--seeds must be comma-separated integers, got {text!r}") from None


def _class_order(value):
    """``--class-order``: ``"natural"``, ``"seed"`` or a non-negative integer seed."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if value in ("natural", "seed") or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    ):
        return value
    raise CompareError(
        f"--class-order must be natural, seed or a non-negative integer, got {value!r}"
    )


def build_config(args: argparse.Namespace) -> CompareConfig:
    """Defaults < ``--config`` file < command-line options; validated."""
    raw = json.loads(json.dumps(DEFAULTS))  # the layers, as dicts keyed by option
    if args.config:
        file_config = _load_config_file(args.config)
        file_config.pop("command", None)
        params = file_config.pop("params", {})
        raw.update(file_config)
        for name, values in params.items():
            raw["params"].setdefault(name, {}).update(values)
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is None or key == "params":
            continue
        raw[key] = value
    if isinstance(raw["strategies"], str):
        raw["strategies"] = _split_list(raw["strategies"])
    raw["seeds"] = _seeds(raw["seeds"])
    raw["class_order"] = _class_order(raw["class_order"])
    for item in args.set or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise CompareError(f"--set expects NAME.KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        name, param = key.split(".", 1)
        if name == "model":
            raw["model_params"][param] = _parse_value(value)
        else:
            raw["params"].setdefault(name, {})[param] = _parse_value(value)
    built = _fill_training(CompareConfig.from_dict(raw))
    _validate(built)
    return built


def _fill_training(config: CompareConfig) -> CompareConfig:
    """Epochs, batch size and learning rate left unset: the benchmark's, else the fallback."""
    from .registry import BENCHMARKS, TRAINING_FALLBACK

    spec = BENCHMARKS.get(config.benchmark)
    training = spec.training if spec else {}
    unset = {key: training.get(key, fallback) for key, fallback in TRAINING_FALLBACK.items()}
    return replace(config, **{k: v for k, v in unset.items() if getattr(config, k) is None})


def _check_positive_int(option: str, value, optional: bool) -> None:
    if optional and value is None:
        return
    bad = not isinstance(value, int) or value <= 0 or (not optional and isinstance(value, bool))
    if bad:
        raise CompareError(f"--{option} must be a positive integer, got {value!r}")


def _validate_setting(config: CompareConfig) -> None:
    """The benchmark, scenario, class order, data and model."""
    if config.benchmark not in BENCHMARKS:
        raise CompareError(
            f"unknown benchmark {config.benchmark!r}; choose one of {', '.join(BENCHMARKS)}"
        )
    if config.scenario not in SCENARIOS:
        raise CompareError(
            f"--scenario must be {' or '.join(SCENARIOS)} (task-incremental with task labels, "
            f"or class-incremental without), got {config.scenario!r}"
        )
    if config.scenario == "class" and BENCHMARKS[config.benchmark].build_class is None:
        allowed = [name for name, spec in BENCHMARKS.items() if spec.build_class is not None]
        raise CompareError(
            f"--scenario class runs on {', '.join(allowed)} only, not {config.benchmark!r}"
        )
    if config.class_order != "natural" and config.scenario != "class":
        raise CompareError(
            f"--class-order {config.class_order} applies to --scenario class only "
            "(the task-incremental benchmarks keep the natural class order)"
        )
    if BENCHMARKS[config.benchmark].data_root_help and not config.data_root:
        raise CompareError(data_root_error(config.benchmark))
    if config.model not in MODELS:
        raise CompareError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")


def _validate(config: CompareConfig) -> None:
    _validate_setting(config)
    if not config.strategies:
        raise CompareError("--strategies is empty")
    for name in config.strategies:
        if name not in STRATEGIES:
            raise CompareError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if len(set(config.strategies)) != len(config.strategies):
        raise CompareError(f"--strategies lists a strategy twice: {list(config.strategies)}")
    for name in config.params:
        if name not in STRATEGIES:
            raise CompareError(f"parameters given for unknown strategy {name!r}")
        _check_strategy_params(name, config.params[name])
    _check_positive_int("epochs", config.epochs, optional=False)
    _check_positive_int("batch-size", config.batch_size, optional=False)
    _check_positive_int("eval-batch-size", config.eval_batch_size, optional=False)
    _check_positive_int("n-experiences", config.n_experiences, optional=True)
    _check_positive_int("train-per-task", config.train_per_task, optional=True)
    _check_positive_int("test-per-task", config.test_per_task, optional=True)
    _check_positive_int("threads", config.threads, optional=True)
    if not (isinstance(config.lr, (int, float)) and config.lr > 0):
        raise CompareError(f"--lr must be a number > 0, got {config.lr!r}")
    if config.optimizer not in ("sgd", "adam"):
        raise CompareError(f"--optimizer must be sgd or adam, got {config.optimizer!r}")
    if not config.seeds:
        raise CompareError("--seeds is empty")
    if not isinstance(config.fast_data, bool):
        raise CompareError(f"fast_data must be true or false, got {config.fast_data!r}")
    if config.progress not in ("auto", "bar", "lines", "none"):
        raise CompareError(f"--progress must be auto, bar, lines or none, got {config.progress!r}")
    for name in config.strategies:
        STRATEGIES[name].check_scenario(name, config)
        STRATEGIES[name].check(config, strategy_params(config, name))
    try:
        torch.device(config.device)
    except RuntimeError as e:
        raise CompareError(f"--device {config.device!r}: {e}") from None
    if str(config.device).startswith("cuda") and not torch.cuda.is_available():
        raise CompareError(f"--device {config.device}: CUDA is not available here")


def _check_strategy_params(name: str, params: dict) -> None:
    spec = STRATEGIES[name]
    allowed = spec.allowed_params()
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise CompareError(
            f"unknown parameter(s) {', '.join(unknown)} for strategy {name!r} "
            f"({spec.strategy_class().__name__}); allowed: {', '.join(sorted(allowed))}"
        )


def strategy_params(config: CompareConfig, name: str) -> dict:
    """The strategy's hyperparameters: documented defaults updated by the configuration."""
    return {**STRATEGIES[name].defaults, **config.params.get(name, {})}


def progress_mode(config: CompareConfig) -> str:
    """``bar``, ``lines`` or ``none``: ``auto`` is a bar on a terminal, lines otherwise."""
    if config.progress == "auto":
        return "bar" if sys.stdout.isatty() else "lines"
    return config.progress
