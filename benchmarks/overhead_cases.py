"""What ``benchmarks/overhead.py`` measures on: the strategies, backbones, random data,
the iteration clock, and task 3 opened as Avalanche's ``BaseTemplate.train`` does.

An iteration is timed from ``before_training_iteration`` (``before_eval_iteration``)
of a plugin placed first in the plugin list to ``after_training_iteration``
(``after_eval_iteration``) of a plugin placed last, so every other plugin's
hooks are inside the measurement; data loading is outside it. The evaluator has
no metrics and no loggers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.templates.base import _group_experiences_by_stream
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_adahat import HAT, AdaHAT
from avalanche_adahat import models as hat_models

#: ``Naive+plugin`` is Naive with one plugin that does nothing: Avalanche calls every
#: hook of every plugin, so this row is the floor any plugin-based method pays.
STRATEGIES = ("Naive", "Naive+plugin", "HAT", "AdaHAT")


# ---------------------------------------------------------------- models
@dataclass
class ModelSpec:
    name: str
    description: str
    input_shape: tuple[int, ...]
    iters: int  # default timed iterations per strategy (train and eval)
    warmup: int  # default warm-up iterations per strategy
    per_round: int  # iterations of one strategy before switching to the next
    cpu_default: bool = True  # part of the default --models on CPU
    build: object = field(default=None, repr=False)


def model_specs() -> tuple[dict[str, ModelSpec], list[str]]:
    """The benchmarked backbones, and notes on those that are not importable."""
    specs = {
        "mlp_hat": ModelSpec(
            "mlp_hat",
            "MLP 784-2000-2000 (HAT paper)",
            (784,),
            120,
            3,
            2,
            build=lambda: hat_models.HATMLP(784, (2000, 2000), 2),
        ),
        "mlp_small": ModelSpec(
            "mlp_small",
            "MLP 784-256-100-64 (AdaHAT paper)",
            (784,),
            600,
            20,
            5,
            build=lambda: hat_models.HATMLP(784, (256, 100, 64), 2),
        ),
    }
    notes = []
    cls = getattr(hat_models, "HATAlexNet", None)
    if cls is not None:
        specs["alexnet"] = ModelSpec(
            "alexnet",
            "HATAlexNet, 3x32x32 input",
            (3, 32, 32),
            32,
            2,
            2,
            build=lambda: cls(in_channels=3, input_size=32, num_classes=2),
        )
    else:
        notes.append("alexnet skipped: avalanche_adahat.models has no HATAlexNet")
    cls18 = getattr(hat_models, "HATResNet18", None)
    if cls18 is not None:
        specs["resnet18"] = ModelSpec(
            "resnet18",
            "HATResNet18, 3x32x32 input",
            (3, 32, 32),
            3,
            1,
            1,
            cpu_default=False,  # about 11 s per training iteration on one CPU thread
            build=lambda: cls18(in_channels=3, num_classes=2),
        )
    else:
        notes.append("resnet18 skipped: avalanche_adahat.models has no HATResNet18")
    return specs, notes


# ---------------------------------------------------------------- data
def _dataset(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    ds = TensorDataset(x, y)
    ds.targets = y
    return ds


def make_scenario(input_shape, batch_size: int, task3_batches: int, test_batches: int, seed=0):
    """Three task-incremental 2-class tasks of random tensors.

    Tasks 1 and 2 have one training batch each (enough to store their masks);
    task 3 has ``task3_batches``; every task has ``test_batches`` test batches.
    """
    g = torch.Generator().manual_seed(seed)
    per_class_train = [batch_size // 2] * 4 + [batch_size * task3_batches // 2] * 2
    per_class_test = [max(1, batch_size * test_batches // 2)] * 6

    def tensors(counts):
        xs = [torch.randn(n, *input_shape, generator=g) for n in counts]
        ys = [torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)]
        return torch.cat(xs), torch.cat(ys)

    train, test = _dataset(*tensors(per_class_train)), _dataset(*tensors(per_class_test))
    return nc_benchmark(
        train,
        test,
        n_experiences=3,
        task_labels=True,
        shuffle=False,
        seed=seed,
        fixed_class_order=list(range(6)),
        class_ids_from_zero_in_each_exp=True,
    )


# ---------------------------------------------------------------- timing plugins
class Clock:
    """Per-iteration wall time (``perf_counter``) and process CPU time (``process_time``).

    Each record is ``(round, wall_seconds, cpu_seconds)``.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.enabled = False
        self.round = 0
        self.start = (0.0, 0.0)
        self.train: list[tuple[int, float, float]] = []
        self.eval: list[tuple[int, float, float]] = []

    def now(self) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def record(self, records: list) -> None:
        wall, cpu = self.now()
        records.append((self.round, wall - self.start[0], cpu - self.start[1]))


class StartTimer(SupervisedPlugin):
    """First plugin of the list: starts the iteration clock."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock

    def before_training_iteration(self, strategy, **kwargs):
        self.clock.start = self.clock.now()

    def before_eval_iteration(self, strategy, **kwargs):
        self.clock.start = self.clock.now()


class StopTimer(SupervisedPlugin):
    """Last plugin of the list: records the iteration time."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock

    def after_training_iteration(self, strategy, **kwargs):
        if self.clock.enabled:
            self.clock.record(self.clock.train)

    def after_eval_iteration(self, strategy, **kwargs):
        if self.clock.enabled:
            self.clock.record(self.clock.eval)


# ---------------------------------------------------------------- strategies
def make_strategy(name: str, model: nn.Module, batch_size: int, device: torch.device):
    clock = Clock(device)
    kwargs = dict(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        train_mb_size=batch_size,
        train_epochs=1,
        eval_mb_size=batch_size,
        device=device,
        plugins=[StartTimer(clock)],
        evaluator=EvaluationPlugin(loggers=[]),
    )
    if name == "Naive":
        strategy = Naive(criterion=nn.CrossEntropyLoss(), **kwargs)
    elif name == "Naive+plugin":
        kwargs["plugins"] = kwargs["plugins"] + [SupervisedPlugin()]  # every hook a no-op
        strategy = Naive(criterion=nn.CrossEntropyLoss(), **kwargs)
    elif name == "HAT":
        strategy = HAT(**kwargs)
    elif name == "AdaHAT":
        strategy = AdaHAT(**kwargs)
    else:
        raise ValueError(name)
    strategy.plugins.append(StopTimer(clock))  # after the evaluator and the clock plugin
    strategy.bench_clock = clock
    return strategy


def start_task3(strategy, scenario, seed: int) -> list:
    """Train tasks 1 and 2, then open task 3 as ``BaseTemplate.train`` does.

    Returns task 3's mini-batches (in loader order, not shuffled).
    """
    torch.manual_seed(seed)  # same task embeddings for every strategy
    for exp in scenario.train_stream[:2]:
        strategy.train(exp, eval_streams=[])
    exp = scenario.train_stream[2]
    strategy.is_training = True
    strategy._stop_training = False
    strategy.model.train()
    strategy.model.to(strategy.device)
    strategy._eval_streams = _group_experiences_by_stream([[exp]])
    strategy._before_training()
    strategy.experience = exp
    strategy._before_training_exp(shuffle=False)
    strategy._before_training_epoch()  # the HAT plugin reads the number of batches here
    return [list(b) for b in strategy.dataloader]


def run_train_iterations(strategy, batches: list, n: int, offset: int = 0) -> None:
    """``n`` iterations of Avalanche's own ``training_epoch`` over a list of batches."""
    chunk = [list(batches[(offset + i) % len(batches)]) for i in range(n)]
    strategy.dataloader = chunk
    strategy.training_epoch()
