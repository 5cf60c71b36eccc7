"""The command lines: ``avalanche-adahat compare``, ``merge`` and ``report``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from ..core.task_rules import RULES as TASK_INFERENCE_RULES
from ..data import benchmarks as bm
from .config import CompareConfig, build_config, progress_mode
from .errors import CompareError
from .registry import BENCHMARKS, MODELS
from .report import results_markdown, write_report
from .results import merge_results
from .run import run_compare
from .strategy_specs import STRATEGIES

__all__ = ["build_parser", "main", "merge_main", "report_main"]


def build_parser() -> argparse.ArgumentParser:
    default = CompareConfig()
    strategies = "\n".join(
        f"  {name:<16}{spec.help}; defaults {json.dumps(spec.defaults) if spec.defaults else '{}'}"
        for name, spec in STRATEGIES.items()
    )
    benchmarks = "\n".join(f"  {name:<19}{spec.help}" for name, spec in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat compare",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Compare HAT, AdaHAT and Avalanche's baselines on one task-incremental (or, with\n"
            "--scenario class, class-incremental) benchmark.\n"
            "Writes results.json, results.csv, results.md and PNG plots to --output."
        ),
        epilog=(
            f"benchmarks:\n{benchmarks}\n\nstrategies (defaults overridable with --set "
            f"NAME.KEY=VALUE or a [params.NAME] config section):\n{strategies}\n\n"
            "config file (JSON, or TOML): the keys are the long options with '_' for '-', "
            'e.g.\n  benchmark = "split_fmnist"\n  strategies = ["adahat", "hat"]\n'
            "  seeds = [0, 1, 2]\n  [params.ewc]\n  ewc_lambda = 1000\n  [model_params]\n"
            "  hidden_sizes = [256, 100, 64]\n"
            "A results.json is also a valid --config file: it reruns the same job.\n"
            "Command-line options override the file."
        ),
    )
    a = parser.add_argument
    a("--config", metavar="FILE", help="JSON or TOML file with any of the options below")
    a(
        "--benchmark",
        choices=None,
        metavar="NAME",
        help=f"benchmark (default {default.benchmark}): {', '.join(BENCHMARKS)}",
    )
    a(
        "--scenario",
        metavar="NAME",
        help="task (default): task-incremental, task labels given, one head per task; "
        "class: class-incremental (split_* benchmarks only): no task labels, global "
        "class ids; the HAT family trains one task per experience and infers each test "
        "sample's task (--set hat.task_inference="
        + "|".join(TASK_INFERENCE_RULES)
        + ", default the library's; "
        "--set hat.calibrate_task_inference=true), streaming_lda classifies raw inputs, "
        "the other strategies train an MLP of the same hidden sizes with one head over all "
        "classes",
    )
    a(
        "--class-order",
        metavar="ORDER",
        help="--scenario class: the order in which classes are split into experiences: "
        "natural (default: 0,1 | 2,3 | ...), seed (Avalanche's seeded random order, drawn "
        "with each run's seed) or an integer N (Avalanche's random order for seed N, the "
        "same for every --seeds run); recorded in results.json (config.class_order, and "
        "each run's class_order)",
    )
    a(
        "--n-experiences",
        type=int,
        metavar="N",
        help="number of tasks (default per benchmark: 5 for split_*, 10 for permuted_*; "
        "CIFAR-100 and Tiny ImageNet: 10)",
    )
    a(
        "--strategies",
        metavar="LIST",
        help=f"comma-separated strategies (default {','.join(default.strategies)}); see below",
    )
    a(
        "--set",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="override a strategy hyperparameter (e.g. ewc.ewc_lambda=1000, "
        "adahat.adjustment_intensity=0.1) or a model one (model.hidden_sizes=[400,400]); "
        "VALUE is parsed as JSON when it can be; repeatable",
    )
    a(
        "--model",
        metavar="NAME",
        help=f"backbone (default mlp): {', '.join(MODELS)}; MLP default hidden sizes 256,100,64",
    )
    a(
        "--epochs",
        type=int,
        help="training epochs per task (default: split_digits and permuted_digits 10, "
        "under which every strategy learns every task; other benchmarks 1)",
    )
    a("--batch-size", type=int, help="training minibatch size (default: digits 16, others 64)")
    a("--eval-batch-size", type=int, help="evaluation minibatch size (default 1000)")
    a("--optimizer", metavar="NAME", help="sgd or adam (default adam, as the AdaHAT paper)")
    a("--lr", type=float, help="learning rate (default: digits 3e-3, others 1e-3)")
    a("--seeds", metavar="LIST", help="comma-separated seeds, one full run each (default 0)")
    a("--device", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    a(
        "--data-root",
        metavar="DIR",
        help="where the data is looked for: Fashion-MNIST idx files (default "
        f"{bm.DEBIAN_FMNIST}, from `apt-get install dataset-fashion-mnist`); "
        "required by the benchmarks Avalanche downloads (MNIST, CIFAR, Tiny ImageNet): "
        "the folder holding their data as torchvision keeps it (e.g. "
        "DIR/cifar-10-batches-py/), or downloaded there (needs network)",
    )
    a(
        "--train-per-task",
        type=int,
        metavar="N",
        help="use at most N random training samples per task (default: all)",
    )
    a(
        "--test-per-task",
        type=int,
        metavar="N",
        help="use at most N random test samples per task (default: all)",
    )
    a("--threads", type=int, metavar="N", help="torch.set_num_threads(N) (default: torch's)")
    a(
        "--no-fast-data",
        dest="fast_data",
        action="store_false",
        default=None,
        help="always use Avalanche's own per-sample data loaders (default: feed strategies "
        "whose data are exactly one experience's from whole-tensor batches where the "
        "benchmark provides them: split/permuted digits and Fashion-MNIST)",
    )
    a(
        "--progress",
        metavar="MODE",
        help="bar (Avalanche's InteractiveLogger), lines (one line per task), none; "
        "default auto: bar on a terminal, lines otherwise",
    )
    a("--output", metavar="DIR", help="output folder (default compare-results)")
    return parser  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    warnings.filterwarnings("ignore", message="no QP solver found")
    parser = build_parser()
    args = parser.parse_args(argv)
    command = "avalanche-adahat compare " + shlex.join(argv)
    try:
        config = build_config(args)
        if progress_mode(config) != "none":
            print(
                f"compare: {config.benchmark} ({config.scenario}-incremental), strategies "
                f"{','.join(config.strategies)}, seeds {','.join(map(str, config.seeds))} -> "
                f"{config.output}",
                flush=True,
            )
        results = run_compare(config, command)
    except CompareError as e:
        print(f"avalanche-adahat compare: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("avalanche-adahat compare: interrupted", file=sys.stderr)
        return 130
    print(results_markdown(results))
    print(f"wrote {config.output}/results.json, results.csv, results.md and plots")
    return 0


def merge_main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat merge",
        description="Merge compare output folders of one setting (e.g. seeds run separately, "
        "or extra strategies) into one folder: per-seed results side by side, means and "
        "spreads recomputed, every part's command recorded; then results.json, results.csv, "
        "results.md and plots as compare writes them. Refuses runs whose settings, "
        "package versions or strategy hyperparameters differ, and repeated (strategy, seed).",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="compare --output folders")
    parser.add_argument("-o", "--output", required=True, help="folder for the merged results")
    args = parser.parse_args(argv)
    try:
        results = merge_results(
            args.dirs, args.output, "avalanche-adahat merge " + shlex.join(argv)
        )
    except (CompareError, OSError, json.JSONDecodeError) as e:
        print(f"avalanche-adahat merge: error: {e}", file=sys.stderr)
        return 2
    print(results_markdown(results))
    print(f"wrote {args.output}/results.json, results.csv, results.md and plots")
    return 0


def default_report_path(dirs: list[str]) -> str:
    """``RESULTS.md`` in the folder holding the compare output folders (their common
    parent): next to the inputs, never a fixed path that could overwrite another report."""
    parents = [os.path.abspath(os.path.join(d, os.pardir)) for d in dirs]
    folder = os.path.relpath(os.path.commonpath(parents))
    return os.path.join(folder, "RESULTS.md") if folder != "." else "RESULTS.md"


def report_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="avalanche-adahat report",
        description="Assemble a Markdown report from compare output folders: each folder's "
        "table under the exact command that produced it, its plots, and its NOTES.md if "
        "present.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="compare --output folders")
    parser.add_argument(
        "-o",
        "--output",
        help="report file (default: RESULTS.md in the folder holding the DIRs, e.g. "
        "results/RESULTS.md for results/a results/b)",
    )
    parser.add_argument("--preamble", metavar="FILE", help="Markdown put before the sections")
    args = parser.parse_args(argv)
    output = args.output or default_report_path(args.dirs)
    try:
        write_report(args.dirs, output, args.preamble)
    except (CompareError, OSError) as e:
        print(f"avalanche-adahat report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {output}")
    return 0
