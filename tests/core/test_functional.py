"""Every formula of docs/ALGORITHM.md §1-4 against values computed by hand."""

import math

import pytest
import torch

from avalanche_adahat.core import functional as F


@pytest.mark.parametrize(
    "b, B, s_max, expected",
    [
        (1, 5, 400.0, 1 / 400),  # first batch: 1/s_max, never negative
        (5, 5, 400.0, 400.0),  # last batch: s_max
        (3, 5, 400.0, 1 / 400 + (400 - 1 / 400) * 2 / 4),
        (2, 3, 10.0, 0.1 + (10 - 0.1) * 1 / 2),
        (1, 1, 400.0, 400.0),  # B == 1
    ],
)
def test_annealed_scale(b, B, s_max, expected):
    assert F.annealed_scale(b, B, s_max) == pytest.approx(expected, rel=1e-12)


def test_annealed_scale_rejects_zero_based_batch():
    # The reference's defect: a 0-based index gives a negative s.
    with pytest.raises(ValueError, match="1-based"):
        F.annealed_scale(0, 5, 400.0)


def test_gate():
    e = torch.tensor([0.0, 1.0, -2.0])
    expected = torch.tensor([0.5, 1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(6.0))])
    torch.testing.assert_close(F.gate(e, 3.0), expected)


def test_compensate_embedding_grad():
    e = torch.tensor([0.5, -0.1, 2.0])
    grad = torch.tensor([1.0, 2.0, -1.0])
    s, s_max, c = 100.0, 400.0, 50.0
    expected = []
    for ei, gi in zip(e.tolist(), grad.tolist()):
        num = math.cosh(max(-c, min(c, s * ei))) + 1
        expected.append(gi * s_max / s * num / (math.cosh(ei) + 1))
    out = F.compensate_embedding_grad(grad, e, s, s_max, c)
    assert out is grad  # in place
    torch.testing.assert_close(out, torch.tensor(expected), rtol=1e-5, atol=0)


def test_compensation_clamps_before_cosh():
    # s*e = 400*2 = 800 would overflow cosh in float32; the clamp keeps it at cosh(5).
    e, grad = torch.tensor([2.0]), torch.tensor([1.0])
    out = F.compensate_embedding_grad(grad, e, 400.0, 400.0, 5.0)
    torch.testing.assert_close(out, torch.tensor([(math.cosh(5) + 1) / (math.cosh(2) + 1)]))


def _layers():
    # Two layers of 12 units each; layer 0 has 4 units used by earlier tasks.
    m0 = torch.linspace(0.05, 0.6, 12)
    m1 = torch.full((12,), 0.25)
    c0 = torch.zeros(12)
    c0[:4] = 1
    c1 = torch.zeros(12)
    return [m0, m1], [c0, c1]


def test_sparsity_original_one_ratio_of_sums():
    soft, cum = _layers()
    num = (soft[0][4:]).sum() + soft[1].sum()
    den = 8 + 12
    total, per_layer = F.network_sparsity(soft, cum, "original", 10)
    torch.testing.assert_close(total, num / den)
    # layer 0 has 8 free units <= 10: guarded to 0; layer 1 has 12
    assert per_layer[0].item() == 0.0
    torch.testing.assert_close(per_layer[1], soft[1].sum() / 12)
    reg = F.sparsity_regularization(soft, cum, 0.75, "original", 10)
    torch.testing.assert_close(reg, 0.75 * num / den)


def test_sparsity_original_without_guard():
    soft, cum = _layers()
    _, per_layer = F.network_sparsity(soft, cum, "original", 0)
    torch.testing.assert_close(per_layer[0], soft[0][4:].sum() / 8)


def test_sparsity_guard_never_divides_by_zero():
    m, c = torch.rand(5), torch.ones(5)  # every unit used: no free unit
    total, per_layer = F.network_sparsity([m], [c], "original", 0)
    assert total.item() == 0.0 and per_layer[0].item() == 0.0


def test_sparsity_cross_sums_the_product():
    soft, cum = _layers()
    # 4 used units <= 10: the reuse term is 0 with the default guard
    total, per_layer = F.network_sparsity(soft, cum, "cross", 10)
    orig = (soft[0][4:].sum() + soft[1].sum()) / 20
    torch.testing.assert_close(total, orig / 2)
    # without the guard: reuse = 1 - Σ m M / Σ M (the product summed, not m * ΣM)
    total, per_layer = F.network_sparsity(soft, cum, "cross", 0)
    reuse = 1 - soft[0][:4].sum() / 4
    torch.testing.assert_close(total, (orig + reuse) / 2)
    torch.testing.assert_close(per_layer[0], (soft[0][4:].sum() / 8 + reuse) / 2)
    # layer 1 has no used unit: its reuse term is 0
    torch.testing.assert_close(per_layer[1], (soft[1].sum() / 12 + 0) / 2)


@pytest.mark.parametrize("mode", ["original", "cross"])
@pytest.mark.parametrize("guard", [0, 10])
def test_sparsity_affine_gives_the_hand_computed_ratios(mode, guard):
    """``bias + weights @ cat(m)`` is ``[R_0, R_1, total]`` of the hand computations above."""
    soft, cum = _layers()
    free0 = soft[0][4:].sum() / 8 if guard < 8 else torch.tensor(0.0)
    free1 = soft[1].sum() / 12
    total = (soft[0][4:].sum() + soft[1].sum()) / 20
    if mode == "cross":
        reuse = 1 - soft[0][:4].sum() / 4 if guard < 4 else torch.tensor(0.0)
        free0, free1, total = (free0 + reuse) / 2, free1 / 2, (total + reuse) / 2
    weights, bias = F.sparsity_affine(cum, mode, guard)
    assert weights.shape == (3, 24) and bias.shape == (3,)
    ratios = torch.addmv(bias, weights, torch.cat(soft))
    torch.testing.assert_close(ratios, torch.stack([free0, free1, total]))


@pytest.mark.parametrize("mode", ["original", "cross"])
@pytest.mark.parametrize("guard", [0, 10, 30])
def test_sparsity_affine_equals_network_sparsity(mode, guard):
    g = torch.Generator().manual_seed(guard)
    cum = [(torch.rand(n, generator=g) < 0.4).float() for n in (40, 25, 12)]
    soft = [torch.rand(c.numel(), generator=g) for c in cum]
    total, per_layer = F.network_sparsity(soft, cum, mode, guard)
    weights, bias = F.sparsity_affine(cum, mode, guard)
    ratios = torch.addmv(bias, weights, torch.cat(soft))
    torch.testing.assert_close(ratios, torch.stack([*per_layer, total]))
    with pytest.raises(ValueError, match="mask_sparsity_reg_mode"):
        F.sparsity_affine(cum, "sum")


def test_sparsity_first_task_is_mean_mask():
    m = [torch.rand(20), torch.rand(30)]
    c = [torch.zeros(20), torch.zeros(30)]
    total, _ = F.network_sparsity(m, c)
    torch.testing.assert_close(total, torch.cat(m).mean())


def test_sparsity_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mask_sparsity_reg_mode"):
        F.network_sparsity([torch.ones(3)], [torch.zeros(3)], "sum")


M = torch.tensor([1.0, 0.0, 1.0, 0.0])
S = torch.tensor([3.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize(
    "mode, kwargs, expected",
    [
        ("hat", {}, [0.0, 1.0, 0.0, 1.0]),
        ("hat_const_alpha", {"alpha": 0.3}, [0.3, 1.0, 0.3, 1.0]),
        ("hat_const_1", {}, [1.0, 1.0, 1.0, 1.0]),
        ("adahat", {"r": 0.5}, [0.5 / 3.5, 1.0, 0.5 / 1.5, 1.0]),
        ("adahat_no_reg", {"r": 2.0}, [2 / 5, 1.0, 2 / 3, 1.0]),
        ("adahat_no_sum", {"r": 0.5, "num_previous_tasks": 3}, [0.5 / 3.5, 1.0, 0.5 / 3.5, 1.0]),
    ],
)
def test_unit_rates(mode, kwargs, expected):
    torch.testing.assert_close(F.unit_rates(mode, M, S, **kwargs), torch.tensor(expected))


def test_adahat_r():
    assert F.adahat_r(1e-3, 0.4, 0.1) == pytest.approx(1e-3 / 0.5)


def _param_rate_by_min(mode, out_units, in_units, **kw):
    """The definition: rate of the parameter-wise min measure, element by element."""
    rows = []
    for i in range(len(out_units[0])):
        row = []
        for j in range(len(in_units[0])):
            m = torch.tensor([min(out_units[0][i], in_units[0][j])])
            s = torch.tensor([min(out_units[1][i], in_units[1][j])])
            row.append(F.unit_rates(mode, m, s, **kw).item())
        rows.append(row)
    return torch.tensor(rows)


@pytest.mark.parametrize(
    "mode, kw",
    [
        ("hat", {}),
        ("hat_const_alpha", {"alpha": 0.2}),
        ("adahat", {"r": 0.7}),
        ("adahat_no_reg", {"r": 0.05}),
        ("adahat_no_sum", {"r": 0.7, "num_previous_tasks": 2}),
    ],
)
def test_outer_max_equals_rate_of_parameter_wise_min(mode, kw):
    out_m, out_s = [1.0, 0.0, 1.0], [2.0, 0.0, 1.0]
    in_m, in_s = [1.0, 1.0, 0.0, 1.0], [1.0, 2.0, 0.0, 2.0]
    out_rate = F.unit_rates(mode, torch.tensor(out_m), torch.tensor(out_s), **kw)
    in_rate = F.unit_rates(mode, torch.tensor(in_m), torch.tensor(in_s), **kw)
    got = F.outer_max(out_rate, in_rate, torch.Size([3, 4]))
    expected = _param_rate_by_min(mode, (out_m, out_s), (in_m, in_s), **kw)
    torch.testing.assert_close(got, expected)


def test_outer_max_first_layer_bias_and_conv_shapes():
    out_rate, in_rate = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0, 0.5])
    # first layer / bias: P = u_l[i], broadcast along the row
    first = F.outer_max(out_rate, None, torch.Size([2, 5]))
    assert first.shape == (2, 1)
    torch.testing.assert_close(first.expand(2, 5), torch.tensor([[0.0] * 5, [1.0] * 5]))
    bias = F.outer_max(out_rate, None, torch.Size([2]))
    torch.testing.assert_close(bias, out_rate)
    # conv weight [out, in, kh, kw]: the max broadcasts over the kernel
    conv = F.outer_max(out_rate, in_rate, torch.Size([2, 3, 3, 3]))
    assert conv.shape == (2, 3, 1, 1)
    torch.testing.assert_close(conv[..., 0, 0], torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0]]))


def test_mean_outer_max_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    for n, m in [(1, 1), (5, 7), (30, 3)]:
        x = torch.rand(n, generator=g).double()
        y = torch.rand(m, generator=g).double()
        y[0] = x[0]  # ties count once
        total, count = F.mean_outer_max(x, y)
        brute = torch.maximum(x[:, None], y[None, :])
        assert count == n * m
        torch.testing.assert_close(total, brute.sum())
    total, count = F.mean_outer_max(torch.tensor([0.5, 1.0]), None)
    assert count == 2 and total.item() == 1.5


def test_random_rates():
    torch.manual_seed(0)
    free = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    rates = F.random_rates(free)
    assert rates[0, 0] == 1 and rates[1, 1] == 1
    assert 0 <= rates[0, 1] < 1 and 0 <= rates[1, 0] < 1


@pytest.mark.parametrize("shape", [(7, 5), (6, 4, 3, 3), (9,)])
def test_mul_outer_max_in_blocks_equals_the_full_product(shape):
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(shape, generator=g)
    out_rate = torch.rand(shape[0], generator=g)
    in_rate = None if len(shape) == 1 else torch.rand(shape[1], generator=g)
    expected = grad * F.outer_max(out_rate, in_rate, grad.shape)
    for block in (1, 4, 1 << 16):  # row blocks of one, a few, and all rows
        got = F.mul_outer_max_(grad.clone(), out_rate, in_rate, block=block)
        assert torch.equal(got, expected)
    if len(shape) == 4:  # a gradient that is not contiguous is multiplied as it is
        strided = grad.clone().permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        assert not strided.is_contiguous()
        assert torch.equal(F.mul_outer_max_(strided, out_rate, in_rate), expected)


@pytest.mark.parametrize("block", [1, 30, 40, 60, 1 << 18])
def test_mul_outer_max_all_equals_each_product(block):
    """Row-only rates, small and large outer maxima, a conv kernel, mixed in one call:
    every gradient ends up exactly ``grad * outer_max`` whatever the grouping."""
    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (9,), (6, 4, 3, 3), (8, 8), (5, 3), (4,)]
    grads = [torch.randn(shape, generator=g) for shape in shapes]
    outs = [torch.rand(shape[0], generator=g) for shape in shapes]
    ins = [None if len(sh) == 1 else torch.rand(sh[1], generator=g) for sh in shapes]
    ins[4] = None  # a weight rated by its output units only (a first layer)
    expected = [gr * F.outer_max(o, i, gr.shape) for gr, o, i in zip(grads, outs, ins)]
    got = [gr.clone() for gr in grads]
    F.mul_outer_max_all_(got, outs, ins, block=block)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)


def test_adahat_rate_terms_by_hand():
    # S = [3, 0, 1, 0], alpha = 0.5, epsilon = 0.1: slope = S / alpha, base = 1 + 0.1 slope
    base, slope = F.adahat_rate_terms(S, 0.5, 0.1)
    torch.testing.assert_close(slope, torch.tensor([6.0, 0.0, 2.0, 0.0]))
    torch.testing.assert_close(base, torch.tensor([1.6, 1.0, 1.2, 1.0]))
    # R = 0.4: 1 / (1.6 + 2.4) = 1/4, 1, 1 / (1.2 + 0.8) = 1/2, 1; a float R works too
    for R in (torch.tensor(0.4), 0.4):
        rates = F.adahat_rates_from_terms(base, slope, R)
        torch.testing.assert_close(rates, torch.tensor([1 / 4, 1.0, 1 / 2, 1.0]))
        assert rates[1].item() == 1.0 and rates[3].item() == 1.0


def test_adahat_rates_is_eqs_8_and_9():
    # alpha = 0.5, epsilon = 0.1, R = 0.4: r = 0.5 / 0.5 = 1, rate = 1 / (S + 1)
    rates = F.adahat_rates(S, torch.tensor(0.4), 0.5, 0.1)
    torch.testing.assert_close(rates, torch.tensor([1 / 4, 1.0, 1 / 2, 1.0]))
    assert rates[1].item() == 1.0 and rates[3].item() == 1.0  # unused units: exactly 1
    # one R per unit, written into `out`; equals unit_rates with r = adahat_r
    R = torch.tensor([0.0, 0.3, 0.9, 0.2])
    out = torch.empty(4)
    F.adahat_rates(S, R, 1e-2, 0.1, out=out)
    torch.testing.assert_close(out, F.unit_rates("adahat", M, S, r=F.adahat_r(1e-2, R, 0.1)))


def test_rate_views_broadcast_and_keep_views():
    grad = torch.randn(5, 3, 2, 2)
    out_rate, in_rate = torch.rand(5), torch.rand(3)
    expected = grad * torch.maximum(out_rate.view(5, 1, 1, 1), in_rate.view(1, 3, 1, 1))
    views = F.rate_views(out_rate, in_rate, grad.dim())
    assert views[0].shape == (5, 1, 1, 1) and views[1].shape == (1, 3, 1, 1)
    assert F.rate_views(*views, grad.dim())[0] is views[0]  # already viewed: kept
    assert torch.equal(F.mul_outer_max_(grad.clone(), *views), expected)
    assert torch.equal(F.mul_outer_max_(grad.clone(), out_rate, in_rate), expected)


def test_modes_written_from_terms_give_their_formula():
    """A mode flagged ``from_terms`` (the plugin then writes its per-batch rates as
    1 / (base + slope R_l)) gives the rates of its own ``unit_rates`` with AdaHAT's r_l."""
    from avalanche_adahat.core.modes import MODES

    flagged = [m for m in MODES.values() if m.from_terms]
    assert [m.name for m in flagged] == ["adahat"]
    R = torch.tensor([0.0, 0.3, 0.9, 0.2])
    for mode in flagged:
        assert mode.per_batch  # the terms replace a per-batch formula
        base, slope = F.adahat_rate_terms(S, 1e-2, 0.1)
        expected = mode.unit_rates(
            M, S, r=F.adahat_r(1e-2, R, 0.1), alpha=None, num_previous_tasks=2
        )
        torch.testing.assert_close(F.adahat_rates_from_terms(base, slope, R), expected)
