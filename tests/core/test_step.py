"""The step's parameter-sized maths (avalanche_adahat.core.step): readable, eager hot path and
compiled versions agree bit for bit, and a compiled training run equals an eager one."""

from __future__ import annotations

import time

import pytest
import torch
from _data import protected_entries, tensor_benchmark
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat.core import functional as F
from avalanche_adahat.core import step as S
from avalanche_adahat.models import HATMLP

# (parameter shape, has input units): a Linear, its bias, a conv, a Linear after a conv.
SHAPES = [((6, 5), True), ((6,), False), ((4, 3, 3, 3), True), ((5, 8), True)]


def _case(seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors, outs, ins = [], [], []
    for shape, has_in in SHAPES:
        tensors.append(torch.randn(shape, generator=g))
        # rates with exact zeros and ones, as HAT's, and soft values, as AdaHAT's
        out = torch.rand(shape[0], generator=g).mul_(torch.randint(0, 3, (shape[0],), generator=g))
        out = out.clamp_(max=1.0)
        inp = torch.rand(shape[1], generator=g) if has_in else None
        o, i = F.rate_views(out, inp, len(shape))
        outs.append(o)
        ins.append(i)
    return tensors, outs, ins


def test_eager_hot_path_equals_the_readable_formula_bitwise():
    a, outs, ins = _case()
    b = [t.clone() for t in a]
    S.scale_by_rates(a, outs, ins)
    F.mul_outer_max_all_(b, outs, ins, block=16)  # small blocks: every branch runs
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _wide_case(seed):
    """_case and a weight whose every row has more (out, in) pairs than a 16-pair block."""
    tensors, outs, ins = _case(seed)
    g = torch.Generator().manual_seed(seed + 100)
    tensors.append(torch.randn(3, 20, generator=g))
    o, i = F.rate_views(torch.rand(3, generator=g), torch.rand(20, generator=g), 2)
    return tensors, outs + [o], ins + [i]


def test_eager_hot_path_with_a_workspace_equals_the_readable_formula_bitwise():
    """The outer maxima written into a preallocated workspace (StepMaths' eager path)."""
    a, outs, ins = _wide_case(5)
    b, c = [t.clone() for t in a], [t.clone() for t in a]
    S.scale_by_rates(a, outs, ins)
    workspace = torch.full((16,), float("nan"))  # one block: stale values must not leak
    F.mul_outer_max_all_(b, outs, ins, block=16, workspace=workspace)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    S.StepMaths().scale(c, outs, ins)  # its own workspace, default block
    assert all(torch.equal(x, y) for x, y in zip(a, c))


def test_blend_is_exact_at_rates_zero_and_one():
    before = [torch.randn(3, 4)]
    after = [before[0] + 1.0]
    out = torch.tensor([0.0, 1.0, 0.5]).view(3, 1)
    S.blend_by_rates(after, [before[0].clone()], [out], [None])
    assert torch.equal(after[0][0], before[0][0])
    assert torch.equal(after[0][1], before[0][1] + 1.0)
    assert torch.allclose(after[0][2], before[0][2] + 0.5)


def test_compiled_step_maths_equal_eager_bitwise():
    eager, compiled = S.StepMaths(compile=False), S.StepMaths(compile=True)
    a, outs, ins = _case(1)
    b = [t.clone() for t in a]
    eager.scale(a, outs, ins)
    compiled.scale(b, outs, ins)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert compiled.compile_seconds > 0
    before = [t.clone() for t in a]
    a2 = [t + 0.25 for t in a]
    b2 = [t.clone() for t in a2]
    eager.blend(a2, [t.clone() for t in before], outs, ins)
    compiled.blend(b2, [t.clone() for t in before], outs, ins)
    # the in-place lerp equals torch.lerp bit for bit
    reference = [torch.lerp(t, t + 0.25, S._rate(o, i)) for t, o, i in zip(before, outs, ins)]
    assert all(torch.equal(x, y) for x, y in zip(a2, reference))
    assert all(torch.equal(x, y) for x, y in zip(a2, b2))
    spent = compiled.compile_seconds
    compiled.scale(b, outs, ins)  # same shapes: no compilation is counted again
    assert compiled.compile_seconds == spent


def test_a_failed_compilation_warns_and_runs_eagerly(monkeypatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no C++ compiler")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    maths = S.StepMaths(compile=True)
    a, outs, ins = _case(2)
    b = [t.clone() for t in a]
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        maths.scale(a, outs, ins)
    S.scale_by_rates(b, outs, ins)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _train_two_tasks(cls, compile_step, **kwargs):
    benchmark = tensor_benchmark(n_tasks=2)
    torch.manual_seed(0)
    model = HATMLP(8, (12, 10), 2)
    strategy = cls(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        train_mb_size=16,
        evaluator=EvaluationPlugin(loggers=[]),
        compile_step=compile_step,
        **kwargs,
    )
    start = time.perf_counter()
    strategy.train(benchmark.train_stream[0])
    protected = protected_entries(model)
    before = {cp.name: cp.param.detach().clone() for cp in model.covered_parameters()}
    strategy.train(benchmark.train_stream[1])
    if compile_step:
        spent = strategy.hat_plugin.step_maths.compile_seconds
        assert 0 < spent <= time.perf_counter() - start
    for cp in model.covered_parameters() if cls is HAT else []:  # HAT's guarantee
        keep = protected[cp.name]
        assert torch.equal(cp.param.detach()[keep], before[cp.name][keep]), cp.name
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("protect", ["gradient", "update"])
def test_a_compiled_hat_run_equals_the_eager_one_bitwise(protect):
    eager, compiled = (_train_two_tasks(HAT, c, protect=protect) for c in (False, True))
    assert all(torch.equal(eager[k], compiled[k]) for k in eager)


def test_a_compiled_adahat_run_equals_the_eager_one_to_float_rounding():
    """protect="update" with soft rates: inductor's lerp rounds some entries 1 ulp
    apart from ATen's, so the runs agree to float rounding, not bit for bit."""
    eager, compiled = (_train_two_tasks(AdaHAT, c) for c in (False, True))
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ protect="update" fast paths


def test_eager_blend_equals_the_readable_formula_bitwise():
    """functional.lerp_outer_max_all_ (blocked, written into the parameter) is
    blend_by_rates (parameter-sized outer max, lerp in the snapshot, copy back)."""
    before, outs, ins = _wide_case(3)
    g = torch.Generator().manual_seed(4)
    # a random mode's parameter-sized rate as the out rate, no input units
    before.append(torch.randn(6, 5, generator=g))
    outs.append(torch.rand(6, 5, generator=g))
    ins.append(None)
    after = [b + torch.randn(b.shape, generator=g) for b in before]
    readable, fast = [t.clone() for t in after], [t.clone() for t in after]
    snapshots = [b.clone() for b in before]
    S.blend_by_rates(readable, [b.clone() for b in before], outs, ins)
    F.lerp_outer_max_all_(fast, snapshots, outs, ins, block=16)  # small blocks: every branch
    assert all(torch.equal(x, y) for x, y in zip(readable, fast))
    assert all(torch.equal(s, b) for s, b in zip(snapshots, before))  # snapshots left as they were
    in_workspace = [t.clone() for t in after]
    workspace = torch.full((16,), float("nan"))
    F.lerp_outer_max_all_(in_workspace, snapshots, outs, ins, block=16, workspace=workspace)
    assert all(torch.equal(x, y) for x, y in zip(readable, in_workspace))
    maths = S.StepMaths()  # snapshot buffers and workspace of the plugin's eager step
    stepped = [t.clone() for t in after]
    maths.blend(stepped, maths.snapshot(before), outs, ins)
    assert all(torch.equal(x, y) for x, y in zip(readable, stepped))


def test_snapshots_reuse_their_buffers():
    maths = S.StepMaths()
    params = [torch.randn(3, 4), torch.randn(4)]
    first = maths.snapshot(params)
    assert all(torch.equal(b, p) and b is not p for b, p in zip(first, params))
    params[0].add_(1.0)
    second = maths.snapshot(params)
    assert all(a is b for a, b in zip(first, second))  # no allocation per step
    assert torch.equal(second[0], params[0])
    assert maths.snapshot([torch.randn(5)])[0].shape == (5,)  # other shapes: new buffers
    maths.release()
    assert maths._buffers == []


def test_only_plain_sgd_updates_are_scaled_gradients():
    from avalanche_adahat.core.optimizers import update_is_scaled_gradient

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert update_is_scaled_gradient(torch.optim.SGD(p, lr=0.1))
    assert update_is_scaled_gradient(torch.optim.SGD(p, lr=0.1, maximize=True))
    assert not update_is_scaled_gradient(torch.optim.SGD(p, lr=0.1, momentum=0.9))
    assert not update_is_scaled_gradient(torch.optim.SGD(p, lr=0.1, weight_decay=1e-4))
    assert not update_is_scaled_gradient(torch.optim.Adam(p))

    class MySGD(torch.optim.SGD):  # a subclass may change the update
        pass

    assert not update_is_scaled_gradient(MySGD(p, lr=0.1))


def _train_sgd(cls, **kwargs):
    benchmark = tensor_benchmark(n_tasks=3)
    torch.manual_seed(0)
    model = HATMLP(8, (12, 10), 2)
    strategy = cls(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.2),
        train_mb_size=16,
        evaluator=EvaluationPlugin(loggers=[]),
        **kwargs,
    )
    for experience in benchmark.train_stream:
        strategy.train(experience)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_update_under_plain_sgd_is_the_scaled_gradient_bitwise():
    """protect="update" under plain SGD multiplies the gradient by the rate: bitwise the
    readable gradient path (protect="gradient", scale_by_rates' hot path, no clipping)."""
    update = _train_sgd(AdaHAT, protect="update", adjustment_intensity=0.1, intensity_per="step")
    gradient = _train_sgd(
        AdaHAT, protect="gradient", adjustment_intensity=0.1, intensity_per="step"
    )
    assert all(torch.equal(update[k], gradient[k]) for k in update)


def test_update_under_plain_sgd_equals_the_snapshot_path(monkeypatch):
    """... and means what the snapshot path means: lerp(before, before - lr g, rate) equals
    before - lr (rate g) exactly at rates 0 and 1 (HAT: bitwise), to float rounding between."""
    for cls, exact in ((HAT, True), (AdaHAT, False)):
        fast = _train_sgd(cls, protect="update", clip_grad_norm=1.0)
        with monkeypatch.context() as m:  # force the snapshot-and-blend path
            m.setattr("avalanche_adahat.training.plugin.update_is_scaled_gradient", lambda o: False)
            blended = _train_sgd(cls, protect="update", clip_grad_norm=1.0)
        for k in fast:
            if exact:
                assert torch.equal(fast[k], blended[k]), k
            else:
                torch.testing.assert_close(fast[k], blended[k], rtol=1e-5, atol=1e-6)


def test_update_under_adam_equals_the_readable_blend_bitwise(monkeypatch):
    """Preallocated snapshots and the eager blend give the bits of the readable path
    (a fresh clone per step, blend_by_rates)."""
    fast = _train_two_tasks(AdaHAT, False)
    monkeypatch.setattr(S.StepMaths, "_blend_eager", lambda self, *lists: S.blend_by_rates(*lists))
    monkeypatch.setattr(S.StepMaths, "snapshot", lambda self, ps: [p.clone() for p in ps])
    readable = _train_two_tasks(AdaHAT, False)
    assert all(torch.equal(fast[k], readable[k]) for k in fast)
