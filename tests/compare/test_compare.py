"""End-to-end tests of ``avalanche-adahat compare`` (small: Split Digits, 1 epoch)."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avalanche_adahat.__main__ import main
from avalanche_adahat.compare import CompareConfig, matrix_metrics
from avalanche_adahat.data import benchmarks as bm
from avalanche_adahat.data.fast_data import TensorLoader, TensorSource

FMNIST = Path("/usr/share/datasets/fashion-mnist")
STRATEGIES = ["adahat", "hat", "naive", "ewc"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    argv = [
        "compare", "--benchmark", "split_digits", "--strategies", ",".join(STRATEGIES),
        "--epochs", "1", "--seeds", "0,1", "--threads", "1", "--progress", "none",
        "--set", "ewc.ewc_lambda=10", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    return out, json.loads((out / "results.json").read_text())


def _in_unit(x):
    return x is not None and 0.0 <= x <= 1.0


def test_results_json(digits_run):
    out, res = digits_run
    assert set(res["versions"]) == {
        "python", "torch", "avalanche", "avalanche_adahat", "avalanche_adahat_commit",
    }  # fmt: skip
    assert all(res["versions"].values())  # a git checkout: the commit is known
    cfg = res["config"]
    assert cfg["seeds"] == [0, 1] and cfg["epochs"] == 1 and cfg["benchmark"] == "split_digits"
    assert cfg["params"]["ewc"]["ewc_lambda"] == 10
    assert cfg["command"].startswith("avalanche-adahat compare --benchmark split_digits")
    assert list(res["strategies"]) == STRATEGIES
    for name, s in res["strategies"].items():
        assert set(s["per_seed"]) == {"0", "1"}
        for key in ("avg_acc", "bwt", "forgetting", "acc_matrix", "capacity", "train_seconds"):
            assert key in s
        assert _in_unit(s["avg_acc"])
        assert -1 <= s["bwt"] <= 1 and -1 <= s["forgetting"] <= 1
        for run in [s, *s["per_seed"].values()]:
            m = run["acc_matrix"]
            assert len(m) == 5 and all(len(row) == 5 for row in m)
            for i, row in enumerate(m):
                assert all(_in_unit(v) for v in row[: i + 1])
                assert all(v is None for v in row[i + 1 :])  # no head for untrained tasks
            assert run["train_seconds"] > 0
        for seed, run in s["per_seed"].items():
            assert run["seed"] == int(seed)
            assert run["avg_acc"] == pytest.approx(sum(run["acc_matrix"][-1]) / 5)
            assert run["bwt"] == pytest.approx(matrix_metrics(run["acc_matrix"])["bwt"])
        for run in s["per_seed"].values():  # 5 training + 15 evaluation experiences
            assert run["data_loading"] == {"tensor": 20, "avalanche": 0}
        if name in ("adahat", "hat"):
            assert _in_unit(s["capacity"])
            curve = s["per_seed"]["0"]["capacity_start"]
            assert len(curve) == 5 and curve[0] == pytest.approx(1.0)
            assert all(_in_unit(v) for v in curve)
        else:
            assert s["capacity"] is None


def test_csv_md_and_plots(digits_run):
    out, res = digits_run
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {(r["strategy"], r["seed"]) for r in rows} >= {(s, x) for s in STRATEGIES for x in "01"}
    for r in rows:
        if r["seed"] in ("0", "1", "mean"):
            assert 0 <= float(r["avg_acc"]) <= 1
    md = (out / "results.md").read_text()
    assert res["config"]["command"] in md
    for name in STRATEGIES:
        assert f"| {name} |" in md
    pngs = ["accuracy.png", "capacity.png", *(f"acc_matrix_{s}.png" for s in STRATEGIES)]
    for png in pngs:
        data = (out / png).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_formulas():
    m = [[0.9, None, None], [0.7, 0.8, None], [0.6, 0.5, 1.0]]
    r = matrix_metrics(m)
    assert r["avg_acc"] == pytest.approx(0.7)
    assert r["bwt"] == pytest.approx(((0.6 - 0.9) + (0.5 - 0.8)) / 2)
    assert r["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.5)) / 2)


def test_config_file_and_cli_override(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'benchmark = "permuted_digits"\nn_experiences = 2\nstrategies = ["hat"]\n'
        'epochs = 3\nseeds = [4]\nprogress = "none"\n[model_params]\nhidden_sizes = [32]\n'
    )
    out = tmp_path / "o"
    argv = ["compare", "--config", str(cfg), "--epochs", "1", "--output", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["epochs"] == 1 and res["config"]["seeds"] == [4]
    assert res["config"]["model_params"] == {"hidden_sizes": [32]}
    assert len(res["strategies"]["hat"]["acc_matrix"]) == 2


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--strategies", "adahat,bogus"], "unknown strategy 'bogus'"),
        (["--benchmark", "nope"], "unknown benchmark 'nope'"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--set", "ewc.nonsense=1"], "unknown parameter(s) nonsense"),
        (["--strategies", "packnet", "--epochs", "1"], "packnet needs --epochs"),
        (
            ["--benchmark", "permuted_fmnist", "--data-root", "/nonexistent/fm"],
            "apt-get install dataset-fashion-mnist",
        ),
    ],
)
def test_bad_options_one_line(args, reason, capsys, tmp_path):
    assert main(["compare", *args, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


def _run_cli(*args, timeout=120):
    exe = Path(sys.executable).with_name("avalanche-adahat")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "avalanche_adahat"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_console_help(capsys, monkeypatch):
    """The console script answers (``--help`` imports nothing heavy); ``compare --help`` is the
    same parser in this process, whose imports are paid already, as wide as in a pipe."""
    r = _run_cli("--help")
    assert r.returncode == 0 and "compare" in r.stdout
    monkeypatch.setenv("COLUMNS", "80")  # what argparse finds in a pipe, whatever the terminal
    with pytest.raises(SystemExit) as done:
        main(["compare", "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--benchmark", "--strategies", "--set", "--model", "--epochs", "--batch-size",
                   "--optimizer", "--lr", "--seeds", "--device", "--output", "--config",
                   "--data-root", "split_fmnist", "packnet", "ewc_lambda", "--scenario",
                   "replay_200", "icarl", "gdumb", "hat_energy"):  # fmt: skip
        assert option in help_text


@pytest.mark.skipif(
    not FMNIST.is_dir(),
    reason=f"Fashion-MNIST not in {FMNIST}: `apt-get install dataset-fashion-mnist` to run this",
)
def test_split_fmnist_from_debian_package(tmp_path):
    out = tmp_path / "fm"
    argv = [
        "compare", "--benchmark", "split_fmnist", "--n-experiences", "2",
        "--strategies", "hat,naive", "--epochs", "3", "--batch-size", "32", "--seeds", "0",
        "--train-per-task", "300", "--test-per-task", "200", "--threads", "1",
        "--progress", "none", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    for s in res["strategies"].values():
        assert len(s["acc_matrix"]) == 2 and _in_unit(s["avg_acc"])
    # the naive run learnt something on real data
    assert res["strategies"]["naive"]["acc_matrix"][0][0] > 0.7


# --------------------------------------------------------------------------- fast data path
def _all_items(dataset):
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([torch.as_tensor(it[0]) for it in items]), [int(it[1]) for it in items]


@pytest.mark.parametrize("build", [bm.split_digits, bm.permuted_digits])
def test_tensor_sources_equal_avalanche_datasets(build):
    benchmark = build(5)
    for name in ("train", "test"):
        stream = getattr(benchmark, f"{name}_stream")
        sources = benchmark.tensor_sources[name]
        assert len(sources) == len(stream)
        for exp, source in zip(stream, sources):
            data = exp.dataset.train() if name == "train" else exp.dataset.eval()
            x, y = _all_items(data)
            sx, sy = source.get(torch.arange(len(source)))
            assert torch.equal(sx, x) and sy.tolist() == y  # bitwise, every sample
            assert source.task_label == exp.task_label
            sub = source.subset(torch.tensor([3, 1]))
            assert torch.equal(sub.get(torch.arange(2))[0], x[[3, 1]])


def test_tensor_loader_batches():
    source = TensorSource(torch.arange(10.0).reshape(10, 1), torch.arange(10) % 3, 7)
    loader = TensorLoader(source, batch_size=4, shuffle=True)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    xs = torch.cat([b[0] for b in batches]).flatten()
    assert sorted(xs.tolist()) == list(range(10))
    for x, y, t in batches:
        assert torch.equal(y, x.flatten().long() % 3) and set(t.tolist()) == {7}
    ordered = torch.cat([b[0] for b in TensorLoader(source, 4, shuffle=False)]).flatten()
    assert ordered.tolist() == list(range(10))
    ordered[0] = -1.0  # batches are copies, never views of the stored data
    assert source.x[0, 0] == 0.0


def test_fast_data_falls_back_where_data_differ(tmp_path):
    """Cumulative trains on more than one experience, Replay adds its buffer: Avalanche's loaders.
    (One short epoch: the data path is what is checked.)"""
    out = tmp_path / "cum"
    argv = [
        "compare", "--benchmark", "split_digits", "--n-experiences", "2",
        "--strategies", "cumulative,replay,naive", "--seeds", "0", "--threads", "1",
        "--epochs", "1", "--batch-size", "64", "--progress", "none", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    loading = {k: s["per_seed"]["0"]["data_loading"] for k, s in res["strategies"].items()}
    assert loading["naive"] == {"tensor": 5, "avalanche": 0}
    assert loading["cumulative"] == {"tensor": 4, "avalanche": 1}  # its 2nd training set
    assert loading["replay"] == {"tensor": 4, "avalanche": 1}  # Replay's loader on task 2
    slow = tmp_path / "slow"
    assert main([*argv[:-1], str(slow), "--no-fast-data"]) == 0
    res = json.loads((slow / "results.json").read_text())
    assert res["config"]["fast_data"] is False
    assert all(s["per_seed"]["0"]["data_loading"] is None for s in res["strategies"].values())


@pytest.mark.skipif(not FMNIST.is_dir(), reason=f"Fashion-MNIST not in {FMNIST}")
@pytest.mark.parametrize("name", ["split_fmnist", "permuted_fmnist"])
def test_fmnist_sources_equal_avalanche_datasets(name):
    benchmark = getattr(bm, name)(2, 0)
    g = torch.Generator().manual_seed(1)
    for stream in ("train", "test"):
        for exp, source in zip(
            getattr(benchmark, f"{stream}_stream"), benchmark.tensor_sources[stream]
        ):
            assert source is not None and len(source) == len(exp.dataset)
            picks = torch.randint(len(source), (64,), generator=g)
            sx, sy = source.get(picks)
            for k, i in enumerate(picks.tolist()):
                x, y, t = exp.dataset[i]
                assert torch.equal(x, sx[k]) and int(y) == int(sy[k]) and t == source.task_label


def test_merge_seeds_and_strategies_run_apart(digits_run, tmp_path, capsys):
    """Seeds and strategies run separately merge into the run that did them together."""
    out, together = digits_run
    common = [
        "--benchmark", "split_digits", "--epochs", "1", "--threads", "1", "--progress", "none",
        "--set", "ewc.ewc_lambda=10",
    ]  # fmt: skip
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert (
        main(["compare", *common, "--strategies", "hat,naive", "--seeds", "1", "--output", str(a)])
        == 0
    )
    assert (
        main(["compare", *common, "--strategies", "hat,naive", "--seeds", "0", "--output", str(b)])
        == 0
    )
    assert (
        main(["compare", *common, "--strategies", "ewc", "--seeds", "0,1", "--output", str(c)]) == 0
    )
    merged = tmp_path / "merged"
    assert main(["merge", str(a), str(b), str(c), "-o", str(merged)]) == 0
    res = json.loads((merged / "results.json").read_text())
    assert res["config"]["seeds"] == [0, 1] and list(res["strategies"]) == ["hat", "naive", "ewc"]
    assert res["config"]["merged_from"] == [str(a), str(b), str(c)]
    assert res["config"]["command"].count("avalanche-adahat compare") == 3
    assert res["config"]["command"].splitlines()[-1].startswith("avalanche-adahat merge")
    for name, s in res["strategies"].items():
        assert list(s["per_seed"]) == ["0", "1"]
        mean = sum(r["avg_acc"] for r in s["per_seed"].values()) / 2
        assert s["avg_acc"] == pytest.approx(mean)
        # same seed, same setting: the numbers of the run that did everything at once
        for seed in ("0", "1"):
            assert (
                s["per_seed"][seed]["acc_matrix"]
                == together["strategies"][name]["per_seed"][seed]["acc_matrix"]
            )
    md = (merged / "results.md").read_text()
    assert "| hat | 2 |" in md and (merged / "accuracy.png").is_file()
    # a repeated (strategy, seed), or another setting, is refused in one line
    capsys.readouterr()
    assert main(["merge", str(a), str(a), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "hat seed 1 is in both" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "compare",
                *common,
                "--strategies",
                "hat",
                "--seeds",
                "2",
                "--epochs",
                "2",
                "--output",
                str(tmp_path / "e2"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["merge", str(a), str(tmp_path / "e2"), "-o", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "differs from" in err and "in epochs: 2 vs 1" in err


def test_packnet_runs_with_the_compare_plugins(tmp_path):
    """Avalanche's PackNet drops the plugins it is given; compare adds them back, so PackNet's
    data go through the same path as the others' and its loading is recorded."""
    argv = [
        "compare", "--benchmark", "split_digits", "--strategies", "packnet", "--epochs", "2",
        "--seeds", "0", "--threads", "1", "--progress", "none", "--output", str(tmp_path),
    ]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((tmp_path / "results.json").read_text())["strategies"]["packnet"]
    loading = run["per_seed"]["0"]["data_loading"]
    assert loading["tensor"] > 0 and loading["avalanche"] == 0
    assert _in_unit(run["avg_acc"]) and run["forgetting"] == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- package modules
def test_registry_specs_build_their_strategies():
    """Each spec names a class that exists; HAT-family membership is the spec's own field."""
    from avalanche_adahat import AdaHAT
    from avalanche_adahat.compare import strategy_specs

    for name, spec in strategy_specs.STRATEGIES.items():
        cls = spec.strategy_class()
        assert set(spec.defaults) <= spec.allowed_params(), name
        assert spec.hat_family == isinstance(spec, strategy_specs.HATSpec), name
        if spec.hat_family and spec.scenarios == ("class",):  # hat_<rule>[_cal]
            assert spec.mode == "hat" and spec.defaults["task_inference"] in name
        elif spec.hat_family:
            assert spec.mode == name and issubclass(cls, AdaHAT) == name.startswith("adahat")
    from avalanche_adahat.core.modes import MODES

    uses_alpha = [  # alpha is passed on where the mode reads it (the mode registry says so)
        n
        for n, s in strategy_specs.STRATEGIES.items()
        if s.hat_family and "alpha" in s._hyperparameters({"alpha": 0.5}, "task")
    ]
    assert uses_alpha == [n for n, m in MODES.items() if m.needs_alpha] == ["hat_const_alpha"]
    config = CompareConfig(model="mlp", model_params={"hidden_sizes": [8]}, epochs=2)
    packnet = strategy_specs.STRATEGIES["packnet"]
    model = packnet.build_model(config, (1, 8, 8), 3)
    assert type(model).__name__ == "PackNetModel"
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [8, 3]
    with pytest.raises(strategy_specs.CompareError, match="post_prune_epochs"):
        packnet.check(dataclasses.replace(config, epochs=1), packnet.defaults)


@pytest.mark.parametrize(
    "name, shape, params, kind",
    [
        ("mlp", (1, 8, 8), {"hidden_sizes": [16]}, "HATMLP"),
        ("alexnet", (1, 28, 28), {"channels": [4, 4, 4], "fc_sizes": [8]}, "HATAlexNet"),
        ("alexnet", (3, 32, 32), {}, "HATAlexNet"),
        ("resnet18", (1, 16, 16), {"width": 4}, "HATResNet18"),
    ],
)
def test_registry_models_from_input_shape(name, shape, params, kind):
    from avalanche_adahat.compare import MODELS

    model = MODELS[name](shape, 3, params)
    assert type(model).__name__ == kind
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert (first.in_channels if isinstance(first, torch.nn.Conv2d) else first.in_features) == (
        shape[0] if name != "mlp" else 64
    )


def _args(*argv):
    from avalanche_adahat.compare import build_parser

    return build_parser().parse_args(list(argv))


def test_config_layers_and_values(tmp_path):
    from avalanche_adahat.compare import DEFAULTS, CompareError, build_config, strategy_params
    from avalanche_adahat.compare.config import progress_mode

    config = build_config(_args())
    # the default benchmark's training settings fill what no option gave
    assert config == CompareConfig(epochs=10, batch_size=16, lr=3e-3)
    assert config.to_dict() == {**DEFAULTS, "epochs": 10, "batch_size": 16, "lr": 3e-3}
    assert list(DEFAULTS) == [f.name for f in dataclasses.fields(CompareConfig)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3
    fmnist = build_config(_args("--benchmark", "split_fmnist", "--epochs", "2"))
    assert (fmnist.epochs, fmnist.batch_size, fmnist.lr) == (2, 64, 1e-3)
    file = tmp_path / "results.json"  # a results.json is a config file: its "config" section
    file.write_text(json.dumps({"config": {"seeds": [3, 4], "params": {"ewc": {"mode": "online"}},
                                           "command": "x", "strategies": "hat,ewc"}}))  # fmt: skip
    config = build_config(
        _args("--config", str(file), "--seeds", "5", "--set", "ewc.ewc_lambda=1e3",
              "--set", "hat.alpha=none", "--set", "model.hidden_sizes=[8,8]",
              "--set", "ewc.decay_factor=true", "--progress", "none")
    )  # fmt: skip
    assert config.seeds == (5,) and config.strategies == ("hat", "ewc")
    assert config.params == {
        "ewc": {"mode": "online", "ewc_lambda": 1000.0, "decay_factor": True},
        "hat": {"alpha": None},
    }
    assert config.model_params == {"hidden_sizes": [8, 8]}
    assert strategy_params(config, "ewc") == {"ewc_lambda": 1000.0, "mode": "online",
                                              "decay_factor": True}  # fmt: skip
    assert progress_mode(config) == "none" and progress_mode(CompareConfig()) == "lines"
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [")
    with pytest.raises(CompareError, match="cannot parse config file"):
        build_config(_args("--config", str(bad)))
    bad.write_text("epoch = 2\n")
    with pytest.raises(CompareError, match="unknown key.s. epoch in"):
        build_config(_args("--config", str(bad)))
    with pytest.raises(CompareError, match="--set expects NAME.KEY=VALUE"):
        build_config(_args("--set", "ewc_lambda=3"))
    with pytest.raises(CompareError, match="--threads must be a positive integer"):
        build_config(_args("--threads", "0"))


def test_run_pieces(digits_benchmark):
    from avalanche.core import SupervisedPlugin

    from avalanche_adahat.compare import CapacityRecorder
    from avalanche_adahat.compare.run import _accuracy_row, _subsample

    recorder = CapacityRecorder()
    assert isinstance(recorder, SupervisedPlugin) and recorder.start == recorder.end == []
    small = _subsample(digits_benchmark, 30, 7, seed=0)
    assert [len(e.dataset) for e in small.train_stream] == [30] * 5
    assert [len(e.dataset) for e in small.test_stream] == [7] * 5
    for name, stream in (("train", small.train_stream), ("test", small.test_stream)):
        for exp, source in zip(stream, small.tensor_sources[name]):
            data = exp.dataset.train() if name == "train" else exp.dataset.eval()
            x, y = _all_items(data)
            sx, sy = source.get(torch.arange(len(source)))
            assert torch.equal(sx, x) and sy.tolist() == y
    again = _subsample(digits_benchmark, 30, 7, seed=0)
    assert torch.equal(again.tensor_sources["train"][2].x, small.tensor_sources["train"][2].x)
    key = "Top1_Acc_Exp/eval_phase/test_stream/Task00{0}/Exp00{0}"
    metrics = {key.format(0): 0.5, key.format(1): 0.25, "Loss_Stream/eval_phase/test_stream": 1.0}
    assert _accuracy_row(metrics, 1, 3) == [0.5, 0.25, None]
    with pytest.raises(KeyError, match="test experience 2"):
        _accuracy_row(metrics, 2, 3)


def test_results_summary_over_seeds():
    from avalanche_adahat.compare import summarize

    def run(seed, acc, capacity):
        m = [[acc, None], [acc - 0.1, acc]]
        curve = [1.0, capacity] if capacity is not None else None
        return {"seed": seed, **matrix_metrics(m), "acc_matrix": m, "capacity": capacity,
                "capacity_start": curve, "capacity_end": curve, "train_seconds": 1.0}  # fmt: skip

    s = summarize({0: run(0, 0.8, 0.5), 1: run(1, 0.6, 0.3)})
    assert s["avg_acc"] == pytest.approx(0.65) and s["avg_acc_std"] == pytest.approx(0.02**0.5)
    assert s["bwt"] == pytest.approx(-0.1) and s["train_seconds_std"] == 0.0
    assert s["acc_matrix"][0][1] is None and s["acc_matrix"][1][0] == pytest.approx(0.6)
    assert s["capacity_start"] == pytest.approx([1.0, 0.4]) and list(s["per_seed"]) == ["0", "1"]
    baseline = summarize({0: run(0, 0.8, None)})
    assert baseline["capacity"] is None and baseline["capacity_std"] is None
    assert baseline["capacity_start"] is None and baseline["avg_acc_std"] == 0.0


def _synthetic_results(n_tasks: int, names=("hat", "naive")) -> dict:
    from avalanche_adahat.compare import DEFAULTS, summarize

    runs = {}
    for k, name in enumerate(names):
        m = [[0.5 + 0.01 * j if j <= i else None for j in range(n_tasks)] for i in range(n_tasks)]
        curve = [1.0 - t / n_tasks for t in range(n_tasks)] if k == 0 else None
        run = {"seed": 0, **matrix_metrics(m), "acc_matrix": m, "train_seconds": 2.0,
               "capacity": curve[-1] if curve else None, "capacity_start": curve,
               "capacity_end": curve, "data_loading": {"tensor": 3, "avalanche": k}}  # fmt: skip
        runs[name] = summarize({0: run})
    config = {**DEFAULTS, "strategies": list(names), "command": "avalanche-adahat compare x"}
    return {"config": config, "versions": {"torch": "t"}, "wall_seconds": 3.0, "strategies": runs}


def test_report_outputs_of_many_tasks(tmp_path):
    """Past 12 tasks the accuracy matrix is an unannotated heatmap that grows with the tasks."""
    import matplotlib.image as mpimg

    from avalanche_adahat.compare import results_markdown, write_outputs

    results = _synthetic_results(15)
    write_outputs(results, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["strategy"], r["seed"]) for r in rows][:3] == [("hat", "0"), ("hat", "mean"),
                                                               ("hat", "std")]  # fmt: skip
    assert rows[0]["capacity"] == "0.0666667" and rows[3]["capacity"] == ""
    assert [rows[2][k] for k in ("avg_acc", "bwt", "capacity")] == ["", "", ""]  # one seed
    md = results_markdown(results)
    assert md == (tmp_path / "results.md").read_text()
    # tasks numbered from 0, as in the matrices: 0-9, then the last
    assert "## split_digits, 15 tasks" in md and "| task 0 | task 1 |" in md
    assert "| task 9 | task 14 |" in md and "task 10" not in md and "task 15" not in md
    assert "One seed: no spread. Hyperparameters: the strategies' defaults." in md
    assert "Hyperparameters: ." not in md and "±" not in md
    assert "by Avalanche's own loaders (naive)" in md
    for png, size in [("acc_matrix_hat.png", (906, 1020)), ("accuracy.png", (420, 480)),
                      ("capacity.png", (420, 720))]:  # fmt: skip
        assert mpimg.imread(tmp_path / png).shape[:2] == size


def test_plot_titles_name_the_setting_and_the_spread_only_with_seeds(tmp_path, monkeypatch):
    from avalanche_adahat.compare import report

    drawn = {}

    def record(name):
        def plot(*args, **kwargs):
            drawn.setdefault(name, []).append((args, kwargs))

        return plot

    for name in ("plot_accuracy_bars", "plot_accuracy_matrix", "plot_task_capacity"):
        monkeypatch.setattr(report.plots, name, record(name))
    results = _synthetic_results(3)
    results["config"]["epochs"] = 10
    report.write_plots(results, tmp_path)
    (means, _, stds), kwargs = drawn["plot_accuracy_bars"][0]
    assert kwargs["title"] == "split_digits, task-incremental\n3 tasks, 10 epoch(s)/task; one seed"
    assert stds == {"hat": None, "naive": None} and kwargs["seeds"] == {
        "hat": [means["hat"]], "naive": [means["naive"]],
    }  # fmt: skip
    assert drawn["plot_accuracy_matrix"][0][1]["title"].startswith("hat: split_digits, task-inc")
    assert "3 tasks" in drawn["plot_task_capacity"][0][1]["title"]
    two = _synthetic_results(3)
    two["strategies"]["hat"]["per_seed"]["1"] = two["strategies"]["hat"]["per_seed"]["0"]
    drawn.clear()
    report.write_plots(two, tmp_path)
    assert drawn["plot_accuracy_bars"][0][1]["title"].endswith("mean ± std over 2 seeds")


def test_report_command(tmp_path, capsys):
    from avalanche_adahat.compare import write_outputs

    run = tmp_path / "runs" / "one"
    run.mkdir(parents=True)
    write_outputs(_synthetic_results(3), run)
    (run / "NOTES.md").write_text("A note.\n")
    (tmp_path / "pre.md").write_text("# Results\n")
    out = tmp_path / "docs" / "RESULTS.md"
    argv = ["report", str(run), "-o", str(out), "--preamble", str(tmp_path / "pre.md")]
    assert main(argv) == 0
    text = out.read_text()
    assert text.startswith("# Results\n\n## split_digits, 3 tasks")
    assert "![accuracy.png](../runs/one/accuracy.png)" in text and text.endswith("A note.\n")
    assert "acc_matrix_hat.png, acc_matrix_naive.png, accuracy.png, capacity.png" in text
    capsys.readouterr()
    assert main(["report", str(tmp_path / "none"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has no results.json" in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- class-incremental
@pytest.mark.parametrize(
    "args, reason",
    [
        (["--scenario", "domain"], "--scenario must be task or class"),
        (
            ["--scenario", "class", "--benchmark", "permuted_digits"],
            "--scenario class runs on split_digits, split_fmnist, split_mnist, split_cifar10, "
            "split_cifar100, split_tinyimagenet only, not 'permuted_digits'",
        ),
        (["--scenario", "class", "--strategies", "packnet", "--epochs", "2"], "task only"),
        (["--strategies", "icarl"], "'icarl' runs in --scenario class only"),
        (["--strategies", "hat_energy"], "class only"),
        (
            ["--scenario", "class", "--strategies", "naive", "--model", "alexnet"],
            "needs --model mlp",
        ),
        (["--scenario", "class", "--set", "hat.task_inference=bogus"], "task_inference"),
    ],
)
def test_scenario_option_validation(args, reason, capsys, tmp_path):
    assert main(["compare", "--progress", "none", *args, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


def test_scenario_config_key(tmp_path):
    from avalanche_adahat.compare import build_config, build_parser

    args = build_parser().parse_args(["--scenario", "class"])
    assert build_config(args).scenario == "class"
    assert build_config(build_parser().parse_args([])).scenario == "task"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"scenario": "class", "benchmark": "split_fmnist"}))
    config = build_config(build_parser().parse_args(["--config", str(cfg)]))
    assert config.scenario == "class" and config.benchmark == "split_fmnist"


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare_cil")
    argv = [
        "compare", "--scenario", "class", "--benchmark", "split_digits",
        "--strategies", "hat,naive,hat_energy_cal", "--set", "hat.task_inference=entropy",
        "--train-per-task", "60", "--epochs", "1", "--seeds", "0", "--threads", "1",
        "--set", "model.hidden_sizes=[32]", "--progress", "none", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    return out, json.loads((out / "results.json").read_text())


def test_class_incremental_run(class_run):
    out, res = class_run
    assert res["config"]["scenario"] == "class"
    assert res["config"]["params"]["hat"] == {"task_inference": "entropy"}
    for name, s in res["strategies"].items():
        run = s["per_seed"]["0"]
        m = run["acc_matrix"]
        assert len(m) == 5 and all(_in_unit(v) for i, row in enumerate(m) for v in row[: i + 1])
        assert all(v is None for i, row in enumerate(m) for v in row[i + 1 :])
        if name == "naive":
            assert s["task_id_acc"] is None and run["task_id_acc_curve"] is None
        else:  # HAT family: task inferred, its accuracy recorded after every experience
            assert _in_unit(s["task_id_acc"]) and s["task_id_acc_std"] == 0.0
            curve = run["task_id_acc_curve"]
            assert len(curve) == 5 and curve[0] == pytest.approx(1.0)  # one task: always right
            assert run["task_id_acc"] == curve[-1]
            assert _in_unit(s["capacity"])
    md = (out / "results.md").read_text()
    assert "(class-incremental)" in md and "task-id acc |" in md
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert "task_id_acc" in rows[0]


def test_class_incremental_models_and_benchmark():
    from avalanche_adahat.compare import registry, strategy_specs
    from avalanche_adahat.compare.run import _benchmark_shape

    benchmark = registry.BENCHMARKS["split_digits"].build_class(5, 0, None)
    assert all(set(e.task_labels) == {0} for e in benchmark.train_stream)
    assert [sorted(e.classes_in_this_experience) for e in benchmark.train_stream][1] == [2, 3]
    shape, classes = _benchmark_shape(benchmark, "class")
    assert classes == 10 and _benchmark_shape(benchmark)[1] == 2
    config = CompareConfig(scenario="class", model="mlp", model_params={"hidden_sizes": [16, 8]})
    model = strategy_specs.STRATEGIES["naive"].build_model(config, shape, classes)
    assert [m.out_features for m in model if isinstance(m, torch.nn.Linear)] == [16, 8, 10]
    hat = strategy_specs.STRATEGIES["hat"].build_model(config, shape, classes)
    assert type(hat).__name__ == "HATMLP"
    task_config = dataclasses.replace(config, scenario="task")
    task = strategy_specs.STRATEGIES["naive"].build_model(task_config, shape, 2)
    assert type(task).__name__ == "HATMLP"  # task scenario unchanged: the HAT backbone


def test_task_incremental_default_unchanged(digits_run):
    """Without --scenario: task labels, no task inference, no task-id column."""
    out, res = digits_run
    assert res["config"]["scenario"] == "task"
    for s in res["strategies"].values():
        assert s["task_id_acc"] is None
        assert all(r["task_id_acc"] is None for r in s["per_seed"].values())
    md = (out / "results.md").read_text()
    assert "task-id acc" not in md and "class-incremental" not in md
    assert "task_id_acc" not in next(csv.DictReader(open(out / "results.csv")))


def test_merge_checks_the_scenario(digits_run, class_run, tmp_path, capsys):
    """Class- and task-incremental runs never merge; a results.json older than --scenario
    (no ``scenario`` key) counts as task-incremental."""
    task_out, task_res = digits_run
    class_out, _ = class_run
    assert main(["merge", str(task_out), str(class_out), "-o", str(tmp_path / "x")]) == 2
    assert "in scenario: 'class' vs 'task'" in capsys.readouterr().err
    old = tmp_path / "old"
    old.mkdir()
    legacy = json.loads(json.dumps(task_res))
    del legacy["config"]["scenario"]
    legacy["strategies"] = {"hat": legacy["strategies"]["hat"]}
    legacy["strategies"]["hat"]["per_seed"] = {"7": legacy["strategies"]["hat"]["per_seed"]["0"]}
    (old / "results.json").write_text(json.dumps(legacy))
    assert main(["merge", str(task_out), str(old), "-o", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert merged["config"]["scenario"] == "task" and merged["config"]["seeds"] == [0, 1, 7]
