"""What ``compare`` can run, part two: the strategies (:data:`STRATEGIES`).

``name -> StrategySpec``, which knows its class, its documented defaults, the
parameters it accepts, the model it trains (:meth:`StrategySpec.build_model`) and
how to build it (:meth:`StrategySpec.build`). :class:`HATSpec` is the HAT family
(its ``hat_family`` field: network capacity is recorded; its hyperparameters are
checked by the library's config, :mod:`avalanche_adahat.core.config`),
:class:`PackNetSpec` Avalanche's PackNet with its own model and plugin list,
:class:`ICaRLSpec` Avalanche's ICaRL and :class:`StreamingLDASpec` Avalanche's
StreamingLDA on raw inputs (both class-incremental only). Each spec also measures
what its trained strategy keeps about past data (:meth:`StrategySpec.memory`).

The spec classes are in :mod:`.specs` (:class:`StrategySpec`, :class:`HATSpec`) and
:mod:`.baseline_specs` (PackNet, ICaRL, StreamingLDA); this module holds the table and
re-exports them.
"""

from __future__ import annotations

from typing import Any

from ..core.task_rules import FEATURE_RULES
from ..core.task_rules import RULES as TASK_INFERENCE_RULES
from .baseline_specs import ICaRLSpec, PackNetSpec, RawInputs, StreamingLDASpec
from .errors import CompareError as CompareError  # re-exported: strategy_specs.CompareError
from .specs import HATSpec, StrategySpec

__all__ = [
    "STRATEGIES",
    "HATSpec",
    "ICaRLSpec",
    "PackNetSpec",
    "RawInputs",
    "StrategySpec",
    "StreamingLDASpec",
]


# The library's defaults (docs/ROBUSTNESS_GRID.md): AdaHAT protect="update" with the measured
# intensity per task, first mask and reg by optimizer (Adam: N01, reg 0.1; SGD: U01, reg 0.75);
# HAT reg 0.75. The paper's AdaHAT: --set adahat.protect=gradient
# --set adahat.adjustment_intensity=1e-6 (per step, the unit with protect="gradient").
_ADAHAT: dict[str, Any] = {}
_HAT: dict[str, Any] = {}
STRATEGIES: dict[str, StrategySpec] = {
    "adahat": HATSpec(
        "AdaHAT (avalanche_adahat.AdaHAT, adjustment_mode='adahat')",
        "AdaHAT",
        _ADAHAT,
        mode="adahat",
    ),
    "hat": HATSpec("HAT (avalanche_adahat.HAT, adjustment_mode='hat')", "HAT", _HAT, mode="hat"),
    "hat_random": HATSpec(
        "HAT with uniform(0,1) rates on used parameters", "HAT", _HAT, mode="hat_random"
    ),
    "hat_const_alpha": HATSpec(
        "HAT with constant rate alpha on used parameters",
        "HAT",
        {**_HAT, "alpha": 0.5},
        mode="hat_const_alpha",
    ),
    "hat_const_1": HATSpec(
        "HAT masks, no gradient constraint (rate 1)", "HAT", _HAT, mode="hat_const_1"
    ),
    "adahat_no_sum": HATSpec(
        "AdaHAT ablation: task count instead of summative mask",
        "AdaHAT",
        _ADAHAT,
        mode="adahat_no_sum",
    ),
    "adahat_no_reg": HATSpec(
        "AdaHAT ablation: no sparsity term in r", "AdaHAT", _ADAHAT, mode="adahat_no_reg"
    ),
    # HAT with one task-inference rule each, calibrated or not (--scenario class only;
    # "hat" itself takes the rule of its task_inference parameter, the library's default);
    # the feature-statistics rules have no calibration, so no "_cal" variant.
    **{
        f"hat_{rule}{'_cal' if cal else ''}": HATSpec(
            f"HAT, task inference by {rule}{' calibrated' if cal else ''} (--scenario class)",
            "HAT",
            {**_HAT, "task_inference": rule, **({"calibrate_task_inference": True} if cal else {})},
            mode="hat",
            scenarios=("class",),
        )
        for rule in TASK_INFERENCE_RULES
        for cal in ((False,) if rule in FEATURE_RULES else (False, True))
    },
    "naive": StrategySpec("Avalanche Naive (fine-tuning)", "Naive"),
    "ewc": StrategySpec("Avalanche EWC", "EWC", {"ewc_lambda": 100.0, "mode": "separate"}),
    "si": StrategySpec(
        "Avalanche SynapticIntelligence", "SynapticIntelligence", {"si_lambda": 1.0}
    ),
    "lwf": StrategySpec("Avalanche LwF", "LwF", {"alpha": 1.0, "temperature": 2.0}),
    "mas": StrategySpec("Avalanche MAS", "MAS", {"lambda_reg": 1.0, "alpha": 0.5}),
    "packnet": PackNetSpec(
        "Avalanche PackNet on a PackNetModel MLP (needs --epochs > post_prune_epochs)",
        "PackNet",
        {"post_prune_epochs": 1, "prune_proportion": 0.5},
        scenarios=("task",),
    ),
    "agem": StrategySpec(
        "Avalanche GEM-free A-GEM", "AGEM", {"patterns_per_exp": 256, "sample_size": 256}
    ),
    "replay": StrategySpec(
        "Avalanche Replay (class-balanced buffer)", "Replay", {"mem_size": 1000}
    ),
    **{
        f"replay_{size}": StrategySpec(
            f"Avalanche Replay with {size} stored samples", "Replay", {"mem_size": size}
        )
        for size in (200, 500, 2000)
    },
    "icarl": ICaRLSpec(
        "Avalanche ICaRL (--scenario class only): MLP body + nearest-class-mean classifier",
        "ICaRL",
        {"memory_size": 2000, "buffer_transform": None, "fixed_memory": True},
    ),
    "gdumb": StrategySpec(
        "Avalanche GDumb (greedy class-balanced buffer, retrained from scratch)",
        "GDumb",
        {"mem_size": 2000},
    ),
    "cumulative": StrategySpec(
        "Avalanche Cumulative (joint training on all tasks so far: the upper bound)",
        "Cumulative",
        keeps_all_data=True,
    ),
    "streaming_lda": StreamingLDASpec(
        "Avalanche StreamingLDA on raw inputs (--scenario class only): flattened inputs, "
        "class means + shared covariance, no network, no training, one pass per "
        "experience; shrinkage_param Avalanche's default (1e-4)",
        "StreamingLDA",
    ),
}
