"""The HAT hyperparameters live in one checked dataclass per method (avalanche_adahat.core.config)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from avalanche_adahat import (
    HAT,
    PAPER_ADAHAT,
    AdaHAT,
    AdaHATConfig,
    AdaHATPlugin,
    HATConfig,
    HATPlugin,
)
from avalanche_adahat.compare.config import CompareConfig
from avalanche_adahat.compare.errors import CompareError
from avalanche_adahat.compare.strategy_specs import STRATEGIES
from avalanche_adahat.models import HATMLP


def test_defaults_are_the_documented_ones():
    hat, ada = HATConfig(), AdaHATConfig()
    assert (hat.adjustment_mode, hat.mask_sparsity_reg_factor, hat.protect) == (
        "hat",
        0.75,
        "gradient",
    )
    assert (ada.adjustment_mode, ada.protect) == ("adahat", "update")
    # chosen by optimizer when training starts (tests/training/test_intensity_per_task.py)
    assert (ada.mask_sparsity_reg_factor, ada.task_embedding_init_mode) == (None, None)
    assert (ada.adjustment_intensity, ada.intensity_per, ada.epsilon, ada.s_max) == (
        None,
        "task",
        0.1,
        400.0,
    )
    paper = AdaHATConfig(**PAPER_ADAHAT)
    assert (paper.adjustment_intensity, paper.mask_sparsity_reg_factor) == (1e-6, 0.1)
    assert paper.task_embedding_init_mode == "N01"


@pytest.mark.parametrize(
    "cls, kwargs, words",
    [
        (HATConfig, {"s_max": 0}, ["s_max", "0", "> 0"]),
        (HATConfig, {"s_max": float("nan")}, ["s_max", "nan"]),
        (HATConfig, {"protect": "weights"}, ["protect", "'weights'", "gradient"]),
        (HATConfig, {"adjustment_mode": "adahat"}, ["adjustment_mode", "'adahat'", "hat_random"]),
        (HATConfig, {"adjustment_mode": "hat_const_alpha"}, ["alpha", "None", "[0, 1]"]),
        (HATConfig, {"alpha": 0.5}, ["alpha", "hat_const_alpha", "0.5"]),
        (HATConfig, {"clip_grad_norm": -1.0}, ["clip_grad_norm", "-1.0"]),
        (HATConfig, {"task_inference": "vote"}, ["task_inference", "'vote'", "entropy"]),
        (HATConfig, {"calibrate_task_inference": True}, ["calibrate_task_inference"]),
        (AdaHATConfig, {"adjustment_intensity": 0.0}, ["adjustment_intensity", "0.0"]),
        (AdaHATConfig, {"epsilon": -0.1}, ["epsilon", "-0.1"]),
        (AdaHATConfig, {"alpha": 0.5}, ["alpha", "adjustment_intensity"]),
        (AdaHATConfig, {"adjustment_mode": "hat"}, ["adjustment_mode", "'hat'", "adahat_no_sum"]),
        # None means "chosen when training starts" for AdaHAT only
        (HATConfig, {"mask_sparsity_reg_factor": None}, ["mask_sparsity_reg_factor", "None"]),
        (HATConfig, {"task_embedding_init_mode": None}, ["task_embedding_init_mode", "None"]),
        (AdaHATConfig, {"task_embedding_init_mode": "N02"}, ["task_embedding_init_mode", "'N02'"]),
        (AdaHATConfig, {"mask_sparsity_reg_factor": -1}, ["mask_sparsity_reg_factor", "-1"]),
    ],
)
def test_bad_values_are_refused_naming_parameter_and_value(cls, kwargs, words):
    with pytest.raises(ValueError) as error:
        cls(**kwargs)
    for word in words:
        assert word in str(error.value)


def test_config_is_frozen_and_replace_checks():
    config = HATConfig(s_max=200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.s_max = 10.0
    assert config.replace(s_max=50).s_max == 50.0 and config.s_max == 200.0
    with pytest.raises(ValueError, match="s_max"):
        config.replace(s_max=-1)


def test_per_experience_resolves_the_task_inference_defaults():
    config = HATConfig(task_ids="per_experience")
    assert config.task_inference == "lda_cascade" and config.calibrate_task_inference is False
    logit = HATConfig(task_ids="per_experience", task_inference="entropy")
    assert logit.calibrate_task_inference is True
    adahat = AdaHATConfig(task_ids="per_experience")  # its task networks move: a logit rule
    assert adahat.task_inference == "entropy" and adahat.calibrate_task_inference is True
    assert HATConfig().calibrate_task_inference is False


def test_plugins_take_a_config_or_its_fields_not_both():
    config = AdaHATConfig(adjustment_intensity=0.05, s_max=100)
    plugin = AdaHATPlugin(config)
    assert plugin.config is config
    assert (plugin.adjustment_intensity, plugin.s_max, plugin.protect) == (0.05, 100.0, "update")
    assert AdaHATPlugin(adjustment_intensity=0.05, s_max=100).config == config
    with pytest.raises(ValueError, match="not both"):
        AdaHATPlugin(config, s_max=5)
    with pytest.raises(TypeError, match="AdaHATConfig"):
        AdaHATPlugin(HATConfig())
    with pytest.raises(TypeError, match="unexpected keyword argument 'smax'"):
        HATPlugin(smax=5)


def _optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize("cls, config_class", [(HAT, HATConfig), (AdaHAT, AdaHATConfig)])
def test_strategies_take_the_config_fields_as_keywords(cls, config_class):
    names = [f.name for f in dataclasses.fields(config_class)]
    params = inspect.signature(cls).parameters
    assert all(params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in names)
    model = HATMLP(64, (8,))
    strategy = cls(model=model, optimizer=_optimizer(model), s_max=123, train_epochs=2)
    assert strategy.hat_plugin.config == config_class(s_max=123)
    assert type(strategy.hat_plugin) is cls.plugin_class and strategy.train_epochs == 2
    given = config_class(s_max=7)
    assert cls(model=model, optimizer=_optimizer(model), config=given).hat_plugin.config is given
    with pytest.raises(TypeError, match="smax"):  # Avalanche's misspelling check sees the fields
        cls(model=model, optimizer=_optimizer(model), smax=5)


def test_compare_checks_hyperparameters_with_the_config():
    spec = STRATEGIES["adahat"]
    assert spec.allowed_params() == set(AdaHATConfig.field_names()) - {"adjustment_mode"}
    with pytest.raises(CompareError, match="AdaHATConfig: epsilon must be a finite number > 0"):
        spec.check(CompareConfig(), {"epsilon": 0})
    spec.check(CompareConfig(), {"epsilon": 0.5})
