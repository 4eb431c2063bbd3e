"""Control-plane latency and throughput of a ``sedna up`` stack; prints one table.

    python benchmarks/control_plane.py               # 200 services, 2000 reports (1-2 min)
    python benchmarks/control_plane.py --quick       # 20 services, 200 reports (~15 s)
    python benchmarks/control_plane.py --resources 500 --reports 5000 --workers-run

Starts a fresh stack in a temporary directory, as ``sedna up`` does (embedded API server, GM and
the LCs of cloud0, edge0 and edge1 in this process; Mosquitto and Redis as child processes), and
measures what a user of the control plane waits for:

1. apply -> spec at LC: from the start of the ``create`` call (official ``kubernetes`` client,
   ``CustomObjectsApi.create_namespaced_custom_object``, one object a call, so every object has
   its own start time) of a JointInferenceService until the LC of each worker's node has
   recorded that worker's pod spec from the bus (a wrapper around the LC's ``_record``). First
   a few services one at a time on an idle stack, then N back to back, as ``kubectl apply -f``
   of a file of N objects sends them. Also apply -> worker process started (the LC runtime
   reports Running) and how long the GM takes to write every worker phase change into status.
2. report -> status: from a worker report POSTed to the LC (``/sedna/workers/<worker>/info``,
   a new connection per report, as the worker library does) until a watch of the API shows the
   new value in the service's ``status.metrics``; one report at a time.
3. reports applied per second: M reports POSTed as fast as possible over all services (each
   service's reports in order from one thread); the rate at which the GM applies them (a wrapper
   around its upstream apply), LC outbox re-sends, and whether every service's status ends with
   its last report.

Workers run ``true`` with ``restartPolicy: Never`` by default (a real process start per worker,
then nothing), so hundreds of workers do not compete with the control plane for the CPU;
``--workers-run`` gives them a command that keeps running (``sleep``). Waits are bounded by
``--wait-limit``; Ctrl-C stops the stack and its workers and deletes the directory.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from gm.app import api_client_for
from lc.agent import LocalController
from lc.workertokens import TOKEN_HEADER
from sedna_cli.stack import Stack, StackOptions

GROUP, VERSION, PLURAL, NAMESPACE = "sedna.io", "v1alpha1", "jointinferenceservices", "default"
NODES = ["cloud0", "edge0", "edge1"]
EDGE_NODES = ["edge0", "edge1"]
WAIT_LIMIT = 100.0  # default of --wait-limit


# -- figures ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a latency distribution or a single figure."""

    what: str
    samples: list[float] = field(default_factory=list)
    expected: int = 0
    value: str = ""

    def cells(self) -> list[str]:
        """The row as printed."""
        if self.value:
            return [self.what, self.value, "", "", "", ""]
        done = sorted(self.samples)
        missing = self.expected - len(done)
        count = f"{len(done)}" + (f" ({missing} missing)" if missing > 0 else "")
        if not done:
            return [self.what, count, "-", "-", "-", "-"]
        return [
            self.what,
            count,
            _ms(statistics.median(done)),
            _ms(_percentile(done, 0.99)),
            _ms(done[-1]),
            _ms(statistics.fmean(done)),
        ]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def print_table(rows: list[Row]) -> None:
    """Rows as an aligned text table; a single figure spans the number columns."""
    header = ["measure", "n", "p50", "p99", "max", "mean"]
    spread = [header, *(r.cells() for r in rows if not r.value)]
    widths = [max(len(line[i]) for line in spread) for i in range(len(header))]
    widths[0] = max(len(r.what) for r in rows)
    print(
        "  ".join(
            [header[0].ljust(widths[0])]
            + [h.rjust(w) for h, w in zip(header[1:], widths[1:], strict=True)]
        )
    )
    print("  ".join("-" * width for width in widths))
    for row in rows:
        if row.value:
            print(f"{row.what.ljust(widths[0])}  {row.value}")
            continue
        line = row.cells()
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        print("  ".join([line[0].ljust(widths[0]), *rest]))


# -- observation hooks -----------------------------------------------------------------------


class Probe:
    """Arrival times recorded in-process by wrapping instance methods of the LCs and GM."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spec_at: dict[tuple[str, str], float] = {}  # (node, worker) -> first spec arrival
        self.started_at: dict[tuple[str, str], float] = {}  # (node, worker) -> first Running
        self.applied: list[tuple[float, str, int]] = []  # (time, service, inferenceNumber)
        self.applied_event = threading.Condition(self.lock)

    def install(self, stack: Stack) -> None:
        """Wrap each LC's ``_record`` and runtime status callback and the GM's upstream apply."""
        for node, lc in stack.lcs.items():
            self._wrap_lc(node, lc)
        assert stack.gm is not None
        receiver = stack.gm.receiver
        original_apply = receiver._apply

        def applying(topic: Any, envelope: Any) -> None:
            original_apply(topic, envelope)
            info = (envelope.payload.get("output") or {}).get("taskInfo") or {}
            number = info.get("inferenceNumber")
            if isinstance(number, int):
                with self.lock:
                    self.applied.append((time.monotonic(), topic.name, number))
                    self.applied_event.notify_all()

        receiver._apply = applying

    def _wrap_lc(self, node: str, lc: Any) -> None:
        original_record = lc._record

        def record(raw_topic: str, topic: Any, body: dict[str, Any] | None) -> None:
            original_record(raw_topic, topic, body)
            if body is not None and "/down/workers/" in raw_topic:
                key = (node, topic.name)
                with self.lock:
                    self.spec_at.setdefault(key, time.monotonic())

        lc._record = record
        runtime = lc.runtime
        original_status = runtime._on_status

        def on_status(status: Any) -> None:
            if str(status.phase) == "Running":
                with self.lock:
                    self.started_at.setdefault((node, status.name), time.monotonic())
            if original_status is not None:
                original_status(status)

        runtime._on_status = on_status


class StatusWatch:
    """Watches every service through the API; records when each metric value first appears."""

    def __init__(self, api: client.CustomObjectsApi) -> None:
        self._api = api
        self.lock = threading.Condition()
        self.seen: dict[tuple[str, int], float] = {}  # (service, inferenceNumber) -> first seen
        self.latest: dict[str, int] = {}
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        """Start watching from the current resourceVersion."""
        self._thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the watch did not start")

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._watch.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self._api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
                for item in listed.get("items", []):
                    self._note(item)
                self.ready.set()
                for event in self._watch.stream(
                    self._api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    NAMESPACE,
                    PLURAL,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=600,
                ):
                    if self._stop.is_set():
                        return
                    self._note(event["object"])
            except Exception as exc:  # reconnect; a benchmark run should survive a hiccup
                if not self._stop.is_set():
                    logging.getLogger(__name__).warning("watch failed: %s", exc)
                    time.sleep(0.5)

    def _note(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        metrics = (obj.get("status") or {}).get("metrics") or []
        values = {m.get("key"): m.get("value") for m in metrics}
        try:
            number = int(values.get("inferenceNumber", ""))
        except ValueError:
            return
        name = obj["metadata"]["name"]
        with self.lock:
            self.seen.setdefault((name, number), now)
            self.latest[name] = number
            self.lock.notify_all()

    def wait_for(self, name: str, number: int, deadline: float) -> float | None:
        """When ``number`` was first seen for ``name``, waiting until ``deadline``."""
        with self.lock:
            while (name, number) not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.lock.wait(left)
            return self.seen[(name, number)]


# -- the workload ----------------------------------------------------------------------------


def worker_template(node: str, keep_running: bool) -> dict[str, Any]:
    """A pod template for ``node`` whose command is as cheap as a process can be."""
    command = ["sleep", "3600"] if keep_running else ["true"]
    return {
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{"name": "worker", "image": "none", "command": command}],
        }
    }


def service(name: str, edge_node: str, keep_running: bool) -> dict[str, Any]:
    """A JointInferenceService with an edge worker on ``edge_node`` and a cloud worker."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "JointInferenceService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "edgeWorker": {
                "model": {"name": "small-model"},
                "hardExampleMining": {
                    "name": "IBT",
                    "parameters": [{"key": "threshold_img", "value": "0.9"}],
                },
                "template": worker_template(edge_node, keep_running),
            },
            "cloudWorker": {
                "model": {"name": "big-model"},
                "template": worker_template("cloud0", keep_running),
            },
        },
    }


@dataclass
class Service:
    """A created service: its name, edge node and when its create call started."""

    name: str
    edge_node: str
    created: float = 0.0

    @property
    def workers(self) -> list[tuple[str, str]]:
        """(node, worker name) of its two workers."""
        return [(self.edge_node, f"{self.name}-edge"), ("cloud0", f"{self.name}-cloud")]


class Reporter:
    """POSTs worker reports to an LC, a new connection per report as the worker library does."""

    def __init__(self, lc: LocalController) -> None:
        self._port = lc.reports.port
        self._tokens = lc.tokens

    def post(self, svc: Service, number: int) -> None:
        """Report ``number`` inferences for the edge worker of ``svc`` (retry until accepted)."""
        worker = f"{svc.name}-edge"
        body = json.dumps(
            {
                "name": worker,
                "namespace": NAMESPACE,
                "ownerName": svc.name,
                "ownerKind": "jointinferenceservice",
                "kind": "inference",
                "status": "running",
                "taskInfo": {"inferenceNumber": number, "hardExampleNumber": number // 10},
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Connection": "close",
            TOKEN_HEADER: self._tokens.token(NAMESPACE, worker),
        }
        for _ in range(50):
            conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
            try:
                conn.request("POST", f"/sedna/workers/{worker}/info", body, headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise RuntimeError(f"the LC did not accept a report for {worker}")


# -- phases ----------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    """Poll ``condition`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def create(api: client.CustomObjectsApi, svc: Service, keep_running: bool) -> None:
    """Create one service, stamping the start of the call."""
    svc.created = time.monotonic()
    api.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, service(svc.name, svc.edge_node, keep_running)
    )


def all_acked(stack: Stack) -> bool:
    """Whether the GM has acknowledged every upstream message of every LC."""
    return all(lc.outbox.pending_count() == 0 for lc in stack.lcs.values())


def drain(stack: Stack, timeout: float) -> float:
    """Wait until the GM has applied every worker phase change the LCs sent; returns when."""
    wait_until(lambda: all_acked(stack), timeout, poll=0.1)
    return time.monotonic()


def spec_rows(label: str, services: list[Service], probe: Probe) -> list[Row]:
    """Apply -> spec and apply -> process start latencies of ``services``."""
    per_worker = Row(f"{label}: apply -> spec at LC (per worker)", expected=2 * len(services))
    both = Row(f"{label}: apply -> both specs at their LCs", expected=len(services))
    started = Row(f"{label}: apply -> worker process started", expected=2 * len(services))
    with probe.lock:
        for svc in services:
            arrivals = [probe.spec_at.get(w) for w in svc.workers]
            per_worker.samples += [t - svc.created for t in arrivals if t is not None]
            if all(t is not None for t in arrivals):
                both.samples.append(max(t for t in arrivals if t is not None) - svc.created)
            starts = [probe.started_at.get(w) for w in svc.workers]
            started.samples += [t - svc.created for t in starts if t is not None]
    return [per_worker, both, started]


def phase_apply(
    stack: Stack, api: client.CustomObjectsApi, probe: Probe, args: argparse.Namespace
) -> tuple[list[Service], list[Row]]:
    """Idle applies one at a time, then a burst of ``--resources``."""
    keep = args.workers_run
    idle = [Service(f"idle-{i:03d}", EDGE_NODES[i % 2]) for i in range(args.idle)]

    def arrived(svc: Service) -> bool:
        with probe.lock:
            return all(w in probe.spec_at for w in svc.workers) and all(
                w in probe.started_at for w in svc.workers
            )

    for svc in idle:
        create(api, svc, keep)
        wait_until(lambda svc=svc: arrived(svc), 30)
        drain(stack, 30)  # the next one starts on an idle stack
    burst = [Service(f"svc-{i:04d}", EDGE_NODES[i % 2]) for i in range(args.resources)]
    started = time.monotonic()
    for svc in burst:
        create(api, svc, keep)
    submitted = time.monotonic() - started
    complete = wait_until(lambda: all(arrived(s) for s in burst), args.wait_limit, poll=0.05)
    last = 0.0
    with probe.lock:
        arrivals = [probe.spec_at.get(w, 0.0) for s in burst for w in s.workers]
        last = max(arrivals, default=started) - started
    rows = [
        *spec_rows(f"idle ({len(idle)} one at a time)", idle, probe),
        *spec_rows(f"burst ({len(burst)} back to back)", burst, probe),
        Row(
            "burst: create calls took (all) / rate",
            value=f"{submitted:.1f} s / {len(burst) / max(submitted, 1e-9):.0f} per s",
        ),
        Row(
            "burst: first create -> last spec at its LC",
            value=f"{last:.1f} s" + ("" if complete else " (incomplete)"),
        ),
    ]
    return burst, rows


def phase_report_latency(
    stack: Stack, services: list[Service], status: StatusWatch, count: int, first: int
) -> Row:
    """One report at a time: POST to the LC -> value in status.metrics (seen by a watch)."""
    row = Row("report POST -> status.metrics (one at a time)", expected=count)
    reporters = {node: Reporter(stack.lcs[node]) for node in EDGE_NODES}
    for index in range(count):
        svc = services[index % len(services)]
        number = first + index
        sent = time.monotonic()
        reporters[svc.edge_node].post(svc, number)
        seen = status.wait_for(svc.name, number, sent + 30)
        if seen is not None:
            row.samples.append(seen - sent)
    return row


def phase_report_burst(
    stack: Stack,
    services: list[Service],
    probe: Probe,
    status: StatusWatch,
    total: int,
    first: int,
    threads: int,
    limit: float,
) -> list[Row]:
    """``total`` reports as fast as possible; the GM's apply rate and time to final status."""
    plan: dict[str, list[int]] = defaultdict(list)  # service -> its numbers, in posting order
    for index in range(total):
        plan[services[index % len(services)].name].append(first + index)
    by_name = {s.name: s for s in services}
    names = sorted(plan)
    # Each service's reports come from one thread, in order, so its last value is well defined.
    shards = [names[i::threads] for i in range(threads)]
    with probe.lock:
        applied_before = len(probe.applied)
    stats_before = {node: lc.outbox.stats() for node, lc in stack.lcs.items()}

    abort = threading.Event()

    def post_shard(shard: list[str]) -> None:
        reporters = {node: Reporter(stack.lcs[node]) for node in EDGE_NODES}
        queues = [list(plan[name]) for name in shard]
        while any(queues) and not abort.is_set():
            for name, queue in zip(shard, queues, strict=True):
                if queue:
                    svc = by_name[name]
                    reporters[svc.edge_node].post(svc, queue.pop(0))

    started = time.monotonic()
    pool = ThreadPoolExecutor(threads)
    try:
        list(pool.map(post_shard, shards))
    finally:
        abort.set()  # on Ctrl-C, stop posting at once
        pool.shutdown(wait=True, cancel_futures=True)
    posted = time.monotonic()
    deadline = posted + limit
    with probe.lock:
        while len(probe.applied) - applied_before < total and time.monotonic() < deadline:
            probe.applied_event.wait(0.5)
        ours = probe.applied[applied_before:]
    applied_all = ours[-1][0] if ours else posted
    stats_after = {node: lc.outbox.stats() for node, lc in stack.lcs.items()}
    resent = sum(stats_after[n].resent - stats_before[n].resent for n in stack.lcs)
    applied = len(ours)
    duplicates = applied - len({(name, number) for _, name, number in ours})
    elapsed = applied_all - started
    finals = {name: numbers[-1] for name, numbers in plan.items()}
    if applied >= total:
        # Every report was applied: each service's status must now show its last one.
        seen_all = [status.wait_for(n, v, time.monotonic() + 30) for n, v in finals.items()]
        stale = sorted(name for name, seen in zip(finals, seen_all, strict=True) if seen is None)
        shown = max((s for s in seen_all if s is not None), default=posted)
        final = f"{shown - started:.1f} s"
        if stale:
            final += f" (WRONG: {len(stale)} services show an older value)"
            latest = {name: status.latest.get(name) for name in stale[:5]}
            print(f"  services not showing their last value (name: value shown): {latest}")
    else:
        final = f"not reached: {total - applied} reports still unapplied after {limit:.0f} s"
    rows = [
        Row(
            f"{total} reports: POSTs accepted by the LCs",
            value=f"{posted - started:.1f} s ({total / max(posted - started, 1e-9):.0f} per s)",
        ),
        Row(
            f"{total} reports: applied by the GM",
            value=f"{applied} in {elapsed:.1f} s ({applied / max(elapsed, 1e-9):.1f} per s)",
        ),
        Row(f"{total} reports: first POST -> every last value in status", value=final),
        Row(
            f"{total} reports: LC outbox re-sends / reports applied twice",
            value=f"{resent} / {duplicates}",
        ),
    ]
    return rows


# -- running ---------------------------------------------------------------------------------


class CountingHandler(logging.Handler):
    """Counts the control plane's warnings and errors and keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = defaultdict(int)
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if len(self.first) < 5:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:160]}")


@contextlib.contextmanager
def running_stack(data_dir: Path) -> Iterator[Stack]:
    """A started stack that is stopped (its workers too) however the block ends."""
    stack = Stack(StackOptions(data_dir=data_dir, nodes=NODES))
    try:
        stack.start()
        yield stack
    finally:
        # Workers outlive their LC by design; these must not. Stop each LC first, so its sync
        # loop does not start them again, then stop its workers, then the rest of the stack.
        for lc in list(stack.lcs.values()):
            with contextlib.suppress(Exception):
                lc.stop()
            with contextlib.suppress(Exception):
                lc.runtime.remove_all()
        stack.lcs.clear()
        stack.stop()


def progress(begun: float, text: str) -> None:
    """A progress line with the time since the start."""
    print(f"[{time.monotonic() - begun:5.0f} s] {text}", flush=True)


def gm_counters(stack: Stack) -> Row:
    """The GM's reconcile results and upstream messages over the run (its Prometheus registry)."""
    assert stack.gm is not None
    totals: dict[str, float] = defaultdict(float)
    for metric in stack.gm.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "sedna_gm_reconciles_total":
                totals[f"reconciles {sample.labels['result']}"] += sample.value
            elif sample.name == "sedna_gm_upstream_messages_total":
                totals["upstream messages applied"] += sample.value
    text = ", ".join(f"{key} {value:.0f}" for key, value in sorted(totals.items()))
    return Row("GM over the whole run", value=text)


def print_header(args: argparse.Namespace) -> None:
    """What is measured, on what, with which parameters."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    workers = "keep running (sleep)" if args.workers_run else "run `true`, restartPolicy Never"
    lines = [
        "Sedna control plane: how long until an applied job reaches its nodes' LCs, how long",
        "until a worker's report shows in the job's status, how many reports a second the GM",
        "turns into status updates.",
        f"  machine     {cores} cores ({usable} usable), Python {sys.version.split()[0]}; the API"
        " server, GM and LCs cloud0, edge0, edge1",
        "              share this one Python process; Mosquitto and Redis run beside it",
        f"  workload    {args.resources} JointInferenceServices back to back (after {args.idle}"
        " one at a time), each with",
        "              an edge worker (edge0/edge1 alternately) and a cloud worker (cloud0)",
        f"  workers     {workers}",
        f"  reports     {args.latency_samples} one at a time, then {args.reports} as fast as"
        f" {args.post_threads} threads can POST them",
        "  apply       CustomObjectsApi.create_namespaced_custom_object, one object a call,",
        "              timed from the call's start",
        "  spec at LC  the node's LC has recorded the worker's pod spec from the bus",
        "  status      a watch (official client) shows the reported value in status.metrics",
        "  applied     the GM has written the report into the status subresource",
    ]
    print("\n".join(lines), flush=True)


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--resources", type=int, default=200, help="services in the burst")
    parser.add_argument("--reports", type=int, default=2000, help="reports in the report burst")
    parser.add_argument("--idle", type=int, default=5, help="services applied one at a time")
    parser.add_argument(
        "--latency-samples", type=int, default=0, help="reports sent one at a time (default N)"
    )
    parser.add_argument("--post-threads", type=int, default=8, help="threads POSTing the burst")
    parser.add_argument(
        "--workers-run",
        action="store_true",
        help="workers keep running (sleep) instead of exiting at once",
    )
    parser.add_argument(
        "--wait-limit",
        type=float,
        default=WAIT_LIMIT,
        help="seconds to wait for the burst's specs, the upstream backlog and the report burst",
    )
    parser.add_argument("--quick", action="store_true", help="20 services, 200 reports")
    parser.add_argument("--verbose", action="store_true", help="show the stack's INFO logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.resources, args.reports, args.idle = 20, 200, 3
    args.latency_samples = args.latency_samples or args.resources
    if args.resources < 1 or args.reports < 1:
        parser.error("--resources and --reports must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the three phases and print the table."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # count warnings, print only errors
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.ERROR)
    counter = CountingHandler()
    logging.getLogger().addHandler(counter)
    signal.signal(signal.SIGTERM, _sigterm)
    print_header(args)
    data_dir = Path(tempfile.mkdtemp(prefix="sedna-bench-"))
    begun = time.monotonic()
    rows: list[Row] = []
    try:
        with running_stack(data_dir / "sedna") as stack:
            probe = Probe()
            probe.install(stack)
            api = client.CustomObjectsApi(api_client_for(str(stack.kubeconfig)))
            for name in ("small-model", "big-model"):
                api.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    NAMESPACE,
                    "models",
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Model",
                        "metadata": {"name": name, "namespace": NAMESPACE},
                        "spec": {"url": f"/models/{name}.pkl", "format": "pkl"},
                    },
                )
            time.sleep(1.0)  # let the GM see the models before the first service
            progress(begun, "stack up; phase 1: apply")
            services, apply_rows = phase_apply(stack, api, probe, args)
            rows += apply_rows
            drained = drain(stack, args.wait_limit)
            rows.append(
                Row(
                    "burst: first create -> GM applied every worker phase change",
                    value=f"{drained - services[0].created:.1f} s"
                    + ("" if all_acked(stack) else " (incomplete)"),
                )
            )
            status = StatusWatch(api)
            status.start()
            try:
                progress(begun, "phase 2: report -> status, one at a time")
                rows.append(phase_report_latency(stack, services, status, args.latency_samples, 1))
                progress(begun, "phase 3: report burst")
                rows += phase_report_burst(
                    stack,
                    services,
                    probe,
                    status,
                    args.reports,
                    args.latency_samples + 1,
                    args.post_threads,
                    args.wait_limit,
                )
            finally:
                status.stop()
            rows.append(gm_counters(stack))
            progress(begun, "stopping the stack")
    except KeyboardInterrupt:
        print("interrupted; stopped the stack", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print_table(rows)
    print()
    print(f"total run time {time.monotonic() - begun:.0f} s")
    if counter.counts:
        summary = ", ".join(f"{n} {level.lower()}s" for level, n in sorted(counter.counts.items()))
        print(f"control plane logged {summary}; first: ")
        for line in counter.first:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
