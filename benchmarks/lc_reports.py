"""One LC's report path on its own: accepted reports/s, LC CPU and Redis commands per report.

    python benchmarks/lc_reports.py                    # 4,000 reports from 4 client processes
    python benchmarks/lc_reports.py --reports 10000 --clients 8 --services 40

This process runs only a real `LocalController` of node ``edge0`` (its report server, its
outbox, its bus client), as ``sedna up --processes all`` runs an LC in a process of its own,
with a Redis and a Mosquitto of its own (child processes). The GM is a stand-in in another
process: the GM's own `UpstreamReceiver` (de-duplication in a second Redis, so the first one
counts only the LC's commands) that applies nothing and acknowledges every batch. The LC knows
``--services`` reporting workers (as the GM's ``pods`` backend announces them, each with its
own token); ``--clients`` client processes (``benchmarks/report_clients.py``, persistent
connections, each worker's reports in order from one process) POST ``--reports`` reports as fast
as they can. Printed: accepted per second, POST latency, the LC process's CPU per report, the
Redis commands per report (``INFO commandstats``), the outbox's group commits, and first POST ->
the GM stand-in acknowledged the last report.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import redis

from apis import OwnerReference, ReportingWorker
from apis.messages import token_digest
from broker import BusClient, bus_settings_from_url
from broker.localservices import MosquittoService, RedisService
from lc.agent import LocalController
from lc.settings import LCSettings

# Run as a script, the sibling modules are found from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.control_plane import run_children

NODE, NAMESPACE, GROUP_VERSION = "edge0", "default", "sedna.io/v1alpha1"


def run_gm_standin(mqtt_url: str, redis_url: str, ready: Any, stop: Any) -> None:
    """The GM's upstream receiver applying nothing: every batch is marked and acknowledged."""
    from broker.dedup import Dedup
    from broker.store import connect_redis
    from broker.upstream import NothingToWrite, UpstreamReceiver

    bus = BusClient(f"bench-gm-{secrets.token_hex(4)}", bus_settings_from_url(mqtt_url))
    receiver = UpstreamReceiver(bus, Dedup(connect_redis(redis_url)), lambda b: NothingToWrite())
    receiver.start()
    bus.start(wait=30)
    ready.set()
    stop.wait()
    receiver.stop()
    bus.close()


def redis_commands(client: redis.Redis) -> Counter[str]:
    """Calls per command since the last ``CONFIG RESETSTAT``."""
    stats = client.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


def main(argv: list[str] | None = None) -> int:
    """Start the services, the LC and the GM stand-in; run the clients; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reports", type=int, default=4000, help="reports in the burst")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--services", type=int, default=20, help="reporting workers on the LC")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="sedna-lc-bench-"))
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Event(), spawn.Event()
    services: list[Any] = []
    try:
        lc_redis = RedisService(root / "redis").start()
        services.append(lc_redis)
        gm_redis = RedisService(root / "redis-gm").start()
        services.append(gm_redis)
        mosquitto = MosquittoService(root / "mqtt").start()
        services.append(mosquitto)
        mqtt_url = f"mqtt://{mosquitto.host}:{mosquitto.port}"
        gm = spawn.Process(target=run_gm_standin, args=(mqtt_url, gm_redis.url, ready, stop))
        gm.start()
        if not ready.wait(60):
            raise RuntimeError("the GM stand-in did not start")
        settings = LCSettings(
            node=NODE,
            data_dir=root / "lc",
            report_port=0,
            log_port=0,
            redis_url=lc_redis.url,
            mqtt_url=mqtt_url,
        )
        lc = LocalController(settings)
        names = [f"svc-{i}" for i in range(args.services)]
        tokens = {name: secrets.token_hex(16) for name in names}
        for name in names:  # as the GM's pods backend announces them
            worker = ReportingWorker(
                name=f"{name}-edge",
                namespace=NAMESPACE,
                owner=OwnerReference(
                    api_version=GROUP_VERSION, kind="JointInferenceService", name=name
                ),
                token_sha256=token_digest(tokens[name]),
            )
            lc.desired.reporters[worker.key] = worker
        lc.start()
        try:
            figures = burst(lc, names, tokens, args)
        finally:
            lc.stop()
        stop.set()
        gm.join(10)
    finally:
        for service in reversed(services):
            with contextlib.suppress(Exception):
                service.stop()
        shutil.rmtree(root, ignore_errors=True)
    print_figures(args, figures)
    return 0


def burst(
    lc: LocalController, names: list[str], tokens: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """POST the reports from the client processes; wait for the last acknowledgement."""
    plan: dict[str, list[int]] = defaultdict(list)
    for index in range(args.reports):
        plan[names[index % len(names)]].append(1 + index // len(names))
    shards = [names[i :: args.clients] for i in range(args.clients)]
    jobs = [
        {
            "rate": 0.0,
            "targets": [
                {"service": n, "port": lc.reports.port, "token": tokens[n], "numbers": plan[n]}
                for n in shard
            ],
        }
        for shard in shards
        if shard
    ]
    store = redis.Redis.from_url(lc.settings.redis_url)
    store.config_resetstat()
    stats_before = lc.outbox.stats()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    results = run_children("post", jobs)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    began = min(part["began"] for part in results)
    ended = max(part["ended"] for part in results)
    commands = redis_commands(store)
    deadline = time.monotonic() + 120
    while lc.outbox.stats().acked - stats_before.acked < args.reports:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    acked = time.monotonic()
    stats_after = lc.outbox.stats()
    commands_all = redis_commands(store)
    store.close()
    return {
        "accepted": sum(len(part["sent"]) for part in results),
        "span": ended - began,
        "to_ack": acked - began,
        "took": sorted(t for part in results for t in part.get("took", [])),
        "cpu": (cpu_after.ru_utime + cpu_after.ru_stime)
        - (cpu_before.ru_utime + cpu_before.ru_stime),
        "sys": cpu_after.ru_stime - cpu_before.ru_stime,
        "switches": (cpu_after.ru_nvcsw + cpu_after.ru_nivcsw)
        - (cpu_before.ru_nvcsw + cpu_before.ru_nivcsw),
        "commands": commands,
        "commands_all": commands_all,
        "puts": stats_after.puts - stats_before.puts,
        "commits": stats_after.commits - stats_before.commits,
        "sent": stats_after.sent - stats_before.sent,
        "acked": stats_after.acked - stats_before.acked,
    }


def print_figures(args: argparse.Namespace, f: dict[str, Any]) -> None:
    """The figures, one a line."""
    n = max(f["accepted"], 1)
    took = f["took"]
    print(f"{args.reports} reports, {args.clients} client procs, {args.services} workers")
    print(f"  accepted by the LC        {f['span']:.2f} s ({n / f['span']:.0f} per s)")
    if took:
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print(
            f"  POST latency              p50 {statistics.median(took) * 1000:.1f} ms,"
            f" p99 {p99 * 1000:.1f} ms"
        )
    print(
        f"  LC process CPU            {f['cpu']:.2f} s ({f['cpu'] / n * 1e6:.0f} us per report,"
        f" {f['sys'] / n * 1e6:.0f} us of it in the kernel;"
        f" {f['switches'] / n:.1f} context switches per report)"
    )
    while_posting = sum(f["commands"].values())
    print(
        f"  Redis commands (LC)       {while_posting / n:.2f} per report while posting;"
        f" {sum(f['commands_all'].values()) / n:.2f} per report until acknowledged"
    )
    print(
        "    "
        + ", ".join(f"{k} {v / n:.2f}" for k, v in f["commands_all"].most_common() if k != "info")
    )
    print(
        f"  outbox                    {f['puts']} puts in {f['commits']} group commits;"
        f" {f['sent']} published, {f['acked']} acknowledged"
    )
    print(f"  first POST -> last ack    {f['to_ack']:.2f} s ({f['acked'] / f['to_ack']:.0f} per s)")


if __name__ == "__main__":
    sys.exit(main())
