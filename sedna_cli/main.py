"""Entry point of the ``sedna`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sedna_cli import cluster, crds, demo, joblogs, ksm, run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sedna", description="Edge-cloud collaborative AI control plane (Sedna-compatible)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    crds.add_parser(subparsers)
    ksm.add_parser(subparsers)
    cluster.add_parser(subparsers)
    run.add_parsers(subparsers)
    demo.add_parser(subparsers)
    joblogs.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sedna`` command."""
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
