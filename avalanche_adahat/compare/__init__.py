"""``avalanche-adahat compare``: HAT and AdaHAT against Avalanche's baselines.

One command trains every chosen strategy on one task-incremental benchmark for
every seed, evaluates every seen test experience after each training
experience, and writes ``results.json``, ``results.csv``, ``results.md`` and
PNG plots to ``--output``.

- ``--scenario class`` (every ``split_*`` benchmark) runs the benchmark
  class-incremental instead: no task labels, global class ids, classes in the
  order of ``--class-order`` (``natural``, ``seed`` or a seed ``N``; each run's
  order is recorded as ``class_order``). The HAT family
  trains one new task per experience (``task_ids="per_experience"``) and infers
  each test sample's task (its ``task_inference`` parameter, default the library's;
  ``hat_msp``, ``hat_energy_cal``, ``hat_lda_cascade``, ... fix one rule each); its
  task-id accuracy (``TaskIdAcc_Stream``) is recorded as ``task_id_acc``.
  ``streaming_lda`` is Avalanche's ``StreamingLDA`` on raw inputs (no network).
  Every other strategy trains a plain MLP of the same hidden sizes with one
  ``Linear`` head over all classes (ICaRL: its body + a nearest-class-mean
  classifier; Cumulative: the joint-training upper bound). The accuracy
  matrix is still reported over seen experiences only.
- The benchmarks Avalanche downloads (MNIST, CIFAR-10/100, Tiny ImageNet) need
  ``--data-root``: where their data is, or goes (nothing is downloaded without it).
- Cost: each run records ``eval_seconds`` (all its evaluations),
  ``final_eval_seconds`` (the last, on the whole test stream), and
  ``memory_bytes`` / ``stored_samples``: what the strategy keeps about past data
  besides its network (:meth:`StrategySpec.memory`: replay buffers, exemplars,
  StreamingLDA's statistics, the HAT task router's statistics).
- Benchmarks, models and strategies live in registries (:data:`BENCHMARKS`,
  :data:`MODELS`, :data:`STRATEGIES`); :func:`register_model` adds a backbone.
- The accuracy matrix ``A[i][j]`` is the accuracy on test experience ``j``
  after training experience ``i``, for ``j <= i``. A task-incremental model has
  no head for a task it has not trained, so ``A[i][j]`` for ``j > i`` is
  ``null``. ``avg_acc`` is the mean of the last row, ``bwt`` the mean over
  ``j < N-1`` of ``A[N-1][j] - A[j][j]``, ``forgetting`` the mean over
  ``j < N-1`` of ``max_{i < N-1} A[i][j] - A[N-1][j]``.
- Network capacity (AdaHAT Sec. 4.1, HAT family only) is recorded per task at
  the first training step of the task (``capacity_start``: the paper's curve)
  and at its last step (``capacity_end``); ``capacity`` is the last task's end value.

The modules, one concern each:

- :mod:`.registry`: benchmarks and models; :mod:`.strategy_specs`: strategies (each spec
  builds its own; the spec classes are in :mod:`.specs` and :mod:`.baseline_specs`);
- :mod:`.settings`: :class:`CompareConfig`, the settings of a run; :mod:`.config`: its
  defaults, ``--config`` files (JSON or TOML), validation;
- :mod:`.run`: one strategy and seed (capacity recording, seeding, subsampling), all of them;
- :mod:`.results`: matrix metrics, the summary over seeds, merging runs;
- :mod:`.report`: results.json/csv/md, plots (drawn by :mod:`avalanche_adahat.plots`), reports;
- :mod:`.cli`: the ``compare``, ``merge`` and ``report`` command lines.
"""

from .cli import build_parser, main, merge_main, report_main
from .config import DEFAULTS, CompareConfig, build_config, strategy_params
from .errors import CompareError
from .registry import BENCHMARKS, MODELS, SCENARIOS, BenchmarkSpec, register_model
from .report import results_markdown, write_outputs, write_report
from .results import MERGE_KEYS, matrix_metrics, merge_results, summarize
from .run import CapacityRecorder, run_compare, run_one, versions
from .strategy_specs import (
    STRATEGIES,
    HATSpec,
    ICaRLSpec,
    PackNetSpec,
    StrategySpec,
    StreamingLDASpec,
)

__all__ = [
    "BENCHMARKS",
    "DEFAULTS",
    "MERGE_KEYS",
    "MODELS",
    "STRATEGIES",
    "BenchmarkSpec",
    "CapacityRecorder",
    "CompareConfig",
    "CompareError",
    "HATSpec",
    "ICaRLSpec",
    "PackNetSpec",
    "SCENARIOS",
    "StrategySpec",
    "StreamingLDASpec",
    "build_config",
    "build_parser",
    "main",
    "matrix_metrics",
    "merge_main",
    "merge_results",
    "register_model",
    "report_main",
    "results_markdown",
    "run_compare",
    "run_one",
    "strategy_params",
    "summarize",
    "versions",
    "write_outputs",
    "write_report",
]
