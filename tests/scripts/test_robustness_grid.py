"""The robustness grid script: margins and worst cases from hand-made results.json files."""

import gzip
import json
from pathlib import Path

import pytest
import robustness_grid as script


def _write(root, cell, seed, job, accs, params=None, packed=False, **config_changes):
    """A results.json in ``<cell>_s<seed>/<job>/`` with one seed's average accuracy per
    strategy (``accs``: strategy -> accuracy)."""
    cell_obj = script.CELL_BY_NAME[cell]
    params = params or {}
    if job in script.CANDIDATES and not params:
        params = {"adahat": {"protect": "update", **script.CANDIDATES[job]}}
    config = {**cell_obj.settings, **script.COMMON, "params": params, **config_changes}
    strategies = {
        name: {
            "per_seed": {
                str(seed): {"avg_acc": acc, "bwt": -0.01, "acc_matrix": [[1.0, None], [acc, 0.5]]}
            }
        }
        for name, acc in accs.items()
    }
    folder = root / script.GRID / f"{cell}_s{seed}" / job
    folder.mkdir(parents=True)
    text = json.dumps({"config": config, "strategies": strategies})
    if packed:  # as `run` stores its jobs
        (folder / "results.json.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / "results.json").write_text(text)
    job_record = {"folder": str(folder), "command": f"cmd {job}", "commit": "abc1234"}
    (folder / "job.json").write_text(json.dumps({**job_record, "wall_seconds": 1.0}))


def _grid(root):
    # pfm20_s50, seeds 0 and 1 (and a seed 2 of a1e-2 without HAT/Naive: not paired)
    for seed, hat, naive, a1e2, a01, ewc in ((0, 0.60, 0.65, 0.66, 0.70, 0.72), (1, 0.62, 0.61, 0.63, 0.60, 0.70)):  # fmt: skip
        _write(root, "pfm20_s50", seed, "base", {"hat": hat, "naive": naive})
        _write(root, "pfm20_s50", seed, "a1e-2", {"adahat": a1e2})
        _write(root, "pfm20_s50", seed, "a0.1", {"adahat": a01})
        _write(root, "pfm20_s50", seed, "ewc", {"ewc": ewc})
    _write(root, "pfm20_s50", 2, "a1e-2", {"adahat": 0.10})
    # sfm5, seed 0 only, no EWC
    _write(root, "sfm5", 0, "base", {"hat": 0.99, "naive": 0.90})
    _write(root, "sfm5", 0, "a1e-2", {"adahat": 0.985})
    _write(root, "sfm5", 0, "a0.1", {"adahat": 0.97}, packed=True)


def test_margins_worst_case_and_ewc(tmp_path):
    _grid(tmp_path)
    cells = [script.CELL_BY_NAME["pfm20_s50"], script.CELL_BY_NAME["sfm5"]]
    result = script.analyse(script.load(tmp_path, cells, reuse=False), cells)
    m = result["margins"]
    # a1e-2 on pfm20_s50: 0.66 - 0.65 and 0.63 - 0.62, seed 2 unpaired
    assert m["a1e-2"]["pfm20_s50"]["seeds"] == [0, 1]
    assert m["a1e-2"]["pfm20_s50"]["margin"] == pytest.approx(0.01)
    assert m["a1e-2"]["pfm20_s50"]["std"] == pytest.approx(0.0, abs=1e-12)
    # a0.1: 0.70 - 0.65 = +0.05 and 0.60 - 0.62 = -0.02 -> mean 0.015, std 0.07 / sqrt(2)
    assert m["a0.1"]["pfm20_s50"]["margin"] == pytest.approx(0.015)
    assert m["a0.1"]["pfm20_s50"]["std"] == pytest.approx(0.07 / 2**0.5)
    assert m["a1e-2"]["sfm5"]["margin"] == pytest.approx(-0.005)
    assert m["a1e-2"]["sfm5"]["std"] is None
    assert m["a0.1"]["sfm5"]["margin"] == pytest.approx(-0.02)
    assert m["a1"]["sfm5"] is None and "a1" not in result["worst"]
    assert result["worst"]["a1e-2"] == {"margin": pytest.approx(-0.005), "cell": "sfm5", "cells": 2}
    assert result["worst"]["a0.1"] == {"margin": pytest.approx(-0.02), "cell": "sfm5", "cells": 2}
    assert result["winner"] == "a1e-2" and result["complete"] == ["a1e-2", "a0.1"]
    # EWC: the best other by mean on pfm20_s50 is a0.1 (0.65; a1e-2 0.4633 with seed 2)
    ewc = result["ewc"]["pfm20_s50"]
    assert ewc["best_other"] == "a0.1" and ewc["wins"]
    assert ewc["margin"] == pytest.approx(0.06)  # (0.72 - 0.70 + 0.70 - 0.60) / 2
    assert result["ewc"]["sfm5"] is None


def test_summary_writes_the_page_the_figure_and_grid_json(tmp_path):
    _grid(tmp_path)
    argv = ["summary", "--root", str(tmp_path), "--cells", "pfm20_s50,sfm5", "--no-reuse"]
    assert script.main(argv) == 0
    page = (tmp_path / script.STUDY).read_text()
    assert "| a1e-2 | +0.010 ± 0.000 (2) | -0.005 (1) | **-0.005** | sfm5 | 2/2 |" in page
    assert "| a0.1 | +0.015 ± 0.049 (2) | -0.020 (1) | **-0.020** | sfm5 | 2/2 |" in page
    assert "**Largest worst case: a1e-2**, -0.005" in page
    assert "| best candidate of the cell | a0.1 +0.015 | a1e-2 -0.005 |" in page
    assert (
        "| sfm5 | 0.750 / -0.010 | 0.750 / -0.010 | – | 0.750 / -0.010 |" in page
    )  # diagonal mean
    assert "| pfm20_s50 | 0.710 ± 0.014 (2) | a0.1 0.650 ± 0.071 (2) | +0.060 ± 0.057 (2) | **yes** |" in page  # fmt: skip
    assert "robustness_grid.py summary --root" in page and "commit abc1234" in page
    assert (tmp_path / script.GRID / "margin.png").stat().st_size > 1000
    record = json.loads((tmp_path / script.GRID / "grid.json").read_text())
    assert record["winner"] == "a1e-2" and record["commits"] == ["abc1234"]


def test_results_of_other_settings_or_parameters_are_refused(tmp_path):
    cells = [script.CELL_BY_NAME["pfm20_s50"]]
    _write(tmp_path, "pfm20_s50", 0, "base", {"hat": 0.6, "naive": 0.6}, epochs=1)
    with pytest.raises(ValueError, match="epochs=1"):
        script.load(tmp_path, cells, reuse=False)
    other = tmp_path / "other"
    params = {"adahat": {"protect": "gradient", "adjustment_intensity": 0.1}}
    _write(other, "pfm20_s50", 0, "a0.1", {"adahat": 0.6}, params=params)
    with pytest.raises(ValueError, match="not candidate a0.1"):
        script.load(other, cells, reuse=False)
    # library defaults (no --set) stand for the default candidate only
    assert script.params_match("a1e-2", {}) and not script.params_match("a0.1", {})
    assert script.params_match("a0.1", {"protect": "update", "adjustment_intensity": 0.1})
    assert script.params_match("a1e-2", {"protect": "update"})  # the old defaults, protect given
    assert not script.params_match("t10", {"protect": "update"})


def test_compare_args_name_the_candidate_and_the_cell():
    cell = script.CELL_BY_NAME["sgd_s80"]
    args = script.compare_args(cell, "a0.3", 1, Path("out"))
    text = " ".join(args)
    assert "--train-per-task 5000 --epochs 2 --batch-size 128 --optimizer sgd --lr 0.05" in text
    assert "--strategies adahat --set adahat.protect=update" in text
    assert "--set adahat.adjustment_intensity=0.3 --seeds 1 --threads 1" in text
    assert cell.steps == 80 and script.CELL_BY_NAME["pfm20_s470"].steps == 469
    assert "--n-experiences" not in " ".join(script.compare_args(script.CELL_BY_NAME["sdigits"], "base", 0, Path("o")))  # fmt: skip


def test_per_task_candidates_and_the_choice_by_optimizer(tmp_path):
    """t<A> runs intensity_per='task'; t20|t200 reads t20 in Adam cells, t200 in SGD cells."""
    args = " ".join(script.compare_args(script.CELL_BY_NAME["pfm20_s80"], "t10", 0, Path("o")))
    assert "--set adahat.intensity_per=task --set adahat.adjustment_intensity=10" in args
    task = {"protect": "update", "intensity_per": "task", "adjustment_intensity": 10.0}
    assert script.params_match("t10", task) and not script.params_match("a1", {**task, "adjustment_intensity": 1.0})  # fmt: skip
    assert not script.params_match("t10", {"protect": "update", "adjustment_intensity": 10.0})
    for cell, job, acc in (("pfm20_s80", "t20", 0.7), ("pfm20_s80", "t200", 0.1), ("sgd_s80", "t20", 0.1), ("sgd_s80", "t200", 0.4)):  # fmt: skip
        _write(tmp_path, cell, 0, job, {"adahat": acc})
    cells = [script.CELL_BY_NAME["pfm20_s80"], script.CELL_BY_NAME["sgd_s80"]]
    data = script.load(tmp_path, cells, reuse=False)
    assert data["pfm20_s80"]["t20|t200"][0]["avg_acc"] == 0.7
    assert data["sgd_s80"]["t20|t200"][0]["avg_acc"] == 0.4
