"""Exact protection under any optimizer, interrupted runs, hostile inputs, properties."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _data import protected_entries, stacked_inputs
from avalanche.training.plugins import EvaluationPlugin
from hypothesis import given, settings
from hypothesis import strategies as st

from avalanche_adahat import HAT
from avalanche_adahat.core import functional as F
from avalanche_adahat.models import HATMLP
from avalanche_adahat.nn import HATMask

ROOT = Path(__file__).resolve().parents[2]
#: ``python SCRIPT ARGS`` (the script run as ``__main__`` in a fresh interpreter) that skips the
#: interpreter's teardown (seconds with torch loaded) once the script has exited.
RUN_SCRIPT = """
import os, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
    code = 0
except SystemExit as done:
    code = done.code
sys.stdout.flush()
sys.stderr.flush()
os._exit(code if isinstance(code, int) else 1)
"""

OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw_wd": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_protect_update_is_exact_under_any_optimizer(optimizer, tiny_benchmark):
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16), 2)
    strategy = HAT(
        model=model,
        optimizer=OPTIMIZERS[optimizer](model.parameters()),
        protect="update",
        mask_sparsity_reg_factor=0.0,
        train_mb_size=8,
        train_epochs=2,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    x1 = stacked_inputs(tiny_benchmark.test_stream[0].dataset)
    strategy.train(tiny_benchmark.train_stream[0])
    model.eval()
    out1 = model(x1, 0).detach().clone()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    keep = protected_entries(model)
    for exp in tiny_benchmark.train_stream[1:]:
        strategy.train(exp)
    model.eval()
    for cp in model.covered_parameters():
        k = keep[cp.name]
        assert torch.equal(cp.param[k], params[cp.name][k]), cp.name
        assert not torch.equal(cp.param[~k], params[cp.name][~k]), cp.name
    assert torch.equal(model(x1, 0), out1)


def test_gradient_mode_with_weight_decay_does_move_protected_weights(tiny_benchmark):
    """Why protect='update' exists: weight decay moves parameters whose gradient is 0."""
    torch.manual_seed(0)
    model = HATMLP(8, (16, 16), 2)
    strategy = HAT(
        model=model,
        optimizer=OPTIMIZERS["adamw_wd"](model.parameters()),
        mask_sparsity_reg_factor=0.0,
        train_mb_size=8,
        evaluator=EvaluationPlugin(loggers=[]),
    )
    with pytest.warns(UserWarning, match="weight decay"):
        strategy.train(tiny_benchmark.train_stream[0])
    before = model.layers[1].weight.detach().clone()
    keep = protected_entries(model)["layers.1.weight"]
    strategy.train(tiny_benchmark.train_stream[1])
    assert not torch.equal(model.layers[1].weight[keep], before[keep])


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    """A run stopped after two experiences, resumed from its Avalanche checkpoint by a fresh
    process (which has nothing but the checkpoint file), ends bitwise where an uninterrupted run
    ends. The stopped and the uninterrupted runs are made in this process, whose torch and
    Avalanche are imported already; the fresh process uses as many threads as this one."""
    script = ROOT / "examples" / "checkpoint_resume.py"
    main = runpy.run_path(str(script), run_name="checkpoint_resume")["main"]
    assert main(["--checkpoint", str(tmp_path / "cut.pkl"), "--stop-after", "2"]) == 0  # stops
    assert (tmp_path / "cut.pkl").is_file() and not (tmp_path / "resumed.pt").exists()
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    resume = [sys.executable, "-c", RUN_SCRIPT, str(script), "--checkpoint",
              str(tmp_path / "cut.pkl"), "--result", str(tmp_path / "resumed.pt")]  # fmt: skip
    proc = subprocess.Popen(resume, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # the uninterrupted run, while the fresh process starts
        assert main(["--checkpoint", str(tmp_path / "full.pkl"),
                     "--result", str(tmp_path / "full.pt")]) == 0  # fmt: skip
        log = proc.communicate(timeout=300)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log[-4000:]
    assert "starting at experience 2" in log, log[-4000:]
    full = torch.load(tmp_path / "full.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    accuracy = {k: v for k, v in full["metrics"].items() if k.startswith("Top1_Acc_Exp")}
    assert len(accuracy) == 4
    for key, (_steps, values) in accuracy.items():
        assert resumed["metrics"][key][1][-1] == values[-1], key
    assert "masks.0.mask_T3" in resumed["state_dict"]


def test_state_dict_from_a_different_model_shape_is_rejected():
    trained = HATMLP(8, (16,), 2)
    for mask in trained.hat_masks():
        mask.add_task(0, "N01")
    trained.store_task_masks(0)
    other = HATMLP(8, (12,), 2)
    with pytest.raises(RuntimeError, match="size mismatch for layers.0.weight"):
        other.load_state_dict(trained.state_dict())


def test_mismatched_input_size_names_the_problem(tiny_benchmark):
    model = HATMLP(10, (6,), 2)
    strategy = HAT(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                   evaluator=EvaluationPlugin(loggers=[]))  # fmt: skip
    with pytest.raises(ValueError, match="expects 10 input features .* got input of shape"):
        strategy.train(tiny_benchmark.train_stream[0])


# ------------------------------------------------------------------ properties

MODES = st.sampled_from(F.ADJUSTMENT_MODES)


@st.composite
def unit_state(draw):
    size = draw(st.integers(1, 12))
    tasks = draw(st.integers(0, 6))
    masks = draw(
        st.lists(
            st.lists(st.booleans(), min_size=size, max_size=size), min_size=tasks, max_size=tasks
        )  # fmt: skip
    )
    stored = torch.tensor(masks, dtype=torch.float32).reshape(tasks, size)
    cumulative = stored.amax(0) if tasks else torch.zeros(size)
    summative = stored.sum(0) if tasks else torch.zeros(size)
    return cumulative, summative, tasks


def _rates(mode, state, r, alpha=0.3):
    cumulative, summative, tasks = state
    return F.unit_rates(mode, cumulative, summative, r=r, alpha=alpha, num_previous_tasks=tasks)


@settings(max_examples=200, deadline=None)
@given(MODES, unit_state(), st.floats(1e-8, 1e3), st.floats(0, 1))
def test_rates_are_in_unit_interval_and_one_on_unused_units(mode, state, r, alpha):
    rates = _rates(mode, state, r, alpha)
    assert bool(((rates >= 0) & (rates <= 1)).all())
    unused = state[0] == 0
    assert bool((rates[unused] == 1).all())


@settings(max_examples=100, deadline=None)
@given(unit_state())
def test_hat_rates_are_exactly_zero_or_one(state):
    rates = _rates("hat", state, 1.0)
    assert set(rates.tolist()) <= {0.0, 1.0}


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 50), st.floats(0, 50), st.floats(1e-8, 10), st.floats(1e-8, 10))
def test_adahat_rate_decreases_with_count_and_increases_with_intensity(s1, s2, a1, a2):
    low_s, high_s = sorted((s1, s2))
    low_a, high_a = sorted((a1, a2))
    sparsity, eps = 0.3, 0.1

    def rate(s, a):
        r = F.adahat_r(a, sparsity, eps)
        return F.unit_rates("adahat", torch.ones(1), torch.tensor([s], dtype=torch.float64), r=r)

    assert rate(high_s, low_a) <= rate(low_s, low_a)
    assert rate(low_s, high_a) >= rate(low_s, low_a)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=40))
def test_stored_masks_are_exactly_binary(values):
    mask = HATMask(len(values))
    mask.add_task(0, "N01")
    with torch.no_grad():
        mask.embeddings["0"].copy_(torch.tensor(values))
    stored = mask.store(0)
    assert set(stored.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(stored, (torch.tensor(values) > 0).float())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.floats(1.0, 1e4))
def test_annealed_scale_is_positive_and_increasing(num_batches, s_max):
    scales = [F.annealed_scale(b, num_batches, s_max) for b in range(1, num_batches + 1)]
    assert all(s > 0 for s in scales)
    assert all(a <= b for a, b in zip(scales, scales[1:]))
    assert scales[-1] == pytest.approx(s_max)
