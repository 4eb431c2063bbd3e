"""Incremental learning through the whole control plane (``sedna up`` in-process): the digits
example's IncrementalLearningJob, four batches of 300 labelled samples appended one by one.

Prints, per round: trigger latency (batch appended -> train worker created / running) against
``checkPeriodSeconds``; the Train, Eval and Deploy stage durations; eval Completed -> the new
model serving (hot update: the inference worker reported it loaded it) against
``pollPeriodSeconds``; the deploy decision and the served accuracy after the round. Times are
when this process first saw each condition (status polled every 50 ms).

    python benchmarks/incremental.py            # checkPeriodSeconds 5, pollPeriodSeconds 2
    python benchmarks/incremental.py --check-period 10 --poll-period 5
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "incremental_learning"))

from digits_il import Workspace, job_manifests  # noqa: E402 - the example's data and job

from gm.app import api_client_for  # noqa: E402
from sedna_cli.stack import Stack, StackOptions  # noqa: E402

JOB = "digits-demo"
NODE = "edge0"


class Observer:
    """Polls the job's status; remembers when each (round, stage, state) condition appeared."""

    def __init__(self, stack: Stack) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client_for(str(stack.kubeconfig)))
        self.seen: dict[tuple[int, str, str], float] = {}
        self.status: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Observer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                obj = self.api.get_namespaced_custom_object(
                    "sedna.io", "v1alpha1", "default", "incrementallearningjobs", JOB
                )
            except Exception:
                continue
            now = time.monotonic()
            self.status = obj.get("status") or {}
            for cond in self.status.get("conditions") or []:
                key = (int(cond.get("round") or 0), cond["stage"], cond["type"])
                self.seen.setdefault(key, now)

    def at(self, round_: int, stage: str, state: str) -> float | None:
        return self.seen.get((round_, stage, state))

    def metrics(self) -> dict[str, str]:
        return {m["key"]: m["value"] for m in self.status.get("metrics") or []}

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what}")
            time.sleep(0.05)


def kubectl_apply(stack: Stack, manifests: list[dict[str, Any]], cache: Path) -> None:
    """``kubectl apply -f -`` against the stack, as a user would."""
    env = {**os.environ, "KUBECONFIG": str(stack.kubeconfig)}
    subprocess.run(
        ["kubectl", "--cache-dir", str(cache), "apply", "-f", "-"],
        input=yaml.safe_dump_all(manifests),
        text=True,
        check=True,
        capture_output=True,
        env=env,
    )


def run(check_period: int, poll_period: int, timeout: float) -> list[dict[str, Any]]:
    """Run the job for every batch; one result row per round."""
    with tempfile.TemporaryDirectory(prefix="sedna-il-bench-") as tmp:
        work = Workspace(Path(tmp) / "digits")
        work.prepare()
        stack = Stack(StackOptions(data_dir=Path(tmp) / "sedna", nodes=["cloud0", NODE]))
        stack.start()
        observer = Observer(stack).start()
        try:
            manifests = job_manifests(
                work, node=NODE, check_period=check_period, poll_period=poll_period
            )
            kubectl_apply(stack, manifests, Path(tmp) / "kube-cache")
            observer.wait(
                lambda: int(observer.metrics().get("pass", "0")) >= 2, timeout, "the first pass"
            )
            rows = [
                {
                    "round": 0,
                    "accuracy": float(observer.metrics()["accuracy"]),
                    "hard": int(observer.metrics()["passHardExamples"]),
                }
            ]
            for index, batch in enumerate(work.batches(), start=1):
                appended = time.monotonic()
                work.append(batch)
                observer.wait(
                    lambda r=index: (
                        observer.status.get("round") == r
                        and observer.status.get("state") == "Waiting"
                    ),
                    timeout,
                    f"round {index}",
                )
                after = int(observer.metrics().get("pass", "0"))
                observer.wait(
                    lambda a=after: int(observer.metrics().get("pass", "0")) > a + 1,
                    timeout,
                    "a pass",
                )
                rows.append(row(observer, index, appended))
            return rows
        finally:
            observer.stop()
            stack.stop()


def row(observer: Observer, r: int, appended: float) -> dict[str, Any]:
    """The figures of round ``r``."""
    at = lambda stage, state: observer.at(r, stage, state)  # noqa: E731
    decision = observer.status.get("lastDecision") or {}
    deployed = at("Deploy", "Completed") if decision.get("deploy") else None

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else b - a

    return {
        "round": r,
        "trigger_created": span(appended, at("Train", "Starting")),
        "trigger_running": span(appended, at("Train", "Running")),
        "train": span(at("Train", "Starting"), at("Train", "Completed")),
        "eval": span(at("Eval", "Starting"), at("Eval", "Completed")),
        "deploy": span(at("Deploy", "Waiting"), at("Deploy", "Completed")),
        "serving": span(at("Eval", "Completed"), deployed),
        "decision": "deploy" if decision.get("deploy") else "no deploy",
        "delta": (decision.get("metrics") or {}).get("precision_delta"),
        "accuracy": float(observer.metrics()["accuracy"]),
        "hard": int(observer.metrics()["passHardExamples"]),
    }


COLUMNS = (  # (heading, row key, format spec); each column is as wide as its heading
    ("round", "round", ""),
    ("appended->created s", "trigger_created", ".2f"),
    ("->running s", "trigger_running", ".2f"),
    ("train s", "train", ".2f"),
    ("eval s", "eval", ".2f"),
    ("deploy s", "deploy", ".2f"),
    ("eval->serving s", "serving", ".2f"),
    ("decision", "decision", ""),
    ("delta", "delta", "+.3f"),
    ("accuracy", "accuracy", ".3f"),
    ("hard", "hard", ""),
)


def show(rows: list[dict[str, Any]], check_period: int, poll_period: int) -> None:
    """Print the table and the targets."""
    print(
        f"\nincremental learning, digits: checkPeriodSeconds {check_period}, "
        f"pollPeriodSeconds {poll_period}; round 0 is the initial model"
    )
    header = " ".join(heading.rjust(max(len(heading), 9)) for heading, _, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for r in rows:
        cells = []
        for heading, key, spec in COLUMNS:
            value = r.get(key)
            text = "-" if value is None else format(value, spec)
            cells.append(text.rjust(max(len(heading), 9)))
        print(" ".join(cells))
    latencies = [r["trigger_created"] for r in rows[1:] if r["trigger_created"] is not None]
    serving = [r["serving"] for r in rows[1:] if r["serving"] is not None]
    print(
        f"trigger latency, appended -> train worker created: max {max(latencies):.2f} s, "
        f"median {statistics.median(latencies):.2f} s "
        f"(target <= checkPeriodSeconds + 2 = {check_period + 2} s)"
    )
    if serving:
        print(
            f"eval Completed -> new model serving: max {max(serving):.2f} s "
            f"(target <= pollPeriodSeconds + 1 = {poll_period + 1} s)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check-period", type=int, default=5)
    parser.add_argument("--poll-period", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = run(args.check_period, args.poll_period, args.timeout)
    show(rows, args.check_period, args.poll_period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
