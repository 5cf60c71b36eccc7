"""The markdown tables of ``benchmarks/overhead.py``."""

from __future__ import annotations

from overhead_cases import STRATEGIES


def _mib(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def _ratio(a, b) -> str:
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.3f}"


def render_markdown(results: list[dict], memory: dict | None, meta: dict) -> str:
    lines = [
        f"Device: {meta['device']}; torch {meta['torch']}; avalanche {meta['avalanche']}; "
        f"threads {meta['threads']}; batch size {meta['batch_size']}; "
        f"{meta['cpu_count']} logical CPUs; {meta['platform']}",
        "",
        f"Per-iteration {meta['clock_text']} at task 3: median over n iterations; "
        "x Naive = median over interleaved rounds of the round's median ratio to Naive. "
        "Peak memory during task-3 training iterations (" + meta["memory_text"] + "):",
        "",
        "| model | params | strategy | train ms/iter (n) | train x Naive | eval ms/iter (n) "
        "| eval x Naive | peak train MiB | peak x Naive |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        t = res["timing"]
        mem = (memory or {}).get(res["model"], {})
        for name in STRATEGIES:
            row = t[name]
            lines.append(
                f"| {res['model']} | {res['params']:,} | {name} "
                f"| {row['train_ms']:.2f} ({row['train_n']}) "
                f"| {row['train_ratio']:.3f} "
                f"| {row['eval_ms']:.2f} ({row['eval_n']}) "
                f"| {row['eval_ratio']:.3f} "
                f"| {_mib(mem.get(name))} | {_ratio(mem.get(name), mem.get('Naive'))} |"
            )
    lines += [
        "",
        "ATen operators dispatched per training iteration at task 3 (forward, backward, "
        "hooks, optimizer step; mean over 4 iterations) and the difference to Naive:",
        "",
        "| model | " + " | ".join(STRATEGIES) + " |",
        "| --- |" + " ---: |" * len(STRATEGIES),
    ]
    for res in results:
        ops = res["ops_per_iteration"]
        cells = [
            f"{ops[n]:.0f}" + ("" if n == "Naive" else f" ({ops[n] - ops['Naive']:+.0f})")
            for n in STRATEGIES
        ]
        lines.append(f"| {res['model']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Persistent extra memory of HAT after two tasks (HATMask buffers: cumulative, "
        "summative, stored masks; task embeddings; the plugin's per-task state: rate plan and sparsity map) "
        "vs. the model's other parameters:",
        "",
        "| model | units | param bytes | mask buffer bytes | embedding bytes | plugin state bytes "
        "| extra / params |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        p = res["persistent"]
        lines.append(
            f"| {res['model']} | {p['units']:,} | {p['param_bytes']:,} | {p['mask_bytes']:,} "
            f"| {p['embedding_bytes']:,} | {p['rate_bytes']:,} "
            f"| {p['extra_bytes'] / p['param_bytes']:.4%} |"
        )
    if any(res["adjustment"] for res in results):
        lines += [
            "",
            "Gradient adjustment alone (the plugin's before_update with only covered "
            "gradients present; eager, and with compile_step=True, compilation time apart) vs. a "
            "parameter-sized implementation (min of expanded unit measures, rate, multiply), "
            f"median {meta['clock']} time in ns per covered parameter element, interleaved:",
            "",
            "| model | mode | covered params | ours ns/param | compiled ns/param "
            "| compile s | parameter-sized ns/param | speed-up (eager) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for res in results:
            for a in res["adjustment"]:
                lines.append(
                    f"| {res['model']} | {a['mode']} | {a['covered_params']:,} "
                    f"| {a['ours_ns']:.3f} | {a['compiled_ns']:.3f} | {a['compile_s']:.1f} "
                    f"| {a['parameter_sized_ns']:.3f} | {a['speedup']:.2f}x |"
                )
    for note in meta["notes"]:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"
