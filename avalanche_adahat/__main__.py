"""Command line: ``avalanche-adahat COMMAND`` (and ``python -m avalanche_adahat COMMAND``).

Nothing heavy is imported before a command is chosen: ``--help`` answers at once, and
each command imports torch and Avalanche itself.
"""

from __future__ import annotations

import sys
import warnings

COMMANDS = {
    "demo": "AdaHAT, HAT and Naive on Split Digits (the quick-start job)",
    "compare": "HAT family and Avalanche baselines on one benchmark: table and plots",
    "merge": "merge compare outputs of one setting (seeds or strategies run apart)",
    "report": "assemble a Markdown report (RESULTS.md) from compare outputs",
}

#: Warnings third-party packages print while Avalanche is imported, which say
#: nothing about a run (qpsolvers: GEM's optional solver is not installed).
IMPORT_NOISE = ("no QP solver found",)


def quiet_import_noise() -> None:
    """Hide :data:`IMPORT_NOISE` (the command line's, not the library's, choice)."""
    for message in IMPORT_NOISE:
        warnings.filterwarnings("ignore", message=message)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = "\n".join(f"  {name:<10}{text}" for name, text in COMMANDS.items())
        print(
            f"usage: avalanche-adahat COMMAND [options]\n\ncommands:\n{lines}\n\n"
            "`avalanche-adahat COMMAND --help` explains a command's options."
        )
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    quiet_import_noise()
    if argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    if argv[0] == "compare":
        from .compare import main as compare_main

        return compare_main(argv[1:])
    if argv[0] == "merge":
        from .compare import merge_main

        return merge_main(argv[1:])
    if argv[0] == "report":
        from .compare import report_main

        return report_main(argv[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
