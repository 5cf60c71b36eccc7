"""Task-inference rules are registered classes (issue 21): the registry holds the six rules
with their kinds, core's configuration checks read it without importing the inference
layer, and a new rule is one class, registered when defined."""

import subprocess
import sys

import pytest
import torch
from _data import tensor_benchmark
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT, HATConfig
from avalanche_adahat import inference as I
from avalanche_adahat.core import task_rules
from avalanche_adahat.inference import rule as rule_module
from avalanche_adahat.inference.heads import task_classes, task_logits
from avalanche_adahat.models import HATMLP

KINDS = {
    "msp": "logit",
    "entropy": "logit",
    "energy": "logit",
    "oneshot": "logit",
    "lda_cascade": "feature",
    "mahalanobis": "feature",
}


def test_the_registry_holds_the_six_rules_with_their_kinds():
    described = task_rules.descriptions()
    assert {name: d.kind for name, d in described.items()} == KINDS
    assert list(described) == list(KINDS)  # the order of RULES, help texts and calibration
    assert task_rules.RULES == I.RULES == tuple(KINDS)
    assert task_rules.LOGIT_RULES == I.LOGIT_RULES == ("msp", "entropy", "energy", "oneshot")
    assert task_rules.FEATURE_RULES == I.FEATURE_RULES == ("lda_cascade", "mahalanobis")
    assert task_rules.DEFAULT_RULE in task_rules.RULES
    # one implementation per description, of the matching kind
    assert {n: r.description for n, r in I.registry().items()} == dict(described)
    for name, rule in I.registry().items():
        assert I.get_rule(name) is rule
        assert isinstance(rule, I.FeatureRule if KINDS[name] == "feature" else I.LogitRule)
    with pytest.raises(ValueError, match="must be one of .*'mahalanobis'.*got 'max'"):
        I.get_rule("max")
    # what the plugin gathers for a feature rule: the cascade's spaces and the input space
    flags = {n: (d.cascade, d.fuses_input_space) for n, d in described.items()}
    assert flags["lda_cascade"] == (True, True)
    assert all(f == (False, False) for n, f in flags.items() if n != "lda_cascade")
    assert task_rules.describe("mahalanobis") is described["mahalanobis"]
    with pytest.raises(ValueError, match="must be one of .*got 'max'"):
        task_rules.describe("max")
    with pytest.raises(AttributeError, match="no attribute 'RULE'"):
        task_rules.RULE  # noqa: B018


CONFIG_ALONE = """
import sys
from avalanche_adahat.core import task_rules
from avalanche_adahat.core.config import HATConfig
assert "avalanche_adahat.inference" not in sys.modules  # core imports no inference
assert HATConfig(task_ids="per_experience").task_inference == "lda_cascade"
HATConfig(task_ids="per_experience", task_inference="mahalanobis", cov_rank=2)
HATConfig(task_ids="per_experience", task_inference="oneshot", calibrate_task_inference=True)
for bad in ({"task_inference": "max"}, {"task_inference": "msp", "cov_rank": 2}):
    try:
        HATConfig(**bad)
    except ValueError as e:
        print("REJECTED", e)
print("RULES", task_rules.RULES)
"""


def test_core_config_alone_checks_rule_names():
    """``import avalanche_adahat.core.config`` in a fresh interpreter: the package's
    ``__init__`` (always imported first) gave core a loader, which the first read of the
    names calls; without it the registry would be empty there."""
    done = subprocess.run(
        [sys.executable, "-c", CONFIG_ALONE], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"RULES {tuple(KINDS)}" in done.stdout
    assert "REJECTED task_inference must be one of" in done.stdout
    assert "REJECTED cov_rank=2 needs a feature rule" in done.stdout


@pytest.fixture
def scratch_registry(monkeypatch):
    """Rules defined in a test are registered in copies, dropped after it."""
    monkeypatch.setattr(task_rules, "_DESCRIPTIONS", dict(task_rules._DESCRIPTIONS))
    monkeypatch.setattr(rule_module, "_RULES", dict(rule_module._RULES))


def _train(rule, **kw):
    torch.manual_seed(0)
    stream = tensor_benchmark(task_labels=False, n_tasks=2, per_class=20)
    model = HATMLP(8, (16,))
    strategy = HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=16,
        train_epochs=2,
        task_ids="per_experience",
        task_inference=rule,
        evaluator=EvaluationPlugin(loggers=[]),
        **kw,
    )
    for exp in stream.train_stream:
        strategy.train(exp)
    return model


def _route(model, rule):
    I.set_task_inference(model, rule)
    model.eval()
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(x, torch.zeros(16, dtype=torch.long))
    return x, model.router.last_tasks


def test_a_new_logit_rule_is_one_class(scratch_registry):
    class TopLogit(I.LogitRule):
        """The largest logit of each task's own classes."""

        name = "top_logit"

        def task_scores(self, logits, active):
            return logits.masked_fill(~active[:, None, :], float("-inf")).max(dim=-1).values

    assert task_rules.LOGIT_RULES == ("msp", "entropy", "energy", "oneshot", "top_logit")
    assert task_rules.RULES[-2:] == ("lda_cascade", "mahalanobis")
    assert HATConfig(task_ids="per_experience", task_inference="top_logit").calibrate_task_inference
    model = _train("top_logit")
    assert model.task_calibration(1, "top_logit").dim() == 0  # its calibration, by its name
    x, routed = _route(model, "top_logit")
    tasks, width = model.trained_tasks(), model.max_class_label
    with torch.no_grad():
        scores = TopLogit().task_scores(
            task_logits(model, x, tasks, width), task_classes(model, tasks, width)
        )
    assert torch.equal(routed, torch.tensor(tasks)[scores.argmax(dim=0)])
    with pytest.raises(ValueError, match="'top_logit' is already registered"):

        class Again(I.LogitRule):
            name = "top_logit"

    with pytest.raises(TypeError, match="subclasses LogitRule or FeatureRule"):

        class Bare(I.TaskInferenceRule):
            name = "bare"

    assert "bare" not in task_rules.RULES


def test_a_new_feature_rule_is_one_class(scratch_registry):
    class NearestClass(I.FeatureRule):
        """Minus the smallest Mahalanobis distance to a class of the task, in its own space."""

        name = "nearest_class"

        def scores(self, batch):
            rows = []
            for t, space, f in zip(batch.tasks, self.space_models(batch), batch.features):
                distance = space.mahalanobis(f.to(torch.float64))[:, space.owners == t]
                rows.append(-distance.min(dim=1).values)
            return torch.stack(rows)

    assert task_rules.FEATURE_RULES == ("lda_cascade", "mahalanobis", "nearest_class")
    model = _train("nearest_class")
    assert model.task_statistics.spaces() == [0, 1]  # gathered by the plugin, own spaces
    _, routed = _route(model, "nearest_class")
    assert set(routed.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="calibrate_task_inference=True needs a logit rule"):
        HATConfig(task_inference="nearest_class", calibrate_task_inference=True)
