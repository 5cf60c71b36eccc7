"""Command line: ``avalanche-adahat demo`` (and ``python -m avalanche_adahat demo``)."""

from __future__ import annotations

import sys

COMMANDS = {
    "demo": "AdaHAT, HAT and Naive on Split Digits (the quick-start job)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = "\n".join(f"  {name:<10}{text}" for name, text in COMMANDS.items())
        print(f"usage: avalanche-adahat COMMAND [options]\n\ncommands:\n{lines}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    if argv[0] == "demo":
        from .demo import main as demo_main

        return demo_main(argv[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
