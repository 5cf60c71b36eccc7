"""The PNG pictures: written, non-empty, of the pixel size asked for, from a stored run."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_adahat import HAT
from avalanche_adahat.data import split_digits
from avalanche_adahat.metrics import accuracy_matrix, capacity_curve, hat_metrics
from avalanche_adahat.models import HATMLP
from avalanche_adahat.plots import (
    mask_matrix,
    plot_accuracy_bars,
    plot_accuracy_heatmap,
    plot_accuracy_matrix,
    plot_capacity,
    plot_mask_map,
    plot_task_capacity,
)

N_TASKS = 3


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """Train HAT on 3 tasks, store the model and the metrics, load them back."""
    folder = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    benchmark = split_digits(5)
    model = HATMLP(64, (16, 16), 2)
    strategy = HAT(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=64,
        eval_mb_size=512,
        evaluator=EvaluationPlugin(
            accuracy_metrics(experience=True),
            hat_metrics(sparsity=False, rates=False),
            loggers=[],
        ),
    )
    results = []
    for experience in benchmark.train_stream[:N_TASKS]:
        strategy.train(experience)
        results.append(strategy.eval(benchmark.test_stream[:N_TASKS]))
    torch.save(model.state_dict(), folder / "model.pt")
    metrics = {
        k: [list(xs), list(ys)] for k, (xs, ys) in strategy.evaluator.get_all_metrics().items()
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "accuracy.json").write_text(json.dumps(accuracy_matrix(results)))

    loaded = HATMLP(64, (16, 16), 2)
    # Avalanche's MultiHeadClassifier does not create the heads of later tasks on
    # load (the HAT masks do), so the heads are left out here: the plots need none.
    result = loaded.load_state_dict(torch.load(folder / "model.pt"), strict=False)
    assert not result.missing_keys
    assert all(k.startswith("head.") for k in result.unexpected_keys)
    return {
        "model": loaded,
        "metrics": {
            k: tuple(v) for k, v in json.loads((folder / "metrics.json").read_text()).items()
        },
        "accuracy": json.loads((folder / "accuracy.json").read_text()),
    }


def _check_png(path, width, height):
    assert path.is_file() and path.stat().st_size > 1000
    image = mpimg.imread(path)
    assert image.shape[:2] == (height, width)
    assert np.ptp(image[..., :3]) > 0  # something is drawn


def test_plot_capacity_from_recorded_metrics(stored_run, tmp_path):
    path = plot_capacity(stored_run["metrics"], tmp_path / "cap.png", figsize=(5, 3), dpi=80)
    assert path == tmp_path / "cap.png"
    _check_png(path, 400, 240)


def test_plot_capacity_from_plain_lists_and_several_runs(stored_run, tmp_path):
    # What the comparison command passes: values and the iterations where tasks start.
    _, values, starts, _ = capacity_curve(stored_run["metrics"])
    assert len(starts) == N_TASKS
    path = plot_capacity(values, tmp_path / "sub" / "cap.png", starts, dpi=50)
    _check_png(path, 320, 200)
    runs = {"HAT": stored_run["metrics"], "constant": [0.5] * len(values)}
    _check_png(plot_capacity(runs, tmp_path / "runs.png", figsize=(4, 4), dpi=60), 240, 240)
    with pytest.raises(ValueError, match="iterations"):
        plot_capacity([1.0, 0.5], tmp_path / "bad.png", iterations=[0])


def test_plot_mask_map_of_a_loaded_model(stored_run, tmp_path):
    model = stored_run["model"]
    assert model.trained_tasks() == list(range(N_TASKS))
    path = plot_mask_map(model, tmp_path / "mask.png", layer="masks.1", figsize=(6, 2.5), dpi=100)
    _check_png(path, 600, 250)
    _check_png(plot_mask_map(model, tmp_path / "mask0.png", layer=0, dpi=50), 320, 150)
    with pytest.raises(ValueError, match="not a HAT mask"):
        plot_mask_map(model, tmp_path / "x.png", layer="layers.0")


def test_mask_matrix_sorts_units_by_first_task(stored_run):
    model = stored_run["model"]
    matrix, order, tasks, name = mask_matrix(model, 0)
    assert name == "masks.0" and tasks == list(range(N_TASKS))
    assert sorted(order.tolist()) == list(range(16))
    stored = torch.stack([model.hat_masks()[0].stored_mask(t) for t in tasks]).numpy()
    assert (matrix == stored[:, order]).all()
    first = [int(np.argmax(col)) if col.any() else N_TASKS for col in matrix.T]
    assert first == sorted(first)


def test_plot_accuracy_matrix(stored_run, tmp_path):
    matrix = stored_run["accuracy"]
    assert len(matrix) == N_TASKS
    path = plot_accuracy_matrix(matrix, tmp_path / "acc.png", labels=["a", "b", "c"], dpi=60)
    _check_png(path, 300, 270)
    # Cells not evaluated (None / nan) are left blank.
    triangle = [[0.9, None], [0.8, 0.95]]
    _check_png(plot_accuracy_matrix(triangle, tmp_path / "tri.png", figsize=(3, 3)), 300, 300)


def test_compare_figures(stored_run, tmp_path):
    """compare's pictures: bars per strategy, capacity per task, the heatmap of many tasks."""
    bars = plot_accuracy_bars({"hat": 0.7, "naive": 0.5}, tmp_path / "a.png", {"hat": 0.1})
    _check_png(bars, 480, 420)  # 4 x 3.5 inches at 120 dpi, wider with more bars
    many = {f"s{k}": 0.5 for k in range(8)}
    _check_png(plot_accuracy_bars(many, tmp_path / "b.png", dpi=50), 395, 175)
    curves = {"hat": [1.0, 0.6, 0.4], "adahat": [1.0, 0.5]}
    _check_png(plot_task_capacity(curves, tmp_path / "c.png"), 720, 420)
    matrix = stored_run["accuracy"]
    _check_png(plot_accuracy_heatmap(matrix, tmp_path / "h.png", dpi=100), 250, 215)
    big = [[0.5 if j <= i else None for j in range(30)] for i in range(30)]
    _check_png(plot_accuracy_heatmap(big, tmp_path / "big.png"), 1440, 1200)


def test_tensorboard_example_logs_metrics_and_images(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    script = Path(__file__).parents[2] / "examples" / "tensorboard_metrics.py"
    spec = importlib.util.spec_from_file_location("tensorboard_metrics_example", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--logdir", str(tmp_path), "--epochs", "1", "--strategies", "HAT"]) == 0
    assert "HAT: average accuracy" in capsys.readouterr().out
    events = EventAccumulator(str(tmp_path / "HAT"))
    events.Reload()
    assert "NetworkCapacity_MB/train_phase/train_stream/Task004" in events.Tags()["scalars"]
    assert "MaskUsage_Free/train_phase/train_stream/Task004/Exp004" in events.Tags()["scalars"]
    assert set(events.Tags()["images"]) == {
        "Pictures/capacity",
        "Pictures/accuracy_matrix",
        "Pictures/mask_map_layer0",
        "Pictures/mask_map_layer1",
    }


# ---------------------------------------------------------------- readable pictures
def test_accuracy_figure_shows_close_values_apart_with_their_labels_and_seeds():
    from avalanche_adahat.plots import accuracy_bars_figure

    fig = accuracy_bars_figure(
        {"adahat": 0.9902, "hat": 0.9905},
        {"adahat": 0.001, "hat": None},
        seeds={"adahat": [0.9892, 0.9902, 0.9912], "hat": [0.9905]},
    )
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert 0.9 < low < 0.9892 and 0.9912 < high < 1.0  # fitted: 0.9902 and 0.9905 differ
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["0.9902\n± 0.0010", "0.9905"]  # "±" only with a spread
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [len(d.get_ydata()) for d in dots] == [3]  # adahat's seeds; hat has one


def test_task_capacity_is_numbered_from_zero_with_integer_ticks():
    from avalanche_adahat.plots import task_capacity_figure

    fig = task_capacity_figure({"hat": [1.0, 0.6, 0.4]}, title="split_digits, task-incremental")
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [0, 1, 2]
    ticks = [t for t in ax.get_xticks() if -0.5 <= t <= 2.5]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert ax.get_title() == "split_digits, task-incremental"
