"""Create throughput of the embedded API server; prints creates/s and create latency.

    python benchmarks/apiserver_writes.py                       # 1 and 8 client processes
    python benchmarks/apiserver_writes.py --clients 1 2 8 --creates 400
    python benchmarks/apiserver_writes.py --sync full normal    # both durability modes
    python benchmarks/apiserver_writes.py --baseline-rev 9b2ddd4   # also the server of a commit

For each client count a fresh embedded server (``python -m apiserver``, its own process, on
loopback, in a temporary data directory) is started; then that many client processes
(``multiprocessing``, so the client's own CPU is not the limit) each create their share of
``--creates`` Dataset objects with the official ``kubernetes`` client
(``CustomObjectsApi.create_namespaced_custom_object``, one object a call, one keep-alive
connection per process). creates/s is all creates over the time from the first call to the last
answer; latency is per call; CPU is user + system time a create, of the server process and of
all client processes.
Each row is the median of ``--repeat`` runs (the load of other processes on the box moves
single runs a lot; the load average is printed). With ``--baseline-rev`` the same run is repeated
against the ``apiserver/`` of that git revision (extracted with ``git archive``): before/after.
The target beside the figures is from issue 15 (a real kube-apiserver + etcd did 138/s here).

``--server sedna-up`` measures the API server of a whole ``sedna up`` instead (nodes cloud0,
edge0, edge1; the GM reconciles every Dataset and sends it to edge0's LC while the creates
run); server CPU is then the API server's process (all of ``sedna up`` where it is one
process, as in a ``--baseline-rev`` before the process split):

    python benchmarks/apiserver_writes.py --server sedna-up --clients 8 --baseline-rev <rev>
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parent.parent
TARGET_CREATES_PER_SECOND = 140.0
GROUP, VERSION, PLURAL = "sedna.io", "v1alpha1", "datasets"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_server(source: Path, sync: str | None) -> Iterator[tuple[Path, int]]:
    """A fresh `python -m apiserver` from `source` (a tree with `apiserver/`): kubeconfig, pid."""
    data_dir = Path(tempfile.mkdtemp(prefix="apiserver-bench-"))
    command = [sys.executable, "-m", "apiserver", "--data-dir", str(data_dir)]
    command += ["--log-level", "WARNING"]
    if sync is not None:
        command += ["--sync", sync]
    env = {**os.environ, "PYTHONPATH": str(source)}
    process = subprocess.Popen(command, cwd=source, env=env)
    kubeconfig = data_dir / "kubeconfig"
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not start: {command}")
            time.sleep(0.05)
        time.sleep(0.2)  # the file is written in one go, but let the writer close it
        yield kubeconfig, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def running_stack(source: Path, sync: str | None) -> Iterator[tuple[Path, int]]:
    """A fresh ``sedna up`` from `source`: its kubeconfig and the API server's pid."""
    data_dir = Path(tempfile.mkdtemp(prefix="sedna-up-bench-")) / "sedna"
    command = [sys.executable, "-m", "sedna_cli.main", "up", "--data-dir", str(data_dir)]
    command += ["--nodes", "cloud0,edge0,edge1", "--log-level", "WARNING"]
    env = {**os.environ, "PYTHONPATH": str(source)}
    if sync is not None:
        env["SEDNA_APISERVER_SYNC"] = sync
    process = subprocess.Popen(
        command, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "sedna is up" in line:
                break
        else:
            raise RuntimeError(f"sedna up did not start: {command}")
        pid_file = data_dir / "apiserver" / "apiserver.pid"  # absent: one process for all
        pid = json.loads(pid_file.read_text())["pid"] if pid_file.exists() else process.pid
        yield data_dir / "kubeconfig", pid
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _client_process(kubeconfig: str, prefix: str, count: int, start_at: float, out) -> None:
    """Create `count` Datasets (after `start_at`) and send back each call's start and end."""
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
    warm = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Dataset"}
    api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, limit=1)  # connect
    while time.time() < start_at:
        time.sleep(0.001)
    spans = []
    cpu = time.process_time()
    for index in range(count):
        body = {
            **warm,
            "metadata": {"name": f"{prefix}-{index}", "namespace": "default"},
            "spec": {"url": f"/data/{prefix}-{index}.txt", "format": "txt", "nodeName": "edge0"},
        }
        began = time.time()
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        spans.append((began, time.time()))
    out.send((spans, time.process_time() - cpu))
    out.close()


@dataclass(order=True)
class Figures:
    """One run: creates/s, latency p50/p99 (ms), CPU seconds per create of clients and server."""

    rate: float
    p50: float
    p99: float
    client_cpu: float
    server_cpu: float = 0.0


def measure(kubeconfig: Path, clients: int, creates: int) -> Figures:
    """The figures of `creates` creates from `clients` processes (server CPU left at 0)."""
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0 + 0.3 * clients  # every process connected before the start
    pipes, processes = [], []
    for index in range(clients):
        receiver, sender = context.Pipe(duplex=False)
        share = creates // clients + (1 if index < creates % clients else 0)
        args = (str(kubeconfig), f"c{index}", share, start_at, sender)
        process = context.Process(target=_client_process, args=args)
        process.start()
        pipes.append(receiver)
        processes.append(process)
    results = [receiver.recv() for receiver in pipes]
    spans = [span for part, _ in results for span in part]
    client_cpu = sum(cpu for _, cpu in results)
    for process in processes:
        process.join()
    first = min(began for began, _ in spans)
    last = max(ended for _, ended in spans)
    latencies = sorted((ended - began) * 1000 for began, ended in spans)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Figures(
        len(spans) / (last - first), statistics.median(latencies), p99, client_cpu / len(spans)
    )


def run_once(
    source: Path, sync: str | None, clients: int, creates: int, server: str = "alone"
) -> Figures:
    """One fresh server (alone, or in a ``sedna up``), one measurement."""
    start = running_stack if server == "sedna-up" else running_server
    with start(source, sync) as (kubeconfig, pid):
        cpu = cpu_seconds(pid)
        figures = measure(kubeconfig, clients, creates)
        figures.server_cpu = (cpu_seconds(pid) - cpu) / creates
        stored = count_datasets(kubeconfig)
    if stored != creates:
        raise RuntimeError(f"{stored} Datasets stored, {creates} created")
    return figures


def count_datasets(kubeconfig: Path) -> int:
    """How many Datasets the server holds (every create must have landed)."""
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    return len(api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"])


@contextmanager
def source_tree(rev: str | None, whole: bool = False) -> Iterator[Path]:
    """This checkout, or `apiserver/`, `apis/` and `broker/` (``whole``: everything) of a git
    revision."""
    if rev is None:
        yield ROOT
        return
    target = Path(tempfile.mkdtemp(prefix="apiserver-rev-"))
    parts = [] if whole else ["apiserver", "apis", "broker"]
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, *parts],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--creates", type=int, default=800, help="creates per client count")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median shown)")
    parser.add_argument(
        "--sync", choices=["full", "normal"], nargs="+", default=["full"], help="server --sync"
    )
    parser.add_argument("--baseline-rev", help="also measure the apiserver/ of this git revision")
    parser.add_argument(
        "--server",
        choices=["alone", "sedna-up"],
        default="alone",
        help="the API server alone (python -m apiserver) or in a whole sedna up",
    )
    args = parser.parse_args()
    runs: list[tuple[str, str | None, str | None]] = [(f"this/{m}", None, m) for m in args.sync]
    if args.baseline_rev:
        runs.append((args.baseline_rev, args.baseline_rev, None))
    print(
        f"{args.creates} Dataset creates a run, median of {args.repeat} runs; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; "
        f"server: {'the API server of sedna up' if args.server == 'sedna-up' else 'alone'}",
        flush=True,
    )
    header = f"{'server':<12} {'clients':>7} {'creates/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'server CPU':>11} {'client CPU':>11}  target (CPU: ms a create)")
    for label, rev, sync in runs:
        with source_tree(rev, whole=args.server == "sedna-up") as source:
            for clients in args.clients:
                rows = sorted(
                    run_once(source, sync, clients, args.creates, args.server)
                    for _ in range(args.repeat)
                )
                f = rows[len(rows) // 2]  # the run of median rate
                target = f">= {TARGET_CREATES_PER_SECOND:.0f}/s" if clients == 8 else ""
                row = f"{label:<12} {clients:>7} {f.rate:>10.1f} {f.p50:>8.1f} {f.p99:>8.1f}"
                cpu = f"{f.server_cpu * 1000:>11.2f} {f.client_cpu * 1000:>11.2f}"
                print(f"{row} {cpu}  {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
