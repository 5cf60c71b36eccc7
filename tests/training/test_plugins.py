"""HATPlugin / AdaHATPlugin inside Avalanche: rates, exactness, validation."""

import io
import warnings

import pytest
import torch
from _data import protected_entries, stacked_inputs, tensor_benchmark
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.logging import InteractiveLogger, TextLogger
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.supervised import Naive

from avalanche_adahat import HAT, AdaHAT, AdaHATPlugin, HATPlugin
from avalanche_adahat.core import functional as F
from avalanche_adahat.models import HATMLP

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
}


def _quiet():
    return EvaluationPlugin(loggers=[])


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_hat_leaves_task1_parameters_and_predictions_bitwise_unchanged(optimizer, tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16), 2)
    strategy = HAT(
        model=model,
        optimizer=OPTIMIZERS[optimizer](model.parameters()),
        train_mb_size=8,
        train_epochs=3,
        evaluator=_quiet(),
        mask_sparsity_reg_factor=0.0,  # keep masks dense: many protected weights
    )
    stream = tiny_benchmark.train_stream
    x1 = stacked_inputs(tiny_benchmark.test_stream[0].dataset)
    strategy.train(stream[0])
    model.eval()
    outputs_before = model(x1, 0).detach().clone()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    protected = protected_entries(model)
    assert sum(int(m.sum()) for m in protected.values()) > 100
    strategy.train(stream[1])
    strategy.train(stream[2])
    model.eval()
    moved = 0
    for cp in model.covered_parameters():
        p, before, keep = cp.param.detach(), params[cp.name], protected[cp.name]
        assert torch.equal(p[keep], before[keep]), cp.name  # bit-for-bit
        moved += int((p[~keep] != before[~keep]).sum())
    assert moved > 0  # later tasks did train the free parameters
    head0 = {n: p for n, p in model.named_parameters() if n.startswith("head.classifiers.0.")}
    assert all(torch.equal(p, params[n]) for n, p in head0.items())
    assert torch.equal(model(x1, 0), outputs_before)


def test_a_single_flipped_bit_is_detected(tiny_benchmark):
    """The comparison used above is sensitive to the last bit of one weight."""
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16), 2)
    HAT(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), evaluator=_quiet()
    ).train(tiny_benchmark.train_stream[0])
    keep = protected_entries(model)["layers.1.weight"]
    w = model.layers[1].weight.detach()
    before = w.clone()
    idx = keep.nonzero()[0].tolist()
    w[tuple(idx)] = torch.nextafter(w[tuple(idx)], torch.tensor(float("inf")))
    assert not torch.equal(w[keep], before[keep])


class _GradRecorder(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.grads = []

    def before_update(self, strategy, **kwargs):
        self.grads.append({n: p.grad.clone() for n, p in strategy.model.named_parameters()
                           if p.grad is not None})  # fmt: skip


def _expected_rate(plugin, model, cp, before):
    """Element by element from the definitions of docs/ALGORITHM.md §3 (parameter-wise min).

    ``before`` maps each mask to its (cumulative, summative) masks during the task.
    """
    masks = model.hat_masks()
    layer = masks.index(cp.out_mask)
    mode = plugin.adjustment_mode
    if mode in ("adahat", "adahat_no_sum"):
        r = plugin.adjustment_intensity / (plugin.epsilon + plugin.layer_sparsity[layer].item())
    elif mode == "adahat_no_reg":
        r = plugin.adjustment_intensity / plugin.epsilon
    else:
        r = None  # the HAT modes have no r
    rate = torch.empty(cp.param.shape)
    for idx in torch.cartesian_prod(*[torch.arange(s) for s in cp.param.shape]).reshape(
        -1, cp.param.dim()
    ):
        i = idx[0].item()
        cum, summ = before[id(cp.out_mask)]
        m, s = cum[i].item(), summ[i].item()
        if cp.in_mask is not None:
            j = idx[1].item()
            cum, summ = before[id(cp.in_mask)]
            m, s = min(m, cum[j].item()), min(s, summ[j].item())
        if mode == "hat":
            a = 1 - m
        elif mode == "hat_const_alpha":
            a = plugin.alpha if m == 1 else 1.0
        elif mode == "hat_const_1":
            a = 1.0
        elif mode in ("adahat", "adahat_no_reg"):
            a = r / (s + r)
        elif mode == "adahat_no_sum":
            a = r / (plugin.num_previous_tasks + r) if m == 1 else 1.0
        rate[tuple(idx.tolist())] = a
    return rate


PLUGINS = {
    "hat": lambda: HATPlugin(adjustment_mode="hat"),
    "hat_const_alpha": lambda: HATPlugin(adjustment_mode="hat_const_alpha", alpha=0.3),
    "hat_const_1": lambda: HATPlugin(adjustment_mode="hat_const_1"),
    # protect="gradient": these tests read the adjusted gradients (docs/ALGORITHM.md §3)
    "adahat": lambda: AdaHATPlugin(
        adjustment_intensity=0.05, sparsity_guard_units=0, protect="gradient"
    ),
    "adahat_no_sum": lambda: AdaHATPlugin(
        adjustment_mode="adahat_no_sum",
        adjustment_intensity=0.05,
        sparsity_guard_units=0,
        protect="gradient",
    ),  # fmt: skip
    "adahat_no_reg": lambda: AdaHATPlugin(
        adjustment_mode="adahat_no_reg", adjustment_intensity=0.05, protect="gradient"
    ),
}


@pytest.mark.parametrize("mode", sorted(PLUGINS))
def test_rates_follow_spec_in_every_mode(mode, tiny_benchmark):
    """Plugins in a plain Naive strategy: rates 1 on task 1, then as in docs/ALGORITHM.md §3."""
    torch.manual_seed(0)
    model = HATMLP(8, (6, 5), 2)
    raw, hat, adjusted = _GradRecorder(), PLUGINS[mode](), _GradRecorder()
    strategy = Naive(
        model=model,
        # momentum: the gradients themselves are scaled (under plain SGD the rates are
        # applied inside the optimizer's step instead, tests/core/test_step.py)
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5),
        train_mb_size=16,
        plugins=[raw, hat, adjusted],
        evaluator=_quiet(),
    )
    strategy.train(tiny_benchmark.train_stream[0])
    covered = model.covered_parameters()
    for before, after in zip(raw.grads, adjusted.grads):  # task 1: every rate is 1
        for cp in covered:
            assert torch.equal(before[cp.name], after[cp.name])
    assert hat.network_capacity(model).item() == 1.0
    raw.grads.clear(), adjusted.grads.clear()
    before = {id(m): (m.cumulative.clone(), m.summative.clone()) for m in model.hat_masks()}
    strategy.train(tiny_benchmark.train_stream[1])  # the last batch's state is still in the plugin
    for cp in covered:
        expected = raw.grads[-1][cp.name] * _expected_rate(hat, model, cp, before)
        torch.testing.assert_close(adjusted.grads[-1][cp.name], expected, rtol=1e-5, atol=1e-12)
    heads = [n for n in raw.grads[-1] if n.startswith("head.")]
    assert heads and all(torch.equal(raw.grads[-1][n], adjusted.grads[-1][n]) for n in heads)


def test_summative_mask_counts_tasks_per_unit(tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (6, 5), 2)
    strategy = AdaHAT(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), evaluator=_quiet()
    )
    for exp in tiny_benchmark.train_stream:
        strategy.train(exp)
    for mask in model.hat_masks():
        stored = torch.stack([mask.stored_mask(t) for t in range(3)])
        assert torch.equal(mask.summative, stored.sum(0))
        assert torch.equal(mask.cumulative, stored.amax(0))
    assert model.trained_tasks() == [0, 1, 2]


def test_annealing_uses_one_based_batches(tiny_benchmark):
    seen = []
    hat = HATPlugin(s_max=10.0)

    class Spy(SupervisedPlugin):
        def before_forward(self, strategy, **kwargs):
            seen.append(hat.s)

    model = HATMLP(8, (6,), 2)
    Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,  # 48 samples: 3 batches per epoch
        train_epochs=2,
        plugins=[hat, Spy()],
        evaluator=_quiet(),
    ).train(tiny_benchmark.train_stream[0])
    expected = [0.1, 0.1 + 9.9 / 2, 10.0]
    assert seen == pytest.approx(expected * 2)


def test_protect_update_keeps_hat_exact_under_adamw(tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16,), 2)
    strategy = HAT(
        model=model,
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2),
        protect="update",
        evaluator=_quiet(),
        train_mb_size=8,
    )
    strategy.train(tiny_benchmark.train_stream[0])
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    keep = protected_entries(model)
    strategy.train(tiny_benchmark.train_stream[1])
    for cp in model.covered_parameters():
        assert torch.equal(cp.param[keep[cp.name]], params[cp.name][keep[cp.name]])


def test_gradient_mode_warns_about_weight_decay(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    strategy = HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4),
        evaluator=_quiet(),
    )
    with pytest.warns(UserWarning, match="weight decay.*protect='update'"):
        strategy.train(tiny_benchmark.train_stream[0])


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"adjustment_mode": "adahat"}, r"adjustment_mode must be one of .*'hat'.*got 'adahat'"),
        ({"s_max": 0}, "s_max must be a finite number > 0, got 0"),
        ({"clamp_threshold": -1}, "clamp_threshold"),
        ({"mask_sparsity_reg_factor": -0.1}, "mask_sparsity_reg_factor"),
        ({"mask_sparsity_reg_mode": "sum"}, "mask_sparsity_reg_mode must be one of"),
        ({"task_embedding_init_mode": "xavier"}, "task_embedding_init_mode must be one of"),
        ({"adjustment_mode": "hat_const_alpha"}, "alpha must be a number in .0, 1."),
        ({"adjustment_mode": "hat_const_alpha", "alpha": 2.0}, "alpha must be a number in"),
        ({"alpha": 0.5}, "alpha is only used by adjustment_mode='hat_const_alpha'"),
        ({"protect": "weights"}, "protect must be one of"),
        ({"embedding_clamp": 0}, "embedding_clamp"),
    ],
)
def test_hat_plugin_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HATPlugin(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"adjustment_mode": "hat"}, "adjustment_mode must be one of .*'adahat'"),
        ({"adjustment_intensity": 0}, "adjustment_intensity must be a finite number > 0, got 0"),
        ({"adjustment_intensity": -1e-6}, "adjustment_intensity"),
        ({"epsilon": 0.0}, "epsilon must be a finite number > 0"),
    ],
)
def test_adahat_plugin_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaHATPlugin(**kwargs)


def test_strategies_validate_before_training():
    model = HATMLP(8, (6,), 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="adjustment_intensity"):
        AdaHAT(model=model, optimizer=opt, adjustment_intensity=-1.0)
    plain = torch.nn.Sequential(torch.nn.Linear(8, 2))
    with pytest.raises(TypeError, match="HAT backbone.*got Sequential"):
        HAT(model=plain, optimizer=torch.optim.SGD(plain.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="unexpected keyword argument: s_maxx"):
        HAT(model=model, optimizer=opt, s_maxx=3)


@pytest.mark.parametrize(
    "name, value", [("train_epochs", 0), ("train_epochs", -1), ("train_mb_size", 0)]
)
def test_an_empty_training_schedule_is_refused_up_front(name, value, tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    match = f"{name} must be a positive integer .at least 1., got {value}"
    with pytest.raises(ValueError, match=match):
        HAT(model=model, optimizer=opt, **{name: value})
    # a plugin inside Avalanche's strategy, or a value changed after construction
    strategy = Naive(model=model, optimizer=opt, plugins=[HATPlugin()], evaluator=_quiet())
    setattr(strategy, name, value)
    with pytest.raises(ValueError, match=match):
        strategy.train(tiny_benchmark.train_stream[0])
    assert model.trained_tasks() == []
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_labels_outside_a_fixed_head_are_refused_up_front():
    three_classes = tensor_benchmark(n_classes=3)  # labels 0, 1, 2 in every experience
    model = HATMLP(8, (6,), 2, multi_head=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   evaluator=_quiet())  # fmt: skip
    with pytest.raises(
        ValueError,
        match=r"experience 0 has class labels \[2\] outside the model's fixed head of 2 "
        r"outputs .*num_classes of at least 3",
    ):
        strategy.train(three_classes.train_stream[0])
    assert model.trained_tasks() == []
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    fits = HATMLP(8, (6,), 3, multi_head=False)
    strategy = HAT(model=fits, optimizer=torch.optim.SGD(fits.parameters(), lr=0.1),
                   evaluator=_quiet())  # fmt: skip
    strategy.train(three_classes.train_stream[0])
    assert fits.trained_tasks() == [0]


class _StopBeforeAnyStep(SupervisedPlugin):
    def before_training_epoch(self, strategy, **kwargs):
        strategy.stop_training()


def test_no_masks_are_stored_for_a_task_that_took_no_step(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    stopper = _StopBeforeAnyStep()
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   plugins=[stopper], evaluator=_quiet())  # fmt: skip
    with pytest.warns(UserWarning, match="task 0 took no optimizer step.*not stored") as seen:
        strategy.train(tiny_benchmark.train_stream[0])
    assert [w.filename for w in seen if "no optimizer step" in str(w.message)] == [__file__]
    assert model.trained_tasks() == []
    assert all(m.cumulative.sum() == 0 for m in model.hat_masks())
    strategy.plugins.remove(stopper)
    strategy.train(tiny_benchmark.train_stream[0])  # not refused as "already trained"
    assert model.trained_tasks() == [0]


def test_a_short_schedule_is_hinted_once_naming_the_task_and_the_fix(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   train_mb_size=16, train_epochs=2, evaluator=_quiet())  # fmt: skip
    with pytest.warns(UserWarning, match="task 0 trains for 6 optimizer steps") as seen:
        strategy.train(tiny_benchmark.train_stream[0])  # 48 samples: 3 minibatches x 2
    (hint,) = [w for w in seen if "optimizer steps" in str(w.message)]
    assert hint.filename == __file__
    assert "train_epochs=27 at this minibatch size" in str(hint.message)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*optimizer steps")
        strategy.train(tiny_benchmark.train_stream[1])  # said once


def test_a_long_enough_schedule_gives_no_hint(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   train_mb_size=4, train_epochs=7, evaluator=_quiet())  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*optimizer steps")
        strategy.train(tiny_benchmark.train_stream[0])  # 12 minibatches x 7 = 84 steps
    assert strategy.hat_plugin.task_steps == 84


def test_plugin_on_model_without_masks_fails_before_training(tiny_benchmark):
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    strategy = Naive(
        model=plain,
        optimizer=torch.optim.SGD(plain.parameters(), lr=0.1),
        plugins=[HATPlugin()],
        evaluator=_quiet(),
    )
    with pytest.raises(TypeError, match="HAT backbone"):
        strategy.train(tiny_benchmark.train_stream[0])


def test_experiences_without_task_labels_are_rejected():
    """A class-incremental stream is refused at its first experience, before anything moves."""
    class_incremental = tensor_benchmark(task_labels=False)
    model = HATMLP(8, (6,), 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   evaluator=_quiet())  # fmt: skip
    with pytest.raises(
        ValueError, match="experience 1 .* task label 0, as experience 0 has.*task-incremental"
    ):
        strategy.train(class_incremental.train_stream[0])
    after = dict(model.named_parameters())
    assert before.keys() == after.keys()  # no embedding or head was added
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_retraining_a_task_label_is_rejected(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   evaluator=_quiet())  # fmt: skip
    strategy.train(tiny_benchmark.train_stream[0])
    before = [m.cumulative.clone() for m in model.hat_masks()]
    with pytest.raises(ValueError, match="task label 0 of experience 0 was already trained"):
        strategy.train(tiny_benchmark.train_stream[0])
    assert all(torch.equal(a, m.cumulative) for a, m in zip(before, model.hat_masks()))


def test_non_finite_loss_stops_before_corrupting(tiny_benchmark):
    model = HATMLP(8, (6,), 2)
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   evaluator=_quiet())  # fmt: skip
    strategy.train(tiny_benchmark.train_stream[0])
    with torch.no_grad():
        model.layers[0].weight[0, 0] = float("nan")
    masks = [m.cumulative.clone() for m in model.hat_masks()]
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        strategy.train(tiny_benchmark.train_stream[1])
    assert all(torch.equal(a, m.cumulative) for a, m in zip(masks, model.hat_masks()))


# ------------------------------------------------------------------ integration


def test_strategies_with_avalanche_evaluation_and_loggers(digits_benchmark):
    text = io.StringIO()
    torch.manual_seed(0)
    model = HATMLP(64, (32, 32), 2)
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        loggers=[InteractiveLogger(), TextLogger(text)],
    )
    strategy = AdaHAT(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        train_mb_size=64,
        evaluator=evaluator,
    )
    for exp in digits_benchmark.train_stream[:2]:
        strategy.train(exp)
        strategy.eval(digits_benchmark.test_stream[:2])
    metrics = evaluator.get_all_metrics()
    assert any(k.startswith("Top1_Acc_Stream/eval_phase/test_stream") for k in metrics)
    assert any(k.startswith("StreamForgetting/eval_phase/test_stream") for k in metrics)
    assert "Top1_Acc_Exp/eval_phase/test_stream/Task001/Exp001" in text.getvalue()


def test_split_digits_hat_has_no_forgetting_and_adahat_little():
    """The demo (plain SGD lr 0.1, evaluating the tasks trained so far): HAT forgets
    nothing, AdaHAT (its SGD defaults: every unit on at a task's start, regulariser factor
    0.75, intensity 20 per task) little. Seeds 0-3, forgetting: AdaHAT -0.000, 0.009, 0.002,
    0.002; Naive 0.005, 0.035, 0.037, 0.007; accuracy: HAT 0.993, 0.993, 0.991, 0.985;
    AdaHAT 0.994, 0.985, 0.987, 0.987; Naive 0.993, 0.965, 0.961, 0.991."""
    from avalanche_adahat.demo import run_demo

    results = run_demo(seed=0)
    assert results["HAT"]["forgetting"] == 0.0
    assert abs(results["AdaHAT"]["forgetting"]) < 0.01
    assert all(r["avg_acc"] > 0.95 for r in results.values())


@pytest.mark.parametrize(
    "make_optimizer, protect, expected",
    [
        (lambda p: torch.optim.SGD(p, lr=0.1), "gradient", 1e-2),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), "update", 1e-2),
        (lambda p: torch.optim.Adam(p), "gradient", 1e-7),
        (lambda p: torch.optim.AdamW(p), "update", 1e-2),
    ],
)
def test_default_intensity_follows_the_measured_sweep(
    make_optimizer, protect, expected, tiny_benchmark
):
    model = HATMLP(8, (6,), 2)
    plugin = AdaHATPlugin(protect=protect, intensity_per="step")  # the per-step table
    Naive(
        model=model,
        optimizer=make_optimizer(model.parameters()),
        plugins=[plugin],
        evaluator=_quiet(),
    ).train(tiny_benchmark.train_stream[0])
    assert plugin.adjustment_intensity == expected
    explicit = AdaHATPlugin(adjustment_intensity=3e-4)
    Naive(
        model=HATMLP(8, (6,), 2),
        optimizer=torch.optim.Adam(model.parameters()),
        plugins=[explicit],
        evaluator=_quiet(),
    )
    assert explicit.adjustment_intensity == 3e-4


def test_embedding_clamp_bounds_the_training_task_embedding(tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (6, 5), 2)
    HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        embedding_clamp=0.5,
        evaluator=_quiet(),
    ).train(tiny_benchmark.train_stream[0])
    for mask in model.hat_masks():
        assert mask.embeddings["0"].abs().max().item() <= 0.5


class _StepRecorder(SupervisedPlugin):
    """The loss at ``before_backward`` and, at ``before_update``, every task embedding's
    value and gradient, for the last step."""

    def __init__(self):
        super().__init__()
        self.loss = self.embeddings = None

    def before_backward(self, strategy, **kwargs):
        self.loss = strategy.loss.detach().clone()

    def before_update(self, strategy, **kwargs):
        self.embeddings = [
            (e.detach().clone(), e.grad.clone())
            for m in strategy.model.hat_masks()
            for e in [m.embeddings[str(strategy.experience.task_label)]]
        ]


@pytest.mark.parametrize("mode", ["original", "cross"])
def test_regulariser_and_embedding_compensation_in_a_training_step(mode, tiny_benchmark):
    """Inside Avalanche, on task 2: the loss gains ``c * total sparsity`` of the step's gates
    (HAT Eq. 5, Sec. 2.6) and each mask's embedding gradient is scaled by
    ``s_max / s * (cosh(clamp(s e, -c, c)) + 1) / (cosh(e) + 1)`` (HAT Sec. 2.5)."""
    torch.manual_seed(0)
    model = HATMLP(8, (12, 14), 2)
    plugin = HATPlugin(mask_sparsity_reg_mode=mode, sparsity_guard_units=0, clamp_threshold=3.0)
    raw, adjusted = _StepRecorder(), _StepRecorder()
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,
        plugins=[raw, plugin, adjusted],
        evaluator=_quiet(),
    )
    strategy.train(tiny_benchmark.train_stream[0])
    cumulative = [m.cumulative.clone() for m in model.hat_masks()]
    assert 0 < torch.cat(cumulative).sum() < torch.cat(cumulative).numel()
    strategy.train(tiny_benchmark.train_stream[1])
    s, s_max = plugin.s, plugin.s_max  # the last step's scale
    e64 = [e.double() for e, _ in raw.embeddings]
    gates = [torch.sigmoid(s * e) for e in e64]
    total, _ = F.network_sparsity(gates, [c.double() for c in cumulative], mode, 0)
    torch.testing.assert_close(
        adjusted.loss.double(), raw.loss.double() + 0.75 * total, rtol=1e-6, atol=1e-6
    )
    for (e, grad), (_, compensated) in zip(raw.embeddings, adjusted.embeddings):
        x = e.double()
        factor = s_max / s * (torch.cosh((s * x).clamp(-3.0, 3.0)) + 1) / (torch.cosh(x) + 1)
        torch.testing.assert_close(compensated.double(), grad.double() * factor, rtol=1e-5, atol=0)


# ------------------------------------------------------------------ subnormal floats


def _is_subnormal(t):
    return bool(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).any())


class _SubnormalProbe(SupervisedPlugin):
    """First plugin: pushes half of each mask's embedding where ``sigmoid(s e)`` is a
    float32 subnormal at ``s = s_max``; records gated activations and gradients."""

    def __init__(self):
        super().__init__()
        self.tensors = []

    def before_training_iteration(self, strategy, **kwargs):
        with torch.no_grad():
            for m in strategy.model.hat_masks():
                e = m.embeddings[str(strategy.experience.task_label)]
                e[
                    : len(e) // 2
                ] = -0.2  # s e = -80: gates about 2e-35, times activations < 1e-3: subnormal
        if not hasattr(self, "hook"):
            self.hook = strategy.model.dropout.register_forward_hook(
                lambda mod, inp, out: self.tensors.append(out.detach().clone())
            )

    def after_backward(self, strategy, **kwargs):
        self.tensors += [p.grad.clone() for p in strategy.model.parameters() if p.grad is not None]


def test_a_training_step_with_subnormal_gates_has_no_subnormal_values(tiny_benchmark):
    from avalanche_adahat.core.subnormals import flush_subnormals_is_on

    gate = torch.sigmoid(400 * torch.full((1,), -0.2))
    assert _is_subnormal(gate * 1e-4)  # outside the step
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16), 2)
    probe = _SubnormalProbe()
    strategy = Naive(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=64, plugins=[probe, HATPlugin()], evaluator=_quiet(),
    )  # fmt: skip
    strategy.train(tiny_benchmark.train_stream[0])  # one batch: s = s_max
    strategy.train(tiny_benchmark.train_stream[1])
    assert len(probe.tensors) > 10
    assert not any(_is_subnormal(t) for t in probe.tensors)
    assert not flush_subnormals_is_on()  # the thread's mode is restored after each step
    assert _is_subnormal(gate * 1e-4)


def test_a_step_interrupted_by_an_error_gives_the_subnormal_mode_back(tiny_benchmark):
    from avalanche_adahat.core.subnormals import flush_subnormals_is_on

    class Fails(SupervisedPlugin):
        def after_backward(self, strategy, **kwargs):
            raise RuntimeError("boom")

    model = HATMLP(8, (6,), 2)
    hat = HATPlugin()
    strategy = Naive(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=torch.nn.CrossEntropyLoss(),
        plugins=[Fails(), hat], evaluator=_quiet(),
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        strategy.train(tiny_benchmark.train_stream[0])
    assert not flush_subnormals_is_on()
