"""``intensity_per="task"``: AdaHAT's intensity given per task, each step using
``alpha = adjustment_intensity / N`` with ``N`` the task's planned optimizer steps
(docs/ALGORITHM.md §8)."""

import pytest
import torch
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import AdaHAT, AdaHATConfig
from avalanche_adahat.models import HATMLP


def _train(tiny_benchmark, epochs=2, **hyperparameters):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    strategy = AdaHAT(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        train_mb_size=16,
        train_epochs=epochs,
        evaluator=EvaluationPlugin(loggers=[]),
        **hyperparameters,
    )
    plugin = next(p for p in strategy.plugins if type(p).__name__ == "AdaHATPlugin")
    alphas = []
    for exp in tiny_benchmark.train_stream[:3]:
        strategy.train(exp)
        batches = -(-len(exp.dataset) // 16)  # the data loader's, drop_last off
        alphas.append((plugin.adjustment_intensity, batches))
    return model, alphas


def test_each_step_uses_the_tasks_intensity_over_its_planned_steps(tiny_benchmark):
    _, alphas = _train(tiny_benchmark, epochs=2, intensity_per="task", adjustment_intensity=3.0)
    for alpha, batches in alphas:
        assert alpha == 3.0 / (2 * batches)


def test_per_task_equals_per_step_bitwise_at_the_same_alpha(tiny_benchmark):
    """With every task planned for N steps, intensity ``alpha * N`` per task is ``alpha``
    per step: the same parameters to the bit (N a power of two, so the division is exact)."""
    _, alphas = _train(tiny_benchmark, epochs=2, intensity_per="step", adjustment_intensity=0.25)
    steps = {2 * batches for _, batches in alphas}
    assert len(steps) == 1
    (n,) = steps
    per_step, _ = _train(tiny_benchmark, epochs=2, intensity_per="step", adjustment_intensity=0.25)
    per_task, _ = _train(
        tiny_benchmark, epochs=2, intensity_per="task", adjustment_intensity=0.25 * n
    )
    for a, b in zip(per_step.state_dict().values(), per_task.state_dict().values()):
        assert torch.equal(a, b)
    other, _ = _train(tiny_benchmark, epochs=2, intensity_per="task", adjustment_intensity=0.5 * n)
    assert not all(  # alpha matters here: the comparison above can fail
        torch.equal(a, b)
        for a, b in zip(per_step.state_dict().values(), other.state_dict().values())
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"intensity_per": "epoch"}, "intensity_per must be one of"),
    ],
)
def test_intensity_per_is_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaHATConfig(**kwargs)


def test_the_default_unit_follows_protect(tiny_benchmark):
    from avalanche_adahat import PAPER_ADAHAT

    default = AdaHATConfig()
    assert (default.protect, default.intensity_per, default.adjustment_intensity) == (
        "update",
        "task",
        None,  # chosen by optimizer when training starts
    )
    gradient = AdaHATConfig(protect="gradient")  # the paper's unit
    assert (gradient.intensity_per, gradient.adjustment_intensity) == ("step", None)
    paper = AdaHATConfig(**PAPER_ADAHAT)
    assert (paper.intensity_per, paper.adjustment_intensity) == ("step", 1e-6)


@pytest.mark.parametrize(
    "make_optimizer, intensity, init_mode, reg_factor",
    [
        (lambda p: torch.optim.Adam(p, lr=1e-2), 20.0, "N01", 0.1),
        (lambda p: torch.optim.SGD(p, lr=0.1), 20.0, "U01", 0.75),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 20.0, "U01", 0.75),
    ],
)
def test_the_defaults_per_task_follow_the_optimizer(
    make_optimizer, intensity, init_mode, reg_factor, tiny_benchmark
):
    from avalanche_adahat.core.optimizers import DEFAULT_TASK_INTENSITY

    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    strategy = AdaHAT(
        model=model,
        optimizer=make_optimizer(model.parameters()),
        train_mb_size=16,
        train_epochs=2,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    plugin = next(p for p in strategy.plugins if type(p).__name__ == "AdaHATPlugin")
    exp = tiny_benchmark.train_stream[0]
    strategy.train(exp)
    assert plugin.intensity == intensity in DEFAULT_TASK_INTENSITY.values()
    assert plugin.adjustment_intensity == intensity / (2 * -(-len(exp.dataset) // 16))
    assert (plugin.task_embedding_init_mode, plugin.mask_sparsity_reg_factor) == (
        init_mode,
        reg_factor,
    )
    assert plugin.config.task_embedding_init_mode is None  # the config keeps "not given"
    assert model.task_embedding_init_mode == init_mode  # the mode new embeddings are drawn by


@pytest.mark.parametrize(
    "given",
    [
        {"task_embedding_init_mode": "N01"},
        {"mask_sparsity_reg_factor": 0.3},
        {"intensity_per": "step"},  # the per-step unit keeps the paper's first mask
    ],
)
def test_what_is_given_is_kept_and_only_the_rest_chosen_by_optimizer(given, tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    strategy = AdaHAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,
        evaluator=EvaluationPlugin(loggers=[]),
        **given,
    )
    plugin = next(p for p in strategy.plugins if type(p).__name__ == "AdaHATPlugin")
    strategy.train(tiny_benchmark.train_stream[0])
    expected = {"task_embedding_init_mode": "U01", "mask_sparsity_reg_factor": 0.75}
    if given.get("intensity_per") == "step":
        expected = {"task_embedding_init_mode": "N01", "mask_sparsity_reg_factor": 0.1}
    expected |= {k: v for k, v in given.items() if k in expected}
    got = {k: getattr(plugin, k) for k in expected}
    assert got == expected
    assert model.task_embedding_init_mode == expected["task_embedding_init_mode"]
