"""Client processes of ``benchmarks/control_plane.py``: worker reports at rate, outside the stack.

    python -m benchmarks.report_clients post      # POST reports to LCs, persistent connections
    python -m benchmarks.report_clients publish   # publish envelopes on the bus as an LC would

A child reads its job (one JSON line) on stdin, gets ready (connects), prints ``ready``, waits
for a ``go`` line, runs, and prints its result (one JSON line). Imports stay light so a child
starts fast on a loaded box; times are ``time.monotonic()``, shared by the processes of a box.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from typing import Any

GROUP_VERSION = "sedna.io/v1alpha1"
NAMESPACE = "default"


def report_body(service: str, number: int) -> bytes:
    """The ``info`` body the edge worker of ``service`` POSTs with ``number`` inferences."""
    return json.dumps(
        {
            "name": f"{service}-edge",
            "namespace": NAMESPACE,
            "ownerName": service,
            "ownerKind": "jointinferenceservice",
            "kind": "inference",
            "status": "running",
            "taskInfo": {"inferenceNumber": number, "hardExampleNumber": number // 10},
        }
    ).encode()


class Poster:
    """POSTs reports over one persistent connection per LC port."""

    def __init__(self) -> None:
        self._conns: dict[int, http.client.HTTPConnection] = {}

    def post(self, port: int, token: str, service: str, number: int) -> None:
        """POST one report; retry (reconnecting) until the LC accepts it."""
        headers = {"Content-Type": "application/json", "X-Sedna-Worker-Token": token}
        path = f"/sedna/workers/{service}-edge/info"
        body = report_body(service, number)
        for _ in range(50):
            conn = self._conns.get(port)
            if conn is None:
                conn = self._conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                conn.close()
                self._conns.pop(port, None)
            time.sleep(0.1)
        raise RuntimeError(f"the LC on port {port} did not accept a report for {service}")

    def close(self) -> None:
        """Close every connection."""
        for conn in self._conns.values():
            conn.close()


def run_post(job: dict[str, Any]) -> dict[str, Any]:
    """POST each target's numbers in order, round robin over targets, paced at ``rate`` a
    second (0: as fast as possible); returns what was sent when, how long each POST took, and
    the span of sending."""
    targets = job["targets"]  # [{service, port, token, numbers}]
    rate = float(job["rate"])
    poster = Poster()
    for target in targets:  # connect before the start
        poster._conns.setdefault(
            target["port"], http.client.HTTPConnection("127.0.0.1", target["port"], timeout=30)
        )
    _ready()
    queues = [list(t["numbers"]) for t in targets]
    sent: list[tuple[str, int, float]] = []
    took: list[float] = []  # seconds from sending each report to its 200
    began = time.monotonic()
    index = 0
    while any(queues):
        for target, queue in zip(targets, queues, strict=True):
            if not queue:
                continue
            if rate > 0:
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            number = queue.pop(0)
            when = time.monotonic()
            poster.post(target["port"], target["token"], target["service"], number)
            sent.append((target["service"], number, when))
            took.append(time.monotonic() - when)
            index += 1
    ended = time.monotonic()
    poster.close()
    return {"sent": sent, "took": took, "began": began, "ended": ended}


def run_publish(job: dict[str, Any]) -> dict[str, Any]:
    """Publish ``count`` worker reports as ``node``'s LC would (its bus client, envelopes with
    fresh ids and growing seq), round robin over ``services``; returns the span from the first
    publish to the broker's acknowledgement of the last."""
    from broker import BusClient, Envelope, UpTopic, bus_settings_from_url

    node, services, count, first = job["node"], job["services"], job["count"], job["first"]
    settings = bus_settings_from_url(job["mqtt_url"], job["username"], job["password"])
    client = BusClient(f"bench-{node}-{os.getpid()}", settings)
    client.start(wait=30)
    messages = []
    for index in range(count):
        service = services[index % len(services)]
        number = first + index // len(services)
        payload = {
            "type": "worker",
            "worker": f"{service}-edge",
            "ownerApiVersion": GROUP_VERSION,
            "node": node,
            "status": "running",
            "output": {"taskInfo": {"inferenceNumber": number, "hardExampleNumber": number // 10}},
        }
        envelope = Envelope(seq=job["seq_base"] + index, node=node, payload=payload)
        topic = str(UpTopic(node, "JointInferenceService", NAMESPACE, service))
        messages.append((topic, envelope.to_bytes()))
    _ready()
    began = time.monotonic()
    futures = [client.publish_async(topic, raw) for topic, raw in messages]
    for future in futures:
        future.result(300)
    ended = time.monotonic()
    client.close()
    return {"began": began, "ended": ended}


def _ready() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")


def main() -> int:
    """Read the job, run it, print the result."""
    mode = sys.argv[1]
    job = json.loads(sys.stdin.readline())
    result = run_post(job) if mode == "post" else run_publish(job)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
