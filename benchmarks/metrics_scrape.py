"""The GM's ``/metrics`` at scale: series count, bytes and scrape duration with N jobs.

    python benchmarks/metrics_scrape.py                  # 1,000 jobs, 50 scrapes (~2-4 min)
    python benchmarks/metrics_scrape.py --jobs 200 --scrapes 20

Starts a ``sedna up`` stack (embedded API server, GM, the LC of cloud0; Mosquitto, Redis) in a
temporary directory, registers a node ``bench0`` that has no LC (so no worker process starts and
the CPU stays with the control plane), and creates N jobs, a quarter of each kind
(JointInferenceService, FederatedLearningJob, IncrementalLearningJob, LifelongLearningJob),
with the Models and Datasets they use, through the official client. Once the GM has written a
status for every job (staged jobs in (Train, Waiting), the others Pending), it scrapes the
GM's ``/metrics`` repeatedly over HTTP, as Prometheus does, and prints series count, bytes and
scrape duration p50/p99; then collect + render in process (no HTTP) with prometheus_client's
``generate_latest`` and with the GM's ``TextRenderer`` (what ``/metrics`` uses), for comparison.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import generate_latest

from gm.app import api_client_for
from gm.metrics import TextRenderer
from sedna_cli.stack import Stack, StackOptions

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "incremental_learning"))
sys.path.insert(0, str(ROOT / "examples" / "lifelong_learning"))

import digits_il  # noqa: E402
import job as digits_ll  # noqa: E402

NODE = "bench0"
GROUP, VERSION = "sedna.io", "v1alpha1"
PLURALS = {
    "JointInferenceService": "jointinferenceservices",
    "FederatedLearningJob": "federatedlearningjobs",
    "IncrementalLearningJob": "incrementallearningjobs",
    "LifelongLearningJob": "lifelonglearningjobs",
    "Model": "models",
    "Dataset": "datasets",
}


def _template(script: str) -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "w", "image": "x", "command": ["python", script]}],
        }
    }


def _joint_inference(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JointInferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "edgeWorker": {
                "model": {"name": "bench-small"},
                "hardExampleMining": {"name": "IBT", "parameters": []},
                "template": _template("edge.py"),
            },
            "cloudWorker": {"model": {"name": "bench-big"}, "template": _template("cloud.py")},
        },
    }


def _federated(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FederatedLearningJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "aggregationWorker": {
                "model": {"name": "bench-big"},
                "template": _template("aggregate.py"),
            },
            "trainingWorkers": [
                {"dataset": {"name": "bench-data"}, "template": _template("train.py")}
                for _ in range(2)
            ],
        },
    }


def _inputs(work: Path) -> list[dict[str, Any]]:
    """The Models and Datasets every job uses, and the staged examples' own inputs."""
    il = digits_il.job_manifests(digits_il.Workspace(work / "il"), node=NODE)
    ll = digits_ll.manifests(digits_ll.Workspace(work / "ll"), node=NODE, cloud=NODE)
    shared = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Model",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"url": str(work / f"{name}.pkl"), "format": "pkl"},
        }
        for name in ("bench-small", "bench-big")
    ]
    shared.append(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Dataset",
            "metadata": {"name": "bench-data", "namespace": "default"},
            "spec": {"url": str(work / "data.csv"), "format": "csv", "nodeName": NODE},
        }
    )
    return [*shared, *il[:-1], *ll[:-1]]


def _jobs(work: Path, count: int) -> list[dict[str, Any]]:
    il = digits_il.job_manifests(digits_il.Workspace(work / "il"), node=NODE)[-1]
    ll = digits_ll.manifests(digits_ll.Workspace(work / "ll"), node=NODE, cloud=NODE)[-1]

    def staged(base: dict[str, Any], name: str) -> dict[str, Any]:
        return {**base, "metadata": {"name": name, "namespace": "default"}}

    makers: list[Callable[[str], dict[str, Any]]] = [
        lambda n: _joint_inference(f"ji-{n}"),
        lambda n: _federated(f"fl-{n}"),
        lambda n: staged(il, f"il-{n}"),
        lambda n: staged(ll, f"ll-{n}"),
    ]
    return [makers[i % 4](f"{i:04d}") for i in range(count)]


def _create(api: client.CustomObjectsApi, obj: dict[str, Any]) -> None:
    try:
        api.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURALS[obj["kind"]], obj, _request_timeout=60
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


def _with_status(api: client.CustomObjectsApi) -> int:
    total = 0
    for kind in ("JointInferenceService", "FederatedLearningJob"):
        items = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURALS[kind])
        total += sum(1 for o in items["items"] if o.get("status"))
    for kind in ("IncrementalLearningJob", "LifelongLearningJob"):
        items = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURALS[kind])
        total += sum(1 for o in items["items"] if (o.get("status") or {}).get("stage"))
    return total


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _series(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def _job_series(text: bytes) -> int:
    prefixes = (b"sedna_gm_", b"python_", b"process_")
    return sum(
        1
        for line in text.splitlines()
        if line and not line.startswith(b"#") and not line.startswith(prefixes)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to create (default 1000)")
    parser.add_argument("--scrapes", type=int, default=50, help="scrapes to time (default 50)")
    parser.add_argument("--wait-limit", type=float, default=600, help="seconds to wait for status")
    parser.add_argument(
        "--profile", action="store_true", help="print where one in-process scrape spends time"
    )
    args = parser.parse_args()
    if args.jobs < 1 or args.scrapes < 2:
        parser.error("--jobs must be at least 1 and --scrapes at least 2")
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="sedna-metrics-bench-"))
    stack = Stack(StackOptions(data_dir=root / "sedna", nodes=["cloud0"]))
    try:
        stack.start()
        api_client = api_client_for(str(stack.kubeconfig))
        core = client.CoreV1Api(api_client)
        core.create_node({"metadata": {"name": NODE, "labels": {"sedna.io/lc": "true"}}})
        api = client.CustomObjectsApi(api_client)
        for obj in _inputs(root / "files"):
            _create(api, obj)
        jobs = _jobs(root / "files", args.jobs)
        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda o: _create(api, o), jobs))
        created = time.monotonic() - began
        print(f"created {len(jobs)} jobs in {created:.1f} s", flush=True)
        deadline = time.monotonic() + args.wait_limit
        while (done := _with_status(api)) < len(jobs):
            if time.monotonic() > deadline:
                print(f"only {done} of {len(jobs)} jobs have a status; measuring anyway")
                break
            time.sleep(2)
        print(f"every job has a status after {time.monotonic() - began:.1f} s", flush=True)
        assert stack.gm is not None
        url = f"http://127.0.0.1:{stack.gm.ops.port}/metrics"
        durations, sizes = [], []
        for _ in range(args.scrapes):
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as reply:
                body = reply.read()
            durations.append(time.perf_counter() - start)
            sizes.append(len(body))
        registry = stack.gm.metrics.registry
        renderer = TextRenderer()
        in_process = {
            "prometheus_client generate_latest": generate_latest,
            "TextRenderer": renderer,
        }
        local: dict[str, list[float]] = {}
        for label, render in in_process.items():
            local[label] = []
            for _ in range(args.scrapes):
                start = time.perf_counter()
                render(registry)
                local[label].append(time.perf_counter() - start)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(generate_latest, registry)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        print()
        print(f"jobs                      {len(jobs)} (+ {len(_inputs(root / 'files'))} inputs)")
        print(f"series on /metrics        {_series(body)} ({_job_series(body)} of objects)")
        print(f"bytes per scrape          {statistics.median(sizes):,.0f}")
        print(
            f"scrape over HTTP          p50 {1000 * _percentile(durations, 0.5):.1f} ms"
            f"  p99 {1000 * _percentile(durations, 0.99):.1f} ms  ({args.scrapes} scrapes)"
        )
        for label, times in local.items():
            print(
                f"in process, {label:<35} p50 {1000 * _percentile(times, 0.5):.1f} ms"
                f"  p99 {1000 * _percentile(times, 0.99):.1f} ms"
            )
        return 0
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
