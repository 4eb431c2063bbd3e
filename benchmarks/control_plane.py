"""Control-plane latency and throughput of a ``sedna up`` stack; prints one table.

    python benchmarks/control_plane.py               # 200 services (a few minutes)
    python benchmarks/control_plane.py --quick       # 20 services, fewer reports (~1 min)
    python benchmarks/control_plane.py --resources 500 --reports 5000 --workers-run

Starts a fresh stack in a temporary directory, as ``sedna up`` does (the embedded API server in a
process of its own, as ``sedna up`` runs it; GM and the LCs of cloud0, edge0 and edge1 in this
process, so they can be observed; Mosquitto and Redis as child processes), and measures what a
user of the control plane waits for:

1. apply -> spec at LC: from the start of the ``create`` call (official ``kubernetes`` client,
   ``CustomObjectsApi.create_namespaced_custom_object``, one object a call, so every object has
   its own start time) of a JointInferenceService until the LC of each worker's node has
   recorded that worker's pod spec from the bus (a wrapper around the LC's ``_record``). First
   a few services one at a time on an idle stack, then N back to back, as ``kubectl apply -f``
   of a file of N objects sends them. Also apply -> worker process started (the LC runtime
   reports Running) and how long the GM takes to write every worker phase change into status.
   The burst's creates come from a client process of their own (as kubectl is one); their rate
   is compared with the API server's idle rate (the same number of the same calls from the
   same kind of client process against a fresh API server nothing watches, in the same run;
   the median of 3 such rounds, since 20 calls take some 30 ms), and the last spec's arrival
   with the last create; issue 15's targets (>= 90 %, <= 2 s) are printed beside them.
   ``--apply-only`` stops after this phase.
2. report -> status: from a worker report POSTed to the LC (``/sedna/workers/<worker>/info``,
   a new connection per report, as the worker library does) until a watch of the API shows the
   new value in the service's ``status.metrics``; one report at a time.
3. report -> status at a rate: 4 client processes (persistent connections, each service's
   reports in order from one process) offer ``--offered-rate`` reports/s for
   ``--offered-seconds``; per report, POSTed -> status shows its value or a later one (the GM
   coalesces: a value overtaken within a batch never shows itself).
4. the LC report servers' accepted rate: ``--reports`` POSTed as fast as 4 client processes with
   persistent connections can, and POSTed -> every status holds its last value (end to end),
   the LC outbox's group commits, re-sends and reports applied twice.
5. the GM's apply rate with coalescing: ``--capacity-reports`` worker reports published on the
   bus by one client process per edge node, with that node's credentials and envelopes as its
   LC makes them (no HTTP, no LC in the way): applied (committed by the GM's upstream receiver,
   seen by a listener on it) per second, batches, and first publish -> every last value in
   status.

Figures of phases 3-5 are with coalescing (the GM's only mode): "applied" counts every message,
while status is written once per batch and service.

Workers run ``true`` with ``restartPolicy: Never`` by default (a real process start per worker,
then nothing), so hundreds of workers do not compete with the control plane for the CPU;
``--workers-run`` gives them a command that keeps running (``sleep``). Waits are bounded by
``--wait-limit``; Ctrl-C stops the stack and its workers and deletes the directory.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import http.client
import json
import logging
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from broker import free_port
from gm.app import api_client_for
from lc.agent import LocalController
from lc.workertokens import TOKEN_HEADER
from sedna_cli.components import ApiServerSettings
from sedna_cli.procs import ComponentProcess
from sedna_cli.stack import Stack, StackOptions

# Run as a script, the sibling modules are found from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.apiwatch import ObjectWatch

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

        def applied(batch: list[Any]) -> None:  # each batch the GM committed
            now = time.monotonic()
            with self.lock:
                for item in batch:
                    info = (item.envelope.payload.get("output") or {}).get("taskInfo") or {}
                    number = info.get("inferenceNumber")
                    if isinstance(number, int):
                        self.applied.append((now, item.topic.name, number))
                self.applied_event.notify_all()

        stack.gm.receiver.listeners.append(applied)

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
        self.lock = threading.Condition()
        self.seen: dict[tuple[str, int], float] = {}  # (service, inferenceNumber) -> first seen
        self.latest: dict[str, int] = {}
        # service -> (when, value) each time its value grew: when a value >= v first showed
        self.timeline: dict[str, list[tuple[float, int]]] = defaultdict(list)
        self._watch = ObjectWatch(api, PLURAL, self._note)

    def start(self) -> None:
        """Start watching from the current resourceVersion."""
        self._watch.start(30)

    def stop(self) -> None:
        """Stop watching."""
        self._watch.stop()

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
            line = self.timeline[name]
            if not line or number > line[-1][1]:
                line.append((now, number))
            self.lock.notify_all()

    def reached(self, name: str, number: int) -> float | None:
        """When ``name`` first showed ``number`` or a later value (None: not yet)."""
        with self.lock:
            line = self.timeline.get(name) or []
            index = bisect.bisect_left([value for _, value in line], number)
            return line[index][0] if index < len(line) else None

    def wait_reached(self, finals: dict[str, int], deadline: float) -> bool:
        """Wait until every service shows at least its final value."""
        with self.lock:
            while any(self.latest.get(n, -1) < v for n, v in finals.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.5))
            return True

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


#: Issue 15's burst targets: create calls at >= 90 % of the API server's idle rate, every spec
#: at its LC within 2 s of the last create.
BURST_RATE_TARGET = 0.90
BURST_SPEC_TARGET = 2.0


def _create_all(kubeconfig: str, services: list[tuple[str, str]], keep: bool, out: Any) -> None:
    """In a client process of its own: create the services one call each, back to back, and
    send back each call's start (``time.monotonic``: one clock for every process here)."""
    api = client.CustomObjectsApi(api_client_for(kubeconfig))
    api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, limit=1)  # connect
    starts = []
    for name, edge_node in services:
        starts.append(time.monotonic())
        api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, service(name, edge_node, keep)
        )
    starts.append(time.monotonic())
    out.send(starts)
    out.close()


def create_from_client(kubeconfig: Path, services: list[Service], keep: bool) -> float:
    """Create ``services`` from a client process (as kubectl is one: the control plane in this
    process does not slow the client down); stamps each service's start; returns the seconds
    from the first call to the last answer."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    names = [(svc.name, svc.edge_node) for svc in services]
    process = context.Process(target=_create_all, args=(str(kubeconfig), names, keep, sender))
    process.start()
    starts = receiver.recv()
    process.join()
    for svc, began in zip(services, starts, strict=False):
        svc.created = began
    return starts[-1] - starts[0]


#: Rounds of the burst's calls against the idle API server; its rate is their median.
IDLE_ROUNDS = 3


def idle_create_rate(data_dir: Path, count: int, keep_running: bool) -> float:
    """Creates/s of the burst's calls (same count, same bodies, same kind of client process)
    against an API server of the same code that nothing watches: the API server's rate when
    idle, in this very run. The median of `IDLE_ROUNDS` rounds (fresh names each round, a new
    client process each, as the burst's): 20 calls take some 30 ms, so one round is noise."""
    settings = ApiServerSettings(
        data_dir=data_dir / "data", port=free_port(), kubeconfig=data_dir / "kubeconfig"
    )
    server = ComponentProcess("apiserver", settings, data_dir, settings.port).start()
    try:
        api = client.CustomObjectsApi(api_client_for(str(settings.kubeconfig)))
        for name in ("small-model", "big-model"):
            api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "models", model(name))
        rates = []
        for round_ in range(IDLE_ROUNDS):
            services = [Service(f"r{round_}-{i:04d}", EDGE_NODES[i % 2]) for i in range(count)]
            took = create_from_client(settings.kubeconfig, services, keep_running)
            rates.append(count / max(took, 1e-9))
        return statistics.median(rates)
    finally:
        server.stop()


def model(name: str) -> dict[str, Any]:
    """One of the two Models the services name."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Model",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"url": f"/models/{name}.pkl", "format": "pkl"},
    }


def phase_apply(
    stack: Stack, api: client.CustomObjectsApi, probe: Probe, args: argparse.Namespace
) -> tuple[list[Service], list[Row]]:
    """Idle applies one at a time, then a burst of ``--resources``."""
    keep = args.workers_run
    idle_rate = idle_create_rate(stack.data_dir.parent / "idle-apiserver", args.resources, keep)
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
    load = os.getloadavg()[0]
    submitted = create_from_client(stack.kubeconfig, burst, keep)
    started = burst[0].created
    complete = wait_until(lambda: all(arrived(s) for s in burst), args.wait_limit, poll=0.05)
    last = 0.0
    with probe.lock:
        arrivals = [probe.spec_at.get(w, 0.0) for s in burst for w in s.workers]
        last = max(arrivals, default=started) - started
    rate = len(burst) / max(submitted, 1e-9)
    after_last = last - submitted
    incomplete = "" if complete else " (incomplete)"
    rate_ok = "met" if rate >= BURST_RATE_TARGET * idle_rate else "NOT met"
    spec_ok = "met" if complete and after_last <= BURST_SPEC_TARGET else "NOT met"
    rows = [
        *spec_rows(f"idle ({len(idle)} one at a time)", idle, probe),
        *spec_rows(f"burst ({len(burst)} back to back)", burst, probe),
        Row(
            "burst: create calls took (all) / rate",
            value=f"{submitted:.1f} s / {rate:.0f} per s",
        ),
        Row(
            "burst: the API server's idle rate (same calls)",
            value=f"{idle_rate:.0f} per s; burst at {rate / idle_rate:.0%} of it "
            f"(target >= {BURST_RATE_TARGET:.0%}: {rate_ok})",
        ),
        Row("burst: the box's load average (1 min) before it", value=f"{load:.1f}"),
        Row("burst: first create -> last spec at its LC", value=f"{last:.1f} s{incomplete}"),
        Row(
            "burst: last create -> last spec at its LC",
            value=f"{after_last:.2f} s{incomplete} (target <= {BURST_SPEC_TARGET:.0f} s: "
            f"{spec_ok})",
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


# -- reports at rate (client processes) -----------------------------------------------------


def run_children(mode: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run one ``benchmarks.report_clients`` process per job; start them all at once when
    every one is ready; return their results."""
    root = Path(__file__).resolve().parent.parent
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.report_clients", mode],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in jobs
    ]
    try:
        for child, job in zip(children, jobs, strict=True):
            assert child.stdin is not None
            child.stdin.write(json.dumps(job) + "\n")
            child.stdin.flush()
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {mode} client process did not get ready")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            assert child.stdout is not None
            results.append(json.loads(child.stdout.readline()))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait()


def _target(stack: Stack, svc: Service, numbers: list[int]) -> dict[str, Any]:
    """A client process's view of one service: its LC's port, its worker's token, numbers."""
    lc = stack.lcs[svc.edge_node]
    return {
        "service": svc.name,
        "port": lc.reports.port,
        "token": lc.tokens.token(NAMESPACE, f"{svc.name}-edge"),
        "numbers": numbers,
    }


def run_clients(
    stack: Stack,
    services: list[Service],
    total: int,
    first: int,
    processes: int,
    rate: float,
) -> tuple[dict[str, int], list[tuple[str, int, float]], float, float]:
    """``total`` reports over ``services`` from ``processes`` client processes (each service's
    reports from one process, in order); returns each service's last number, every report
    sent, and the first and last moment of sending."""
    by_name = {s.name: s for s in services}
    plan: dict[str, list[int]] = defaultdict(list)
    for index in range(total):
        plan[services[index % len(services)].name].append(first + index)
    names = sorted(plan)
    shards = [names[i::processes] for i in range(processes)]
    jobs = [
        {"rate": rate / processes, "targets": [_target(stack, by_name[n], plan[n]) for n in shard]}
        for shard in shards
        if shard
    ]
    results = run_children("post", jobs)
    sent = [(name, number, when) for part in results for name, number, when in part["sent"]]
    began = min(part["began"] for part in results)
    ended = max(part["ended"] for part in results)
    return {name: numbers[-1] for name, numbers in plan.items()}, sent, began, ended


def applied_since(probe: Probe, before: int) -> list[tuple[float, str, int]]:
    """The reports the GM applied after the first ``before``."""
    with probe.lock:
        return probe.applied[before:]


def phase_offered_rate(
    stack: Stack,
    services: list[Service],
    status: StatusWatch,
    rate: float,
    seconds: float,
    first: int,
    limit: float,
) -> list[Row]:
    """Reports offered at ``rate`` a second for ``seconds`` from 4 client processes (persistent
    connections): report POSTed -> its value (or a later one: coalesced) in status."""
    total = int(rate * seconds)
    finals, sent, began, ended = run_clients(stack, services, total, first, 4, rate)
    status.wait_reached(finals, time.monotonic() + limit)
    row = Row(
        f"at {rate:.0f} reports/s offered (4 procs, keep-alive, coalescing): report -> status",
        expected=len(sent),
    )
    for name, number, when in sent:
        seen = status.reached(name, number)
        if seen is not None:
            row.samples.append(max(0.0, seen - when))
    achieved = len(sent) / max(ended - began, 1e-9)
    return [
        Row(
            f"at {rate:.0f} reports/s offered: rate the clients achieved", value=f"{achieved:.0f}/s"
        ),
        row,
    ]


def phase_clients_burst(
    stack: Stack,
    services: list[Service],
    probe: Probe,
    status: StatusWatch,
    total: int,
    first: int,
    limit: float,
) -> list[Row]:
    """``total`` reports as fast as 4 client processes with persistent connections POST them:
    the LCs' accepted rate and POSTed -> every status holding its last value."""
    before = len(probe.applied)
    stats_before = {node: lc.outbox.stats() for node, lc in stack.lcs.items()}
    finals, sent, began, ended = run_clients(stack, services, total, first, 4, 0.0)
    complete = status.wait_reached(finals, time.monotonic() + limit)
    shown = max((status.reached(n, v) or 0.0 for n, v in finals.items()), default=ended)
    ours = applied_since(probe, before)
    duplicates = len(ours) - len({(name, number) for _, name, number in ours})
    stats_after = {node: lc.outbox.stats() for node, lc in stack.lcs.items()}
    resent = sum(stats_after[n].resent - stats_before[n].resent for n in stack.lcs)
    puts = sum(stats_after[n].puts - stats_before[n].puts for n in stack.lcs)
    commits = sum(stats_after[n].commits - stats_before[n].commits for n in stack.lcs)
    e2e = (
        f"{shown - began:.1f} s ({total / max(shown - began, 1e-9):.0f} reports/s end to end)"
        if complete
        else f"not reached within {limit:.0f} s"
    )
    return [
        Row(
            f"{total} reports, 4 procs keep-alive: accepted by the LCs",
            value=f"{ended - began:.1f} s ({len(sent) / max(ended - began, 1e-9):.0f} per s;"
            f" outbox: {puts} puts in {commits} group commits)",
        ),
        Row(f"{total} reports: first POST -> every status holds its last value", value=e2e),
        Row(
            f"{total} reports: GM applied / LC outbox re-sends / applied twice",
            value=f"{len(ours)} / {resent} / {duplicates}",
        ),
    ]


def phase_apply_capacity(
    stack: Stack,
    services: list[Service],
    probe: Probe,
    status: StatusWatch,
    total: int,
    first: int,
    limit: float,
) -> list[Row]:
    """The GM's own rate: ``total`` reports published on the bus by one client process per
    edge node (as its LC would, so no HTTP and no LC in the way), applied with coalescing.

    The broker takes a node's user name as its client id (one connection per node), so each
    publisher stands in for its node's LC: those LCs are stopped first (the last phase)."""
    assert stack.gm is not None
    by_node: dict[str, list[str]] = defaultdict(list)
    for svc in services:
        by_node[svc.edge_node].append(svc.name)
    for node in by_node:
        stack.lcs[node].stop()
    per_node = total // len(by_node)
    before = len(probe.applied)
    batches_before = stack.gm.receiver.batches
    jobs = []
    for node, names in sorted(by_node.items()):
        lc = stack.lcs[node].settings
        password = lc.mqtt_password.get_secret_value() if lc.mqtt_password else None
        jobs.append(
            {
                "mqtt_url": lc.mqtt_url,
                "username": lc.mqtt_username,
                "password": password,
                "node": node,
                "services": names,
                "count": per_node,
                "first": first,
                "seq_base": 10**9 + first,  # newer than anything the node's LC sent
            }
        )
    spans = [(r["began"], r["ended"]) for r in run_children("publish", jobs)]
    expected = per_node * len(by_node)
    deadline = time.monotonic() + limit
    with probe.lock:
        while len(probe.applied) - before < expected and time.monotonic() < deadline:
            probe.applied_event.wait(0.5)
        ours = probe.applied[before:]
    began = min(span[0] for span in spans)
    published = max(span[1] for span in spans)
    last_applied = ours[-1][0] if ours else published
    finals: dict[str, int] = {}
    for names in by_node.values():
        for position, name in enumerate(names):
            sent = len(range(position, per_node, len(names)))
            if sent:
                finals[name] = first + sent - 1
    complete = status.wait_reached(finals, time.monotonic() + limit)
    shown = max((status.reached(n, v) or 0.0 for n, v in finals.items()), default=last_applied)
    batches = stack.gm.receiver.batches - batches_before
    elapsed = last_applied - began
    rate = len(ours) / max(elapsed, 1e-9)
    in_status = (
        f"{shown - began:.1f} s ({len(ours) / max(shown - began, 1e-9):.0f} per s)"
        if complete
        else f"not reached within {limit:.0f} s"
    )
    return [
        Row(
            f"{expected} reports on the bus ({len(by_node)} publisher procs): published",
            value=f"{published - began:.1f} s"
            f" ({expected / max(published - began, 1e-9):.0f} per s)",
        ),
        Row(
            f"{expected} reports: applied by the GM, with coalescing (target >= 5000/s)",
            value=f"{len(ours)} in {elapsed:.1f} s ({rate:.0f} per s; {batches} batches,"
            f" {len(ours) / max(batches, 1):.0f} messages each)"
            + ("" if len(ours) >= expected else " (INCOMPLETE)"),
        ),
        Row(
            f"{expected} reports: first publish -> every status holds its last value",
            value=in_status,
        ),
    ]


def report_phases(
    stack: Stack,
    api: client.CustomObjectsApi,
    services: list[Service],
    probe: Probe,
    args: argparse.Namespace,
    begun: float,
) -> list[Row]:
    """Phases 2-5 (reports), watching every service's status."""
    rows: list[Row] = []
    status = StatusWatch(api)
    status.start()
    try:
        progress(begun, "phase 2: report -> status, one at a time")
        rows.append(phase_report_latency(stack, services, status, args.latency_samples, 1))
        number = args.latency_samples + 1
        progress(begun, f"phase 3: reports offered at {args.offered_rate:.0f}/s")
        rows += phase_offered_rate(
            stack, services, status, args.offered_rate, args.offered_seconds, number,
            args.wait_limit,
        )  # fmt: skip
        number += int(args.offered_rate * args.offered_seconds) + 1
        progress(begun, "phase 4: report burst from 4 client processes")
        rows += phase_clients_burst(
            stack, services, probe, status, args.reports, number, args.wait_limit
        )
        number += args.reports + 1
        progress(begun, "phase 5: the GM's apply rate (reports published on the bus)")
        rows += phase_apply_capacity(
            stack, services, probe, status, args.capacity_reports, number,
            args.wait_limit,
        )  # fmt: skip
    finally:
        status.stop()
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
    # The API server in its own process, as in ``sedna up``; the GM and LCs here, observed.
    stack = Stack(StackOptions(data_dir=data_dir, nodes=NODES, processes="apiserver"))
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
        f"  machine     {cores} cores ({usable} usable), Python {sys.version.split()[0]}; the GM"
        " and LCs cloud0, edge0, edge1",
        "              share this Python process; the API server (its own process, as in",
        "              sedna up), Mosquitto and Redis run beside it",
        f"  workload    {args.resources} JointInferenceServices back to back (after {args.idle}"
        " one at a time), each with",
        "              an edge worker (edge0/edge1 alternately) and a cloud worker (cloud0)",
        f"  workers     {workers}",
        f"  reports     {args.latency_samples} one at a time; {args.offered_rate:.0f}/s for"
        f" {args.offered_seconds:.0f} s; {args.reports} as fast as 4 client processes",
        f"              POST them; {args.capacity_reports} published on the bus (GM apply rate)",
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
    parser.add_argument(
        "--offered-rate", type=float, default=1000.0, help="reports/s offered in phase 3"
    )
    parser.add_argument(
        "--offered-seconds", type=float, default=10.0, help="how long phase 3 offers them"
    )
    parser.add_argument(
        "--capacity-reports",
        type=int,
        default=30000,
        help="reports published on the bus to measure the GM's apply rate (phase 5)",
    )
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
    parser.add_argument(
        "--apply-only", action="store_true", help="phase 1 only (apply -> spec, the burst)"
    )
    parser.add_argument("--verbose", action="store_true", help="show the stack's INFO logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.resources, args.reports, args.idle = 20, 2000, 3
        args.offered_seconds, args.capacity_reports = 3.0, 10000
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
                    GROUP, VERSION, NAMESPACE, "models", model(name)
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
            if not args.apply_only:
                rows += report_phases(stack, api, services, probe, args, begun)
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
