"""The SGD rate-pass benchmark: its operands and its bit comparison, on a small model."""

import sgd_rate_pass as script
import torch

from avalanche_adahat.core import functional as F


def test_operands_are_the_models_covered_parameters_with_binary_unit_rates():
    params, grads, outs, ins = script.covered_operands("mlp_small", 64)
    assert len(params) == len(grads) == len(outs) == len(ins) >= 2
    for p, g, o, i in zip(params, grads, outs, ins):
        assert g.shape == p.shape
        assert set(o.unique().tolist()) <= {0.0, 1.0}
        rate = F.outer_max(o.flatten(), None if i is None else i.flatten(), p.shape)
        assert rate.expand(p.shape).shape == p.shape


def test_rows_compare_every_way_with_the_eager_bits(monkeypatch):
    monkeypatch.setattr(script.StepMaths, "__init__", lambda self, compile=False: _eager_init(self))
    rows = script.measure("mlp_small", 64, steps=1)
    names = [r[0] for r in rows]
    assert names == ["sgd", "eager", "compiled", "cached addcmul"]
    assert all(ms > 0 for _, ms, _ in rows)
    same = dict((r[0], r[2]) for r in rows)
    assert same["compiled"] == "yes"  # compilation patched out: the eager path itself
    assert same["cached addcmul"] in ("yes", "no")


_real_init = script.StepMaths.__init__


def _eager_init(self):
    _real_init(self, compile=False)


def test_bits_equal_sees_one_changed_bit_and_the_sign_of_zero():
    a = [torch.tensor([1.0, 2.0]), torch.tensor([0.0])]
    assert script.bits_equal(a, [t.clone() for t in a])
    b = [t.clone() for t in a]
    b[0].view(torch.int32)[1] += 1  # 2.0 and the next float up
    assert not script.bits_equal(a, b)
    assert not script.bits_equal(a[1:], [torch.tensor([-0.0])])
