"""The strategy specs of ``compare``, part two: Avalanche baselines with needs of their own.

:class:`PackNetSpec`: Avalanche's PackNet with its own model and plugin list;
:class:`ICaRLSpec`: Avalanche's ICaRL and :class:`StreamingLDASpec`: Avalanche's
StreamingLDA on raw inputs (:class:`RawInputs`), both class-incremental only.
Every other baseline is a plain :class:`~.specs.StrategySpec`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .errors import CompareError
from .registry import mlp_params
from .specs import StrategySpec

if TYPE_CHECKING:
    from .settings import CompareConfig

__all__ = ["ICaRLSpec", "PackNetSpec", "RawInputs", "StreamingLDASpec"]


@dataclass
class PackNetSpec(StrategySpec):
    """Avalanche's PackNet on a ``PackNetModel`` MLP built from the ``mlp`` model parameters."""

    def check(self, config: CompareConfig, params: dict) -> None:
        post = params["post_prune_epochs"]
        if config.epochs is None or config.epochs <= post:
            raise CompareError(
                f"packnet needs --epochs > post_prune_epochs ({post}), got --epochs "
                f"{config.epochs}; raise --epochs or --set packnet.post_prune_epochs=..."
            )
        if config.model != "mlp":
            raise CompareError("packnet runs on --model mlp only (a PackNetModel MLP)")

    def build_model(self, config: CompareConfig, input_shape, num_classes: int) -> torch.nn.Module:
        from avalanche.models.packnet import PackNetModel

        sizes = [math.prod(input_shape), *mlp_params(config.model_params)["hidden_sizes"]]
        layers: list[torch.nn.Module] = [torch.nn.Flatten()]
        for a, b in zip(sizes, sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        # PackNetModel calls its wrappee without task labels: one shared head, whose
        # weights PackNet prunes and freezes per task like the backbone's.
        layers.append(torch.nn.Linear(sizes[-1], num_classes))
        return PackNetModel(torch.nn.Sequential(*layers))

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        # Avalanche 0.6's PackNet nests its `plugins` argument as one item of its plugin
        # list (`plugins=[plugins, PackNetPlugin(...)]`), where it is never called: build
        # it with plugins=None, then add ours (and drop the nested None).
        strategy = self.strategy_class()(plugins=None, **common, **params)
        strategy.plugins = list(plugins) + [p for p in strategy.plugins if p is not None]
        return strategy


@dataclass
class ICaRLSpec(StrategySpec):
    """Avalanche's ICaRL (class-incremental only): the shared-head MLP's body as the
    feature extractor, its ``Linear`` head as the trained classifier; ICaRL itself
    classifies by nearest class mean of the stored exemplars (``NCMClassifier``) and
    trains with its own loss (``ICaRLLossPlugin``), so ``criterion`` is not passed."""

    scenarios: tuple[str, ...] = ("class",)

    def allowed_params(self) -> set[str]:
        return super().allowed_params() - {"feature_extractor", "classifier"}

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        model = common.pop("model")
        common.pop("criterion", None)
        body, head = model[:-1], model[-1]
        return self.strategy_class()(
            feature_extractor=body, classifier=head, plugins=plugins, **common, **params
        )


class RawInputs(torch.nn.Flatten):
    """StreamingLDA's feature extractor on raw inputs: each sample flattened, nothing learnt.

    It carries what ``StreamingLDA`` needs besides a model: ``input_size`` (the
    features per sample) and ``num_classes`` (every class of the benchmark)."""

    def __init__(self, input_shape, num_classes: int):
        super().__init__()
        self.input_size = math.prod(input_shape)
        self.num_classes = num_classes


@dataclass
class StreamingLDASpec(StrategySpec):
    """Avalanche's ``StreamingLDA`` (Hayes & Kanan, 2020) on raw inputs (class-incremental
    only): a :class:`RawInputs` feature extractor (no network, no training, no optimizer),
    class means and one shared covariance updated one sample at a time, a linear
    discriminant over all classes seen. One pass over each experience whatever
    ``--epochs`` (a second pass would count every sample twice), in minibatches of the
    evaluation's size (see :meth:`build`); the shrinkage and the streaming covariance
    update are Avalanche's defaults unless ``--set`` changes them."""

    scenarios: tuple[str, ...] = ("class",)

    def allowed_params(self) -> set[str]:
        fixed = {"slda_model", "input_size", "num_classes", "output_layer_name"}
        return super().allowed_params() - fixed

    def check_scenario(self, name: str, config: CompareConfig) -> None:
        """Class scenario only; any ``--model`` (StreamingLDA trains none)."""
        scenario = config.scenario
        if scenario not in self.scenarios:
            raise CompareError(f"strategy {name!r} runs in --scenario class only, not {scenario}")

    def build_model(self, config: CompareConfig, input_shape, num_classes: int) -> torch.nn.Module:
        return RawInputs(input_shape, num_classes)

    def build(self, params: dict, plugins: list, *, scenario: str = "task", **common):
        model = common.pop("model")
        common.pop("optimizer", None)  # StreamingLDA has no optimizer
        common["train_epochs"] = 1
        # It fits one sample at a time whatever the minibatch, but recomputes the inverse
        # covariance (a d x d pseudo-inverse) at every training minibatch: minibatches as
        # large as the evaluation's change no statistic and save most of that cost.
        common["train_mb_size"] = max(common["train_mb_size"], common.get("eval_mb_size") or 0)
        with warnings.catch_warnings():  # it flags every plugin that has backward callbacks
            warnings.filterwarnings("ignore", message=".*implements incompatible callbacks")
            return self.strategy_class()(
                slda_model=model, input_size=model.input_size, num_classes=model.num_classes,
                plugins=plugins, **common, **params,
            )  # fmt: skip

    def memory(self, strategy, sample_bytes: int) -> tuple[int | None, int | None]:
        """Its statistics (what ``StreamingLDA.save_model`` keeps): class means, class
        counts, the shared covariance; no stored samples."""
        kept = (strategy.muK, strategy.cK, strategy.Sigma)
        return sum(t.numel() * t.element_size() for t in kept), 0
