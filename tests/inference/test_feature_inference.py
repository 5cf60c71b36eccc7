"""Task inference from feature statistics (avalanche_adahat.inference): the formulas by
hand, the statistics against a direct computation, their resume from a checkpoint."""

import io
import math
from unittest import mock

import numpy as np
import pytest
import torch
from _data import tensor_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT
from avalanche_adahat.inference import (
    FeatureStatistics,
    chi2_log_sf,
    forward_with_features,
    input_log_posteriors,
    lda_cascade_scores,
    mahalanobis_scores,
    oas_shrinkage,
    set_task_inference,
    update_statistics,
)
from avalanche_adahat.metrics.task_id import task_id_accuracy_metrics
from avalanche_adahat.models import HATMLP

F64 = torch.float64


@pytest.fixture(scope="module")
def stream():
    return tensor_benchmark(task_labels=False, n_tasks=3, per_class=30, seed=1)


def _train(stream, rule="lda_cascade", tasks=3, seed=0, **hyperparameters):
    torch.manual_seed(seed)
    model = HATMLP(8, (16, 16))
    strategy = HAT(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        train_mb_size=16,
        train_epochs=3,
        task_ids="per_experience",
        task_inference=rule,
        evaluator=EvaluationPlugin(
            accuracy_metrics(stream=True), task_id_accuracy_metrics(), loggers=[]
        ),
        **hyperparameters,
    )
    for exp in stream.train_stream[:tasks]:
        strategy.train(exp)
    return model, strategy


def _space(classes, owners, samples):
    """A SpaceModel from samples ``{class: (n, d) tensor}``, via FeatureStatistics."""
    stats = FeatureStatistics()
    for c, owner in zip(classes, owners):
        f = samples[c].to(F64)
        stats.add_sums(
            0,
            torch.tensor([c]),
            owner,
            torch.tensor([len(f)], dtype=F64),
            f.sum(0, keepdim=True),
            f.t() @ f,
        )
    return stats.model(0)


def test_space_model_is_lda_with_the_oas_shrunk_pooled_covariance():
    from sklearn.covariance import oas

    g = torch.Generator().manual_seed(0)
    samples = {c: torch.randn(40, 3, generator=g, dtype=F64) + 3 * c for c in range(3)}
    model = _space([0, 1, 2], [0, 0, 1], samples)
    centred = torch.cat([s - s.mean(0) for s in samples.values()])
    n, d, k = len(centred), 3, 3
    cov = centred.t() @ centred / (n - k)
    # OAS as scikit-learn computes it from a covariance and a sample count
    sk_cov = cov.numpy()
    mu = np.trace(sk_cov) / d
    alpha = np.mean(sk_cov**2)
    expected = min((alpha + mu**2) / ((n - k + 1) * (alpha - mu**2 / d)), 1.0)
    assert oas_shrinkage(cov, n - k) == pytest.approx(expected, rel=1e-12)
    # and scikit-learn's oas on data with that covariance agrees in form
    shrunk, rho = oas(centred.numpy() * math.sqrt(len(centred) / (n - k)), assume_centered=True)
    assert rho == pytest.approx(expected, rel=0.05)  # sklearn counts n, not n - k
    shrunk_cov = (1 - expected) * cov + expected * torch.trace(cov) / d * torch.eye(d, dtype=F64)
    f = torch.randn(5, 3, generator=g, dtype=F64)
    inv = torch.linalg.inv(shrunk_cov)
    means = torch.stack([s.mean(0) for s in samples.values()])
    g_direct = f @ inv @ means.t() - 0.5 * torch.einsum("cd,de,ce->c", means, inv, means)
    torch.testing.assert_close(model.discriminants(f), g_direct, rtol=1e-10, atol=1e-10)
    diff = f[:, None] - means[None]
    d2 = torch.einsum("bcd,de,bce->bc", diff, inv, diff)
    torch.testing.assert_close(model.mahalanobis(f), d2, rtol=1e-10, atol=1e-10)


def test_lda_cascade_scores_by_hand():
    class Fixed:  # a space whose discriminants are given
        def __init__(self, g, owners):
            self.g, self.owners = torch.tensor(g, dtype=F64), torch.tensor(owners)

        def discriminants(self, f):
            return self.g

    # space 0 holds tasks 0, 1, 2; space 1 tasks 1, 2; space 2 task 2
    spaces = [Fixed([[1.0, 0.0, 2.0]], [0, 1, 2]), Fixed([[0.5, 1.5]], [1, 2]), Fixed([[3.0]], [2])]
    scores = lda_cascade_scores([0, 1, 2], spaces, [torch.zeros(1, 1)] * 3)
    e = math.exp
    s0 = e(1) / (e(1) + e(0) + e(2))
    s1 = e(0.5) / (e(0.5) + e(1.5))
    expected = [s0, (1 - s0) * s1, (1 - s0) * (1 - s1)]
    torch.testing.assert_close(scores[:, 0].exp(), torch.tensor(expected, dtype=F64))


def test_chi2_log_sf_matches_scipy_into_the_far_tail():
    from scipy.stats import chi2

    for dof in (1, 2, 7, 64, 401):
        x = torch.tensor([0.5, dof * 1.0, dof + 10.0 * math.sqrt(dof), 3.0 * dof + 900], dtype=F64)
        expected = torch.tensor(chi2.logsf(x.numpy(), dof), dtype=F64)
        torch.testing.assert_close(chi2_log_sf(x, dof), expected, rtol=1e-6, atol=1e-9)
    assert torch.isfinite(chi2_log_sf(torch.tensor([1e5], dtype=F64), 10)).all()


def test_mahalanobis_scores_pick_the_nearest_own_class():
    g = torch.Generator().manual_seed(0)
    a = _space(
        [0, 1], [0, 0], {c: torch.randn(50, 2, generator=g, dtype=F64) + 6 * c for c in (0, 1)}
    )
    b = _space([2], [1], {2: torch.randn(50, 2, generator=g, dtype=F64) - 6})
    near_a = torch.tensor([[6.0, 6.0]], dtype=F64)  # class 1's mean, far from class 2
    scores = mahalanobis_scores([0, 1], [a, b], [near_a, near_a])
    assert scores[0, 0] > scores[1, 0]
    expected = chi2_log_sf(a.mahalanobis(near_a)[:, :2].min(dim=1).values, 2)
    torch.testing.assert_close(scores[0], expected)


def test_add_sums_is_exact_and_keeps_classes_in_arrival_order():
    stats = FeatureStatistics()
    f = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]], dtype=F64)
    y = torch.tensor([5, 3, 5])
    classes = torch.tensor([3, 5])
    onehot = (y[:, None] == classes[None]).to(F64)
    stats.add_sums(0, classes, 7, onehot.sum(0), onehot.t() @ f, f.t() @ f)
    stats.add_sums(
        0,
        torch.tensor([9]),
        8,
        torch.tensor([1.0], dtype=F64),
        torch.tensor([[2.0, 2.0]], dtype=F64),
        torch.tensor([[4.0, 4.0], [4.0, 4.0]], dtype=F64),
    )
    s = stats.space(0)
    assert s["classes"].tolist() == [3, 5, 9] and s["owners"].tolist() == [7, 7, 8]
    assert s["counts"].tolist() == [1.0, 2.0, 1.0]
    assert torch.equal(s["sums"], torch.tensor([[3.0, -1.0], [1.5, 2.25], [2.0, 2.0]], dtype=F64))
    moment = f.t() @ f + 4.0
    assert torch.equal(s["moment"], moment)
    assert stats.owners(0) == {7, 8}
    with pytest.raises(ValueError, match="space 0 has 2 features, got 3"):
        stats.add_sums(
            0, classes, 7, onehot.sum(0), torch.zeros(2, 3, dtype=F64), torch.zeros(3, 3, dtype=F64)
        )


def test_features_are_the_active_units_of_every_layer_before_the_gate(stream):
    model, _ = _train(stream, tasks=1)
    x = torch.randn(4, 8)
    logits, f = forward_with_features(model, x, 0)
    h1 = model.layers[0](x)
    g1 = model.masks[0].stored_mask(0)
    h2 = model.layers[1](h1.relu() * g1)
    g2 = model.masks[1].stored_mask(0)
    assert torch.equal(f, torch.cat([h1[:, g1 > 0], h2[:, g2 > 0]], dim=1))
    assert torch.equal(logits, model.forward_single_task(x, 0))


def test_cascade_statistics_equal_a_direct_computation_and_stay_frozen(stream):
    """Space j holds tasks j.. of the stream; recomputed at the end from all tasks' data
    through the final model, the sums are bitwise the ones stored as tasks ended (HAT
    freezes every task's network), and the counts, sums and moment are those of the
    features computed directly."""
    model, _ = _train(stream)
    stats = model.feature_statistics()
    assert stats.spaces() == [0, 1, 2]
    again = FeatureStatistics()
    for k, exp in enumerate(stream.train_stream):
        update_statistics(model, again, exp.dataset, k, [j for j in range(k + 1)])
    for j in range(3):
        for field, value in stats.space(j).items():
            assert torch.equal(value, again.space(j)[field]), (j, field)
        # direct: every sample of tasks >= j through task j's network, float64 sums
        feats, labels = [], []
        for exp in stream.train_stream[j:]:
            x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
            labels.append(torch.tensor([int(exp.dataset[i][1]) for i in range(len(exp.dataset))]))
            with torch.no_grad():
                feats.append(forward_with_features(model.eval(), x, j)[1].to(F64))
        f, y = torch.cat(feats), torch.cat(labels)
        s = stats.space(j)
        assert s["owners"].unique().tolist() == list(range(j, 3))
        for i, c in enumerate(s["classes"].tolist()):
            assert s["counts"][i].item() == (y == c).sum().item()
            torch.testing.assert_close(s["sums"][i], f[y == c].sum(0), rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(s["moment"], f.t() @ f, rtol=1e-12, atol=1e-9)


def test_mahalanobis_gathers_only_each_tasks_own_space(stream):
    model, _ = _train(stream, rule="mahalanobis")
    stats = model.feature_statistics()
    assert [stats.owners(j) for j in stats.spaces()] == [{0}, {1}, {2}]
    set_task_inference(model, "lda_cascade")
    with pytest.raises(ValueError, match="'lda_cascade' needs task 0's feature space"):
        model.eval()(torch.randn(2, 8), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("rule", ["lda_cascade", "mahalanobis"])
def test_feature_rules_route_separable_tasks(stream, rule):
    model, strategy = _train(stream, rule=rule)
    results = strategy.eval(stream.test_stream)
    assert results["TaskIdAcc_Stream/eval_phase/test_stream/Task000"] > 0.9  # chance 1/3


def test_statistics_resume_from_a_checkpoint_bitwise(stream):
    model, _ = _train(stream, tasks=2)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = HATMLP(8, (16, 16))
    fresh.adaptation(stream.train_stream[0])  # heads as the strategy's adaptation makes them
    fresh.load_state_dict(torch.load(buffer), strict=False)
    for j in (0, 1):
        for field, value in model.feature_statistics().space(j).items():
            assert torch.equal(value, fresh.feature_statistics().space(j)[field])
    for field, value in model.input_statistics.space(0).items():
        assert torch.equal(value, fresh.input_statistics.space(0)[field])
    assert model.task_router_bytes() == fresh.task_router_bytes() > 0


def test_sharded_statistics_add_up_to_the_whole(stream):
    """Under torch.distributed each process reads every world_size-th sample and the
    sums are all-reduced: two shards add up to the single-process statistics."""
    model, _ = _train(stream, tasks=1)
    data = stream.train_stream[0].dataset
    whole = FeatureStatistics()
    update_statistics(model, whole, data, 0, [0])
    shards = []
    for rank in (0, 1):
        stats = FeatureStatistics()
        with (
            mock.patch("torch.distributed.is_initialized", return_value=True),
            mock.patch("torch.distributed.get_world_size", return_value=2),
            mock.patch("torch.distributed.get_rank", return_value=rank),
            mock.patch("torch.distributed.all_reduce") as reduce,
        ):
            update_statistics(model, stats, data, 0, [0])
        assert reduce.call_count == 3  # counts, sums, moment
        shards.append(stats.space(0))
    for field in ("counts", "sums", "moment"):
        torch.testing.assert_close(shards[0][field] + shards[1][field], whole.space(0)[field])


def test_adahat_defaults_to_a_logit_rule_and_warns_about_feature_statistics():
    from avalanche_adahat import AdaHATPlugin

    plugin = AdaHATPlugin(task_ids="per_experience")
    assert (plugin.task_inference, plugin.calibrate_task_inference) == ("entropy", True)
    with pytest.warns(UserWarning, match="feature statistics stored when each task ended drift"):
        AdaHATPlugin(task_ids="per_experience", task_inference="lda_cascade")


def test_tasks_that_reuse_class_ids_keep_separate_classes():
    stats = FeatureStatistics()
    one = torch.ones(1, dtype=F64)
    for owner, value in ((0, 1.0), (1, 5.0)):
        f = torch.full((1, 2), value, dtype=F64)
        stats.add_sums(0, torch.tensor([0]), owner, one, f, f.t() @ f)
    s = stats.space(0)
    assert s["classes"].tolist() == [0, 0] and s["owners"].tolist() == [0, 1]
    assert s["sums"].tolist() == [[1.0, 1.0], [5.0, 5.0]]


def _sums(f, y, classes):
    onehot = (y[:, None] == classes[None]).to(F64)
    return onehot.sum(0), onehot.t() @ f, f.t() @ f


def test_cov_rank_keeps_the_leading_eigenpairs_and_the_mean_of_the_rest():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(60, 5, generator=g, dtype=F64) * torch.tensor(
        [5.0, 3.0, 1.0, 0.5, 0.2], dtype=F64
    )
    y = torch.arange(60) % 3
    classes = torch.arange(3)
    full, low, whole = (
        FeatureStatistics(),
        FeatureStatistics(cov_rank=2),
        FeatureStatistics(cov_rank=9),
    )
    for stats in (full, low, whole):
        stats.add_sums(0, classes, 0, *_sums(f, y, classes))
    exact = full.scatter(0)
    values, vectors = torch.linalg.eigh(exact)
    top = vectors[:, 3:]
    expected = (top * values[3:]) @ top.t() + values[:3].mean() * (
        torch.eye(5, dtype=F64) - top @ top.t()
    )
    torch.testing.assert_close(low.scatter(0), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(whole.scatter(0), exact, rtol=1e-10, atol=1e-10)  # rank >= d: exact
    assert low.nbytes() < full.nbytes()
    # a later task's classes are added exactly to the approximation, then truncated again
    f2 = torch.randn(20, 5, generator=g, dtype=F64)
    y2 = torch.full((20,), 7)
    low.add_sums(0, torch.tensor([7]), 1, *_sums(f2, y2, torch.tensor([7])))
    added = f2.t() @ f2 - f2.sum(0)[:, None] @ f2.sum(0)[None] / 20
    values, vectors = torch.linalg.eigh(expected + added)
    top = vectors[:, 3:]
    again = (top * values[3:]) @ top.t() + values[:3].mean() * (
        torch.eye(5, dtype=F64) - top @ top.t()
    )
    torch.testing.assert_close(low.scatter(0), again, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="each class's samples are added at once"):
        low.add_sums(0, torch.tensor([7]), 1, *_sums(f2, y2, torch.tensor([7])))
    with pytest.raises(ValueError, match="cov_rank must be a positive integer, got 0"):
        FeatureStatistics(cov_rank=0)


def test_cov_rank_routes_and_resumes_with_its_rank(stream):
    model, strategy = _train(stream, cov_rank=4)
    assert model.task_statistics.rank == 4
    results = strategy.eval(stream.test_stream)
    assert results["TaskIdAcc_Stream/eval_phase/test_stream/Task000"] > 0.9
    fresh = FeatureStatistics()  # the rank comes back with the buffers
    fresh.load_state_dict(model.task_statistics.state_dict())
    assert fresh.rank == 4 and fresh.spaces() == [0, 1, 2]
    for field, value in model.task_statistics.space(0).items():
        assert torch.equal(value, fresh.space(0)[field])
    with pytest.raises(ValueError, match="keep one rank for the whole stream"):
        model.feature_statistics(8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"cov_rank": 0, "task_ids": "per_experience"},
            "cov_rank must be a positive integer, got 0",
        ),
        ({"cov_rank": 8}, "cov_rank=8 needs a feature rule as task_inference"),
        (
            {"cov_rank": 8, "task_ids": "per_experience", "task_inference": "entropy"},
            "needs a feature rule",
        ),
    ],
)
def test_cov_rank_is_checked(kwargs, match):
    from avalanche_adahat import HATPlugin

    with pytest.raises(ValueError, match=match):
        HATPlugin(**kwargs)


def test_input_log_posteriors_by_hand():
    class Fixed:  # a space whose discriminants are given
        owners = torch.tensor([0, 0, 1, 2])

        def discriminants(self, f):
            assert f.shape == (1, 6) and f.dtype == F64  # flattened, float64
            return torch.tensor([[1.0, 0.0, 2.0, -1.0]], dtype=F64)

    scores = input_log_posteriors([0, 1, 2], Fixed(), torch.zeros(1, 2, 3))
    e = math.exp
    total = e(1) + e(0) + e(2) + e(-1)
    expected = [(e(1) + e(0)) / total, e(2) / total, e(-1) / total]
    torch.testing.assert_close(scores[:, 0].exp(), torch.tensor(expected, dtype=F64))


def test_input_space_holds_every_tasks_raw_inputs_and_is_fused_into_the_cascade(stream):
    """The input space's sums are those of the flattened training inputs of every task,
    and the routed task is the argmax of the cascade's log p_t plus the input space's
    task log-posterior."""
    from avalanche_adahat.inference.router import feature_scores, infer, task_classes

    model, _ = _train(stream)
    stats = model.input_statistics
    assert stats.spaces() == [0] and stats.owners(0) == {0, 1, 2}
    x = torch.cat(
        [torch.stack([e.dataset[i][0] for i in range(len(e.dataset))]) for e in stream.train_stream]
    ).to(F64)
    y = torch.cat(
        [
            torch.tensor([int(e.dataset[i][1]) for i in range(len(e.dataset))])
            for e in stream.train_stream
        ]
    )
    s = stats.space(0)
    for i, c in enumerate(s["classes"].tolist()):
        assert s["counts"][i].item() == (y == c).sum().item()
        torch.testing.assert_close(s["sums"][i], x[y == c].sum(0), rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(s["moment"], x.t() @ x, rtol=1e-12, atol=1e-9)

    model.eval()
    test = torch.randn(32, 8)
    tasks = model.trained_tasks()
    width = model.max_class_label
    with torch.no_grad():
        _, cascade = feature_scores(model, test, tasks, width, "lda_cascade", model.task_statistics)
        fused = cascade + input_log_posteriors(tasks, stats.model(0), test)
        _, labels = infer(model, test, "lda_cascade", None, model.task_statistics, stats)
    assert torch.equal(labels, torch.tensor(tasks)[fused.argmax(dim=0)])
    assert task_classes(model, tasks, width).shape == (3, width)


def test_input_space_is_off_when_asked_or_for_large_inputs(stream):
    model, strategy = _train(stream, tasks=2, input_space=False)
    assert not hasattr(model, "input_statistics")
    assert strategy.eval(stream.test_stream[:2])  # the cascade alone routes
    with mock.patch(
        "avalanche_adahat.training.plugin.INPUT_SPACE_AUTO_FEATURES", 7
    ):  # inputs have 8
        model, _ = _train(stream, tasks=1)
        assert not hasattr(model, "input_statistics")
        model, _ = _train(stream, tasks=1, input_space=True)
        assert model.input_statistics.owners(0) == {0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_space": "yes", "task_ids": "per_experience"}, "input_space must be"),
        (
            {"input_space": True, "task_ids": "per_experience", "task_inference": "mahalanobis"},
            r"input_space=True fuses the input space into a task_inference of \['lda_cascade'\], "
            "got task_inference='mahalanobis'",
        ),
        ({"input_space": True}, "got task_inference=None"),
    ],
)
def test_input_space_is_checked(kwargs, match):
    from avalanche_adahat import HATPlugin

    with pytest.raises((TypeError, ValueError), match=match):
        HATPlugin(**kwargs)
