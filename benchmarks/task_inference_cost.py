"""Cost of task-agnostic inference: evaluation time per rule against one-mask evaluation.

Trains HAT on a class-incremental stream of Gaussian blobs (``--tasks`` experiences,
2 classes each, ``task_ids="per_experience"``), then times the backbone's forward over
the whole test set with the task label given (one stored mask, what task-incremental
evaluation costs) and with each task-inference rule; medians of interleaved repeats,
process CPU time. Masked forwards per sample: 1 with the label, T (trained tasks) for
``msp``/``entropy``/``energy`` and the feature rules ``lda_cascade``/``mahalanobis`` (plus
a linear discriminant / a triangular solve per task on the features of the same passes),
2T plus one backward for ``oneshot``. Training uses the default rule (``lda_cascade``), whose
statistics also serve ``mahalanobis`` (own classes' means, the space's pooled covariance).

    python benchmarks/task_inference_cost.py --tasks 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore")

from avalanche.training.plugins import EvaluationPlugin  # noqa: E402
from epoch_ratio import blobs  # noqa: E402

from avalanche_adahat import HAT  # noqa: E402
from avalanche_adahat.inference import RULES, set_task_inference  # noqa: E402
from avalanche_adahat.models import HATMLP  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--per-task", type=int, default=1280)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400, 400])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # Each experience trained as a new task whatever its label (task_ids="per_experience").
    benchmark = blobs((784,), args.tasks, args.per_task)
    model = HATMLP(784, tuple(args.hidden))
    strategy = HAT(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3), train_mb_size=64,
        task_ids="per_experience", evaluator=EvaluationPlugin(loggers=[]),
    )  # fmt: skip
    for exp in benchmark.train_stream:
        strategy.train(exp)
    x = torch.cat([torch.stack([s[0] for s in e.dataset]) for e in benchmark.test_stream])
    model.eval()
    cases = {"task label given (one mask)": None, **{r: r for r in RULES}}
    times = {name: [] for name in cases}
    labels = torch.zeros(len(x), dtype=torch.long)
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, rule in cases.items():
                set_task_inference(model, rule)
                start = time.process_time()
                model(x, labels)
                times[name].append(time.process_time() - start)
    model.set_router(None)
    base = statistics.median(times["task label given (one mask)"])
    print(f"{len(x)} test samples, {args.tasks} trained tasks, MLP 784-{args.hidden}, "
          f"{args.threads} thread(s), median of {args.repeats}")  # fmt: skip
    print("| evaluation | masked forwards per sample | time (s) | x one mask |")
    print("| --- | ---: | ---: | ---: |")
    per_sample = {None: "1", "oneshot": f"{2 * args.tasks} + 1 backward"}
    for name, rule in cases.items():
        t = statistics.median(times[name])
        print(f"| {name} | {per_sample.get(rule, str(args.tasks))} | {t:.3f} | {t / base:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
