"""Federated learning benchmarks over loopback; prints three tables.

(a) Round time (all clients push, the aggregator aggregates, all clients pull) for 2, 4 and 8
    clients with 4 MB and 100 MB float32 models, next to a bare grpcio streaming echo of the
    same bytes measured in the same run (client-stream up, server-stream down, 1 MiB chunks).
    Clients are separate processes; the aggregator (or echo server) runs in this process.
(b) Bytes per round and final test accuracy for each codec on the digits job.
(c) Test accuracy of federated training vs centralized vs single-node training on the same
    label-skewed digits split (same number of passes over the data).

    python benchmarks/federated.py            # full run (a few minutes)
    python benchmarks/federated.py --quick    # 4 MB models, fewer rounds
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "federated_learning"))

from mlp import DigitsMLP  # noqa: E402 - the example's estimator
from prepare_data import split_digits  # noqa: E402

from sedna.algorithms.aggregation import get_aggregation  # noqa: E402
from sedna.algorithms.compression import get_codec  # noqa: E402
from sedna.core.federated_learning import (  # noqa: E402
    AggregationClient,
    AggregationServer,
    AggregatorSettings,
    FederatedLearning,
    TrainerSettings,
)

TOKEN = "benchmark-token"
JOB = "benchmark"
CHUNK = 1 << 20
MB = 1_000_000
ECHO_UP = "/bench.Echo/Up"
ECHO_DOWN = "/bench.Echo/Down"
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]


# -- (a) transport ---------------------------------------------------------------------------


def _model(size_bytes: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """A float32 model of ``size_bytes`` in four layers (60/30/9/1 %)."""
    params = size_bytes // 4
    shares = [0.6, 0.3, 0.09]
    sizes = [int(params * share) for share in shares]
    sizes.append(params - sum(sizes))
    return [
        (f"layer{index}", np.full(count, seed + index, dtype=np.float32))
        for index, count in enumerate(sizes)
    ]


def _chunks(payload: bytes) -> Iterator[bytes]:
    view = memoryview(payload)
    for offset in range(0, len(view), CHUNK):
        yield bytes(view[offset : offset + CHUNK])


class _EchoServer:
    """The baseline: stores each client's upload and streams it back.

    ``synchronous``: a download starts only when every client's upload of the round is in,
    the order a federated round imposes (its model exists only after all updates); otherwise
    each client downloads right after its own upload.
    """

    def __init__(self, clients: int, synchronous: bool) -> None:
        self.clients = clients
        self.synchronous = synchronous
        self.stored: dict[str, bytes] = {}
        self.uploads: dict[str, int] = {}
        self.changed = threading.Condition()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=24), options=GRPC_OPTIONS)
        handlers = {
            "Up": grpc.stream_unary_rpc_method_handler(self._up),
            "Down": grpc.unary_stream_rpc_method_handler(self._down),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("bench.Echo", handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @staticmethod
    def _meta(context: grpc.ServicerContext) -> tuple[str, str]:
        metadata = dict(context.invocation_metadata())
        return metadata["client"], metadata["round"]

    def _up(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        client, round_number = self._meta(context)
        data = b"".join(chunks)
        with self.changed:
            self.stored[client] = data
            self.uploads[round_number] = self.uploads.get(round_number, 0) + 1
            self.changed.notify_all()
        return b"ok"

    def _down(self, _request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        client, round_number = self._meta(context)
        if self.synchronous:
            with self.changed:
                self.changed.wait_for(lambda: self.uploads.get(round_number, 0) >= self.clients)
        yield from _chunks(self.stored[client])

    def stop(self) -> None:
        self.server.stop(0).wait()


def _echo_client(
    port: int, client: int, size: int, rounds: int, barrier: Any, results: Any
) -> None:
    payload = b"".join(tensor.tobytes() for _, tensor in _model(size, client))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS)
    up = channel.stream_unary(ECHO_UP)
    down = channel.unary_stream(ECHO_DOWN)
    for round_number in range(rounds):
        metadata = (("client", str(client)), ("round", str(round_number)))
        barrier.wait()
        started = time.monotonic()
        up(_chunks(payload), metadata=metadata)
        # Keep what comes back, as any client must (the server side joins its upload too).
        received = b"".join(down(b"", metadata=metadata))
        assert len(received) == len(payload)
        results.put((round_number, started, time.monotonic()))
    channel.close()


def _sedna_client(
    port: int, client: int, size: int, rounds: int, barrier: Any, results: Any
) -> None:
    tensors = _model(size, client)
    with AggregationClient(f"127.0.0.1:{port}", TOKEN, JOB, f"client-{client}") as link:
        for round_number in range(rounds):
            barrier.wait()
            started = time.monotonic()
            link.push(round_number + 1, tensors, 100)
            pulled = link.wait_for_round(round_number + 1, timeout=600)
            assert pulled.received_bytes == size // 4 * 4
            results.put((round_number, started, time.monotonic()))


def _measure(target: Callable[..., None], port: int, clients: int, size: int, rounds: int) -> float:
    """Median round time (first round is warm-up) with ``clients`` client processes."""
    context = mp.get_context("spawn")
    barrier = context.Barrier(clients)
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(port, client, size, rounds, barrier, results))
        for client in range(clients)
    ]
    for process in processes:
        process.start()
    samples = [results.get(timeout=900) for _ in range(clients * rounds)]
    for process in processes:
        process.join(timeout=60)
        if process.exitcode != 0:
            raise RuntimeError(f"benchmark client failed with exit code {process.exitcode}")
    per_round = []
    for round_number in range(1, rounds):
        spans = [(start, end) for number, start, end in samples if number == round_number]
        per_round.append(max(end for _, end in spans) - min(start for start, _ in spans))
    return statistics.median(per_round)


def _echo(clients: int, size: int, rounds: int, synchronous: bool) -> float:
    echo = _EchoServer(clients, synchronous)
    try:
        return _measure(_echo_client, echo.port, clients, size, rounds)
    finally:
        echo.stop()


def _sedna(clients: int, size: int, rounds: int) -> float:
    aggregator = AggregationServer(
        settings=AggregatorSettings(
            job=JOB,
            token=TOKEN,
            bind_host="127.0.0.1",
            bind_port=0,
            participants=clients,
            exit_round=rounds,
            round_timeout_seconds=600,
            exit_grace_seconds=0,
        )
    ).serve()
    try:
        return _measure(_sedna_client, aggregator.port, clients, size, rounds)
    finally:
        aggregator.stop(grace=0)


def transport(
    sizes: list[int], client_counts: list[int], rounds: dict[int, int], repeats: dict[int, int]
) -> None:
    """Table (a); per model size: rounds per measurement (the first a warm-up), repeats."""
    print("\n(a) round time over loopback: push + aggregate (FedAvg) + pull, 1 MiB chunks")
    counts = ", ".join(f"{rounds[size] - 1} for {size / MB:.0f} MB" for size in sizes)
    print(f"    median of rounds after one warm-up ({counts}); MB/s = 2 x clients x size / time")
    print("    bare echo: grpcio client-stream up + server-stream down of the same bytes;")
    print("    'sync' starts downloads when all uploads are in (a round's order), 'free' right")
    print("    after each client's own upload; ratio = sync / sedna; best of alternating repeats")
    header = (
        f"{'model':>7} {'clients':>7} {'free s':>7} {'sync s':>7} {'(MB/s)':>7} "
        f"{'sedna s':>8} {'(MB/s)':>7} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        for clients in client_counts:
            # The machine is shared: alternate the systems and keep each one's best median.
            free, sync, ours = math.inf, math.inf, math.inf
            for _ in range(repeats[size]):
                free = min(free, _echo(clients, size, rounds[size], synchronous=False))
                sync = min(sync, _echo(clients, size, rounds[size], synchronous=True))
                ours = min(ours, _sedna(clients, size, rounds[size]))
            moved = 2 * clients * size / MB
            print(
                f"{size / MB:>5.0f}MB {clients:>7} {free:>7.3f} {sync:>7.3f} "
                f"{moved / sync:>7.0f} {ours:>8.3f} {moved / ours:>7.0f} {sync / ours:>6.2f}",
                flush=True,
            )


# -- digits jobs for (b) and (c) -------------------------------------------------------------


@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class JobResult:
    """Outcome of one federated digits job."""

    accuracy: float
    uplink_per_round: float
    downlink_per_round: float
    seconds: float


def federated_job(
    splits: list[tuple[np.ndarray, np.ndarray]],
    test: _Data,
    rounds: int,
    epochs: int,
    aggregation: str = "FedAvg",
    compression: str = "none",
    topk_ratio: float = 0.1,
    **rule_parameters: Any,
) -> JobResult:
    """Run the digits job through the real aggregator and trainers (threads) over loopback."""
    started = time.perf_counter()
    aggregator = AggregationServer(
        get_aggregation(aggregation, **rule_parameters),
        settings=AggregatorSettings(
            job=JOB,
            token=TOKEN,
            bind_host="127.0.0.1",
            bind_port=0,
            participants=len(splits),
            exit_round=rounds,
            aggregation=aggregation,
            round_timeout_seconds=120,
            exit_grace_seconds=5,
        ),
    ).serve()
    summaries: list[Any] = [None] * len(splits)
    try:

        def train(node: int) -> None:
            settings = TrainerSettings(
                job=JOB,
                token=TOKEN,
                worker=f"edge{node}",
                agg_port=aggregator.port,
                compression=compression,
                topk_ratio=topk_ratio,
            )
            rule = get_aggregation(aggregation, **rule_parameters)
            learner = FederatedLearning(DigitsMLP(epochs=epochs), rule, settings=settings)
            summaries[node] = learner.train(_Data(*splits[node]))

        threads = [threading.Thread(target=train, args=(node,)) for node in range(len(splits))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert aggregator.wait(30)
        final = aggregator.coordinator.latest
        assert final is not None and final.round == rounds
    finally:
        aggregator.stop(grace=0)
    model = DigitsMLP()
    model.set_weights(list(final.tensors))
    return JobResult(
        accuracy=model.evaluate(test)["accuracy"],
        uplink_per_round=sum(s.bytes_pushed for s in summaries) / rounds,
        downlink_per_round=sum(s.bytes_pulled for s in summaries) / rounds,
        seconds=time.perf_counter() - started,
    )


def codecs(splits: list[Any], test: _Data, rounds: int, epochs: int) -> JobResult:
    """Table (b); returns the uncompressed FedAvg result for table (c)."""
    print(
        f"\n(b) codecs on the digits job: 3 edge nodes, FedAvg, {rounds} rounds x {epochs} epochs"
    )
    header = (
        f"{'codec':>12} {'up B/round':>11} {'down B/round':>13} {'up vs none':>10} "
        f"{'accuracy':>9} {'job s':>6}"
    )
    print(header)
    print("-" * len(header))
    baseline: JobResult | None = None
    for label, name, ratio in [
        ("none", "none", 0.1),
        ("fp16", "fp16", 0.1),
        ("int8", "int8", 0.1),
        ("topk 0.1", "topk", 0.1),
        ("topk 0.01", "topk", 0.01),
    ]:
        result = federated_job(splits, test, rounds, epochs, compression=name, topk_ratio=ratio)
        baseline = baseline or result
        print(
            f"{label:>12} {result.uplink_per_round:>11.0f} {result.downlink_per_round:>13.0f} "
            f"{result.uplink_per_round / baseline.uplink_per_round:>10.3f} "
            f"{result.accuracy:>9.4f} {result.seconds:>6.1f}",
            flush=True,
        )
    print("    (round 1 travels uncompressed for top-k: there is no global model to differ from)")
    big = _model(4 * MB, 1)
    base = [(name, tensor * 0.999) for name, tensor in big]
    print("    one push of a 4 MB model (bytes, encode+decode ms):", end="")
    for label, name, params in [
        ("none", "none", {}),
        ("fp16", "fp16", {}),
        ("int8", "int8", {}),
        ("topk 0.01", "topk", {"ratio": 0.01}),
    ]:
        codec = get_codec(name, **params)
        started = time.perf_counter()
        size = 0
        for (_, tensor), (_, reference) in zip(big, base, strict=True):
            payload = codec.encode(tensor - reference)
            codec.decode(payload, tensor.dtype, tensor.shape)
            size += memoryview(payload).nbytes
        elapsed = (time.perf_counter() - started) * 1000
        print(f" {label} {size} ({elapsed:.0f} ms);", end="")
    print()
    assert baseline is not None
    return baseline


def accuracy(
    splits: list[Any], test: _Data, rounds: int, epochs: int, federated: JobResult
) -> None:
    """Table (c)."""
    passes = rounds * epochs
    print(f"\n(c) digits test accuracy, 3 label-skewed nodes (Dirichlet 0.5), {passes} passes")
    x = np.concatenate([split[0] for split in splits])
    y = np.concatenate([split[1] for split in splits])
    central = DigitsMLP()
    central.train(_Data(x, y), epochs=passes)
    central_accuracy = central.evaluate(test)["accuracy"]
    rows = [("centralized (all data in one place)", central_accuracy)]
    rows.append((f"federated FedAvg ({rounds} rounds x {epochs} epochs)", federated.accuracy))
    for rule, parameters in [
        ("FedAvgM", {"server_lr": 1.0, "momentum": 0.5}),
        ("FedProx", {"mu": 0.01}),
        ("TrimmedMean", {"trim_ratio": 0.2}),
    ]:
        result = federated_job(splits, test, rounds, epochs, aggregation=rule, **parameters)
        described = ", ".join(f"{key}={value}" for key, value in parameters.items())
        rows.append((f"federated {rule} ({described})", result.accuracy))
    for node, (node_x, node_y) in enumerate(splits):
        single = DigitsMLP()
        single.train(_Data(node_x, node_y), epochs=passes)
        rows.append(
            (f"single node edge{node} ({len(node_y)} samples)", single.evaluate(test)["accuracy"])
        )
    for label, value in rows:
        gap = (value - central_accuracy) * 100
        print(f"    {label:<52} {value:.4f}  ({gap:+.1f} points vs centralized)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 MB models and fewer rounds")
    parser.add_argument("--skip-transport", action="store_true")
    args = parser.parse_args()
    logging.getLogger("sedna").setLevel(logging.WARNING)
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, grpcio {grpc.__version__}")
    if not args.skip_transport:
        sizes = [4 * MB] if args.quick else [4 * MB, 100 * MB]
        rounds = {4 * MB: 4, 100 * MB: 3} if args.quick else {4 * MB: 10, 100 * MB: 4}
        repeats = {4 * MB: 1, 100 * MB: 1} if args.quick else {4 * MB: 3, 100 * MB: 2}
        transport(sizes, [2, 4, 8], rounds, repeats)
    rounds, epochs = (20, 2) if args.quick else (40, 2)
    splits, (x_test, y_test) = split_digits(nodes=3, alpha=0.5, seed=0)
    test = _Data(x_test, y_test)
    federated = codecs(splits, test, rounds, epochs)
    accuracy(splits, test, rounds, epochs, federated)


if __name__ == "__main__":
    main()
