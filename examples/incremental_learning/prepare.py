"""Write the example's files under a directory: samples, an empty Dataset index, the hold-out,
the initial and deploy models, and ``DIR/job.yaml`` (Dataset, Models, IncrementalLearningJob).
``python prepare.py DIR``; ``python prepare.py DIR --append N`` appends batch N (0-based) of 300
labelled samples to the index."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from digits_il import Workspace, job_manifests


def main(argv: list[str] | None = None) -> int:
    """Prepare or append; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--append", type=int, metavar="N", help="append batch N to the index")
    parser.add_argument("--node", default="edge0", help="the node every worker runs on")
    args = parser.parse_args(argv)
    work = Workspace(args.directory)
    if args.append is None:
        work.prepare()
        manifests = job_manifests(work, node=args.node)
        (work.root / "job.yaml").write_text(yaml.safe_dump_all(manifests, sort_keys=False))
        print(f"prepared {work.root}: {len(work.batches())} batches of samples to append")
        print(f"submit the job with: kubectl apply -f {work.root / 'job.yaml'}")
        return 0
    batches = work.batches()
    if not 0 <= args.append < len(batches):
        print(f"batch must be 0..{len(batches) - 1}", file=sys.stderr)
        return 2
    work.append(batches[args.append])
    print(f"appended batch {args.append} ({len(batches[args.append])} samples) to {work.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
