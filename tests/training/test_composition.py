"""HAT inside every Avalanche strategy that compare offers: exact, or refused before training.

The matrix trains three tiny tasks with each strategy plus a HAT plugin and checks
that task 1's logits (HATPlugin) or its head (AdaHATPlugin, whose soft rates move
shared weights on purpose) are bitwise unchanged by the later tasks.
"""

import warnings

import pytest
import torch
from _data import stacked_inputs, tensor_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models.packnet import PackNetPlugin
from avalanche.training import supervised as S
from avalanche.training.plugins import (
    EvaluationPlugin,
    FromScratchTrainingPlugin,
    GDumbPlugin,
    ReplayPlugin,
)
from torch import nn

from avalanche_adahat import HAT, AdaHAT, AdaHATPlugin, HATPlugin
from avalanche_adahat.models import HATMLP, HATResNet18, convert_to_hat

warnings.filterwarnings("ignore", message="no QP solver found")


def _kw():
    return dict(
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=8,
        train_epochs=2,
        evaluator=EvaluationPlugin(loggers=[]),
    )


#: strategy name -> builder(model, optimizer, plugins)
COMPOSED = {
    "naive": lambda m, o, p: S.Naive(model=m, optimizer=o, plugins=p, **_kw()),
    "ewc": lambda m, o, p: S.EWC(model=m, optimizer=o, ewc_lambda=100.0, plugins=p, **_kw()),
    "si": lambda m, o, p: S.SynapticIntelligence(
        model=m, optimizer=o, si_lambda=1.0, plugins=p, **_kw()
    ),
    "lwf": lambda m, o, p: S.LwF(
        model=m, optimizer=o, alpha=1.0, temperature=2.0, plugins=p, **_kw()
    ),
    "mas": lambda m, o, p: S.MAS(model=m, optimizer=o, plugins=p, **_kw()),
    "replay": lambda m, o, p: S.Replay(model=m, optimizer=o, mem_size=20, plugins=p, **_kw()),
    "replay_plugin": lambda m, o, p: S.Naive(
        model=m, optimizer=o, plugins=[ReplayPlugin(mem_size=20), *p], **_kw()
    ),
    "cumulative": lambda m, o, p: S.Cumulative(model=m, optimizer=o, plugins=p, **_kw()),
    "agem": lambda m, o, p: S.AGEM(
        model=m, optimizer=o, patterns_per_exp=20, sample_size=20, plugins=p, **_kw()
    ),
    "gem": lambda m, o, p: S.GEM(model=m, optimizer=o, patterns_per_exp=20, plugins=p, **_kw()),
}

#: strategy name -> (builder, the error it raises before training)
REFUSED = {
    "gdumb": (
        lambda m, o, p: S.GDumb(model=m, optimizer=o, mem_size=20, plugins=p, **_kw()),
        "GDumbPlugin cannot be combined with HAT: it re-initialises the model",
    ),
    "gdumb_plugin": (
        lambda m, o, p: S.Naive(model=m, optimizer=o, plugins=[GDumbPlugin(20), *p], **_kw()),
        "GDumbPlugin cannot be combined with HAT",
    ),
    "from_scratch": (
        lambda m, o, p: S.Naive(
            model=m, optimizer=o, plugins=[FromScratchTrainingPlugin(), *p], **_kw()
        ),
        "FromScratchTrainingPlugin cannot be combined with HAT",
    ),
    "packnet_plugin": (
        lambda m, o, p: S.Naive(model=m, optimizer=o, plugins=[PackNetPlugin(1, 0.5), *p], **_kw()),
        "PackNetPlugin cannot be combined with HAT: it prunes",
    ),
}

PLUGINS = {
    "hat": lambda: HATPlugin(mask_sparsity_reg_factor=0.0),
    "adahat": lambda: AdaHATPlugin(adjustment_intensity=0.1, mask_sparsity_reg_factor=0.0),
}


def _head(model, task):
    return {n: p.detach().clone() for n, p in model.head.classifiers[str(task)].named_parameters()}


def _train_three_tasks(model, strategy, benchmark):
    x1 = stacked_inputs(benchmark.test_stream[0].dataset)
    strategy.train(benchmark.train_stream[0])
    model.eval()
    logits, head = model(x1, 0).detach().clone(), _head(model, 0)
    for exp in benchmark.train_stream[1:]:
        strategy.train(exp)
    model.eval()
    return (logits, head), (model(x1, 0).detach(), _head(model, 0))


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_earlier_tasks_stay_exact_in_every_composition(name, plugin, tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    strategy = COMPOSED[name](model, optimizer, [PLUGINS[plugin]()])
    (logits, head), (logits_after, head_after) = _train_three_tasks(model, strategy, tiny_benchmark)
    assert all(torch.equal(head[n], head_after[n]) for n in head)  # trained heads never move
    if plugin == "hat":
        assert torch.equal(logits, logits_after)
    assert len(model.trained_tasks()) == 3


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: torch.optim.Adam(p, lr=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    ],
    ids=["adam", "sgd_momentum_weight_decay"],
)
def test_replay_with_protect_update_is_exact_under_any_optimizer(optimizer, tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    strategy = COMPOSED["replay"](
        model, optimizer(model.parameters()), [HATPlugin(protect="update")]
    )
    (logits, head), (logits_after, head_after) = _train_three_tasks(model, strategy, tiny_benchmark)
    assert torch.equal(logits, logits_after)
    assert all(torch.equal(head[n], head_after[n]) for n in head)


def test_replay_keeps_per_task_batch_norm_of_trained_tasks_exact():
    """Replayed samples of a trained task use its frozen BatchNorm (running statistics
    unchanged) and leave its outputs bitwise as they were."""
    torch.manual_seed(0)
    benchmark = tensor_benchmark(n_features=48, shape=(3, 4, 4))
    model = HATResNet18(width=4)
    strategy = COMPOSED["replay"](
        model, torch.optim.SGD(model.parameters(), lr=0.05), [HATPlugin()]
    )
    bn = model.stem_bn
    strategy.train(benchmark.train_stream[0])
    stats = {k: v.clone() for k, v in bn.bns["0"].state_dict().items()}
    x1 = stacked_inputs(benchmark.test_stream[0].dataset)
    model.eval()
    logits = model(x1, 0).detach().clone()
    strategy.train(benchmark.train_stream[1])
    assert all(torch.equal(v, bn.bns["0"].state_dict()[k]) for k, v in stats.items())
    model.eval()
    assert torch.equal(model(x1, 0), logits)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_incompatible_strategies_are_refused_before_training(name, tiny_benchmark):
    build, match = REFUSED[name]
    model = HATMLP(8, (16, 16))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = build(model, torch.optim.SGD(model.parameters(), lr=0.1), [HATPlugin()])
    with pytest.raises(ValueError, match=match):
        strategy.train(tiny_benchmark.train_stream[0])
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_packnet_strategy_refuses_a_hat_backbone():
    model = HATMLP(8, (16, 16))
    with pytest.raises(ValueError, match="PackNet requires a model that implements PackNetModule"):
        S.PackNet(
            model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            post_prune_epochs=1, prune_proportion=0.5, plugins=[HATPlugin()], **_kw(),
        )  # fmt: skip


# ------------------------------------------------------------------ heads sized from the data


def _train_on_digits(model, digits_benchmark, tasks=2):
    strategy = HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=32,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    for exp in digits_benchmark.train_stream[:tasks]:
        strategy.train(exp)
    return strategy.eval(digits_benchmark.test_stream[:tasks])


@pytest.mark.parametrize(
    "build",
    [
        lambda: HATMLP(input_size=64, hidden_sizes=[100]),
        lambda: HATMLP(input_size=64, hidden_sizes=[100], num_classes=10),
        lambda: HATMLP(input_size=64, hidden_sizes=[100], multi_head=False),
        lambda: convert_to_hat(
            nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), input_shape=(64,)
        ),
    ],
    ids=["default", "ten_classes", "shared_head", "converted"],
)
def test_default_heads_follow_the_experience(build, digits_benchmark):
    """Split digits has 2 classes per task with class ids from 0: no head declared
    for 10 classes may break Avalanche's multi-task forward."""
    model = build()
    results = _train_on_digits(model, digits_benchmark)
    accuracies = [v for k, v in results.items() if k.startswith("Top1_Acc_Exp")]
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)


def test_default_heads_have_the_experience_classes(digits_benchmark):
    model = HATMLP(input_size=64, hidden_sizes=[100])
    _train_on_digits(model, digits_benchmark)
    assert [h.classifier.out_features for h in model.head.classifiers.values()] == [2, 2]
    shared = HATMLP(input_size=64, hidden_sizes=[100], multi_head=False)
    _train_on_digits(shared, digits_benchmark)
    assert shared.head.classifier.out_features == 2  # grows with the classes seen


# ------------------------------------------------------------------ misuse refused up front


def test_two_hat_plugins_are_refused(tiny_benchmark):
    model = HATMLP(8, (6,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    naive = S.Naive(model=model, optimizer=opt, plugins=[HATPlugin(), AdaHATPlugin()], **_kw())
    with pytest.raises(
        ValueError, match="2 HAT plugins .HATPlugin, AdaHATPlugin.; use exactly one"
    ):
        naive.train(tiny_benchmark.train_stream[0])
    with pytest.raises(ValueError, match="already includes its own .*HATPlugin"):
        AdaHAT(model=model, optimizer=opt, plugins=[HATPlugin()])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"adjustment_intensity": float("inf")}, "adjustment_intensity must be a finite number"),
        ({"adjustment_intensity": float("nan")}, "adjustment_intensity must be a finite number"),
        ({"s_max": float("inf")}, "s_max must be a finite number > 0, got inf"),
        ({"epsilon": float("inf")}, "epsilon must be a finite number"),
        ({"clip_grad_norm": float("inf")}, "clip_grad_norm must be a finite number"),
        ({"check_finite": "yes"}, "check_finite must be True or False, got 'yes'"),
        ({"check_finite": 1}, "check_finite must be True or False, got 1"),
        ({"sparsity_guard_units": 2.5}, "sparsity_guard_units must be a non-negative integer"),
    ],
)
def test_non_finite_numbers_and_non_bools_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaHATPlugin(**kwargs)


def test_optimizer_without_the_model_parameters_is_refused(tiny_benchmark):
    class KeepsItsOptimizer(S.Naive):
        def make_optimizer(self, **kwargs):  # a strategy that never rebuilds the optimizer
            pass

    model, other = HATMLP(8, (6,)), HATMLP(8, (6,))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = KeepsItsOptimizer(
        model=model, optimizer=torch.optim.SGD(other.parameters(), lr=0.1),
        plugins=[HATPlugin()], **_kw(),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"optimizer does not hold 3 .*\(layers.0.weight, "):
        strategy.train(tiny_benchmark.train_stream[0])
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)


def test_closure_only_optimizer_is_refused(tiny_benchmark):
    model = HATMLP(8, (6,))
    strategy = HAT(model=model, optimizer=torch.optim.LBFGS(model.parameters()), **_kw())
    with pytest.raises(ValueError, match="LBFGS needs a closure"):
        strategy.train(tiny_benchmark.train_stream[0])


def test_evaluating_an_untrained_task_warns_once_naming_it(tiny_benchmark):
    model = HATMLP(8, (6,))
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **_kw())
    strategy.train(tiny_benchmark.train_stream[0])
    with pytest.warns(UserWarning, match="task label 2 was never trained .trained: .0..") as seen:
        strategy.eval(tiny_benchmark.test_stream)
    (warning,) = [
        w for w in seen if "never trained" in str(w.message) and "label 2" in str(w.message)
    ]
    assert warning.filename == __file__, "the warning points at the user's eval line"
    assert "evaluate the experiences trained so far" in str(warning.message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strategy.eval(tiny_benchmark.test_stream)  # said once per task label


def test_empty_experience_is_refused_naming_it(tiny_benchmark):
    from avalanche.benchmarks import dataset_benchmark

    train = [e.dataset for e in tiny_benchmark.train_stream]
    train[1] = train[1].subset([])
    benchmark = dataset_benchmark(train, [e.dataset for e in tiny_benchmark.test_stream])
    model = HATMLP(8, (6,))
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **_kw())
    with pytest.raises(ValueError, match="experience 1 has no samples"):
        strategy.train(benchmark.train_stream[0])
