"""HAT layers (avalanche_adahat.nn.layers): the dispatcher, the wrappers, and the covered
parameters and forward passes of the backbones built from them."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from avalanche.models import SimpleMLP
from torch import nn

from avalanche_adahat import CoveredParameter, HATMask, HATModule
from avalanche_adahat.models import HATMLP, HATAlexNet, HATResNet, convert_to_hat
from avalanche_adahat.nn.layers import (
    HAT_LAYERS,
    HATConv2d,
    HATLinear,
    apply_gate,
    hat_chain,
    hat_layer_for,
)

# ---------------------------------------------------------------- the dispatcher


def test_dispatcher_picks_the_wrapper_of_each_type_and_keeps_the_layer_intact():
    linear, conv = nn.Linear(6, 4), nn.Conv2d(3, 5, 3)
    before = {k: v.clone() for k, v in linear.state_dict().items()}
    w = hat_layer_for(linear)
    assert type(w) is HATLinear and w.layer is linear and w.mask.num_units == 4
    assert w.input_mask is None and w.in_repeat == 1
    assert all(torch.equal(v, before[k]) for k, v in linear.state_dict().items())
    c = hat_layer_for(conv)
    assert type(c) is HATConv2d and c.layer is conv and c.mask.num_units == 5
    assert HAT_LAYERS == {nn.Linear: HATLinear, nn.Conv2d: HATConv2d}
    x = torch.randn(2, 6)
    assert torch.equal(w(x), linear(x))  # the wrapper does not gate


@pytest.mark.parametrize("module", [nn.Conv1d(2, 3, 1), nn.LazyLinear(3), nn.ReLU()])
def test_dispatcher_refuses_an_unsupported_type_naming_it(module):
    name = type(module).__name__
    with pytest.raises(TypeError, match=rf"no HAT layer for {name}; .*: Linear, Conv2d"):
        hat_layer_for(module)


def test_wrapper_checks():
    with pytest.raises(TypeError, match="HATLinear wraps an nn.Linear, got Conv2d"):
        HATLinear(nn.Conv2d(1, 2, 1))
    with pytest.raises(ValueError, match="the mask has 3 units"):
        HATLinear(nn.Linear(2, 4), HATMask(3))
    with pytest.raises(ValueError, match="the 8 inputs .* 3 masked units x in_repeat=2"):
        HATLinear(nn.Linear(8, 4), input_mask=HATMask(3), in_repeat=2)
    with pytest.raises(ValueError, match="grouped"):
        HATConv2d(nn.Conv2d(4, 4, 1, groups=2))
    with pytest.raises(ValueError, match="in_repeat"):
        HATLinear(nn.Linear(2, 4), in_repeat=0)


def test_hat_chain_links_input_masks_and_covered_parameters_follow():
    conv, fc1, fc2 = nn.Conv2d(3, 4, 3), nn.Linear(4 * 9, 5), nn.Linear(5, 6, bias=False)
    chain = hat_chain([conv, fc1, fc2], [1, 9])
    assert [w.input_mask for w in chain] == [None, chain[0].mask, chain[1].mask]
    assert [w.in_repeat for w in chain] == [1, 9, 1]
    names = {id(conv.weight): "c.w", id(conv.bias): "c.b", id(fc1.weight): "f1.w"}
    names |= {id(fc1.bias): "f1.b", id(fc2.weight): "f2.w"}
    covered = [cp for w in chain for cp in w.covered_parameters(names)]
    assert [(c.name, c.out_mask, c.in_mask, c.in_repeat) for c in covered] == [
        ("c.w", chain[0].mask, None, 1),
        ("c.b", chain[0].mask, None, 1),
        ("f1.w", chain[1].mask, chain[0].mask, 9),
        ("f1.b", chain[1].mask, None, 1),
        ("f2.w", chain[2].mask, chain[1].mask, 1),
    ]
    with pytest.raises(ValueError, match="not a parameter of the model"):
        chain[0].covered_parameters({})


def test_apply_gate():
    mask = HATMask(2)
    h = torch.arange(8.0).reshape(1, 2, 2, 2)
    g = torch.tensor([0.0, 2.0])
    assert torch.equal(apply_gate(h, None, mask), h)
    assert torch.equal(apply_gate(h, {mask: g}, mask), h * g.view(1, 2, 1, 1))
    flat = h.flatten(1)
    assert torch.equal(apply_gate(flat, {mask: g}, mask, 4), flat * g.repeat_interleave(4))


# ---------------------------------------------------------------- covered parameters


def _declared(model, groups):
    """What the backbones declared by hand before the HAT layers: ``groups`` lists
    ``(prefix, layers, masks, in_repeat of the group's first layer)``; each layer's
    weight reads the previous layer's mask, biases only their own mask."""
    covered, previous = [], None
    for prefix, layers, masks, first_repeat in groups:
        for i, (layer, mask) in enumerate(zip(layers, masks)):
            repeat = first_repeat if i == 0 and previous is not None else 1
            covered.append(
                CoveredParameter(f"{prefix}{i}.weight", layer.weight, mask, previous, repeat)
            )
            if layer.bias is not None:
                covered.append(CoveredParameter(f"{prefix}{i}.bias", layer.bias, mask))
            previous = mask
    return covered


def _declared_resnet(model):
    """HATResNet's hand-written list: stem, then each block's conv1, conv2, shortcut."""
    covered = [CoveredParameter("stem_conv.weight", model.stem_conv.weight, model.stem_mask)]
    in_mask = model.stem_mask
    for i, b in enumerate(model.blocks):
        p = f"blocks.{i}."
        covered.append(CoveredParameter(p + "conv1.weight", b.conv1.weight, b.mask1, in_mask))
        covered.append(CoveredParameter(p + "conv2.weight", b.conv2.weight, b.out_mask, b.mask1))
        if b.shortcut_conv is not None:
            w = b.shortcut_conv.weight
            covered.append(CoveredParameter(p + "shortcut_conv.weight", w, b.out_mask, in_mask))
        in_mask = b.out_mask
    return covered


def _fields(covered):
    return [(c.name, c.param, c.out_mask, c.in_mask, c.in_repeat) for c in covered]


@pytest.mark.parametrize(
    "build, declared",
    [
        (
            lambda: HATMLP(6, (5, 4, 3), 2),
            lambda m: _declared(m, [("layers.", m.layers, m.masks, 1)]),
        ),
        (
            lambda: HATAlexNet(3, 32, 2, channels=(2, 3, 4), fc_sizes=(5, 6)),
            lambda m: _declared(
                m,
                [
                    ("convs.", m.convs, m.conv_masks, 1),
                    ("fcs.", m.fcs, m.fc_masks, m.feature_size**2),
                ],
            ),
        ),
        (lambda: HATResNet((1, 2, 1, 1), width=2, num_classes=2), _declared_resnet),
    ],
    ids=["mlp", "alexnet", "resnet"],
)
def test_covered_parameters_from_hat_layers_equal_the_hand_written_ones(build, declared):
    model = build()
    derived = model.covered_parameters()
    assert _fields(derived) == _fields(declared(model))
    params = dict(model.named_parameters())
    assert all(params[c.name] is c.param for c in derived)
    assert [w.mask for w in model.hat_layers] == [c.out_mask for c in derived if "weight" in c.name]


def test_alexnet_first_fc_covers_h_times_w_features_per_channel():
    model = HATAlexNet(3, 32, 2, channels=(2, 3, 4), fc_sizes=(5,))
    fc = model.hat_layers[3]
    assert fc.layer is model.fcs[0] and fc.input_mask is model.conv_masks[2]
    assert fc.in_repeat == model.feature_size**2 == 4


def test_resnet_shortcut_shares_the_block_output_mask():
    model = HATResNet((1, 1, 1, 1), width=2, num_classes=2)
    block = model.blocks[1]  # stride 2: a 1x1 shortcut conv
    conv1, conv2, shortcut = block.hat_layers
    assert shortcut.layer is block.shortcut_conv and shortcut.mask is conv2.mask is block.out_mask
    assert shortcut.input_mask is conv1.input_mask is model.blocks[0].out_mask
    assert len(model.hat_masks()) == 1 + 2 * 4  # the shared mask counted once


def test_a_backbone_without_hat_layers_says_what_to_do():
    class Bare(HATModule):
        def __init__(self):
            super().__init__()
            self.mask = HATMask(2)

    with pytest.raises(NotImplementedError, match=r"Bare lists no HAT layers: set self.hat_layers"):
        Bare().covered_parameters()


# ---------------------------------------------------------------- state and copies


def test_state_dict_keys_and_parameter_order_are_the_layers_and_masks_own():
    model = HATMLP(4, (3, 2), 2)
    names = [n for n, _ in model.named_parameters()]
    assert names[:4] == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert {"masks.0.cumulative", "masks.1.summative"} <= set(model.state_dict())
    assert not any("hat_layers" in k or ".layer." in k for k in model.state_dict())


@pytest.mark.parametrize("how", ["deepcopy", "torch.save"])
def test_copies_keep_the_hat_layers_on_their_own_modules(how):
    model = HATResNet((1, 1, 1, 1), width=2, num_classes=2)
    if how == "deepcopy":
        other = copy.deepcopy(model)
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        other = torch.load(buffer, weights_only=False)
    assert other.hat_layers[0].layer is other.stem_conv
    assert other.hat_layers[1].input_mask is other.stem_mask
    params = dict(other.named_parameters())
    assert all(params[c.name] is c.param for c in other.covered_parameters())
    assert not any(c.param is p for c in other.covered_parameters() for p in model.parameters())


# ---------------------------------------------------------------- forward passes


def test_mlp_gates_after_the_relu():
    """HAT Eq. 1 as in the HAT paper's MLP: ``g * relu(W x + b)``, which differs from
    ``relu(g * (W x + b))`` in the gradient reaching a gate that is exactly 0."""
    torch.manual_seed(0)
    model = HATMLP(4, (3,), 2, multi_head=False).train()
    model.masks[0].add_task(0, "N01")
    g = torch.tensor([2.0, 0.0, 0.5], requires_grad=True)  # unit 1: a gate of exactly 0
    model.set_step_gates(0, g)
    x = torch.randn(32, 4)
    out = model(x, 0)
    out.sum().backward()
    h = model.layers[0](x).detach()
    assert torch.equal(out, model.head(g * h.relu()))
    paper = torch.autograd.grad(model.head(g * h.relu()).sum(), g)[0]
    other = torch.autograd.grad(model.head((g * h).relu()).sum(), g)[0]
    assert torch.equal(g.grad, paper) and paper[1] != 0 and other[1] == 0


def _conv_chain():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(6 * 2 * 2, 7),
        nn.Sigmoid(),
        nn.Linear(7, 3),
    )


@pytest.mark.parametrize(
    "original, shape",
    [
        (_conv_chain(), (3, 8, 8)),
        (SimpleMLP(num_classes=3, input_size=12, hidden_size=8, hidden_layers=2), (12,)),
    ],
    ids=["conv_chain", "SimpleMLP"],
)
def test_converted_forward_equals_the_original_when_every_gate_is_one(original, shape):
    original.eval()
    model = convert_to_hat(original, input_shape=shape, multi_head=False).eval()
    assert [type(w) for w in model.hat_layers] == [
        HAT_LAYERS[type(layer)] for layer in model.layers if type(layer) in HAT_LAYERS
    ]
    assert all(w.layer is not layer for w in model.hat_layers for layer in original.modules())
    x = torch.randn(4, *shape)
    with torch.no_grad():
        expected = original(x)
        assert torch.equal(model(x, 7), expected)  # task 7 never trained: no gates
        model.override_gates([torch.ones(m.num_units) for m in model.hat_masks()])
        assert torch.equal(model(x, 0), expected)  # gates of exactly 1
        model.override_gates(None)


def test_converted_gates_where_units_enter_the_next_weighted_layer():
    model = convert_to_hat(_conv_chain(), input_shape=(3, 8, 8), multi_head=False)
    assert model._mask_points == {2: (0, 1), 6: (1, 4), 8: (2, 1)}
    first, second, third = model.hat_layers
    assert (second.input_mask, second.in_repeat) == (first.mask, 1)
    assert (third.input_mask, third.in_repeat) == (second.mask, 4)


# ---------------------------------------------------------------- torchvision ResNets


def _fresh_bns_ones_gates(model):
    """Task 0's fresh BNs and gates of exactly 1: the function of the original module
    (fresh BNs too) in eval mode."""
    for bn in model.task_batch_norms():
        bn.add_task(0)
    model.override_gates([torch.ones(m.num_units) for m in model.hat_masks()])
    return model.eval()


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_converted_torchvision_resnet18_computes_the_original_function(stem):
    torchvision = pytest.importorskip("torchvision")
    original = torchvision.models.resnet18(num_classes=3)
    if stem == "cifar":
        original.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        original.maxpool = nn.Identity()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    model = convert_to_hat(original, input_shape=(3, 32, 32), multi_head=False)
    assert isinstance(model, HATResNet) and model.stem == stem and model.num_blocks == (2,) * 4
    assert not any(p is q for p in model.parameters() for q in original.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(_fresh_bns_ones_gates(model)(x, 0), original.eval()(x))
    assert all(torch.equal(v, before[k]) for k, v in original.state_dict().items())
    names = {c.name for c in model.covered_parameters()}
    assert "blocks.2.shortcut_conv.weight" in names and len(names) == 1 + 8 * 2 + 3


def test_torchvision_resnets_a_hat_resnet_does_not_have_are_refused():
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models.resnet import Bottleneck, ResNet

    with pytest.raises(TypeError, match="BasicBlocks .* got a Bottleneck"):
        convert_to_hat(ResNet(Bottleneck, [1, 1, 1, 1], num_classes=2), input_shape=(3, 32, 32))
    grouped = torchvision.models.resnet18(num_classes=2, norm_layer=lambda c: nn.GroupNorm(1, c))
    with pytest.raises(TypeError, match="BatchNorm2d, got GroupNorm"):
        convert_to_hat(grouped, input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="input_shape"):
        convert_to_hat(torchvision.models.resnet18(), input_shape=(1, 32, 32))
    with pytest.raises(ValueError, match="stem must be one of"):
        HATResNet(stem="vgg")
