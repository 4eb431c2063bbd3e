"""``sedna up``, ``gm``, ``lc``, ``kb`` and ``ops``: run the control plane, all in one or in
parts."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from apis import InvalidSettings
from gm import GMApp, GMSettings
from kb import KBServer, KBSettings
from lc import LCSettings, LocalController
from opsui import OpsSettings, OpsUI
from sedna_cli import logs
from sedna_cli.stack import Stack, StackError, StackOptions

log = logging.getLogger("sedna")


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``up``, ``gm``, ``lc`` and ``kb``."""
    up = subparsers.add_parser("up", help="run everything on this machine (Ctrl-C stops it)")
    up.add_argument("--data-dir", type=Path, default=Path("data"), help="state directory")
    up.add_argument(
        "--nodes",
        default="cloud0,edge0,edge1",
        help="comma-separated node names; one LC each (default cloud0,edge0,edge1)",
    )
    up.add_argument("--api-port", type=int, default=0, help="API server port (0: any free)")
    up.add_argument("--mqtt-url", help="use this broker instead of starting Mosquitto")
    up.add_argument("--redis-url", help="use this Redis instead of starting one")
    up.add_argument(
        "--no-mqtt-auth", action="store_true", help="start Mosquitto without users and ACLs"
    )
    up.add_argument(
        "--backend",
        choices=("edge-process", "pods"),
        default="edge-process",
        help="how workers run: LC processes (default) or Pods for a kubelet to run",
    )
    up.add_argument("--log-level", default="INFO")
    up.set_defaults(run=run_up)

    gm = subparsers.add_parser("gm", help="run the GlobalManager against a cluster and broker")
    GMSettings.add_arguments(gm)
    gm.add_argument("--log-level", default="INFO")
    gm.set_defaults(run=run_gm)

    lc = subparsers.add_parser("lc", help="run the LocalController of one node")
    LCSettings.add_arguments(lc)
    lc.add_argument("--log-level", default="INFO")
    lc.set_defaults(run=run_lc)

    kb = subparsers.add_parser("kb", help="run the lifelong learning knowledge base")
    KBSettings.add_arguments(kb)
    kb.add_argument("--log-level", default="INFO")
    kb.set_defaults(run=run_kb)

    ops = subparsers.add_parser("ops", help="serve the operations page (jobs, plots, logs)")
    OpsSettings.add_arguments(ops)
    ops.add_argument("--log-level", default="INFO")
    ops.set_defaults(run=run_ops)


def stack_options(args: argparse.Namespace) -> StackOptions:
    """The stack ``sedna up`` was asked for."""
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    if not nodes:
        raise SystemExit("sedna up: --nodes needs at least one node name")
    return StackOptions(
        data_dir=args.data_dir,
        nodes=nodes,
        api_port=args.api_port,
        mqtt_url=args.mqtt_url,
        redis_url=args.redis_url,
        mqtt_auth=not args.no_mqtt_auth,
        backend=args.backend,
        processes="all",
        log_level=args.log_level,
    )


def run_up(args: argparse.Namespace) -> int:
    """Start everything (each part in its own process), print where it is, stop cleanly on
    Ctrl-C (SIGINT or SIGTERM)."""
    logs.configure(args.log_level)
    stack = Stack(stack_options(args))
    stack.on_node_state = lambda node, state: print(f"node {node} is {state}", flush=True)
    try:
        try:
            stack.start()
        except StackError as exc:
            raise SystemExit(f"sedna up: {exc}") from None
        print(f"sedna is up; data in {stack.data_dir}", flush=True)
        print(f"  export KUBECONFIG={stack.kubeconfig}", flush=True)
        print(f"  endpoints: {stack.endpoints_file}", flush=True)
        print(f"  ops page: {stack.ops_url} (log in with the kubeconfig's token)", flush=True)
        print("  Ctrl-C stops it", flush=True)
        _wait_for_signal()
    finally:
        print("stopping…", flush=True)
        stack.stop()
    return 0


class _Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def _serve(name: str, build: Callable[[], _Component]) -> int:
    """Build a component from validated settings, run it until SIGINT/SIGTERM, stop it."""
    try:
        component = build()
    except InvalidSettings as exc:
        raise SystemExit(f"sedna {name}: {exc}") from None
    try:
        component.start()
        _wait_for_signal()
    finally:
        component.stop()
    return 0


def run_gm(args: argparse.Namespace) -> int:
    """Run the GM until SIGINT/SIGTERM."""
    logs.configure(args.log_level)
    return _serve("gm", lambda: GMApp(GMSettings.from_args(args)))


def run_lc(args: argparse.Namespace) -> int:
    """Run one node's LC until SIGINT/SIGTERM (its workers keep running for the next LC)."""
    logs.configure(args.log_level)
    return _serve("lc", lambda: LocalController(LCSettings.from_args(args)))


def run_kb(args: argparse.Namespace) -> int:
    """Run the knowledge base until SIGINT/SIGTERM."""
    logs.configure(args.log_level)
    return _serve("kb", lambda: KBServer(KBSettings.from_args(args)))


def run_ops(args: argparse.Namespace) -> int:
    """Serve the ops page until SIGINT/SIGTERM."""
    logs.configure(args.log_level)
    return _serve("ops", lambda: OpsUI(OpsSettings.from_args(args)))
