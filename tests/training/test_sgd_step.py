"""The rates applied inside plain SGD's step (avalanche_adahat.training.sgd_step): the same
bits as scaling the gradients first and letting the optimizer add them."""

from __future__ import annotations

import pytest
import torch
from _data import tensor_benchmark
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.core import functional as F
from avalanche_adahat.core import step as S
from avalanche_adahat.models import HATMLP

# (parameter shape, has input units): Linear weights (one spanning several blocks), a bias,
# a convolution's kernels.
SHAPES = [((37, 11), True), ((6, 5), True), ((6,), False), ((4, 3, 3, 3), True)]


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    params, grads, outs, ins = [], [], [], []
    for shape, has_in in SHAPES:
        params.append(torch.randn(shape, generator=g))
        grads.append(torch.randn(shape, generator=g))
        # rates with exact zeros and ones (HAT's) and values between (AdaHAT's)
        out = torch.rand(shape[0], generator=g).mul_(torch.randint(0, 3, (shape[0],), generator=g))
        outs.append(out.clamp_(max=1.0))
        ins.append(torch.rand(shape[1], generator=g) if has_in else None)
    return params, grads, outs, ins


@pytest.mark.parametrize("alpha", [-0.3, 0.7])  # -lr, and +lr under maximize
def test_the_fused_step_equals_scaling_then_adding_bitwise(alpha):
    params, grads, outs, ins = _case()
    alphas = [alpha] * len(params)
    # reference: the gradients scaled in place (the gradient path), then SGD's add
    expected, scaled = [p.clone() for p in params], [g.clone() for g in grads]
    F.mul_outer_max_all_(scaled, outs, ins)
    for p, g in zip(expected, scaled):
        p.add_(g, alpha=alpha)
    # the hot path, with blocks of 64 pairs so that the (37, 11) weight spans 7 of them
    fused, fused_grads = [p.clone() for p in params], [g.clone() for g in grads]
    workspace = torch.empty(64)
    F.sgd_outer_max_all_(fused, fused_grads, outs, ins, alphas, block=64, workspace=workspace)
    assert all(torch.equal(a, b) for a, b in zip(expected, fused))
    assert torch.equal(fused_grads[0], grads[0])  # a weight's gradient is left as it is
    # the readable formula, and StepMaths' eager path, give the same bits
    readable = [p.clone() for p in params]
    views = [F.rate_views(o, i, p.dim()) for p, o, i in zip(params, outs, ins)]
    S.sgd_step_by_rates(readable, grads, [v[0] for v in views], [v[1] for v in views], alphas)
    assert all(torch.equal(a, b) for a, b in zip(expected, readable))
    stepped = [p.clone() for p in params]
    S.StepMaths().sgd_step(stepped, [g.clone() for g in grads], outs, ins, alphas)
    assert all(torch.equal(a, b) for a, b in zip(expected, stepped))


def _train(cls, optimizer_kwargs, **kwargs):
    benchmark = tensor_benchmark(n_tasks=3)
    torch.manual_seed(0)
    model = HATMLP(8, (12, 10), 2)
    optimizer = torch.optim.SGD(model.parameters(), **optimizer_kwargs)
    strategy = cls(
        model=model,
        optimizer=optimizer,
        train_mb_size=16,
        evaluator=EvaluationPlugin(loggers=[]),
        **kwargs,
    )
    for experience in benchmark.train_stream:
        strategy.train(experience)
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    return {k: v.clone() for k, v in model.state_dict().items()}


CASES = {
    "hat": (HAT, {}),
    "adahat-gradient": (AdaHAT, {"protect": "gradient", "adjustment_intensity": 0.1}),
    "adahat-update": (AdaHAT, {"protect": "update"}),
}


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_run_with_the_rates_in_the_sgd_step_equals_one_scaling_gradients(
    case, maximize, monkeypatch
):
    """Three tasks of HAT / AdaHAT under plain SGD: the in-step path gives the bits of
    scaling the gradients before the optimizer's step (the path it replaced)."""
    cls, kwargs = CASES[case]
    optimizer_kwargs = {"lr": 0.01 if maximize else 0.2, "maximize": maximize}
    in_step = _train(cls, optimizer_kwargs, **kwargs)
    calls = []

    def scale_first(self, rates, optimizer):  # scale the gradients, hide nothing
        calls.append(len(rates))
        self.scale_grads(rates)
        return []

    monkeypatch.setattr("avalanche_adahat.training.rates.AdjustmentRates.sgd_step", scale_first)
    scaled_first = _train(cls, optimizer_kwargs, **kwargs)
    assert calls  # the in-step path ran in the first run, this one scaled instead
    assert all(torch.equal(in_step[k], scaled_first[k]) for k in in_step)


def test_the_optimizer_skips_what_the_step_updated_and_gets_the_gradients_back():
    """The covered parameters are updated once (not again by the optimizer), their
    gradients are given back after the step and the hooks removed."""
    from avalanche_adahat.training.sgd_step import RatedSGDStep

    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([p, q], lr=0.5)
    p.grad, q.grad = torch.ones(2), torch.ones(2)
    grad = p.grad
    hook = RatedSGDStep()

    def step():
        p.data.sub_(10.0)  # stands in for the rated update
        return [p]

    hook.arm(optimizer, step)
    optimizer.step()
    assert torch.equal(p.detach(), torch.full((2,), -9.0))  # not also -0.5 by the optimizer
    assert torch.equal(q.detach(), torch.full((2,), 0.5))  # the others: the optimizer's step
    assert p.grad is grad
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
    optimizer.step()  # disarmed: a later step is the optimizer's alone
    assert torch.equal(p.detach(), torch.full((2,), -9.5))


def test_the_compiled_step_matches_and_a_new_learning_rate_does_not_recompile():
    """compile_step=True: one fused loop (inductor), equal to the eager step to float
    rounding, exact where the rate is 0; learning rates enter as tensors, so a scheduler's
    new lr reuses the compiled code."""
    from torch._dynamo.utils import counters

    params, grads, outs, ins = _case(1)
    weights = [0, 1]  # the Linear weights: one shape set, one compilation
    params, grads = [params[k] for k in weights], [grads[k] for k in weights]
    views = [F.rate_views(outs[k], ins[k], 2) for k in weights]  # as the plugin passes them
    outs, ins = [v[0] for v in views], [v[1] for v in views]
    compiled, eager = S.StepMaths(compile=True), S.StepMaths()
    graphs = counters["stats"]["unique_graphs"]
    for alpha in (-0.1, -0.03):
        got, expected = [p.clone() for p in params], [p.clone() for p in params]
        compiled.sgd_step(got, [g.clone() for g in grads], outs, ins, [alpha] * 2)
        eager.sgd_step(expected, [g.clone() for g in grads], outs, ins, [alpha] * 2)
        for a, b, p, o, i in zip(got, expected, params, outs, ins):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
            frozen = F.outer_max(o, i, p.shape) == 0
            assert torch.equal(a[frozen], p[frozen])  # rate 0: not moved, bitwise
    assert counters["stats"]["unique_graphs"] - graphs == 1


def test_a_failed_compilation_of_the_sgd_step_runs_it_eagerly(monkeypatch):
    """A compile failure at the first call warns and runs the eager step on what the
    compiled step was handed (learning rates as 0-d tensors, which ATen reads as
    numbers), giving the eager bits."""

    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    params, grads, outs, ins = _case(3)
    alphas = [-0.2] * len(params)
    got, expected = [p.clone() for p in params], [p.clone() for p in params]
    maths = S.StepMaths(compile=True)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        maths.sgd_step(got, [g.clone() for g in grads], outs, ins, alphas)
    S.StepMaths().sgd_step(expected, [g.clone() for g in grads], outs, ins, alphas)
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    maths.sgd_step(got, [g.clone() for g in grads], outs, ins, alphas)  # eager from now on
