"""``compare --scenario class`` on every split benchmark, offline: StreamingLDA, Cumulative,
the class order, memory and evaluation time, ``--data-root``; CIFAR-10 and MNIST from tiny
fakes written in their on-disk formats (only CIFAR's checksum check is patched)."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
import torch

from avalanche_adahat.__main__ import main
from avalanche_adahat.compare import STRATEGIES, CompareConfig, build_config, build_parser
from avalanche_adahat.compare.errors import CompareError
from avalanche_adahat.compare.registry import BENCHMARKS, class_order

COMMON = ["--seeds", "0", "--threads", "1", "--progress", "none"]


def _compare(tmp_path, *args) -> dict:
    out = tmp_path / "out"
    assert main(["compare", "--scenario", "class", *COMMON, *args, "--output", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


# --------------------------------------------------------------------------- fake datasets
def _class_images(labels, shape, rng) -> np.ndarray:
    """uint8 images whose mean brightness tells the class (learnable), with noise."""
    base = np.asarray(labels, dtype=np.int64)[:, None] * 25
    noise = rng.integers(0, 20, (len(labels), int(np.prod(shape))))
    return (base + noise).clip(0, 255).astype(np.uint8).reshape(len(labels), *shape)


def write_fake_cifar10(root, train_per_class: int = 2, test_per_class: int = 2) -> None:
    """CIFAR-10 as torchvision reads it: ``root/cifar-10-batches-py/`` holding the pickled
    ``data_batch_1..5``, ``test_batch`` (``data``: N x 3072 uint8, ``labels``) and
    ``batches.meta`` (``label_names``), a few images per class (the training images in
    ``data_batch_1``, the other four batches empty: StreamingLDA fits a 3072 x 3072
    covariance one image at a time)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, per_class):
        labels = [c for c in range(10) for _ in range(per_class)]
        batch = {
            "batch_label": name,
            "labels": labels,
            "data": _class_images(labels, (3072,), rng),
            "filenames": [f"{name}_{i}.png" for i in range(len(labels))],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)

    for k in range(1, 6):
        dump(f"data_batch_{k}", train_per_class if k == 1 else 0)
    dump("test_batch", test_per_class)
    meta = {"label_names": [f"class{c}" for c in range(10)], "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f)


def write_fake_cifar100(root, per_class: int = 1) -> None:
    """CIFAR-100 as torchvision reads it: ``root/cifar-100-python/{train,test,meta}``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name in ("train", "test"):
        labels = [c for c in range(100) for _ in range(per_class)]
        data = {"data": _class_images([c % 10 for c in labels], (3072,), rng),
                "fine_labels": labels, "coarse_labels": [c // 5 for c in labels]}  # fmt: skip
        with open(folder / name, "wb") as f:
            pickle.dump(data, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{c}" for c in range(100)]}, f)


def write_fake_tinyimagenet(root) -> None:
    """Tiny ImageNet as Avalanche's ``TinyImagenet`` reads it: ``tiny-imagenet-200/`` with
    ``wnids.txt``, ``train/<wnid>/images/*.JPEG`` and ``val/images`` + ``val_annotations.txt``
    (one 64 x 64 image per class in each)."""
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    wnids = [f"n{c:08d}" for c in range(200)]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    annotations = []
    for c, wnid in enumerate(wnids):
        image = Image.new("RGB", (64, 64), (c, 255 - c, (7 * c) % 256))
        (folder / "train" / wnid / "images").mkdir(parents=True)
        image.save(folder / "train" / wnid / "images" / f"{wnid}_0.JPEG")
        image.save(folder / "val" / "images" / f"val_{c}.JPEG")
        annotations.append(f"val_{c}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")


def _idx(path, array: np.ndarray) -> None:
    """An idx file (MNIST's format): magic 0x08 (ubyte) + ndim, big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root, train_per_class: int = 6, test_per_class: int = 3) -> None:
    """MNIST as torchvision reads it: the four idx files in ``root/MNIST/raw``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", train_per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(10), n)
        _idx(raw / f"{prefix}-images-idx3-ubyte", _class_images(labels, (28, 28), rng))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.fixture
def offline_cifar(monkeypatch):
    """torchvision's CIFAR checks every file's MD5 (the fakes' differ): the check becomes
    "the file exists", and any download attempt fails the test."""
    import os

    import torchvision.datasets.cifar as cifar

    def no_download(*args, **kwargs):
        raise AssertionError("compare tried to download CIFAR")

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    monkeypatch.setattr(cifar, "download_and_extract_archive", no_download)


# --------------------------------------------------------------------------- CIFAR-10, MNIST
def test_split_cifar10_class_incremental_from_its_on_disk_format(tmp_path, offline_cifar):
    # (streaming_lda is tested on digits: on 3,072 raw pixels it takes ~40 s here)
    write_fake_cifar10(tmp_path / "data")
    res = _compare(
        tmp_path, "--benchmark", "split_cifar10", "--data-root", str(tmp_path / "data"),
        "--n-experiences", "2", "--strategies", "naive,replay_200", "--epochs", "1",
    )  # fmt: skip
    assert res["config"]["benchmark"] == "split_cifar10" and res["config"]["class_order"] == (
        "natural"
    )
    for s in res["strategies"].values():
        run = s["per_seed"]["0"]
        assert len(run["acc_matrix"]) == 2 and 0.0 <= run["avg_acc"] <= 1.0
        assert run["class_order"] == list(range(10)) and run["eval_seconds"] > 0
    assert res["strategies"]["naive"]["per_seed"]["0"]["memory_bytes"] == 0
    replay = res["strategies"]["replay_200"]["per_seed"]["0"]  # 20 images of 3,072 bytes
    assert replay["stored_samples"] == 20 and replay["memory_bytes"] == 20 * 3072


def test_hat_family_on_split_cifar10_with_a_cnn(tmp_path, offline_cifar):
    """The HAT family on CIFAR images (a small AlexNet-like CNN), one task per experience."""
    write_fake_cifar10(tmp_path / "data")
    res = _compare(
        tmp_path, "--benchmark", "split_cifar10", "--data-root", str(tmp_path / "data"),
        "--n-experiences", "2", "--strategies", "hat,adahat", "--model", "alexnet",
        "--set", "model.channels=[4,4,4]", "--set", "model.fc_sizes=[8]", "--epochs", "1",
    )  # fmt: skip
    for s in res["strategies"].values():
        run = s["per_seed"]["0"]
        assert len(run["acc_matrix"]) == 2 and run["task_id_acc_curve"][0] == pytest.approx(1.0)
        assert 0.0 <= run["task_id_acc"] <= 1.0 and run["stored_samples"] == 0


def test_split_cifar100_class_incremental_from_its_on_disk_format(tmp_path, offline_cifar):
    write_fake_cifar100(tmp_path / "data")
    res = _compare(
        tmp_path, "--benchmark", "split_cifar100", "--data-root", str(tmp_path / "data"),
        "--strategies", "naive", "--epochs", "1", "--set", "model.hidden_sizes=[8]",
    )  # fmt: skip
    run = res["strategies"]["naive"]["per_seed"]["0"]
    assert len(run["acc_matrix"]) == 10 and run["class_order"] == list(range(100))


def test_split_tinyimagenet_class_incremental_from_its_folders(tmp_path):
    """Avalanche's TinyImagenet downloads only where its folders do not load: no patch."""
    write_fake_tinyimagenet(tmp_path / "data")
    res = _compare(
        tmp_path, "--benchmark", "split_tinyimagenet", "--data-root", str(tmp_path / "data"),
        "--n-experiences", "2", "--strategies", "naive", "--epochs", "1",
        "--set", "model.hidden_sizes=[8]",
    )  # fmt: skip
    run = res["strategies"]["naive"]["per_seed"]["0"]
    assert len(run["acc_matrix"]) == 2 and run["class_order"] == list(range(200))


def test_split_mnist_class_incremental_from_idx_files(tmp_path):
    """torchvision's MNIST only checks that its idx files exist: no patch needed."""
    write_fake_mnist(tmp_path / "data")
    res = _compare(
        tmp_path, "--benchmark", "split_mnist", "--data-root", str(tmp_path / "data"),
        "--strategies", "naive,replay_200", "--epochs", "1", "--class-order", "3",
    )  # fmt: skip
    run = res["strategies"]["naive"]["per_seed"]["0"]
    assert len(run["acc_matrix"]) == 5 and run["class_order"] == class_order(3, 0, 10)
    # Avalanche's TensorMNIST is fed from whole-tensor batches (checked equal to its samples)
    assert run["data_loading"] == {"tensor": 20, "avalanche": 0}
    replay = res["strategies"]["replay_200"]["per_seed"]["0"]
    # stored samples at their size in the benchmark: uint8 images, a byte a pixel
    assert replay["stored_samples"] == 60 and replay["memory_bytes"] == 60 * 28 * 28


@pytest.mark.parametrize(
    "name, layout",
    [
        ("split_mnist", "MNIST/raw"),
        ("permuted_mnist", "MNIST/raw"),
        ("split_cifar10", "cifar-10-batches-py/"),
        ("split_cifar100", "cifar-100-python/"),
        ("split_tinyimagenet", "tiny-imagenet-200/"),
    ],
)
@pytest.mark.parametrize("scenario", ["task", "class"])
def test_downloading_benchmarks_need_data_root(name, layout, scenario, capsys, tmp_path):
    argv = ["compare", "--benchmark", name, "--scenario", scenario, "--strategies", "naive"]
    assert main([*argv, "--progress", "none", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    if scenario == "class" and BENCHMARKS[name].build_class is None:  # permuted: not split
        assert "--scenario class runs on split_digits" in err and f"not {name!r}" in err
    else:
        assert f"benchmark {name} needs --data-root DIR" in err and layout in err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything ran


def test_every_split_benchmark_has_a_class_incremental_builder():
    split = [name for name in BENCHMARKS if name.startswith("split_")]
    assert split == ["split_digits", "split_fmnist", "split_mnist", "split_cifar10",
                     "split_cifar100", "split_tinyimagenet"]  # fmt: skip
    for name in split:
        spec = BENCHMARKS[name]
        assert spec.build_class is not None and spec.n_classes, name
    assert BENCHMARKS["split_cifar100"].n_classes == 100
    assert BENCHMARKS["split_tinyimagenet"].n_classes == 200


# --------------------------------------------------------------------------- StreamingLDA, Cumulative
@pytest.fixture(scope="module")
def digits_class_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cil")
    argv = [
        "compare", "--scenario", "class", "--benchmark", "split_digits",
        "--strategies", "streaming_lda,cumulative,replay_200,naive", "--epochs", "2",
        "--set", "model.hidden_sizes=[32]", *COMMON, "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    return out, json.loads((out / "results.json").read_text())


def test_streaming_lda_and_cumulative_on_split_digits(digits_class_run):
    out, res = digits_class_run
    s = res["strategies"]
    slda = s["streaming_lda"]["per_seed"]["0"]
    assert slda["avg_acc"] > 0.9  # a linear discriminant on the 64 pixels
    assert slda["memory_bytes"] == (10 * 64 + 10 + 64 * 64) * 4 and slda["stored_samples"] == 0
    assert slda["task_id_acc"] is None and slda["capacity"] is None
    n_train = 1258  # scikit-learn's digits, 70% of each class
    cumulative = s["cumulative"]["per_seed"]["0"]
    assert cumulative["stored_samples"] == n_train and cumulative["memory_bytes"] == n_train * 256
    assert cumulative["avg_acc"] > s["naive"]["avg_acc"]  # joint training: the upper bound
    assert s["replay_200"]["per_seed"]["0"]["memory_bytes"] == 200 * 64 * 4
    for name, summary in s.items():
        assert summary["eval_seconds"] > 0 and summary["memory_bytes"] is not None, name
    md = (out / "results.md").read_text()
    assert "| memory (bytes) |" in md and "| streaming_lda | 1 |" in md and "18,984 |" in md
    row = next(r for r in csv.DictReader(open(out / "results.csv")) if r["seed"] == "0")
    assert {"memory_bytes", "eval_seconds"} <= set(row)


def test_streaming_lda_makes_one_pass_whatever_the_epochs():
    from avalanche.training.supervised import StreamingLDA

    from avalanche_adahat.data import split_digits

    benchmark = split_digits(5, seed=0, return_task_id=False)
    spec = STRATEGIES["streaming_lda"]
    model = spec.build_model(CompareConfig(scenario="class", model="alexnet"), (1, 8, 8), 10)
    assert not list(model.parameters())
    strategy = spec.build(
        {}, [], model=model, optimizer=None, criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=32, train_epochs=5, eval_mb_size=100, device="cpu", scenario="class",
    )  # fmt: skip
    assert isinstance(strategy, StreamingLDA) and strategy.shrinkage_param == 1e-4
    experience = benchmark.train_stream[0]
    strategy.train(experience)
    assert strategy.cK.sum().item() == len(experience.dataset)  # each sample once
    assert spec.allowed_params() == {"shrinkage_param", "streaming_update_sigma"}


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--strategies", "streaming_lda"], "'streaming_lda' runs in --scenario class only"),
        (["--class-order", "seed"], "--class-order seed applies to --scenario class only"),
        (["--scenario", "class", "--class-order", "x"], "--class-order must be natural, seed"),
        (["--scenario", "class", "--class-order", "-1"], "non-negative integer, got -1"),
        (["--scenario", "class", "--set", "streaming_lda.input_size=3"], "unknown parameter"),
    ],
)
def test_bad_class_options_one_line(args, reason, capsys, tmp_path):
    assert main(["compare", "--progress", "none", *args, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err and "Traceback" not in err


def test_streaming_lda_takes_any_model_option():
    """StreamingLDA trains no network: --model does not concern it (HAT's backbone may differ)."""
    args = build_parser().parse_args(
        ["--scenario", "class", "--strategies", "streaming_lda", "--model", "alexnet"]
    )
    assert build_config(args).strategies == ("streaming_lda",)


def test_feature_rules_have_no_calibrated_variant():
    from avalanche_adahat.core import task_rules

    for rule in task_rules.RULES:
        assert f"hat_{rule}" in STRATEGIES
        feature = rule in task_rules.FEATURE_RULES
        assert (f"hat_{rule}_cal" in STRATEGIES) == (not feature), rule


# --------------------------------------------------------------------------- class order
def test_class_order_is_avalanches_seeded_order():
    """``class_order(N)`` is the order Avalanche draws with ``seed=N`` (and no fixed order)."""
    from avalanche.benchmarks import nc_benchmark

    from avalanche_adahat.data.benchmarks import _dataset, digits_tensors

    x, y, xt, yt = digits_tensors()
    state = torch.get_rng_state()
    for seed in (0, 1, 2):
        avalanche = nc_benchmark(
            _dataset(x, y), _dataset(xt, yt), n_experiences=5, task_labels=False, seed=seed
        )
        assert class_order(seed, 99, 10) == avalanche.classes_order
        assert class_order("seed", seed, 10) == avalanche.classes_order
    torch.set_rng_state(state)
    assert class_order("natural", 0, 10) is None
    before = torch.get_rng_state()
    class_order(5, 0, 100)
    assert torch.equal(before, torch.get_rng_state())  # its own generator


def test_class_order_option_in_config(tmp_path):
    def config(*argv):
        return build_config(build_parser().parse_args(["--scenario", "class", *argv]))

    assert config().class_order == "natural"
    assert config("--class-order", "seed").class_order == "seed"
    assert config("--class-order", "7").class_order == 7
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"scenario": "class", "class_order": 2}))
    assert build_config(build_parser().parse_args(["--config", str(file)])).class_order == 2
    with pytest.raises(CompareError, match="--class-order must be"):
        config("--class-order", "true")
    assert "--class-order" in build_parser().format_help()


@pytest.mark.parametrize("order", ["1", "seed"])
def test_class_order_runs(order, tmp_path):
    res = _compare(
        tmp_path, "--benchmark", "split_digits", "--strategies", "naive", "--epochs", "1",
        "--seeds", "0,1", "--train-per-task", "40", "--test-per-task", "20",
        "--class-order", order,
    )  # fmt: skip
    assert res["config"]["class_order"] == (1 if order == "1" else "seed")
    runs = res["strategies"]["naive"]["per_seed"]
    for seed, run in runs.items():
        expected = class_order(res["config"]["class_order"], int(seed), 10)
        assert run["class_order"] == expected and sorted(expected) == list(range(10))
    same = runs["0"]["class_order"] == runs["1"]["class_order"]
    assert same == (order == "1")  # a fixed order seed, or each run's own
    md = (tmp_path / "out" / "results.md").read_text()
    if order == "1":
        assert f"Classes in Avalanche's random order for seed 1: {runs['0']['class_order']}." in md
    else:
        assert "random order drawn with each run's seed" in md


def test_class_order_of_the_experiences():
    order = class_order(1, 0, 10)
    benchmark = BENCHMARKS["split_digits"].build_class(5, 0, None, class_order=order)
    pairs = [sorted(e.classes_in_this_experience) for e in benchmark.train_stream]
    assert pairs == [sorted(order[2 * k : 2 * k + 2]) for k in range(5)]
    natural = BENCHMARKS["split_digits"].build_class(5, 0, None)
    assert natural.classes_order == list(range(10))


def test_merge_refuses_other_class_orders(digits_class_run, tmp_path, capsys):
    out, res = digits_class_run
    other = tmp_path / "other"
    other.mkdir()
    changed = json.loads(json.dumps(res))
    changed["config"]["class_order"] = 1
    (other / "results.json").write_text(json.dumps(changed))
    assert main(["merge", str(out), str(other), "-o", str(tmp_path / "m")]) == 2
    assert "in class_order: 1 vs 'natural'" in capsys.readouterr().err


# --------------------------------------------------------------------------- memory
def test_memory_of_each_kind_of_strategy():
    """Stored samples found on the strategy's plugins (Replay/GDumb ``storage_policy``,
    A-GEM ``buffers``, iCaRL ``x_memory`` + class means); the HAT router's bytes from
    ``model.task_router_bytes()`` where the model has it, else ``None``."""
    from types import SimpleNamespace as NS

    replay = NS(storage_policy=NS(buffer=list(range(7))))
    agem = NS(buffers=[list(range(3)), list(range(4))])
    icarl = NS(x_memory=[torch.zeros(2, 64), torch.zeros(3, 64)],
               class_means={0: torch.zeros(16), 1: torch.zeros(16)})  # fmt: skip
    strategy = NS(plugins=[replay, agem, icarl], model=None)
    assert STRATEGIES["replay_200"].memory(strategy, 256) == ((7 + 7 + 5) * 256 + 2 * 64, 19)
    cumulative = NS(plugins=[], dataset=list(range(11)))
    assert STRATEGIES["cumulative"].memory(cumulative, 10) == (110, 11)
    assert STRATEGIES["naive"].memory(cumulative, 10) == (0, 0)  # Naive keeps no data
    routed = NS(plugins=[], model=NS(task_router_bytes=lambda: 1234))
    assert STRATEGIES["hat"].memory(routed, 256) == (1234, 0)
    assert STRATEGIES["hat"].memory(NS(plugins=[], model=torch.nn.Linear(2, 2)), 256) == (None, 0)
