"""``sedna ksm-config``: print, write or check the kube-state-metrics configuration."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apis.ksm import ksm_yaml

#: Where the configuration is checked in (relative to the repository).
DEFAULT_FILE = Path("deploy/kube-state-metrics/sedna-crs.yaml")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``ksm-config`` subcommand."""
    parser = subparsers.add_parser(
        "ksm-config",
        help="print the kube-state-metrics CustomResourceStateMetrics config of every kind",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help=f"write it (e.g. {DEFAULT_FILE})")
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE is stale")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the configuration, write it to a file, or check a file against it."""
    text = ksm_yaml()
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text)
        print(f"wrote {args.write}")
        return 0
    if args.check:
        if not args.check.is_file() or args.check.read_text() != text:
            print(f"stale kube-state-metrics config: {args.check}", file=sys.stderr)
            print("regenerate it with: make crds", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0
