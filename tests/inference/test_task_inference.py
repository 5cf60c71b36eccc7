"""Task-agnostic inference on class-incremental streams (task_ids='per_experience')."""

import math

import pytest
import torch
from _data import stacked_inputs, tensor_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT
from avalanche_adahat.inference import LOGIT_RULES, RULES
from avalanche_adahat.inference.router import MASKED_LOGIT, set_task_inference, task_scores
from avalanche_adahat.metrics.task_id import predicted_tasks, task_id_accuracy_metrics
from avalanche_adahat.models import HATMLP

HEAD_RULES = ("msp", "entropy", "energy")  # functions of each task's own logits


@pytest.fixture(scope="module")
def class_incremental():
    return tensor_benchmark(task_labels=False, n_tasks=3, per_class=40)


def _strategy(model, cls=HAT, **kw):
    return cls(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,
        train_epochs=4,
        evaluator=EvaluationPlugin(
            accuracy_metrics(stream=True), task_id_accuracy_metrics(), loggers=[]
        ),
        **kw,
    )


def test_task_scores_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 5.0]], [[9.0, 1.0, 3.0]]])  # (T=2, B=1, C=3)
    active = torch.tensor([[True, True, False], [False, False, True]])
    p0 = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    expected = {
        "msp": [p0[0], 1.0],
        "entropy": [sum(p * math.log(p) for p in p0), 0.0],
        "energy": [math.log(math.exp(2) + 1), 3.0],
    }
    for rule in HEAD_RULES:
        got = task_scores(logits, active, rule)[:, 0].tolist()
        assert got == pytest.approx(expected[rule], rel=1e-6), rule


def test_class_incremental_stream_without_the_opt_in_names_it(class_incremental):
    model = HATMLP(8, (16,))
    with pytest.raises(ValueError, match="task_ids='per_experience'"):
        _strategy(model).train(class_incremental.train_stream[0])


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_finds_the_task_of_well_separated_data(rule, class_incremental):
    torch.manual_seed(0)
    model = HATMLP(8, (32, 32))
    strategy = _strategy(
        model, task_ids="per_experience", task_inference=rule, calibrate_task_inference=False
    )
    for exp in class_incremental.train_stream:
        strategy.train(exp)
    results = strategy.eval(class_incremental.test_stream)
    task_acc = results["TaskIdAcc_Stream/eval_phase/test_stream/Task000"]
    accuracy = results["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
    assert task_acc > 0.4 and accuracy > 0.2  # chance: 1/3 and 1/6 (heads never saw other tasks)
    assert accuracy <= task_acc + 1e-9  # a wrong task can only give a wrong class


@pytest.mark.parametrize("rule", HEAD_RULES)
def test_infer_picks_the_most_confident_task_for_each_rule(rule, monkeypatch, class_incremental):
    """With designed logits the right task is known: sample 0 is confident under task 1,
    sample 1 under task 0 (every rule agrees on these)."""
    import avalanche_adahat.inference.router as TI

    torch.manual_seed(0)
    model = HATMLP(8, (16,))
    strategy = _strategy(model, task_ids="per_experience", task_inference=rule)
    for exp in class_incremental.train_stream[:2]:
        strategy.train(exp)
    designed = torch.full((2, 2, 4), MASKED_LOGIT)
    designed[0, :, :2] = torch.tensor([[0.1, 0.0], [9.0, 0.0]])
    designed[1, :, 2:] = torch.tensor([[8.0, 0.0], [0.2, 0.1]])
    monkeypatch.setattr(TI, "task_logits", lambda m, x, tasks, width: designed)
    logits, tasks = TI.infer(model, torch.zeros(2, 8), rule)
    assert tasks.tolist() == [1, 0]
    # calibration subtracts each task's mean training score: a large mean for task 1
    # moves sample 0 to task 0
    shift = torch.tensor([0.0, 1e3])
    assert TI.infer(model, torch.zeros(2, 8), rule, shift)[1].tolist() == [0, 0]
    assert torch.equal(logits[0], torch.tensor([MASKED_LOGIT, MASKED_LOGIT, 8.0, 0.0]))
    assert torch.equal(logits[1], torch.tensor([9.0, 0.0, MASKED_LOGIT, MASKED_LOGIT]))


def test_logits_cover_all_classes_with_the_chosen_task_active(class_incremental):
    torch.manual_seed(0)
    model = HATMLP(8, (32, 32))
    strategy = _strategy(model, task_ids="per_experience", task_inference="energy")
    for exp in class_incremental.train_stream:
        strategy.train(exp)
    set_task_inference(model, "energy")
    model.eval()
    x = stacked_inputs(class_incremental.test_stream[1].dataset)
    out = model(x, torch.zeros(len(x), dtype=torch.long))
    assert out.shape == (len(x), 6)
    for row, task in zip(out, model.router.last_tasks.tolist()):
        live = (row != MASKED_LOGIT).nonzero().flatten().tolist()
        assert live == [2 * task, 2 * task + 1]  # the chosen task's two classes
    # the chosen task's logits are its own head's through its stored mask
    own = model.forward_single_task(x, 1)
    chosen = model.router.last_tasks == 1
    # the task-id metric reads the returned logits: the owner of the top class is the choice
    assert torch.equal(predicted_tasks(model, out), model.router.last_tasks)
    assert torch.equal(out[chosen][:, 2:4], own[chosen][:, 2:4])


def test_per_experience_training_keeps_earlier_tasks_bitwise(class_incremental):
    torch.manual_seed(0)
    hat = HATMLP(8, (16, 16))
    strategy = _strategy(hat, task_ids="per_experience", mask_sparsity_reg_factor=0.0)
    x0 = stacked_inputs(class_incremental.test_stream[0].dataset)
    strategy.train(class_incremental.train_stream[0])
    hat.eval()
    before = hat.forward_single_task(x0, 0).detach().clone()
    for exp in class_incremental.train_stream[1:]:
        strategy.train(exp)
    hat.eval()
    assert hat.trained_tasks() == [0, 1, 2]
    assert torch.equal(hat.forward_single_task(x0, 0), before)


def test_replay_is_refused_with_per_experience_tasks(class_incremental):
    from avalanche.training.plugins import ReplayPlugin

    model = HATMLP(8, (16,))
    strategy = _strategy(model, task_ids="per_experience", plugins=[ReplayPlugin(mem_size=10)])
    with pytest.raises(ValueError, match="ReplayPlugin replays earlier experiences"):
        strategy.train(class_incremental.train_stream[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task_ids": "auto"}, "task_ids must be one of"),
        ({"task_inference": "max"}, "task_inference must be one of"),
        ({"calibrate_task_inference": True}, "calibrate_task_inference=True needs"),
    ],
)
def test_task_inference_options_are_checked(kwargs, match):
    model = HATMLP(8, (16,))
    with pytest.raises(ValueError, match=match):
        _strategy(model, **kwargs)


def test_calibration_statistics_are_each_tasks_own_training_scores(class_incremental):
    from avalanche_adahat.inference.router import score_statistics

    torch.manual_seed(0)
    model = HATMLP(8, (16,))
    strategy = _strategy(
        model, task_ids="per_experience", task_inference="msp", calibrate_task_inference=True
    )
    strategy.train(class_incremental.train_stream[0])
    data = class_incremental.train_stream[0].dataset
    again = score_statistics(model, data, 0)
    assert set(again) == set(LOGIT_RULES)
    for rule in LOGIT_RULES:
        assert torch.equal(model.task_calibration(0, rule), again[rule])
    # msp: the mean over the task's training samples of the max probability of its 2 classes
    x = torch.stack([data[i][0] for i in range(len(data))])
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model.forward_single_task(x, 0)[:, :2], dim=1)
    torch.testing.assert_close(model.task_calibration(0, "msp"), p.max(dim=1).values.mean())
    assert 0.5 <= model.task_calibration(0, "msp") <= 1.0
    assert model.task_calibration(0, "oneshot") == 0.0  # oneshot compares tasks: no own score
    fresh = HATMLP(8, (16,))
    fresh.load_state_dict(model.state_dict())  # carried by checkpoints, by rule name
    assert torch.equal(fresh.task_calibration(0, "entropy"), model.task_calibration(0, "entropy"))


def test_calibration_of_older_checkpoints_is_read_by_the_old_rule_order():
    """Before 0.1.0 the calibration was one (rules, 2) buffer of (mean, std) rows in the
    order msp, entropy, energy, oneshot; a loaded one becomes one mean per rule name."""
    model = HATMLP(8, (16,))
    state = model.state_dict()
    state["score_stats_T3"] = torch.tensor([[0.9, 0.1], [-0.2, 0.05], [4.0, 1.0], [0.0, 0.0]])
    fresh = HATMLP(8, (16,))
    fresh.load_state_dict(state)
    expected = {"msp": 0.9, "entropy": -0.2, "energy": 4.0, "oneshot": 0.0}
    for rule, mean in expected.items():
        assert fresh.task_calibration(3, rule) == torch.tensor(mean)
    assert "score_stats_T3" not in fresh.state_dict()
    with pytest.raises(ValueError, match="task 3 has no task-inference calibration for rule 'x'"):
        fresh.task_calibration(3, "x")


def test_oneshot_score_is_minus_the_entropy_gradient_of_the_mask_superposition(class_incremental):
    """SupSup's one-shot rule: -dH/da_t of the joint prediction's entropy at a = 1/T,
    checked against central differences of H with the superposed gates built by hand."""
    from avalanche_adahat.inference.router import oneshot_scores, task_classes, task_logits

    torch.manual_seed(0)
    model = HATMLP(8, (16, 16))
    strategy = _strategy(model, task_ids="per_experience", task_inference="oneshot")
    for exp in class_incremental.train_stream:
        strategy.train(exp)
    model.eval()
    model.double()
    x = stacked_inputs(class_incremental.test_stream[0].dataset)[:3].double()
    tasks = model.trained_tasks()
    active = task_classes(model, tasks, 6)
    scores = oneshot_scores(model, x, tasks, active)
    stored = [torch.stack([m.stored_mask(t) for t in tasks]) for m in model.hat_masks()]

    def entropy(a):  # the joint prediction over all classes, each from its task's head
        model.override_gates([a @ masks for masks in stored])
        logits = task_logits(model, x, tasks, 6)
        model.override_gates(None)
        joint = torch.stack([logits[c // 2, :, c] for c in range(6)], dim=1)
        p = torch.softmax(joint, dim=1)
        return -(p * p.log()).sum()

    base = torch.full((3, 3), 1.0 / 3, dtype=torch.float64)
    for b in range(3):
        for t in range(3):
            step = torch.zeros_like(base)
            step[b, t] = 1e-6
            numeric = (entropy(base + step) - entropy(base - step)) / 2e-6
            assert scores[t, b].item() == pytest.approx(-numeric.item(), rel=1e-4, abs=1e-8)


def test_per_experience_defaults_to_the_lda_cascade_uncalibrated():
    from avalanche_adahat import HATPlugin

    plugin = HATPlugin(task_ids="per_experience")
    assert (plugin.task_inference, plugin.calibrate_task_inference) == ("lda_cascade", False)
    logit = HATPlugin(task_ids="per_experience", task_inference="entropy")
    assert (logit.task_inference, logit.calibrate_task_inference) == ("entropy", True)
    given = HATPlugin()
    assert (given.task_inference, given.calibrate_task_inference) == (None, False)
    with pytest.raises(ValueError, match="calibrate_task_inference=True needs a logit rule"):
        HATPlugin(task_ids="per_experience", calibrate_task_inference=True)
