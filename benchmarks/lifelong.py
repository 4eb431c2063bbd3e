"""Lifelong learning: knowledge base latency, unseen-task detection quality, round durations.

    python benchmarks/lifelong.py [--repeat 20] [--sizes 10,100,1000] [--skip-example]

1. Knowledge base (``sedna kb``'s server in this process, SQLite in a temporary directory):
   latency of ``/update`` (the whole index), ``/update/status`` (one deploy flag),
   ``/query`` (everything held) and ``/summary`` with 10, 100 and 1,000 tasks, over loopback.
2. The digits example (``examples/lifelong_learning/run_local.py``, worker processes as the LC
   runs them): precision and recall of the unseen flag before round 2 (positives: the
   ``inverted`` task), by attribute and attribute-free (calibrated distance); worker durations
   per round, process start included.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kb import KBServer, KBSettings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lifelong_learning"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, body: Any) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with _OPENER.open(request, timeout=60) as response:
        response.read()


def _get(url: str) -> None:
    with _OPENER.open(url, timeout=60) as response:
        response.read()


def index_of(tasks: int, version: int) -> dict[str, Any]:
    """An index of ``tasks`` single-task groups (as the library writes it)."""
    return {
        "kb": "bench/job",
        "create_time": str(version),
        "classes": [str(c) for c in range(10)],
        "seen_task": {
            "extractor": {
                "method": "TaskDefinitionByDataAttr",
                "attribute": ["task"],
                "values": {f"task{i}": [f"task{i}"] for i in range(tasks)},
            },
            "task_groups": [
                {
                    "entry": f"task{i}",
                    "tasks": [
                        {
                            "entry": f"task{i}",
                            "meta_attr": [f"task{i}"],
                            "samples": {
                                "data_url": f"/data/train/{version}.csv",
                                "sample_num": 320,
                            },
                        }
                    ],
                    "model": {"url": f"/out/train/{version}/task{i}.model", "format": "model"},
                    "sample_num": 320,
                    "scores": {"precision_score": 0.9},
                    "reference": f"/out/train/{version}/task{i}.reference.npy",
                }
                for i in range(tasks)
            ],
        },
    }


def _timed(action, repeat: int) -> tuple[float, float]:
    samples = []
    for i in range(repeat):
        started = time.perf_counter()
        action(i)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def kb_latency(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """Median and p95 milliseconds per route and knowledge base size."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = KBServer(KBSettings(port=0, data_dir=Path(tmp)))
        server.start()
        base = server.url + "/knowledgebase"
        try:
            for size in sizes:
                documents = [index_of(size, v) for v in range(repeat)]
                _post(base + "/update", documents[0])  # first insert of every row, not timed
                routes = {
                    "update (whole index)": lambda i, docs=documents: _post(
                        base + "/update", docs[i]
                    ),
                    "update/status (1 task)": lambda i, n=size: _post(
                        base + "/update/status",
                        {"kb": "bench/job", "tasks": f"task{i % n}", "status": i % 2},
                    ),
                    "query (everything)": lambda i: _post(base + "/query", {"kb": "bench/job"}),
                    "summary": lambda i: _get(base + "/summary?kb=bench/job"),
                }
                for route, action in routes.items():
                    median, p95 = _timed(action, repeat)
                    rows.append({"tasks": size, "route": route, "median_ms": median, "p95_ms": p95})
        finally:
            server.stop()
    return rows


def detection_quality(work: Path, name: str) -> dict[str, float]:
    """Precision and recall of the unseen flag in one inference output (positives: inverted)."""
    tp = fp = fn = 0
    with (work / name / "inference" / "holdout.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            unseen, positive = row["unseen"] == "1", row["task"] == "inverted"
            tp += unseen and positive
            fp += unseen and not positive
            fn += positive and not unseen
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1)}


def example(workdir: Path) -> dict[str, Any]:
    """Run the example's two rounds against an in-process knowledge base."""
    sys.path.insert(0, str(EXAMPLE))
    import run_local

    with tempfile.TemporaryDirectory() as tmp:
        server = KBServer(KBSettings(port=0, data_dir=Path(tmp)))
        server.start()
        try:
            started = time.perf_counter()
            figures = run_local.run(workdir, server.url)
            figures["total_seconds"] = time.perf_counter() - started
        finally:
            server.stop()
    figures["detection"] = {
        "by attribute": detection_quality(workdir, "infer-1"),
        "attribute-free (distance)": detection_quality(workdir, "infer-1-no-attribute"),
    }
    return figures


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--skip-example", action="store_true")
    args = parser.parse_args()
    print("knowledge base latency over loopback (ms)")
    print(f"{'tasks':>6}  {'route':24s} {'median':>8} {'p95':>8}")
    for row in kb_latency([int(s) for s in args.sizes.split(",")], args.repeat):
        print(f"{row['tasks']:>6}  {row['route']:24s} {row['median_ms']:8.2f} {row['p95_ms']:8.2f}")
    if args.skip_example:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        figures = example(Path(tmp) / "work")
    print("\nunseen-task detection before round 2 (hold-out x 3 transforms; positives: inverted)")
    for method, quality in figures["detection"].items():
        print(
            f"  {method:28s} precision {quality['precision']:.3f}  recall {quality['recall']:.3f}"
        )
    print("\nrounds (worker process durations, s, process start included)")
    durations = figures["durations"]
    for r, record in enumerate(figures["rounds"]):
        kb = record["knowledge_base"]["AIModels"]["numberOfAIModels"]
        print(
            f"  round {r + 1}: train {durations['train'][r]:.2f}  eval {durations['eval'][r]:.2f}"
            f"  -> {kb} tasks, mixed-stream accuracy {record['inference']['mixed_accuracy']:.3f}"
        )
    print(f"  inference passes: {durations['inference']}")
    print(f"  whole example: {figures['total_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
