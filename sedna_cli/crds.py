"""``sedna crds``: print, write or check the generated CustomResourceDefinitions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apis import crd_file_name, crd_manifests, crd_yaml


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``crds`` subcommand."""
    parser = subparsers.add_parser(
        "crds", help="print the CRD manifests generated from the API models"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="DIR", help="write one file per CRD to DIR")
    group.add_argument(
        "--check", type=Path, metavar="DIR", help="exit 1 if the files in DIR are stale"
    )
    parser.set_defaults(run=run)


def expected_files() -> dict[str, str]:
    """File name to YAML text of every CRD."""
    return {crd_file_name(m): crd_yaml(m) for m in crd_manifests()}


def stale_files(directory: Path) -> list[str]:
    """Names of CRD files in ``directory`` that are missing, different or no longer generated."""
    expected = expected_files()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    stale += sorted(p.name for p in directory.glob("*.yaml") if p.name not in expected)
    return stale


def run(args: argparse.Namespace) -> int:
    """Print the CRDs, write them to a directory, or check a directory against them."""
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for stale in stale_files(args.write):
            if stale not in expected_files():
                (args.write / stale).unlink()
        for name, text in expected_files().items():
            (args.write / name).write_text(text)
        print(f"wrote {len(expected_files())} CRDs to {args.write}")
        return 0
    if args.check:
        stale = stale_files(args.check)
        if stale:
            print(f"stale CRD files in {args.check}: {', '.join(stale)}", file=sys.stderr)
            print("regenerate them with: make crds", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write("---\n".join(expected_files().values()))
    return 0
