"""Backbones beyond the MLP: HATAlexNet, HATResNet, convert_to_hat, per-task BatchNorm.

Everything runs on tiny widths and a few synthetic 32x32 (or 16x16) images.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from torch import nn
from torch.utils.data import TensorDataset

import avalanche_adahat
from avalanche_adahat import AdaHATPlugin, HATPlugin
from avalanche_adahat.core.functional import outer_max
from avalanche_adahat.models import (
    CONVERTIBLE_LAYERS,
    HATAlexNet,
    HATResNet,
    HATResNet18,
    HATResNet34,
    HATSequential,
    TaskBatchNorm,
    convert_to_hat,
)
from avalanche_adahat.models.resnet import HATBasicBlock

# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny convolutions: intra-op threads only add overhead (20x slower on a busy 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _dataset(x, y):
    ds = TensorDataset(x, y)
    ds.targets = y
    return ds


def _bench(n_tasks, shape, per_class_train=12, per_class_test=4, seed=0):
    """``n_tasks`` tasks of 2 classes each; a class shifts the mean of its images."""
    g = torch.Generator().manual_seed(seed)
    n_classes = 2 * n_tasks

    def make(per_class):
        y = torch.arange(n_classes).repeat_interleave(per_class)
        x = torch.randn(len(y), *shape, generator=g) + 0.5 * y.view(-1, *[1] * len(shape)).float()
        return _dataset(x, y)

    return nc_benchmark(
        make(per_class_train),
        make(per_class_test),
        n_experiences=n_tasks,
        task_labels=True,
        seed=seed,
        fixed_class_order=list(range(n_classes)),
        class_ids_from_zero_in_each_exp=True,
    )


def _tiny_alexnet(**kw):
    return HATAlexNet(3, 32, 2, channels=(4, 8, 8), fc_sizes=(16, 16), **kw)


def _tiny_resnet18(**kw):
    return HATResNet18(width=4, num_classes=2, **kw)


def _bn_sequential():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(24, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(16, 2),
    )


def _protected(model, task_label):
    """``{name: bool tensor}``: entries of each covered parameter that task ``task_label``
    uses, from its stored masks -- the entries whose ``hat`` rate is 0 afterwards."""
    out = {}
    for cp in model.covered_parameters():
        free_out = 1 - cp.out_mask.stored_mask(task_label)
        free_in = None
        if cp.in_mask is not None:
            free_in = cp.expand_in(1 - cp.in_mask.stored_mask(task_label))
        rate = outer_max(free_out, free_in, cp.param.shape).expand_as(cp.param)
        out[cp.name] = rate == 0
    return out


def _equal_on(before, after, selected):
    return torch.equal(before[selected], after[selected])


def _flip_one_bit(t, selected):
    t = t.clone()
    flat = t.view(-1).view(torch.int32)
    idx = selected.reshape(-1).nonzero()[0, 0]
    flat[idx] ^= 1
    return t


def _task_private(key, task_label):
    t = str(task_label)
    return (
        f".bns.{t}." in key
        or key.endswith(f"embeddings.{t}")
        or f"classifiers.{t}." in key
        or key.endswith(f"mask_T{t}")
        or key.endswith(f"active_units_T{t}")
    )


def _hat_strategy(model, **kw):
    return avalanche_adahat.HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
        adjustment_mode="hat",
        train_mb_size=8,
        train_epochs=2,
        evaluator=EvaluationPlugin(loggers=[]),
        **kw,
    )


def _train_and_check_exactness(model, shape, seed=0):
    """Train task 0, snapshot, train tasks 1-2, check docs/ALGORITHM.md §6. Returns the model."""
    torch.manual_seed(seed)
    bench = _bench(3, shape, seed=seed)
    strategy = _hat_strategy(model)
    strategy.train(bench.train_stream[0])
    x = torch.randn(6, *shape, generator=torch.Generator().manual_seed(123))
    model.eval()
    with torch.no_grad():
        out_before = model(x, 0).clone()
    state_before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    protected = _protected(model, 0)
    assert sum(int(p.sum()) for p in protected.values()) > 0, "task 0 uses no parameter"

    for exp in bench.train_stream[1:]:
        strategy.train(exp)

    model.eval()
    params = dict(model.named_parameters())
    changed = False
    for name, sel in protected.items():
        before, after = state_before[name], params[name].detach()
        assert _equal_on(before, after, sel), f"{name}: a parameter task 0 uses changed"
        changed |= not torch.equal(before, after)
        if sel.any():  # the comparison sees a single flipped bit
            assert not _equal_on(before, _flip_one_bit(after, sel), sel)
    assert changed, "later tasks changed no covered parameter: the check would be vacuous"
    state_after = model.state_dict()
    private = [k for k in state_before if _task_private(k, 0)]
    assert any(".bns.0." in k for k in private) or not model.task_batch_norms()
    for key in private:
        assert torch.equal(state_before[key], state_after[key]), f"{key} (task 0's own) changed"
    with torch.no_grad():
        out_after = model(x, 0)
    assert torch.equal(out_before, out_after), "task 0's outputs changed"
    return model


# ---------------------------------------------------------------- docs/ALGORITHM.md §6 exactness


def test_alexnet_hat_exactness():
    _train_and_check_exactness(_tiny_alexnet(), (3, 32, 32))


def test_resnet18_hat_exactness():
    model = _tiny_resnet18()
    assert any(b.shortcut_conv is not None for b in model.blocks)
    _train_and_check_exactness(model, (3, 32, 32))


def test_converted_sequential_hat_exactness_and_original_untouched():
    original = _bn_sequential()
    snapshot = {k: v.clone() for k, v in original.state_dict().items()}
    model = convert_to_hat(original, input_shape=(3, 16, 16))
    assert all(
        p.data_ptr() != q.data_ptr() for p in model.parameters() for q in original.parameters()
    )
    _train_and_check_exactness(model, (3, 16, 16))
    for k, v in original.state_dict().items():
        assert torch.equal(v, snapshot[k]), f"the user's module changed: {k}"


class _ResNetWithUnprotectedShortcuts(HATResNet):
    """The reference's defect: shortcut convs left out of the protection."""

    def covered_parameters(self):
        return [cp for cp in super().covered_parameters() if "shortcut" not in cp.name]


def test_exactness_check_catches_unprotected_shortcuts():
    model = _ResNetWithUnprotectedShortcuts((1, 1, 1, 1), width=4, num_classes=2)
    with pytest.raises(AssertionError, match="outputs changed"):
        _train_and_check_exactness(model, (3, 32, 32))


def test_every_backbone_parameter_is_covered_or_task_private():
    bench = _bench(1, (3, 32, 32))
    for model in (
        _tiny_alexnet(),
        _tiny_resnet18(),
        convert_to_hat(_bn_sequential(), input_shape=(3, 32, 32)),
    ):
        model.train()
        model.adaptation(bench.train_stream[0])
        covered = {cp.name for cp in model.covered_parameters()}
        params = dict(model.named_parameters())
        assert all(params[n] is cp.param for cp in model.covered_parameters() for n in [cp.name])
        rest = {n for n in params if n not in covered}
        assert rest, "heads, embeddings exist"
        for name in rest:
            assert name.startswith("head.") or ".embeddings." in name or ".bns." in name, name


# ---------------------------------------------------------------- parameter-wise measures


def _set_random_masks(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mask in model.hat_masks():
        c = (torch.rand(mask.num_units, generator=g) < 0.5).float()
        mask.cumulative.copy_(c)
        mask.summative.copy_(c * torch.randint(1, 4, (mask.num_units,), generator=g))


def _rates(model, plugin=None):
    plugin = plugin or HATPlugin()
    plugin.num_previous_tasks = 1
    return {
        r.covered.name: r.full().expand_as(r.covered.param)
        for r in plugin.current_unit_rates(model)
    }


def _check_measure(rate, u_out, u_in, in_of=lambda j: j, f=lambda p: 1 - p):
    """``rate[i, j, ...] == f(min(u_out[i], u_in[in_of(j)]))`` element by element."""
    assert rate.shape[0] == len(u_out)
    for i in range(rate.shape[0]):
        if u_in is None:
            assert torch.all(rate[i] == f(u_out[i])), i
            continue
        for j in range(rate.shape[1]):
            expected = f(min(u_out[i], u_in[in_of(j)]))
            assert torch.all(rate[i, j] == expected), (i, j)


def test_resnet_parameter_wise_measures():
    model = HATResNet((1, 1, 1, 1), width=2, num_classes=2)
    _set_random_masks(model)
    rates = _rates(model)
    cum = lambda m: m.cumulative.tolist()  # noqa: E731
    _check_measure(rates["stem_conv.weight"], cum(model.stem_mask), None)
    block_in = model.stem_mask
    for k, block in enumerate(model.blocks):
        p = f"blocks.{k}."
        _check_measure(rates[p + "conv1.weight"], cum(block.mask1), cum(block_in))
        _check_measure(rates[p + "conv2.weight"], cum(block.out_mask), cum(block.mask1))
        if block.shortcut_conv is not None:
            _check_measure(rates[p + "shortcut_conv.weight"], cum(block.out_mask), cum(block_in))
        else:
            assert p + "shortcut_conv.weight" not in rates
        block_in = block.out_mask
    assert sum("shortcut" in n for n in rates) == 3  # stages 2-4 downsample


def test_resnet_shortcut_measure_adahat():
    model = HATResNet((1, 1, 1, 1), width=2, num_classes=2)
    _set_random_masks(model, seed=1)
    plugin = AdaHATPlugin(adjustment_intensity=0.5, epsilon=0.1)
    rates = _rates(model, plugin)
    r = 0.5 / 0.1  # no per-batch sparsity given: r = intensity / epsilon
    block = model.blocks[1]
    _check_measure(
        rates["blocks.1.shortcut_conv.weight"],
        block.out_mask.summative.tolist(),
        model.blocks[0].out_mask.summative.tolist(),
        # r / (S + r), evaluated in float32 in the form the plugin uses (exactly 1 at S = 0)
        f=lambda s: 1 / (1 + torch.tensor(s, dtype=torch.float32) / r),
    )


def test_alexnet_parameter_wise_measures_and_conv_to_linear():
    model = _tiny_alexnet()
    assert model.kernel_sizes == (4, 3, 2) and model.feature_size == 2
    _set_random_masks(model)
    rates = _rates(model)
    c = [m.cumulative.tolist() for m in model.conv_masks]
    f = [m.cumulative.tolist() for m in model.fc_masks]
    _check_measure(rates["convs.0.weight"], c[0], None)
    _check_measure(rates["convs.0.bias"], c[0], None)
    _check_measure(rates["convs.1.weight"], c[1], c[0])
    _check_measure(rates["convs.2.weight"], c[2], c[1])
    # flatten is channel-major: feature j of fcs.0 belongs to channel j // (H*W) = j // 4
    assert rates["fcs.0.weight"].shape == (16, 8 * 4)
    _check_measure(rates["fcs.0.weight"], f[0], c[2], in_of=lambda j: j // 4)
    _check_measure(rates["fcs.1.weight"], f[1], f[0])
    _check_measure(rates["fcs.1.bias"], f[1], None)


def test_flatten_is_channel_major():
    # The convention in_repeat relies on: feature j of the flattened map is channel j // (H*W).
    h = torch.arange(3).view(1, 3, 1, 1).expand(2, 3, 2, 2)  # value = channel index
    channel_of = h.flatten(1)[0]
    assert channel_of.tolist() == [j // 4 for j in range(12)]


def test_converted_parameter_wise_measures():
    model = convert_to_hat(_bn_sequential(), input_shape=(3, 16, 16))
    _set_random_masks(model)
    rates = _rates(model)
    m = [mask.cumulative.tolist() for mask in model.masks]
    _check_measure(rates["layers.0.weight"], m[0], None)
    _check_measure(rates["layers.4.weight"], m[1], m[0])
    _check_measure(rates["layers.4.bias"], m[1], None)
    # AdaptiveAvgPool2d(2) -> Flatten: 6 channels x 4 positions
    _check_measure(rates["layers.8.weight"], m[2], m[1], in_of=lambda j: j // 4)


# ---------------------------------------------------------------- conversion


def _alexnet_sequential():
    return nn.Sequential(
        nn.Conv2d(3, 4, 4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.2),
        nn.Conv2d(4, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.5),
        nn.Conv2d(8, 8, 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 2),
    )


@pytest.mark.parametrize("stored", [False, True])
def test_converted_equals_hand_built_alexnet(stored):
    torch.manual_seed(0)
    converted = convert_to_hat(_alexnet_sequential(), input_shape=(3, 32, 32))
    built = _tiny_alexnet()
    conv_cov, built_cov = converted.covered_parameters(), built.covered_parameters()
    assert [tuple(c.param.shape) for c in conv_cov] == [tuple(c.param.shape) for c in built_cov]
    assert [c.in_repeat for c in conv_cov] == [c.in_repeat for c in built_cov]
    with torch.no_grad():
        for a, b in zip(conv_cov, built_cov):
            b.param.copy_(a.param)
        for model in (converted, built):
            for mask in model.hat_masks():
                mask.add_task(0, "N01")
        for a, b in zip(converted.hat_masks(), built.hat_masks()):
            b.embeddings["0"].copy_(a.embeddings["0"])
        built.head.load_state_dict(converted.head.state_dict())
    if stored:
        converted.store_task_masks(0)
        built.store_task_masks(0)
    x = torch.randn(5, 3, 32, 32)
    converted.eval(), built.eval()
    with torch.no_grad():
        assert torch.equal(converted(x, 0), built(x, 0))


def test_converted_shared_head_matches_original_without_gates():
    torch.manual_seed(0)
    original = _bn_sequential()
    with torch.no_grad():  # non-trivial BN state
        for bn in (original[1], original[9]):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    model = convert_to_hat(original, input_shape=(3, 16, 16), multi_head=False)
    assert isinstance(model, HATSequential) and isinstance(model.head, nn.Linear)
    assert torch.equal(model.head.weight, original[-1].weight)
    for i in (1, 9):
        model.layers[i].add_task(0)
        model.layers[i].bns["0"].load_state_dict(original[i].state_dict())
    x = torch.randn(4, 3, 16, 16)
    original.eval(), model.eval()
    with torch.no_grad():
        # task 5: never trained, so no gates, and the BN falls back to the newest (task 0's)
        assert torch.equal(model(x, 5), original(x))


@pytest.mark.parametrize(
    "layer, kind",
    [
        (nn.LSTM(4, 4), "LSTM"),
        (nn.Conv1d(4, 4, 1), "Conv1d"),
        (nn.LayerNorm(4), "LayerNorm"),
    ],
)
def test_convert_rejects_unsupported_layers(layer, kind):
    model = nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 2))
    with pytest.raises(TypeError) as info:
        convert_to_hat(model, input_shape=(4,))
    msg = str(info.value)
    assert f"layer 1 ({kind}" in msg
    assert "Supported layers" in msg and "Conv2d" in msg and "BatchNorm2d" in msg
    assert nn.Linear in CONVERTIBLE_LAYERS


def test_convert_traces_any_chain_of_layers_avalanche_simple_mlp_included():
    """A module tree whose forward applies its layers in turn (Avalanche's SimpleMLP:
    nested Sequentials and a view) converts like the flat Sequential of its layers."""
    from avalanche.models import SimpleMLP

    from avalanche_adahat.models.convert import layer_chain

    torch.manual_seed(0)
    original = SimpleMLP(num_classes=10, input_size=64, hidden_size=32, hidden_layers=2)
    before = {k: v.clone() for k, v in original.state_dict().items()}
    chain = layer_chain(original)
    assert [type(m).__name__ for m in chain] == [
        "Flatten", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear",
    ]  # fmt: skip
    hat = convert_to_hat(original, input_shape=(64,))
    flat = convert_to_hat(nn.Sequential(*chain), input_shape=(64,))
    assert [n for n, _ in hat.named_parameters()] == [n for n, _ in flat.named_parameters()]
    assert [c.name for c in hat.covered_parameters()] == [c.name for c in flat.covered_parameters()]
    assert len(hat.hat_masks()) == 2
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in before.items())  # untouched

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(x + self.a(x))

    with pytest.raises(TypeError, match="chain of layers.*add"):
        convert_to_hat(Residual(), input_shape=(4,))


class _TutorialNet(nn.Module):
    """The PyTorch tutorial's CIFAR CNN ("Training a classifier"), narrower: functional
    activations, pooling and dropout, ``torch.flatten(x, 1)``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 5)
        self.conv2 = nn.Conv2d(4, 6, 5)
        self.fc1 = nn.Linear(6 * 5 * 5, 16)
        self.fc2 = nn.Linear(16, 12)
        self.fc3 = nn.Linear(12, 2)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), (2, 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, 0.1, self.training)
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def _tutorial_modules(net):
    """The module form of :class:`_TutorialNet`, sharing its layers."""
    return nn.Sequential(
        net.conv1, nn.ReLU(), nn.MaxPool2d(2), net.conv2, nn.ReLU(), nn.MaxPool2d((2, 2)),
        nn.Flatten(), net.fc1, nn.ReLU(), nn.Dropout(0.1), net.fc2, nn.ReLU(), net.fc3,
    )  # fmt: skip


def test_tutorial_style_cnn_converts_like_its_module_form_and_keeps_earlier_tasks_bitwise():
    torch.manual_seed(0)
    original = _TutorialNet()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    model = convert_to_hat(original, input_shape=(3, 32, 32))
    modules = convert_to_hat(_tutorial_modules(original), input_shape=(3, 32, 32))
    assert [repr(m) for m in model.layers] == [repr(m) for m in modules.layers]
    assert model._mask_points == modules._mask_points
    assert [c.name for c in model.covered_parameters()] == [
        c.name for c in modules.covered_parameters()
    ]
    _train_and_check_exactness(model, (3, 32, 32))
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in before.items())


class _Functional(nn.Module):
    """conv -> ``between`` -> Linear -> ``after`` -> Linear, the calls written by the test."""

    def __init__(self, between, after, flat=4 * 2 * 2):
        super().__init__()
        self.conv, self.fc, self.head = nn.Conv2d(3, 4, 3), nn.Linear(flat, 5), nn.Linear(5, 3)
        self.between, self.after = between, after

    def forward(self, x):
        return self.head(self.after(self.fc(self.between(self.conv(x)))))


FORMS = {
    "torch.relu, x.view(x.size(0), -1)": (
        lambda x: torch.relu(F.max_pool2d(x, 2)).view(x.size(0), -1),
        lambda x: x.relu(),
    ),
    "F.gelu, F.avg_pool2d, x.reshape(x.shape[0], -1)": (
        lambda x: F.avg_pool2d(F.gelu(x), kernel_size=2).reshape(x.shape[0], -1),
        lambda x: F.gelu(x, approximate="tanh"),
    ),
    "F.leaky_relu, F.adaptive_avg_pool2d, x.flatten(1)": (
        lambda x: F.adaptive_avg_pool2d(F.leaky_relu(x, 0.2), 2).flatten(1),
        lambda x: torch.sigmoid(F.dropout(x, p=0.3, training=False)),
    ),
    "F.elu, F.dropout2d, x.view(-1, 16)": (
        lambda x: F.max_pool2d(F.dropout2d(F.elu(x, alpha=0.5), 0.2, False), 2, 2).view(-1, 16),
        lambda x: torch.tanh(F.hardtanh(x, -2.0, 2.0)),
    ),
}


@pytest.mark.parametrize("name", list(FORMS))
def test_functional_forms_convert_to_the_module_forms(name):
    """The converted model computes the original function (no gates for an untrained
    task; eval mode), for each functional form."""
    torch.manual_seed(0)
    original = _Functional(*FORMS[name]).eval()
    model = convert_to_hat(original, input_shape=(3, 6, 6), multi_head=False).eval()
    assert len(model.hat_masks()) == 2
    assert all(type(m) in CONVERTIBLE_LAYERS for m in model.layers)
    x = torch.randn(5, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(model(x, 7), original(x))


@pytest.mark.parametrize(
    "between, after, match",
    [
        (lambda x: torch.flatten(x), lambda x: x, r"torch.flatten\(\).*start_dim=0.*torch.flatten\(x, 1\)"),
        (lambda x: x.view(x.size(0), 4, -1), lambda x: x, r"x.view\(\).*\(3, 4, 16\).*torch.flatten\(x, 1\)"),
        (lambda x: x.flatten(1), lambda x: F.log_softmax(x, dim=1), r"F.log_softmax\(\).*remove it.*CrossEntropyLoss"),
        (lambda x: x.flatten(1), lambda x: torch.cat([x, x], 1), r"torch.cat\(\).*branch.*Adding a backbone"),
        (lambda x: x.flatten(1), lambda x: x * 2, r"the operator 'mul'.*not a layer.*functional forms"),
        (lambda x: x.flatten(1), lambda x: F.dropout(x, p=x.mean().item() if False else x.size(1) / 10), r"argument computed in the forward.*constant"),
    ],
    ids=["flatten-batch", "view-3d", "log_softmax", "cat", "mul", "computed-arg"],
)  # fmt: skip
def test_functional_forms_it_cannot_convert_say_what_to_write_instead(between, after, match):
    model = _Functional(between, after, flat=4 * 4 * 4)
    with pytest.raises(TypeError, match=match):
        convert_to_hat(model, input_shape=(3, 6, 6))


def test_a_weighted_layer_called_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(F.relu(self.a(F.relu(self.a(x)))))

    with pytest.raises(TypeError, match="'a' is called a second time.*its own module"):
        convert_to_hat(Twice(), input_shape=(4,))


def test_convert_rejects_bad_configurations():
    with pytest.raises(ValueError, match="at least one Linear or Conv2d"):
        convert_to_hat(nn.Linear(4, 2), input_shape=(4,))  # a head and nothing to mask
    with pytest.raises(ValueError, match=r"layer 0 \(Linear.*2-d inputs.*Flatten"):
        convert_to_hat(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), input_shape=(3, 4, 4))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d.*groups=2"):
        convert_to_hat(
            nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(4, 2)),
            input_shape=(4, 3, 3),
        )
    with pytest.raises(ValueError, match="must be an nn.Linear"):
        convert_to_hat(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), input_shape=(4,))
    with pytest.raises(ValueError, match="at least one Linear or Conv2d"):
        convert_to_hat(nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), input_shape=(4,))
    with pytest.raises(ValueError, match=r"layer 1 \(Linear.*does not fit"):
        convert_to_hat(nn.Sequential(nn.Linear(4, 5), nn.Linear(4, 2)), input_shape=(4,))
    with pytest.raises(ValueError, match="input_shape"):
        convert_to_hat(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), input_shape=(0,))
    model = convert_to_hat(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), input_shape=(4,))
    with pytest.raises(ValueError, match="expects inputs of shape"):
        model(torch.randn(2, 5), 0)


# ---------------------------------------------------------------- constructors, per-task BN


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: HATAlexNet(input_size=11), "input_size=11"),
        (lambda: HATAlexNet(in_channels=0), "in_channels"),
        (lambda: HATAlexNet(channels=(4, 8)), "channels"),
        (lambda: HATAlexNet(fc_sizes=()), "fc_sizes"),
        (lambda: HATAlexNet(dropout=1.0), "dropout"),
        (lambda: HATAlexNet(multi_head="yes"), "multi_head"),
        (lambda: HATResNet((2, 2, 2)), "num_blocks"),
        (lambda: HATResNet18(width=0), "width"),
        (lambda: HATResNet34(num_classes=-1), "num_classes"),
    ],
)
def test_constructor_validation(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_shapes_and_heads():
    x = torch.randn(2, 1, 28, 28)
    grey = HATAlexNet(1, 28, 3, channels=(2, 2, 2), fc_sizes=(4,))
    assert grey.kernel_sizes == (3, 2, 2) and grey(x, 0).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        grey(torch.randn(2, 3, 32, 32), 0)
    shared = _tiny_resnet18(multi_head=False)
    assert isinstance(shared.head, nn.Linear) and shared(torch.randn(2, 3, 32, 32), 0).shape == (
        2,
        2,
    )
    assert HATResNet34(width=1).num_blocks == (3, 4, 6, 3)
    assert isinstance(_tiny_resnet18().blocks[0], HATBasicBlock)


def test_task_batch_norm_fallback_and_state_dict():
    torch.manual_seed(0)
    bn = TaskBatchNorm(3)
    x = torch.randn(4, 3, 2, 2)
    bn.eval()
    assert torch.allclose(bn(x, 0), x / math.sqrt(1 + 1e-5))  # none created: a fresh BN
    bn.train()
    for t in (0, 1):
        bn.add_task(t)
        bn(x + t, t)  # different running statistics per task
    bn.eval()
    assert not torch.equal(bn(x, 0), bn(x, 1))
    assert torch.equal(bn(x, 7), bn(x, 1))  # unknown label: the newest BN
    fresh = TaskBatchNorm(3)
    fresh.load_state_dict(bn.state_dict())
    fresh.eval()
    assert torch.equal(fresh(x, 0), bn(x, 0)) and torch.equal(fresh(x, 1), bn(x, 1))
    with pytest.raises(ValueError, match="num_features"):
        TaskBatchNorm(0)


def test_bn_created_per_task_in_training_only():
    bench = _bench(2, (3, 32, 32))
    model = _tiny_resnet18()
    model.eval()
    model.adaptation(bench.train_stream[0])
    assert all(len(bn.bns) == 0 for bn in model.task_batch_norms())
    model.train()
    for exp in bench.train_stream:
        model.adaptation(exp)
    assert all(list(bn.bns.keys()) == ["0", "1"] for bn in model.task_batch_norms())


# ---------------------------------------------------------------- AdaHAT training runs


@pytest.mark.parametrize("factory", [_tiny_alexnet, _tiny_resnet18], ids=["alexnet", "resnet18"])
def test_adahat_short_run(factory):
    torch.manual_seed(0)
    model = factory()
    bench = _bench(2, (3, 32, 32))
    strategy = avalanche_adahat.AdaHAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        adjustment_intensity=0.1,
        train_mb_size=8,
        train_epochs=1,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]),
    )
    for exp in bench.train_stream:
        strategy.train(exp)
    results = strategy.eval(bench.test_stream)
    stream = [k for k in results if k.startswith("Top1_Acc_Stream/eval_phase/test_stream")]
    assert len(stream) == 1 and 0.0 <= results[stream[0]] <= 1.0
    for t in (0, 1):
        acc = results[f"Top1_Acc_Exp/eval_phase/test_stream/Task00{t}/Exp00{t}"]
        assert 0.0 <= acc <= 1.0
    assert model.trained_tasks() == [0, 1]
    capacity = strategy.hat_plugin.network_capacity(model)
    assert torch.isfinite(torch.as_tensor(capacity))


def test_resnet_checkpoint_round_trip():
    # Per-task BNs and masks of a checkpoint are recreated in a fresh backbone.
    torch.manual_seed(0)
    model = _tiny_resnet18(multi_head=False)
    bench = _bench(1, (3, 32, 32))
    strategy = _hat_strategy(model)
    strategy.train(bench.train_stream[0])
    fresh = _tiny_resnet18(multi_head=False)
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x, 0), model(x, 0))
    assert fresh.trained_tasks() == [0]
