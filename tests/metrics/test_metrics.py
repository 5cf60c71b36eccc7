"""HAT/AdaHAT metrics: values against hand computations, and their way to the loggers."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import InteractiveLogger, TensorboardLogger, TextLogger
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, AdaHAT, AdaHATPlugin, HATPlugin
from avalanche_adahat.core.functional import ADAHAT_MODES, HAT_MODES
from avalanche_adahat.data import split_digits
from avalanche_adahat.metrics import (
    MaskUsage,
    NetworkCapacity,
    accuracy_matrix,
    capacity_curve,
    hat_metrics,
    layer_adjustment_rates,
    layer_names,
    mask_usage,
    network_capacity_metrics,
)
from avalanche_adahat.models import HATMLP

N_TASKS = 3


# ---------------------------------------------------------------- a tiny model by hand
def _tiny_model() -> HATMLP:
    """HATMLP(4, (3, 2), 2) with two stored tasks set by hand."""
    torch.manual_seed(0)
    model = HATMLP(4, (3, 2), 2)
    m0, m1 = model.hat_masks()
    m0.cumulative.copy_(torch.tensor([1.0, 0.0, 1.0]))
    m0.summative.copy_(torch.tensor([2.0, 0.0, 1.0]))
    m1.cumulative.copy_(torch.tensor([0.0, 1.0]))
    m1.summative.copy_(torch.tensor([0.0, 2.0]))
    return model


def _expected_capacity(model, rate_of_measure) -> tuple[float, list[float]]:
    """Mean rate over every covered weight and bias, element by element (docs/ALGORITHM.md §3)."""
    masks = model.hat_masks()
    per_layer = []
    all_rates = []
    for layer_index, (layer, mask) in enumerate(zip(model.layers, masks)):
        rates = []
        for i in range(layer.out_features):
            for j in range(layer.in_features):
                if layer_index == 0:
                    c, s = mask.cumulative[i].item(), mask.summative[i].item()
                else:  # P = min over the output unit and the input unit
                    prev = masks[layer_index - 1]
                    c = min(mask.cumulative[i].item(), prev.cumulative[j].item())
                    s = min(mask.summative[i].item(), prev.summative[j].item())
                rates.append(rate_of_measure(layer_index, c, s))
            bias_c, bias_s = mask.cumulative[i].item(), mask.summative[i].item()
            rates.append(rate_of_measure(layer_index, bias_c, bias_s))  # the bias of unit i
        per_layer.append(sum(rates) / len(rates))
        all_rates += rates
    return sum(all_rates) / len(all_rates), per_layer


@pytest.mark.parametrize(
    "mode, rate",
    [
        ("hat", lambda layer, c, s: 1 - c),
        ("hat_const_alpha", lambda layer, c, s: 0.25 if c == 1 else 1.0),
        ("hat_const_1", lambda layer, c, s: 1.0),
    ],
)
def test_capacity_equals_hand_computed_mean_rate_hat_modes(mode, rate):
    model = _tiny_model()
    plugin = HATPlugin(adjustment_mode=mode, alpha=0.25 if mode == "hat_const_alpha" else None)
    plugin.num_previous_tasks = 2
    expected, per_layer = _expected_capacity(model, rate)
    assert plugin.network_capacity(model).item() == pytest.approx(expected, abs=1e-6)
    assert layer_adjustment_rates(plugin, model) == pytest.approx(per_layer, abs=1e-6)


def test_capacity_equals_hand_computed_mean_rate_adahat():
    model = _tiny_model()
    plugin = AdaHATPlugin(adjustment_mode="adahat", adjustment_intensity=0.5, epsilon=0.1)
    plugin.num_previous_tasks = 2
    sparsity = [0.3, 0.6]
    plugin.layer_sparsity = [torch.tensor(v) for v in sparsity]

    def rate(layer, c, s):
        r = 0.5 / (0.1 + sparsity[layer])
        return r / (s + r)

    expected, per_layer = _expected_capacity(model, rate)
    assert plugin.network_capacity(model).item() == pytest.approx(expected, abs=1e-6)
    assert layer_adjustment_rates(plugin, model) == pytest.approx(per_layer, abs=1e-6)
    metric = NetworkCapacity("iteration")
    assert metric.compute(plugin, model) == {"": pytest.approx(expected, abs=1e-6)}


def test_hat_random_capacity_counts_the_expectation():
    model = _tiny_model()
    plugin = HATPlugin(adjustment_mode="hat_random")
    plugin.num_previous_tasks = 2
    expected, per_layer = _expected_capacity(model, lambda layer, c, s: 1.0 if c == 0 else 0.5)
    assert plugin.network_capacity(model).item() == pytest.approx(expected, abs=1e-6)
    assert layer_adjustment_rates(plugin, model) == pytest.approx(per_layer, abs=1e-6)


def test_layer_names_and_mask_usage_by_hand():
    model = HATMLP(4, (3, 2), 2)
    for mask, bits in zip(model.hat_masks(), ([1.0, 0.0, 1.0], [0.0, 1.0])):
        mask.add_task(0, "N01")
        mask.embeddings["0"].data = torch.tensor(bits) * 2 - 1
    model.store_task_masks(0)
    assert layer_names(model) == ["masks.0", "masks.1"]
    usage = mask_usage(model, 0)
    assert usage["task"] == pytest.approx({"": 3 / 5, "masks.0": 2 / 3, "masks.1": 1 / 2})
    assert usage["free"] == pytest.approx({"": 2 / 5, "masks.0": 1 / 3, "masks.1": 1 / 2})
    with pytest.raises(ValueError, match="no stored mask"):
        mask_usage(model, 1)


# ---------------------------------------------------------------- a short real run
def _train(strategy_cls, n_tasks, metrics, loggers=(), **kwargs):
    torch.manual_seed(0)
    benchmark = split_digits(5)
    model = HATMLP(64, (16, 16), 2)
    evaluator = EvaluationPlugin(*metrics, loggers=list(loggers))
    strategy = strategy_cls(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=64,
        eval_mb_size=512,
        evaluator=evaluator,
        **kwargs,
    )
    results = []
    for experience in benchmark.train_stream[:n_tasks]:
        strategy.train(experience)
        results.append(strategy.eval(benchmark.test_stream[:n_tasks]))
    return strategy, results


@pytest.fixture(scope="module")
def hat_run(tmp_path_factory):
    """HAT on 3 Split Digits tasks with every metric and three loggers."""
    logdir = tmp_path_factory.mktemp("tb")
    text = io.StringIO()
    interactive = InteractiveLogger()
    interactive.file = io.StringIO()
    tensorboard = TensorboardLogger(logdir)
    strategy, results = _train(
        HAT,
        N_TASKS,
        [accuracy_metrics(experience=True), hat_metrics(epoch=True)],
        loggers=[TextLogger(text), interactive, tensorboard],
    )
    tensorboard.writer.flush()
    return {
        "strategy": strategy,
        "metrics": strategy.evaluator.get_all_metrics(),
        "results": results,
        "text": text.getvalue(),
        "interactive": interactive.file.getvalue(),
        "logdir": logdir,
    }


def _values(metrics, prefix):
    return {k: v for k, v in metrics.items() if k.startswith(prefix)}


def test_capacity_is_one_on_the_first_task_for_every_mode():
    for mode in HAT_MODES + ADAHAT_MODES:
        cls, kwargs = (AdaHAT, {}) if mode in ADAHAT_MODES else (HAT, {})
        if mode == "hat_const_alpha":
            kwargs = {"alpha": 0.5}
        strategy, _ = _train(
            cls, 1, [network_capacity_metrics(minibatch=True)], adjustment_mode=mode, **kwargs
        )
        (name, (xs, ys)), *rest = strategy.evaluator.get_all_metrics().items()
        assert not rest
        assert name == "NetworkCapacity_MB/train_phase/train_stream/Task000", mode
        assert xs == list(range(len(xs))) and len(xs) >= 3, mode
        assert ys == [1.0] * len(ys), mode


def test_hat_capacity_falls_as_tasks_fill_the_network(hat_run):
    metrics = hat_run["metrics"]
    per_exp = [
        metrics[f"NetworkCapacity_Exp/train_phase/train_stream/Task{t:03}/Exp{t:03}"][1][0]
        for t in range(N_TASKS)
    ]
    assert per_exp[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(per_exp))
    assert per_exp[-1] < per_exp[1] < 1.0
    # HAT's rates are fixed within a task: every minibatch of a task has its value.
    iterations, values, starts, labels = capacity_curve(metrics)
    assert labels == list(range(N_TASKS)) and starts[0] == 0
    assert iterations == list(range(len(iterations)))
    for t, (begin, end) in enumerate(itertools.pairwise([*starts, len(values)])):
        assert values[begin:end] == pytest.approx([per_exp[t]] * (end - begin))
    # The value at the end of each task matches the network state by hand:
    # after task t, the capacity is that of training task t+1 (mean of 1 - P(M^{<t+1})).
    model = hat_run["strategy"].model
    masks = model.hat_masks()
    for t in range(1, N_TASKS):
        cum = [torch.stack([m.stored_mask(k) for k in range(t)]).amax(0) for m in masks]
        rates, count = 0.0, 0
        prev = None
        for layer, c in zip(model.layers, cum):
            p = c[:, None] if prev is None else torch.minimum(c[:, None], prev[None, :])
            p = p.expand(layer.out_features, layer.in_features)
            rates += (1 - p).sum().item() + (1 - c).sum().item()
            count += p.numel() + c.numel()
            prev = c
        assert per_exp[t] == pytest.approx(rates / count, abs=1e-6)


def test_mask_usage_equals_hand_counts_after_three_tasks(hat_run):
    metrics = hat_run["metrics"]
    model = hat_run["strategy"].model
    masks = model.hat_masks()
    names = ["masks.0", "masks.1"]
    total = sum(m.num_units for m in masks)
    for t in range(N_TASKS):
        base = f"train_phase/train_stream/Task{t:03}/Exp{t:03}"
        stored = [m.stored_mask(t) for m in masks]
        union = [torch.stack([m.stored_mask(k) for k in range(t + 1)]).amax(0) for m in masks]
        for name, s, u, m in zip(names, stored, union, masks):
            assert metrics[f"MaskUsage_Task/{base}/{name}"][1] == [s.sum().item() / m.num_units]
            used = u.sum().item() / m.num_units
            assert metrics[f"MaskUsage_Cumulative/{base}/{name}"][1] == [pytest.approx(used)]
            assert metrics[f"MaskUsage_Free/{base}/{name}"][1] == [pytest.approx(1 - used)]
        task_all = sum(s.sum().item() for s in stored) / total
        used_all = sum(u.sum().item() for u in union) / total
        assert metrics[f"MaskUsage_Task/{base}"][1] == [pytest.approx(task_all)]
        assert metrics[f"MaskUsage_Cumulative/{base}"][1] == [pytest.approx(used_all)]
        assert metrics[f"MaskUsage_Free/{base}"][1] == [pytest.approx(1 - used_all)]
    # After the last task the cumulative mask is the model's buffer.
    last = f"MaskUsage_Cumulative/train_phase/train_stream/Task{N_TASKS - 1:03}/Exp{N_TASKS - 1:03}"
    assert metrics[last][1][0] == pytest.approx(
        sum(m.cumulative.sum().item() for m in masks) / total
    )


def test_sparsity_and_layer_rates_are_recorded_per_layer(hat_run):
    metrics = hat_run["metrics"]
    for prefix in ("NetworkSparsity", "AdjustmentRate"):
        for suffix in ("MB", "Epoch"):
            for layer in ("masks.0", "masks.1"):
                for t in range(N_TASKS):
                    name = f"{prefix}_{suffix}/train_phase/train_stream/Task{t:03}/{layer}"
                    assert name in metrics, name
                    assert all(0.0 <= v <= 1.0 for v in metrics[name][1])
    first = _values(metrics, "AdjustmentRate_MB/train_phase/train_stream/Task000/")
    assert all(v == 1.0 for _, ys in first.values() for v in ys)
    # Weighted by parameter counts, the layer rates give the capacity back.
    model = hat_run["strategy"].model
    sizes = [layer.weight.numel() + layer.bias.numel() for layer in model.layers]
    for t in range(N_TASKS):
        rates = [
            metrics[f"AdjustmentRate_Exp/train_phase/train_stream/Task{t:03}/Exp{t:03}/{n}"][1][0]
            for n in ("masks.0", "masks.1")
        ]
        capacity = metrics[f"NetworkCapacity_Exp/train_phase/train_stream/Task{t:03}/Exp{t:03}"]
        weighted = sum(r * n for r, n in zip(rates, sizes)) / sum(sizes)
        assert weighted == pytest.approx(capacity[1][0], abs=1e-6)


def test_metrics_reach_text_and_interactive_loggers(hat_run):
    for out in (hat_run["text"], hat_run["interactive"]):
        for name in (
            "NetworkCapacity_MB/train_phase/train_stream/Task001 = ",
            "NetworkCapacity_Exp/train_phase/train_stream/Task000/Exp000 = 1.0000",
            "MaskUsage_Task/train_phase/train_stream/Task001/Exp001/masks.0 = ",
            "MaskUsage_Free/train_phase/train_stream/Task002/Exp002 = ",
            "NetworkSparsity_MB/train_phase/train_stream/Task000/masks.1 = ",
            "AdjustmentRate_Epoch/train_phase/train_stream/Task002/masks.0 = ",
        ):
            assert name in out, name


def test_metrics_reach_tensorboard(hat_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(hat_run["logdir"]))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    metrics = hat_run["metrics"]
    hat_names = {
        k
        for k in metrics
        if k.split("_", 1)[0]
        in ("NetworkCapacity", "NetworkSparsity", "AdjustmentRate", "MaskUsage")
    }
    assert len(hat_names) > 50
    assert hat_names <= tags
    name = "NetworkCapacity_MB/train_phase/train_stream/Task001"
    scalars = events.Scalars(name)
    assert [s.step for s in scalars] == metrics[name][0]
    assert [s.value for s in scalars] == pytest.approx(metrics[name][1])


def test_accuracy_matrix_from_eval_results(hat_run):
    matrix = accuracy_matrix(hat_run["results"])
    assert len(matrix) == N_TASKS and all(len(row) == N_TASKS for row in matrix)
    assert all(0.0 <= v <= 1.0 for row in matrix for v in row)
    # HAT: an earlier task's accuracy never moves once its mask is stored.
    for j in range(N_TASKS):
        assert len({row[j] for row in matrix[j:]}) == 1
    assert math.isnan(accuracy_matrix([{}], 2)[0][1])


def test_metrics_without_a_hat_plugin_warn_and_emit_nothing():
    from avalanche.training.supervised import Naive

    torch.manual_seed(0)
    model = HATMLP(64, (16, 16), 2)
    benchmark = split_digits(5)
    strategy = Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=256,
        evaluator=EvaluationPlugin(hat_metrics(), [MaskUsage()], loggers=[]),
    )
    with pytest.warns(UserWarning, match="no HATPlugin"):
        strategy.train(benchmark.train_stream[0])
    assert dict(strategy.evaluator.get_all_metrics()) == {}


def test_emit_at_is_checked():
    with pytest.raises(ValueError, match="emit_at"):
        NetworkCapacity("stream")
    assert [str(m) for m in hat_metrics(epoch=True, mask_usage=False, sparsity=False)] == [
        "NetworkCapacity_MB",
        "NetworkCapacity_Epoch",
        "NetworkCapacity_Exp",
        "AdjustmentRate_MB",
        "AdjustmentRate_Epoch",
        "AdjustmentRate_Exp",
    ]
