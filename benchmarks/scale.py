"""The control plane at fleet scale: N simulated edge nodes against one control plane.

    python benchmarks/scale.py                         # N = 100, 300 and 1,000 (about 12 min)
    python benchmarks/scale.py --nodes 100 --load-seconds 10 --skip-resync
    python benchmarks/scale.py --nodes 1000 --rate 1 --sim-procs 6

For each N, a fresh control plane as ``sedna up`` runs it (`sedna_cli.stack.Stack` with every
part in a process of its own, its LCs left out): the embedded API server, the GM, the knowledge
base, Mosquitto with a broker user and ACL per node, Redis with a password; the GM's CPU and RSS
are read from /proc. Each simulated node is a real `lc.agent.LocalController` (its own broker
user, bus client, Redis outbox; by default only its bus parts are started, see
`start_bus_parts`) whose process runtime is `lc.standin.StandInRuntime`: workers "run" without
processes and report through the LC's upstream path at a set rate. The nodes are spread over
several simulator processes (``--sim-procs``) at nice 19: they stand for other machines and
yield the CPU to the control plane; their CPU is printed too, and the reports they handed to
the LCs beside the rate asked for.

Phases, for each N:

1. ceilings: ``redis-benchmark`` against this Redis and ``mosquitto_pub -l`` / ``mosquitto_sub
   -C`` (QoS 1, as the bus) through a second Mosquitto configured as ``sedna up``'s;
2. connect: every node's LC connects; the GM's ``sedna_gm_node_online`` counts them online;
3. apply burst: ``--jobs-per-node`` JointInferenceServices per node (edge and cloud worker on
   that node) created back to back from 4 client threads; apply -> spec at LC (the LC recorded
   the worker's pod from the bus), and until every job shows both workers running in status;
4. load: each node reports ``--rate`` reports/s (its edge workers' ``taskInfo``) for
   ``--load-seconds``; GM CPU and RSS, reports/s applied (the GM's
   ``sedna_gm_upstream_messages_total``), report -> status (from the report's hand-over to the
   LC until an API watch shows a value at least as new in ``status.metrics``), apply -> spec at
   LC for ``--probes`` services created one at a time meanwhile, and that every message the
   LCs sent was applied exactly once;
5. saturation: the GM is frozen (SIGSTOP) for ``--freeze-seconds`` while the nodes report
   ``--burst-rate`` reports/s in all, then thawed: the rate at which it applies the backlog
   (coalescing has most to do here) and what the simulators managed to offer;
6. resync: the GM is killed (SIGKILL) while the nodes report; the stack's supervisor starts it
   again (as in ``sedna up``): until it is ready, until every LC has received its node's
   snapshot again, until every report sent meanwhile shows in status.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import logging
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, Field

# Run as a script, the sibling modules are found from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.apiwatch import ObjectWatch

GROUP, VERSION, PLURAL, NAMESPACE = "sedna.io", "v1alpha1", "jointinferenceservices", "default"
KIND = "JointInferenceService"
LOOPBACK = "127.0.0.1"
GM_IDENTITY = "sedna-up"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DEFAULT_NODES = "100,300,1000"
TICKERS = 4  # threads per simulator process sending the stand-in workers' reports
#: The simulators stand for other machines: they yield the CPU to the control plane (at the
#: default nice a thousand nodes' threads took 1.5 of the 2 cores and left the GM 0.16).
SIM_NICE = 19
#: The longest sleep of a simulated node's outbox sender (the LC's is 1 s): puts and acks wake
#: it anyway, and a thousand idle senders polling Redis every second cost a third of a core.
SIM_OUTBOX_POLL = 5.0
#: A simulated node's outbox re-sends what looks lost after this long (the LC's default is
#: 10 s). At N=1000 the GM falls more than 10 s behind, every node re-sends everything (37,000
#: copies in 20 s) and the box collapses under the copies; a GM restart asks for the re-sends
#: at once anyway (``Ack(resend=True)``), so resync is not affected.
SIM_RESEND_AFTER = 30.0
#: A simulated node's MQTT keep-alive (the LC's is 30 s): a thousand nodes' threads on a
#: starved box miss 45 s of pings and reconnect in storms that real, separate machines do not.
SIM_KEEPALIVE = 120

TARGETS = {
    "connected": "1,000 nodes all connected",
    "rss": "<= 500 MB at 1,000 nodes",
    "cpu": "<= 1 core at 1 report/s per node, 1,000 nodes",
    "applied": ">= 5,000/s with coalescing",
    "latency": "p99 <= 200 ms at 1,000 reports/s",
    "resync": "<= 10 s after a GM restart, 1,000 nodes",
}

log = logging.getLogger("scale")


# -- processes ------------------------------------------------------------------------------


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), 0 if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, 0 if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def nofile_limit(pid: int) -> str:
    """The soft open-file limit of a process, from /proc."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    return "?"


class CpuMeter:
    """CPU cores a set of processes used between `start` and `read`."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self._begin = 0.0
        self._cpu: dict[int, float] = {}

    def start(self) -> None:
        """Mark the beginning of the window."""
        self._begin = time.monotonic()
        self._cpu = {pid: cpu_seconds(pid) for pid in self._pids()}

    def read(self) -> float:
        """Cores used since `start` (CPU seconds per wall second)."""
        wall = max(time.monotonic() - self._begin, 1e-9)
        used = sum(cpu_seconds(pid) - self._cpu.get(pid, 0.0) for pid in self._pids())
        return used / wall


class RssPeak:
    """Samples a process's RSS twice a second; keeps the peak."""

    def __init__(self, pid: Callable[[], int | None]) -> None:
        self._pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-peak", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()

    def reset(self) -> None:
        """Forget the peak so far."""
        self.peak = 0

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            pid = self._pid()
            if pid is not None:
                self.peak = max(self.peak, rss_bytes(pid))


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    """Poll ``condition`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


# -- the control plane ----------------------------------------------------------------------


class ControlPlane:
    """``sedna up`` (`sedna_cli.stack.Stack`, every part in a process of its own) without its
    LCs (``StackOptions.lcs``): the simulator runs the nodes. Mosquitto has a user and ACL per
    simulated node, Redis a password, the GM the settings ``sedna up`` gives it; the stack's
    supervisor restarts a GM that dies, as in ``sedna up``."""

    def __init__(self, data_dir: Path, nodes: list[str], log_level: str = "WARNING") -> None:
        from sedna_cli.stack import Stack, StackOptions

        self.data_dir = data_dir
        self.nodes = nodes
        options = StackOptions(
            data_dir=data_dir, nodes=nodes, processes="all", log_level=log_level, lcs=False
        )
        self.stack = Stack(options)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> float:
        """Start the stack; returns once the GM reconciles (seconds it took)."""
        started = time.monotonic()
        self.stack.start()
        return time.monotonic() - started

    def stop(self) -> None:
        """Stop everything."""
        with contextlib.suppress(Exception):
            self.thaw_gm()
        self.stack.stop()

    @property
    def _gm(self) -> Any:
        return self.stack.children["gm"]

    def crash_gm(self) -> int:
        """SIGKILL the GM (the supervisor starts it again); returns the killed pid."""
        pid = self._gm.pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_gm_back(self, old_pid: int, timeout: float) -> tuple[float, float, float]:
        """After `crash_gm`: wait for the new GM process, its ops endpoint, its readiness;
        returns when each was seen (monotonic)."""
        wait_until(lambda: self._gm.pid not in (None, old_pid), timeout, 0.005)
        relaunched = time.monotonic()
        wait_until(lambda: self.gm_text("/healthz", timeout=1.0)[0] != 0, timeout, 0.02)
        serving = time.monotonic()
        if not wait_until(self.gm_leading, timeout, 0.02):
            raise RuntimeError(f"the GM did not become ready again: see {self.data_dir}/gm")
        return relaunched, serving, time.monotonic()

    def freeze_gm(self) -> None:
        """SIGSTOP the GM: it holds its connections and answers nothing."""
        self._gm.freeze()

    def thaw_gm(self) -> None:
        """SIGCONT after `freeze_gm`."""
        self._gm.thaw()

    # -- views -----------------------------------------------------------------------------

    @property
    def mqtt_url(self) -> str:
        """The broker's URL."""
        return f"mqtt://{LOOPBACK}:{self.stack.mosquitto.port}"  # type: ignore[union-attr]

    @property
    def redis_url(self) -> str:
        """Redis's URL (with its password)."""
        return self.stack.redis.url  # type: ignore[union-attr]

    @property
    def kubeconfig(self) -> Path:
        """The stack's kubeconfig."""
        return self.stack.kubeconfig

    @property
    def gm_port(self) -> int:
        """The GM's operations port (/metrics, /healthz)."""
        return self.stack.ports.ports["gm"]

    def node_user(self, node: str) -> tuple[str, str]:
        """The broker user and password of ``node``."""
        creds = self.stack.mosquitto.credentials.for_node(node)  # type: ignore[union-attr]
        return creds.username, creds.password

    def pids(self) -> dict[str, int | None]:
        """The pid of each part (None when not running)."""
        children = self.stack.children
        return {
            "gm": children["gm"].pid if "gm" in children else None,
            "apiserver": self.stack.apiserver.pid if self.stack.apiserver else None,
            "mosquitto": self.stack.mosquitto.pid if self.stack.mosquitto else None,
            "redis": self.stack.redis.pid if self.stack.redis else None,
        }

    def api_client(self) -> client.ApiClient:
        """A client of the API server (official ``kubernetes`` package)."""
        from gm.app import api_client_for

        return api_client_for(str(self.kubeconfig))

    def gm_text(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """GET a path of the GM's operations endpoint: (status, body); (0, "") if it is away."""
        url = f"http://{LOOPBACK}:{self.gm_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except OSError as exc:
            code = getattr(exc, "code", 0)
            return (code if isinstance(code, int) else 0), ""

    def gm_leading(self) -> bool:
        """Whether the GM leads and has reconciled everything once."""
        status, body = self.gm_text("/healthz", timeout=1.0)
        return status == 200 and "leader" in body

    def gm_metrics(self) -> dict[str, float]:
        """The GM's upstream messages applied and nodes online (0 when it is away)."""
        status, body = self.gm_text("/metrics", timeout=5.0)
        totals = {"applied": 0.0, "online": 0.0, "refused": 0.0, "malformed": 0.0}
        if status != 200:
            return totals
        names = {
            "sedna_gm_upstream_messages_total": "applied",
            "sedna_gm_node_online": "online",
            "sedna_gm_upstream_refused_total": "refused",
            "sedna_gm_malformed_messages_total": "malformed",
        }
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if sample.name in names:
                    totals[names[sample.name]] += sample.value
        return totals

    def redis_commands(self) -> int:
        """Redis's ``total_commands_processed``."""
        import redis as redis_lib

        conn = redis_lib.Redis.from_url(self.redis_url)
        try:
            return int(conn.info("stats")["total_commands_processed"])
        finally:
            conn.close()


# -- ceilings: Redis's and Mosquitto's own tools --------------------------------------------


@dataclass
class Ceilings:
    """What Redis and Mosquitto manage alone on this box, with their own tools."""

    redis_ops: dict[str, float] = field(default_factory=dict)  # test -> requests/s
    mqtt_qos1: float = 0.0  # messages/s through the broker, one publisher, one subscriber
    notes: list[str] = field(default_factory=list)

    @property
    def redis(self) -> float:
        """The slowest of the commands the outbox and GM use most (requests/s)."""
        return min(self.redis_ops.values(), default=0.0)


def redis_ceiling(plane: ControlPlane, requests: int = 20_000) -> dict[str, float]:
    """``redis-benchmark`` (50 clients, no pipelining) against this run's Redis."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark is missing: apt-get install -y redis-tools")
    service = plane.stack.redis
    assert service is not None
    command = [binary, "-h", LOOPBACK, "-p", str(service.port), "-c", "50"]
    command += ["-n", str(requests), "-t", "set,incr,hset,zadd", "--csv", "-r", "100000"]
    if service.password:
        command += ["-a", service.password]  # visible in ps for the run, as with redis-cli
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()[:300]}")
    found: dict[str, float] = {}
    for line in out.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) >= 2 and cells[0] != "test":
            with contextlib.suppress(ValueError):
                found[cells[0].split()[0]] = float(cells[1])
    if not found:
        raise RuntimeError(
            f"no figures from redis-benchmark: {out.stdout[:200]} {out.stderr[:200]}"
        )
    return found


def mqtt_ceiling(directory: Path, messages: int = 20_000, size: int = 300) -> float:
    """Messages/s through Mosquitto at QoS 1 with its own clients: ``mosquitto_pub -l`` fed
    ``messages`` lines, ``mosquitto_sub -C`` counting them; a node user publishes on its ``up``
    topic, the GM user subscribes, as on the bus. On a second broker with ``sedna up``'s
    configuration (users, ACL, persistence) on this box: on the stack's own broker the GM user
    is taken (the broker binds client ids to users)."""
    from broker.localservices import MosquittoService

    pub, sub = shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")
    if pub is None or sub is None:
        raise RuntimeError(
            "mosquitto_pub/mosquitto_sub are missing: apt-get install -y mosquitto-clients"
        )
    node = "edge-ceiling"
    broker = MosquittoService(directory, auth=True, nodes=[node]).start()
    try:
        assert broker.credentials is not None
        gm, user = broker.credentials.gm, broker.credentials.for_node(node)
        topic = f"sedna/node/{node}/up/Bench/default/ceiling"
        common = ["-h", LOOPBACK, "-p", str(broker.port), "-q", "1", "-t", topic]
        receiver = subprocess.Popen(
            [sub, *common, "-u", gm.username, "-P", gm.password, "-C", str(messages)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # subscribed
        line = ("x" * (size - 1) + "\n").encode()
        started = time.monotonic()
        sender = subprocess.Popen(
            [pub, *common, "-u", user.username, "-P", user.password, "-l", "-M", "100"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert sender.stdin is not None
        sender.stdin.write(line * messages)
        sender.stdin.close()
        try:
            receiver.wait(300)
        finally:
            sender.wait(30)
        elapsed = time.monotonic() - started
        if receiver.returncode != 0:
            raise RuntimeError(f"mosquitto_sub failed: {receiver.stderr.read()!r}")  # type: ignore[union-attr]
        return messages / elapsed
    finally:
        broker.stop()


def measure_ceilings(plane: ControlPlane, directory: Path) -> Ceilings:
    """Both ceilings; a missing tool is a note, not a failure of the run."""
    result = Ceilings()
    try:
        result.redis_ops = redis_ceiling(plane)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        result.notes.append(f"redis ceiling not measured: {exc}")
    try:
        result.mqtt_qos1 = mqtt_ceiling(directory)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        result.notes.append(f"mosquitto ceiling not measured: {exc}")
    return result


# -- the simulator (runs in its own processes) ----------------------------------------------


class SimNodeConfig(BaseModel):
    """One simulated node and its broker user."""

    name: str
    username: str | None = None
    password: str | None = None


class SimConfig(BaseModel):
    """What one simulator process runs."""

    index: int
    nodes: list[SimNodeConfig]
    mqtt_url: str
    redis_url: str
    data_dir: Path
    report_roles: list[str] | None = Field(default_factory=lambda: ["edge"])
    full_lc: bool = False
    log_level: str = "WARNING"


class _Counting(logging.Handler):
    """Counts warnings and errors; keeps the first few."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = defaultdict(int)
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        if len(self.first) < 5:
            self.first.append(f"{record.levelname} {record.name}: {record.getMessage()[:160]}")


class Simulator:
    """The simulated nodes of one process: real LCs with stand-in runtimes."""

    def __init__(self, config: SimConfig) -> None:
        from lc.standin import StandInOptions

        self.config = config
        self.lcs: dict[str, Any] = {}
        self.runtimes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.sent: list[tuple[str, int, float]] = []  # (job, inferenceNumber, when)
        self.puts = 0  # upstream messages handed to the outboxes
        self.spec_at: dict[str, float] = {}  # "node/worker" -> first pod spec from the bus
        self.new_specs: dict[str, float] = {}  # the same, since the last take
        self.snapshots: list[tuple[str, float]] = []  # (node, arrival) since the last take
        self.options = StandInOptions(report_roles=config.report_roles)
        self.counter = _Counting()
        self._stop = threading.Event()
        self._tickers: list[threading.Thread] = []
        self._starter: threading.Thread | None = None
        self.started = False  # every node built and started
        self.start_error: str | None = None

    def start(self) -> dict[str, Any]:
        """Start the nodes in the background (`status` counts them as they connect)."""
        self._starter = threading.Thread(target=self._start_all, name="sim-start", daemon=True)
        self._starter.start()
        return {"nodes": len(self.config.nodes)}

    def _start_all(self) -> None:
        try:
            self._start_nodes()
        except Exception as exc:
            log.exception("starting the simulated nodes failed")
            self.start_error = f"{type(exc).__name__}: {exc}"

    def _start_nodes(self, batch: int = 20, wait: float = 5.0) -> None:
        """Build and start every node's LC, ``batch`` at a time, each batch connected (or
        ``wait`` seconds passed) before the next: a thousand clients connecting at once on two
        cores miss their keep-alives and reconnect in a storm."""
        from lc import settings as lc_settings
        from lc.agent import LocalController
        from lc.standin import install

        nodes = self.config.nodes
        for first in range(0, len(nodes), batch):
            started = []
            for node in nodes[first : first + batch]:
                values = {
                    "node": node.name,
                    "data_dir": self.config.data_dir / node.name,
                    "report_port": 0,
                    "redis_url": self.config.redis_url,
                    "mqtt_url": self.config.mqtt_url,
                    "mqtt_username": node.username,
                    "mqtt_password": node.password,
                }
                settings = lc_settings.build({k: v for k, v in values.items() if v is not None})
                lc = LocalController(settings)
                self.runtimes[node.name] = install(lc, self.options, sent=self._sent)
                self._hook(lc)
                if self.config.full_lc:
                    lc.start(connect_timeout=None)
                else:
                    start_bus_parts(lc)
                self.lcs[node.name] = lc
                started.append(lc)
            deadline = time.monotonic() + wait
            for lc in started:
                lc.bus.wait_connected(max(deadline - time.monotonic(), 0.0))
        if not self.config.full_lc:
            runtimes = list(self.runtimes.values())
            for index in range(TICKERS):
                thread = threading.Thread(
                    target=self._tick, args=(runtimes[index::TICKERS],), daemon=True
                )
                thread.start()
                self._tickers.append(thread)
        self.started = True

    def _tick(self, runtimes: list[Any]) -> None:
        """Drive the stand-in runtimes' reports (in place of a thread per runtime)."""
        while not self._stop.wait(0.02):
            for runtime in runtimes:
                try:
                    runtime.poll()
                except Exception:
                    log.exception("stand-in poll failed")

    def _sent(self, report: Any) -> None:
        number = report.task_info.inference_number if report.task_info else None
        if number is not None:
            with self._lock:
                self.sent.append((report.owner_name, number, time.monotonic()))

    def _hook(self, lc: Any) -> None:
        node = lc.node
        record, on_down, put = lc._record, lc._on_down, lc.outbox.put

        def recording(raw_topic: str, topic: Any, body: Any) -> None:
            record(raw_topic, topic, body)
            if body is not None and "/down/workers/" in raw_topic:
                key, now = f"{node}/{topic.name}", time.monotonic()
                with self._lock:
                    if key not in self.spec_at:
                        self.spec_at[key] = self.new_specs[key] = now

        def down(message: Any) -> None:
            if message.topic.endswith("/down/snapshot"):
                with self._lock:
                    self.snapshots.append((node, time.monotonic()))
            on_down(message)

        def counted_put(*args: Any, **kwargs: Any) -> Any:
            envelope = put(*args, **kwargs)
            with self._lock:
                self.puts += 1
            return envelope

        lc._record, lc._on_down, lc.outbox.put = recording, down, counted_put

    def status(self) -> dict[str, Any]:
        """Connected nodes, reports sent, messages put, warnings logged."""
        with self._lock:
            sent, puts = len(self.sent), self.puts
        lcs = list(self.lcs.values())
        runtimes = list(self.runtimes.values())
        return {
            "started": self.started,
            "start_error": self.start_error,
            "connected": sum(lc.bus.connected.is_set() for lc in lcs),
            "reports": sum(sum(r.reports_sent().values()) for r in runtimes),
            "logged_reports": sent,
            "puts": puts,
            "resent": sum(lc.outbox.stats().resent for lc in lcs),
            "log_counts": dict(self.counter.counts),
            "log_first": list(self.counter.first),
        }

    def set_interval(self, interval: float | None) -> dict[str, Any]:
        """Every reporting worker reports every ``interval`` seconds (None: stop)."""
        self.options = self.options.model_copy(update={"report_interval": interval})
        for runtime in self.runtimes.values():
            runtime.set_options(self.options)
        return {"interval": interval}

    def pending(self) -> dict[str, Any]:
        """Upstream messages the GM has not acknowledged yet, over every node: stored minus
        acknowledged by the outboxes' own counters (the nodes start with empty outboxes), not
        a Redis call a node - an overloaded Redis must not stall the harness."""
        total = 0
        for lc in list(self.lcs.values()):
            stats = lc.outbox.stats()
            total += stats.puts - stats.acked
        return {"pending": total}

    def take(self) -> dict[str, Any]:
        """The reports, first pod specs and snapshots that arrived since the last take."""
        with self._lock:
            sent, self.sent = self.sent, []
            specs, self.new_specs = self.new_specs, {}
            snapshots, self.snapshots = self.snapshots, []
        return {"sent": sent, "spec_at": specs, "snapshots": snapshots}

    def stop(self) -> dict[str, Any]:
        """Stop every LC."""
        self._stop.set()
        if self._starter is not None:
            self._starter.join(30)
        for runtime in self.runtimes.values():
            runtime.set_options(self.options.model_copy(update={"report_interval": None}))
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(_stop_quietly, self.lcs.values()))
        return {"stopped": len(self.lcs)}


def start_bus_parts(lc: Any) -> None:
    """Start the bus work of an LC only (`LocalController.connect`: the node's snapshot and
    live downstream topics, the sync loop, the outbox, presence on every connection), not its
    report server, log server, dataset monitor, staged-job loop or the runtime's own thread.

    Stand-in workers hand their reports to the LC directly, simulated nodes hold no datasets or
    staged jobs, and the runtimes are driven by `Simulator`'s tickers; stand-in workers never
    die, so the sync loop runs only when something arrives; the outbox sender sleeps up to
    `SIM_OUTBOX_POLL` and re-sends after `SIM_RESEND_AFTER`, the keep-alive is `SIM_KEEPALIVE`.
    A node costs its bus client's two threads, its outbox sender and its sync loop, each asleep
    until there is work. A thousand whole LCs on two cores spend most of their CPU on the
    kernel's futexes and miss their keep-alives (``--full-lc`` runs them whole).
    """
    lc.runtime.start(own_thread=False)
    lc.sync_period = 3600.0
    lc.outbox.settings = lc.outbox.settings.model_copy(
        update={"poll_interval": SIM_OUTBOX_POLL, "resend_after": SIM_RESEND_AFTER}
    )
    lc.bus.settings = lc.bus.settings.model_copy(update={"keepalive": SIM_KEEPALIVE})
    lc.connect(connect_timeout=None)


def _stop_quietly(lc: Any) -> None:
    with contextlib.suppress(Exception):
        lc.stop()


def simulator_main(conn: Connection, config_json: str) -> None:
    """A simulator process: build the nodes, then answer the harness's requests."""
    config = SimConfig.model_validate_json(config_json)
    raise_nofile()
    os.nice(SIM_NICE)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=config.log_level,
        filename=config.data_dir / f"simulator-{config.index}.log",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sim = Simulator(config)
    logging.getLogger().addHandler(sim.counter)
    handlers: dict[str, Callable[..., dict[str, Any]]] = {
        "start": sim.start,
        "status": sim.status,
        "interval": sim.set_interval,
        "pending": sim.pending,
        "take": sim.take,
        "stop": sim.stop,
    }
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        op = request.pop("op")
        try:
            reply = handlers[op](**request)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send(reply)
        if op == "stop":
            return


class SimProcess:
    """The harness's handle on one simulator process."""

    def __init__(self, config: SimConfig) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=simulator_main,
            args=(child, config.model_dump_json()),
            name=f"simulator-{config.index}",
            daemon=True,
        )
        self.process.start()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process.pid is not None
        return self.process.pid

    def call(self, op: str, timeout: float = 180.0, **kwargs: Any) -> dict[str, Any]:
        """Send one request and wait for its reply."""
        with self._lock:
            self._conn.send({"op": op, **kwargs})
            if not self._conn.poll(timeout):
                raise TimeoutError(f"simulator {self.process.name} did not answer {op!r}")
            reply = self._conn.recv()
        if "error" in reply:
            raise RuntimeError(f"simulator {self.process.name}: {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Stop its nodes and end the process."""
        if self.process.is_alive():
            with contextlib.suppress(Exception):
                self.call("stop", timeout=30)
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class Fleet:
    """Every simulated node, over several simulator processes."""

    def __init__(
        self, plane: ControlPlane, procs: int, data_dir: Path, *, full_lc: bool = False
    ) -> None:
        self.plane = plane
        nodes = plane.nodes
        shares = [nodes[i::procs] for i in range(procs)]
        self.sims: list[SimProcess] = []
        for index, share in enumerate(s for s in shares if s):
            configs = []
            for node in share:
                user, password = plane.node_user(node)
                configs.append(SimNodeConfig(name=node, username=user, password=password))
            config = SimConfig(
                index=index,
                nodes=configs,
                mqtt_url=plane.mqtt_url,
                redis_url=plane.redis_url,
                data_dir=data_dir / f"sim{index}",
                full_lc=full_lc,
            )
            self.sims.append(SimProcess(config))
        self.sent: dict[str, list[tuple[int, float]]] = defaultdict(list)  # job -> reports
        self.spec_at: dict[str, float] = {}
        self.snapshots: dict[str, list[float]] = defaultdict(list)  # node -> arrivals

    def all(self, op: str, timeout: float = 180.0, **kwargs: Any) -> list[dict[str, Any]]:
        """The same request to every simulator, in parallel."""
        with ThreadPoolExecutor(len(self.sims)) as pool:
            return list(pool.map(lambda s: s.call(op, timeout, **kwargs), self.sims))

    def pids(self) -> list[int]:
        """The simulator processes."""
        return [s.pid for s in self.sims if s.process.is_alive()]

    def start(self) -> None:
        """Build and start every node."""
        self.all("start")

    def connected(self) -> int:
        """Nodes whose LC holds a broker connection."""
        return sum(r["connected"] for r in self.all("status"))

    def status(self) -> dict[str, Any]:
        """Totals of every simulator's status."""
        total: dict[str, Any] = defaultdict(int)
        first: list[str] = []
        counts: dict[str, int] = defaultdict(int)
        total["started"] = True
        errors = []
        for reply in self.all("status"):
            for key in ("connected", "reports", "logged_reports", "puts", "resent"):
                total[key] += reply[key]
            total["started"] = total["started"] and reply["started"]
            if reply["start_error"]:
                errors.append(reply["start_error"])
            for level, n in reply["log_counts"].items():
                counts[level] += n
            first += reply["log_first"]
        total["start_errors"] = errors
        total["log_counts"] = dict(counts)
        total["log_first"] = first[:5]
        return dict(total)

    def set_interval(self, interval: float | None) -> None:
        """Every reporting worker reports every ``interval`` seconds (None: stop)."""
        self.all("interval", interval=interval)

    def pending(self) -> int:
        """Upstream messages not yet acknowledged by the GM, over every node."""
        return sum(r["pending"] for r in self.all("pending"))

    def collect(self) -> None:
        """Fetch the reports logged so far and the latest arrivals."""
        for reply in self.all("take"):
            for job, number, when in reply["sent"]:
                self.sent[job].append((number, when))
            self.spec_at.update(reply["spec_at"])
            for node, when in reply["snapshots"]:
                self.snapshots[node].append(when)

    def close(self) -> None:
        """Stop every node and simulator process."""
        with ThreadPoolExecutor(max(1, len(self.sims))) as pool:
            list(pool.map(lambda s: s.close(), self.sims))


# -- the API side: jobs and a status watch --------------------------------------------------


def service_body(name: str, node: str) -> dict[str, Any]:
    """A JointInferenceService with both workers on ``node``."""

    def template() -> dict[str, Any]:
        return {
            "spec": {
                "nodeName": node,
                "containers": [{"name": "worker", "image": "none", "command": ["true"]}],
            }
        }

    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "edgeWorker": {
                "model": {"name": "small-model"},
                "hardExampleMining": {
                    "name": "IBT",
                    "parameters": [{"key": "threshold_img", "value": "0.9"}],
                },
                "template": template(),
            },
            "cloudWorker": {"model": {"name": "big-model"}, "template": template()},
        },
    }


def workers_of(job: str) -> list[str]:
    """The worker names of a service."""
    return [f"{job}-edge", f"{job}-cloud"]


def create_models(api: client.CustomObjectsApi) -> None:
    """The two Models every service uses."""
    for name in ("small-model", "big-model"):
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Model",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"url": f"/models/{name}.pkl", "format": "pkl"},
        }
        with contextlib.suppress(ApiException):
            api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "models", body)


def create_services(
    plane: ControlPlane, jobs: list[tuple[str, str]], threads: int = 4
) -> tuple[dict[str, float], float]:
    """Create (name, node) services back to back; returns each create call's start and the time
    all calls took."""
    local = threading.local()
    created: dict[str, float] = {}

    def create(job: tuple[str, str]) -> None:
        if not hasattr(local, "api"):
            local.api = client.CustomObjectsApi(plane.api_client())
        name, node = job
        created[name] = time.monotonic()
        local.api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, service_body(name, node)
        )

    began = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, jobs))
    return created, time.monotonic() - began


class StatusWatch:
    """Watches every service; records when each inferenceNumber first shows and who runs."""

    def __init__(self, api: client.CustomObjectsApi) -> None:
        self.lock = threading.Condition()
        self.numbers: dict[str, list[int]] = defaultdict(list)  # job -> increasing values
        self.times: dict[str, list[float]] = defaultdict(list)  # job -> when each first showed
        self.running: dict[str, bool] = {}  # job -> both workers running, condition Running
        self._watch = ObjectWatch(api, PLURAL, self._note, name="scale-watch")

    def start(self) -> None:
        """Start watching."""
        self._watch.start(60)

    def stop(self) -> None:
        """Stop watching."""
        self._watch.stop()

    def latest(self, job: str) -> int:
        """The newest inferenceNumber shown for ``job`` (0: none)."""
        with self.lock:
            values = self.numbers.get(job)
            return values[-1] if values else 0

    def shown_at(self, job: str, number: int) -> float | None:
        """When status first showed ``number`` or a newer value for ``job``."""
        with self.lock:
            values = self.numbers.get(job, [])
            index = bisect.bisect_left(values, number)
            return self.times[job][index] if index < len(values) else None

    def running_count(self, jobs: list[str]) -> int:
        """How many of ``jobs`` show both workers running."""
        with self.lock:
            return sum(1 for j in jobs if self.running.get(j))

    def _note(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj.get("metadata", {}).get("name")
        status = obj.get("status") or {}
        if not name:
            return
        conditions = status.get("conditions") or []
        running = status.get("active") == 2 and bool(conditions)
        running = running and conditions[-1].get("type") == "Running"
        values = {m.get("key"): m.get("value") for m in status.get("metrics") or []}
        number = None
        with contextlib.suppress(TypeError, ValueError):
            number = int(values.get("inferenceNumber", ""))
        with self.lock:
            self.running[name] = running
            if number is not None:
                shown = self.numbers[name]
                if not shown or number > shown[-1]:
                    shown.append(number)
                    self.times[name].append(now)
            self.lock.notify_all()


# -- figures --------------------------------------------------------------------------------


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Milliseconds below 10 s, else seconds."""
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def spread(samples: list[float], expected: int | None = None) -> str:
    """``p50 / p99 (n)`` of latency samples."""
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    missing = (expected or len(ordered)) - len(ordered)
    text = f"p50 {ms(statistics.median(ordered))}, p99 {ms(percentile(ordered, 0.99))}"
    text += f" (n={len(ordered)}"
    return text + (f", {missing} missing)" if missing > 0 else ")")


@dataclass
class Result:
    """The figures of one N."""

    nodes: int
    rows: list[tuple[str, str]] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    exact: bool = True

    def add(self, what: str, value: str, key: str | None = None) -> None:
        """One printed figure (and, with ``key``, one cell of the summary table)."""
        self.rows.append((what, value))
        if key is not None:
            self.summary[key] = value
        print(f"  {what:<52} {value}", flush=True)


def report_latencies(fleet: Fleet, status: StatusWatch, since: float, until: float) -> list[float]:
    """report -> status for every report handed to an LC in [since, until)."""
    samples = []
    for job, reports in fleet.sent.items():
        for number, sent in reports:
            if since <= sent < until:
                shown = status.shown_at(job, number)
                if shown is not None:
                    samples.append(max(shown - sent, 0.0))
    return samples


def reports_between(fleet: Fleet, since: float, until: float) -> int:
    """Reports handed to the LCs in [since, until)."""
    return sum(1 for reports in fleet.sent.values() for _, t in reports if since <= t < until)


def last_sent(fleet: Fleet) -> dict[str, int]:
    """job -> the newest inferenceNumber sent."""
    return {job: max(n for n, _ in reports) for job, reports in fleet.sent.items() if reports}


def caught_up(fleet: Fleet, status: StatusWatch) -> bool:
    """Whether every job's status shows the newest report sent for it."""
    return all(status.latest(job) >= number for job, number in last_sent(fleet).items())


# -- one run --------------------------------------------------------------------------------


@dataclass
class Options:
    """The run's parameters (from the flags)."""

    nodes: int
    jobs_per_node: int = 1
    rate: float = 1.0
    load_seconds: float = 30.0
    probes: int = 10
    burst_rate: float = 6000.0
    freeze_seconds: float = 5.0
    sim_procs: int = 0
    wait_limit: float = 60.0
    ceilings: bool = True
    full_lc: bool = False
    saturation: bool = True
    resync: bool = True
    log_level: str = "WARNING"


def node_names(count: int) -> list[str]:
    """``edge-0000`` ... (DNS-1123, sorted as numbered)."""
    return [f"edge-{i:04d}" for i in range(count)]


def sim_procs_for(nodes: int, requested: int) -> int:
    """Simulator processes: as asked, else one per 100 nodes (at least 2, at most one a node).

    Each node is a handful of threads; hundreds of threads under one GIL convoy on the GIL
    (most of the CPU goes to the kernel's futexes) and miss their keep-alives."""
    return max(1, min(nodes, requested or max(2, math.ceil(nodes / 100))))


def run_one(opts: Options, data_dir: Path, result: Result) -> Result:
    """Every phase for one N; prints figures as they come (into ``result``)."""
    begun = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - begun:5.0f} s] N={opts.nodes}: {text}", flush=True)

    plane = ControlPlane(data_dir / "plane", node_names(opts.nodes), opts.log_level)
    fleet: Fleet | None = None
    status: StatusWatch | None = None
    rss = RssPeak(lambda: plane.pids()["gm"])
    try:
        progress("starting sedna up's parts without LCs (API server, GM, KB, Mosquitto, Redis)")
        result.add("stack start (sedna up without LCs) -> GM ready", f"{plane.start():.1f} s")
        pids = plane.pids()
        mosq_pid, redis_pid = pids["mosquitto"] or 0, pids["redis"] or 0
        result.add(
            "limits: open files (mosquitto / redis / harness)",
            f"{nofile_limit(mosq_pid)} / {nofile_limit(redis_pid)} / "
            f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}; mosquitto max_connections "
            "unlimited (its default, not set by broker/mosquitto.py)",
        )
        ceilings = Ceilings()
        if opts.ceilings:
            progress("ceilings: redis-benchmark, mosquitto_pub/mosquitto_sub")
            ceilings = measure_ceilings(plane, data_dir / "ceiling-mosquitto")
            redis_text = ", ".join(f"{k} {v:,.0f}/s" for k, v in ceilings.redis_ops.items())
            result.add("ceiling: redis-benchmark -c 50 (requests/s)", redis_text or "-")
            result.add(
                "ceiling: mosquitto QoS 1, mosquitto_pub -l -> mosquitto_sub -C (2nd broker)",
                f"{ceilings.mqtt_qos1:,.0f} messages/s",
            )
            for note in ceilings.notes:
                result.add("ceiling note", note)
        rss.start()

        # -- connect ---------------------------------------------------------------------
        procs = sim_procs_for(opts.nodes, opts.sim_procs)
        progress(f"starting {opts.nodes} simulated nodes in {procs} simulator processes")
        connect_began = time.monotonic()
        fleet = Fleet(plane, procs, data_dir / "sims", full_lc=opts.full_lc)
        sim_cpu = CpuMeter(fleet.pids)
        gm_cpu = CpuMeter(lambda: [p for p in [plane.pids()["gm"]] if p])
        others = {
            name: CpuMeter(lambda name=name: [p for p in [plane.pids()[name]] if p])
            for name in ("apiserver", "mosquitto", "redis")
        }
        fleet.start()
        limit = opts.wait_limit + 0.2 * opts.nodes  # nodes start 20 at a time a process
        wait_until(
            lambda: (s := fleet.status())["started"] and s["connected"] >= opts.nodes, limit, 1.0
        )
        started = fleet.status()
        connected = started["connected"]
        for error in started["start_errors"]:
            result.add("simulator start failed", error)
        online_ok = wait_until(
            lambda: plane.gm_metrics()["online"] >= opts.nodes, opts.wait_limit, 0.5
        )
        online = int(plane.gm_metrics()["online"])
        result.add(
            "connected nodes: LCs connected / online in the GM",
            f"{connected} / {online} of {opts.nodes} in {time.monotonic() - connect_began:.1f} s"
            + ("" if online_ok else " (not all online)"),
            key="connected",
        )
        for meter in (gm_cpu, sim_cpu):
            meter.start()
        time.sleep(3.0)
        result.add(
            "idle (connected, no jobs): GM / simulators' CPU (cores)",
            f"{gm_cpu.read():.2f} / {sim_cpu.read():.2f}",
            key="idle_cpu",
        )

        # -- apply burst -----------------------------------------------------------------
        api = client.CustomObjectsApi(plane.api_client())
        create_models(api)
        status = StatusWatch(api)
        status.start()
        jobs = [(f"{node}-j{k}", node) for k in range(opts.jobs_per_node) for node in plane.nodes]
        names = [j for j, _ in jobs]
        progress(f"apply burst: {len(jobs)} JointInferenceServices from 4 client threads")
        for meter in (gm_cpu, sim_cpu, *others.values()):
            meter.start()
        created, took = create_services(plane, jobs)
        first = min(created.values())
        wait_until(
            lambda: (
                fleet.collect(),
                all(w in fleet.spec_at for j, n in jobs for w in _keys(j, n)),
            )[1],
            opts.wait_limit,
            0.5,
        )
        burst_lat = [
            fleet.spec_at[key] - created[job]
            for job, node in jobs
            for key in _keys(job, node)
            if key in fleet.spec_at
        ]
        all_running = wait_until(
            lambda: status.running_count(names) == len(names), opts.wait_limit, 0.2
        )
        ran = time.monotonic() - first
        wait_until(lambda: fleet.pending() == 0, opts.wait_limit, 0.5)
        result.add(
            f"burst: {len(jobs)} creates took / rate",
            f"{took:.1f} s / {len(jobs) / max(took, 1e-9):.0f} per s",
        )
        result.add("burst: apply -> spec at LC", spread(burst_lat, 2 * len(jobs)), key="spec_burst")
        result.add(
            "burst: first create -> every job's workers Running in status",
            f"{ran:.1f} s"
            + ("" if all_running else f" ({status.running_count(names)}/{len(names)} Running)"),
        )
        result.add(
            "burst: GM CPU / simulators' CPU (cores)",
            f"{gm_cpu.read():.2f} / {sim_cpu.read():.2f}",
        )

        # -- load ------------------------------------------------------------------------
        interval = opts.jobs_per_node / opts.rate
        offered = opts.nodes * opts.rate
        progress(
            f"load: {opts.rate:g} report/s per node ({offered:,.0f}/s) for {opts.load_seconds:g} s"
        )
        fleet.collect()
        before = plane.gm_metrics()
        puts_before = fleet.status()["puts"]
        redis_before = plane.redis_commands()
        rss.reset()
        for meter in (gm_cpu, sim_cpu, *others.values()):
            meter.start()
        load_began = time.monotonic()
        fleet.set_interval(interval)
        probes = run_probes(plane, fleet, opts, load_began)
        remaining = opts.load_seconds - (time.monotonic() - load_began)
        if remaining > 0:
            time.sleep(remaining)
        during = plane.gm_metrics()
        load_wall = time.monotonic() - load_began
        cores = {"gm": gm_cpu.read(), "sim": sim_cpu.read()}
        cores.update({name: meter.read() for name, meter in others.items()})
        redis_rate = (plane.redis_commands() - redis_before) / load_wall
        load_ended = time.monotonic()
        fleet.set_interval(None)
        drained = wait_until(lambda: fleet.pending() == 0, opts.wait_limit, 0.5)
        fleet.collect()
        wait_until(lambda: caught_up(fleet, status), 30 if drained else 1, 0.2)
        probe_lat = probe_latencies(fleet, probes, 30)
        after = plane.gm_metrics()
        sim_status = fleet.status()
        sent_in_load = reports_between(fleet, load_began, load_ended + 1)
        applied_rate = (during["applied"] - before["applied"]) / load_wall
        latencies = report_latencies(fleet, status, load_began, load_ended)
        result.add(
            "load: reports handed to the LCs",
            f"{sent_in_load / load_wall:,.0f}/s (offered {offered:,.0f}/s)",
        )
        result.add("load: reports applied by the GM", f"{applied_rate:,.0f}/s", key="applied_load")
        result.add("load: report -> status", spread(latencies, sent_in_load), key="latency")
        result.add(
            "load: apply -> spec at LC, one at a time",
            spread(probe_lat, 2 * opts.probes),
            key="spec_probe",
        )
        result.add("load: GM CPU (cores)", f"{cores['gm']:.2f}", key="cpu")
        result.add("load: GM RSS peak", f"{rss.peak / 2**20:.0f} MB", key="rss")
        result.add(
            "load: CPU of simulators / API server / mosquitto / redis",
            f"{cores['sim']:.2f} / {cores['apiserver']:.2f} / {cores['mosquitto']:.2f} / "
            f"{cores['redis']:.2f} cores",
            key="sim_cpu",
        )
        if ceilings.redis:
            result.add(
                "load: Redis commands / its ceiling",
                f"{redis_rate:,.0f}/s / {ceilings.redis:,.0f}/s = "
                f"{redis_rate / ceilings.redis:.1%}",
            )
        if ceilings.mqtt_qos1:
            broker_rate = 2 * applied_rate  # each report and its ack go through the broker
            result.add(
                "load: broker messages (report + ack) / its ceiling",
                f"{broker_rate:,.0f}/s / {ceilings.mqtt_qos1:,.0f}/s = "
                f"{broker_rate / ceilings.mqtt_qos1:.1%}",
            )
        puts = sim_status["puts"] - puts_before
        applied = after["applied"] - before["applied"]
        stale = sum(1 for j, n in last_sent(fleet).items() if status.latest(j) < n)
        result.exact = drained and applied == puts and stale == 0
        result.add(
            "load: messages sent / applied by the GM / stale statuses",
            f"{puts} / {applied:.0f} / {stale}"
            + (" (exact)" if result.exact else " (NOT EXACT)")
            + f"; LC re-sends {sim_status['resent']}",
        )

        # -- saturation ------------------------------------------------------------------
        if opts.saturation:
            progress(
                f"saturation: GM frozen {opts.freeze_seconds:g} s while nodes offer "
                f"{opts.burst_rate:,.0f} reports/s"
            )
            saturate(plane, fleet, status, opts, result, gm_cpu, sim_cpu)

        # -- resync ----------------------------------------------------------------------
        if opts.resync:
            progress("resync: SIGKILL the GM under load; the stack's supervisor restarts it")
            resync(plane, fleet, status, opts, result, interval, rss)
        sim_status = fleet.status()
        counts = sim_status["log_counts"]
        if counts:
            result.add(
                "simulators logged",
                ", ".join(f"{n} {lvl.lower()}" for lvl, n in sorted(counts.items()))
                + "; first: "
                + " | ".join(sim_status["log_first"][:3]),
            )
    finally:
        rss.stop()
        if status is not None:
            status.stop()
        if fleet is not None:
            fleet.close()
        plane.stop()
    progress("done")
    return result


def _keys(job: str, node: str) -> list[str]:
    return [f"{node}/{w}" for w in workers_of(job)]


def run_probes(plane: ControlPlane, fleet: Fleet, opts: Options, began: float) -> dict[str, float]:
    """Create ``--probes`` services one at a time during the load, evenly spread; returns the
    start of each create call by worker key (``node/worker``), for `probe_latencies`."""
    if opts.probes <= 0:
        return {}
    api = client.CustomObjectsApi(plane.api_client())
    gap = opts.load_seconds / (opts.probes + 1)
    created: dict[str, float] = {}
    rng = random.Random(opts.nodes)
    for index in range(opts.probes):
        wake = began + gap * (index + 1)
        time.sleep(max(0.0, wake - time.monotonic()))
        node = rng.choice(plane.nodes)
        name = f"probe-{index:03d}"
        started = time.monotonic()
        api.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, service_body(name, node)
        )
        created.update(dict.fromkeys(_keys(name, node), started))
    return created


def probe_latencies(fleet: Fleet, created: dict[str, float], timeout: float) -> list[float]:
    """apply -> spec at LC of the probes (waiting up to ``timeout`` for late ones)."""
    wait_until(lambda: (fleet.collect(), all(k in fleet.spec_at for k in created))[1], timeout, 0.2)
    return [fleet.spec_at[k] - t for k, t in created.items() if k in fleet.spec_at]


def saturate(
    plane: ControlPlane,
    fleet: Fleet,
    status: StatusWatch,
    opts: Options,
    result: Result,
    gm_cpu: CpuMeter,
    sim_cpu: CpuMeter,
) -> None:
    """Freeze the GM while the nodes report fast, thaw it, time how fast it applies the backlog."""
    reporting = opts.nodes * opts.jobs_per_node
    before = plane.gm_metrics()["applied"]
    sent_before = fleet.status()["reports"]
    plane.freeze_gm()
    sim_cpu.start()
    began = time.monotonic()
    fleet.set_interval(reporting / opts.burst_rate)
    time.sleep(opts.freeze_seconds)
    fleet.set_interval(None)
    offered_wall = time.monotonic() - began
    sim_cores = sim_cpu.read()
    backlog = fleet.status()["reports"] - sent_before
    gm_cpu.start()
    thawed = time.monotonic()
    plane.thaw_gm()
    target = before + backlog
    done = wait_until(lambda: plane.gm_metrics()["applied"] >= target, opts.wait_limit, 0.1)
    applied_at = time.monotonic()
    cores = gm_cpu.read()
    drained = wait_until(lambda: fleet.pending() == 0, opts.wait_limit, 0.5)
    fleet.collect()
    shown = wait_until(lambda: caught_up(fleet, status), 30, 0.1)
    applied = plane.gm_metrics()["applied"] - before
    rate = applied / max(applied_at - thawed, 1e-9)
    result.add(
        "saturation: simulators offered (GM frozen)",
        f"{backlog:,} reports in {offered_wall:.1f} s = {backlog / offered_wall:,.0f}/s "
        f"(asked {opts.burst_rate:,.0f}/s; simulators {sim_cores:.2f} cores)",
    )
    result.add(
        "saturation: backlog applied after thaw",
        f"{applied:,.0f} in {applied_at - thawed:.1f} s = {rate:,.0f}/s"
        + ("" if done else " (incomplete)")
        + f"; GM {cores:.2f} cores",
        key="applied_sat",
    )
    result.add(
        "saturation: every last value in status",
        f"{time.monotonic() - thawed:.1f} s after thaw"
        + ("" if drained and shown else " (NOT reached)"),
    )


def resync(
    plane: ControlPlane,
    fleet: Fleet,
    status: StatusWatch,
    opts: Options,
    result: Result,
    interval: float,
    rss: RssPeak,
) -> None:
    """SIGKILL the GM under load; the stack's supervisor starts it again, as in ``sedna up``;
    time until everything is back in sync. The nodes keep reporting until the new GM is ready."""
    fleet.set_interval(interval)
    time.sleep(2.0)
    rss.reset()
    old_pid = plane.crash_gm()
    killed = time.monotonic()
    resent_before = fleet.status()["resent"]
    restarted, serving, ready_at = plane.wait_gm_back(old_pid, opts.wait_limit)
    fleet.set_interval(None)
    fleet.collect()

    def snapshots_back() -> bool:
        fleet.collect()
        return all(
            any(t >= restarted for t in fleet.snapshots.get(node, [])) for node in plane.nodes
        )

    snapshots_ok = wait_until(snapshots_back, opts.wait_limit, 0.2)
    fleet.collect()
    snapshots_at = max(
        (
            min(t for t in times if t >= restarted)
            for times in fleet.snapshots.values()
            if any(t >= restarted for t in times)
        ),
        default=restarted,
    )
    drained = wait_until(lambda: fleet.pending() == 0, opts.wait_limit, 0.2)
    fleet.collect()
    shown = wait_until(lambda: caught_up(fleet, status), opts.wait_limit, 0.1)
    shown_at = time.monotonic()
    full = max(snapshots_at, shown_at) - restarted
    outage_reports = reports_between(fleet, killed, ready_at + 1)
    result.add(
        "resync: SIGKILL -> supervisor started a new GM",
        f"{restarted - killed:.1f} s (the reports go on meanwhile)",
    )
    result.add(
        "resync: GM restart -> serving /healthz / ready (reconciled all)",
        f"{serving - restarted:.1f} s / {ready_at - restarted:.1f} s",
    )
    result.add(
        "resync: GM restart -> every LC got its snapshot",
        f"{snapshots_at - restarted:.1f} s" + ("" if snapshots_ok else " (NOT all)"),
    )
    result.add(
        f"resync: GM restart -> {outage_reports:,} reports of the outage in status",
        f"{shown_at - restarted:.1f} s" + ("" if drained and shown else " (NOT all)"),
    )
    result.add(
        "resync: LC outbox re-sends meanwhile", f"{fleet.status()['resent'] - resent_before}"
    )
    result.add(
        "resync: full resync after GM restart",
        f"{full:.1f} s" + ("" if snapshots_ok and drained and shown else " (incomplete)"),
        key="resync",
    )
    result.add("resync: GM RSS peak while resyncing", f"{rss.peak / 2**20:.0f} MB")


# -- main -----------------------------------------------------------------------------------


SUMMARY = [
    ("connected", "connected nodes (LCs / GM online)", "connected"),
    ("rss", "GM RSS peak under load", "rss"),
    ("cpu", "GM CPU under load (cores)", "cpu"),
    ("sim_cpu", "CPU: simulators / apiserver / mosquitto / redis", None),
    ("idle_cpu", "CPU idle, connected: GM / simulators", None),
    ("applied_load", "reports applied/s under load", None),
    ("applied_sat", "reports applied/s, backlog after freeze", "applied"),
    ("latency", "report -> status under load", "latency"),
    ("spec_burst", "apply -> spec at LC, burst of N", None),
    ("spec_probe", "apply -> spec at LC, one at a time", None),
    ("resync", "full resync after GM SIGKILL + restart", "resync"),
]


def print_summary(results: list[Result], opts: argparse.Namespace) -> None:
    """Every N side by side, with the issue's targets."""
    print()
    print(f"summary ({opts.rate:g} report/s per node under load; targets from issue 15)")
    for key, label, target in SUMMARY:
        print(f"  {label}")
        for r in results:
            print(f"      N={r.nodes:<5} {r.summary.get(key, '-')}")
        if target is not None:
            print(f"      target  {TARGETS[target]}")
    print(
        "  every message sent applied exactly once, every status at its last report: "
        + ", ".join(f"N={r.nodes} {'yes' if r.exact else 'NO'}" for r in results)
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags, validated."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", default=DEFAULT_NODES, help="comma-separated N values")
    parser.add_argument("--jobs-per-node", type=int, default=1, help="services per node")
    parser.add_argument("--rate", type=float, default=1.0, help="reports/s per node under load")
    parser.add_argument("--load-seconds", type=float, default=30.0, help="length of the load")
    parser.add_argument("--probes", type=int, default=10, help="one-at-a-time applies in the load")
    parser.add_argument(
        "--burst-rate", type=float, default=6000.0, help="reports/s offered while the GM is frozen"
    )
    parser.add_argument("--freeze-seconds", type=float, default=5.0, help="GM frozen this long")
    parser.add_argument(
        "--sim-procs", type=int, default=0, help="simulator processes (0: 1 per 100 nodes, >= 2)"
    )
    parser.add_argument("--wait-limit", type=float, default=60.0, help="longest wait of any phase")
    parser.add_argument(
        "--skip-ceilings", action="store_true", help="do not run redis-benchmark/mosquitto clients"
    )
    parser.add_argument(
        "--full-lc",
        action="store_true",
        help="start each LC whole (report server, dataset monitor, staged loop too)",
    )
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument("--skip-resync", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs)")
    parser.add_argument("--log-level", default="WARNING", help="of the GM, API server, simulators")
    args = parser.parse_args(argv)
    try:
        args.node_counts = [int(n) for n in args.nodes.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--nodes must be comma-separated whole numbers, not {args.nodes!r}")
    if not args.node_counts or min(args.node_counts) < 1:
        parser.error("--nodes needs at least one positive number")
    for name in ("jobs_per_node", "sim_procs", "probes"):
        if getattr(args, name) < 0 or (name == "jobs_per_node" and args.jobs_per_node < 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("rate", "load_seconds", "burst_rate", "freeze_seconds", "wait_limit"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def options_for(args: argparse.Namespace, nodes: int) -> Options:
    """The options of one N."""
    return Options(
        nodes=nodes,
        jobs_per_node=args.jobs_per_node,
        rate=args.rate,
        load_seconds=args.load_seconds,
        probes=args.probes,
        burst_rate=args.burst_rate,
        freeze_seconds=args.freeze_seconds,
        sim_procs=args.sim_procs,
        wait_limit=args.wait_limit,
        ceilings=not args.skip_ceilings,
        full_lc=args.full_lc,
        saturation=not args.skip_saturation,
        resync=not args.skip_resync,
        log_level=args.log_level,
    )


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run every N and print the figures."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _sigterm)
    limit = raise_nofile()
    cores = os.cpu_count() or 0
    print("Sedna control plane at fleet scale: N simulated edge nodes, one control plane")
    print(f"  machine     {cores} cores, Python {sys.version.split()[0]}, open files {limit}")
    print(
        "  control     sedna up's Stack, every part its own process, without its LCs: API server,"
    )
    print("              GM, KB, Mosquitto (a user + ACL per node), Redis (password)")
    parts = "whole" if args.full_lc else "bus parts: outbox, downstream, sync, presence"
    print(f"  nodes       real LocalControllers ({parts}) with lc.standin.StandInRuntime,")
    print(
        f"              several simulator processes at nice {SIM_NICE}; {args.jobs_per_node}"
        " JointInferenceService a node (both workers on it); outbox re-send after"
    )
    print(
        f"              {SIM_RESEND_AFTER:g} s, poll {SIM_OUTBOX_POLL:g} s, keep-alive"
        f" {SIM_KEEPALIVE} s (the LC's: 10 s, 1 s, 30 s)"
    )
    print(
        f"  load        {args.rate:g} report/s per node for {args.load_seconds:g} s;"
        f" {args.probes} one-at-a-time applies meanwhile"
    )
    started = time.monotonic()
    results = []
    root = Path(tempfile.mkdtemp(prefix="sedna-scale-"))
    try:
        for nodes in args.node_counts:
            print(f"\nN = {nodes} simulated nodes", flush=True)
            result = Result(nodes)
            results.append(result)
            try:
                run_one(options_for(args, nodes), root / f"n{nodes}", result)
            except Exception as exc:  # the other N values and the summary still run
                result.exact = False
                result.add("RUN FAILED", f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_summary(results, args)
    print(f"\ntotal run time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
