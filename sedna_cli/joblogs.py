"""``sedna logs JOB``: the output of a job's workers, read through the API server.

The way ``kubectl logs`` works: the job's ``status.workers`` name each worker and its node; each
worker's log is ``GET /api/v1/namespaces/<ns>/pods/<worker>/log`` on the API server, which asks
the LC of that node (``apiserver.podlogs``, ``lc.logserver``). No node's data directory is read
here, so it works from any machine with a kubeconfig.

Python callers (the ops page) use :func:`find_job` and :func:`read_logs`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from apis import KINDS, KindInfo

#: Where ``sedna up`` (default ``--data-dir data``) writes its kubeconfig.
UP_KUBECONFIG = Path("data") / "kubeconfig"


class LogsError(RuntimeError):
    """What the user asked for does not exist or cannot be read; the message says which."""


@dataclass(frozen=True)
class Worker:
    """One worker of a job and the node it runs (ran) on."""

    name: str
    node: str | None


@dataclass(frozen=True)
class Job:
    """A Sedna job (or service) and its workers, as its status lists them."""

    kind: str
    namespace: str
    name: str
    workers: tuple[Worker, ...]


@dataclass(frozen=True)
class LogLine:
    """One line of one worker's output (without its newline)."""

    worker: str
    text: str


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _refused(exc: ApiException) -> LogsError | None:
    if exc.status == 401:
        return LogsError("the API server refused the credentials (401 Unauthorized)")
    if exc.status == 403:
        return LogsError(f"the API server forbids it (403): {_api_message(exc)}")
    return None


def _kinds(wanted: str | None) -> list[KindInfo]:
    if wanted is None:
        return list(KINDS)
    lowered = wanted.lower()
    found = [
        info
        for info in KINDS
        if lowered in (info.kind.lower(), info.plural, info.singular, *info.short_names)
    ]
    if not found:
        raise LogsError(f"unknown kind {wanted!r}; kinds: {', '.join(i.kind for i in KINDS)}")
    return found


def find_job(api: client.ApiClient, namespace: str, ref: str) -> Job:
    """The job named ``ref`` (``name`` or ``kind/name``) in ``namespace``; raises
    :class:`LogsError` naming what is missing or ambiguous."""
    kind, _, name = ref.rpartition("/")
    custom = client.CustomObjectsApi(api)
    matches: list[tuple[KindInfo, dict[str, Any]]] = []
    kinds = _kinds(kind or None)
    for info in kinds:
        try:
            obj = custom.get_namespaced_custom_object(
                info.group, info.version, namespace, info.plural, name
            )
        except ApiException as exc:
            if (refused := _refused(exc)) is not None:
                raise refused from None
            if exc.status == 404:
                continue
            raise LogsError(f"cannot read {info.kind} {name}: {_api_message(exc)}") from None
        matches.append((info, obj))
    if not matches:
        looked = ", ".join(i.kind for i in kinds)
        raise LogsError(f"no job named {name!r} in namespace {namespace!r} (looked for {looked})")
    if len(matches) > 1:
        options = ", ".join(f"{i.singular}/{name}" for i, _ in matches)
        raise LogsError(f"{name!r} names more than one resource; say which: {options}")
    info, obj = matches[0]
    entries = (obj.get("status") or {}).get("workers") or []
    workers = tuple(Worker(str(w["name"]), w.get("nodeName")) for w in entries if w.get("name"))
    return Job(info.kind, namespace, name, workers)


def select_workers(job: Job, worker: str | None) -> list[Worker]:
    """The workers to read: all of the job's, or the one named (raises naming what is wrong)."""
    if not job.workers:
        raise LogsError(f"{job.kind} {job.namespace}/{job.name} has no workers (yet)")
    if worker is None:
        return list(job.workers)
    chosen = [w for w in job.workers if w.name == worker]
    if not chosen:
        names = ", ".join(w.name for w in job.workers)
        raise LogsError(f"{job.kind} {job.name} has no worker {worker!r}; its workers: {names}")
    return chosen


def worker_log(
    api: client.ApiClient,
    namespace: str,
    worker: str,
    *,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    previous: bool = False,
) -> Iterator[str]:
    """The lines of one worker's log (``pods/<worker>/log``); with ``follow`` as they come,
    until the worker ends. Raises :class:`LogsError` with the API server's reason."""
    params: dict[str, Any] = {"follow": follow, "timestamps": timestamps, "previous": previous}
    if tail is not None:
        params["tail_lines"] = tail
    try:
        response = client.CoreV1Api(api).read_namespaced_pod_log(
            worker, namespace, _preload_content=False, **params
        )
    except ApiException as exc:
        refused = _refused(exc)
        raise (refused or LogsError(f"worker {worker}: {_api_message(exc)}")) from None
    pending = b""
    try:
        for chunk in response.stream(65536, decode_content=False):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.decode("utf-8", "replace")
    except HTTPError as exc:
        raise LogsError(f"worker {worker}: the log stream broke: {exc}") from None
    finally:
        response.release_conn()
        response.close()


def read_logs(
    api: client.ApiClient,
    namespace: str,
    job: str,
    *,
    worker: str | None = None,
    grep: str | None = None,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
    previous: bool = False,
    errors: list[str] | None = None,
) -> Iterator[LogLine]:
    """The log lines of a job's workers (or one), those containing ``grep`` if given.

    Workers are read in parallel; with ``follow``, until every one ended. A worker whose log
    cannot be read is named in ``errors`` (raised as :class:`LogsError` when it is the only
    one). Closing the iterator stops the reads.
    """
    chosen = select_workers(find_job(api, namespace, job), worker)
    lines: queue.Queue[LogLine | BaseException | None] = queue.Queue(maxsize=10_000)
    stop = threading.Event()

    def pump(name: str) -> None:
        try:
            for text in worker_log(
                api,
                namespace,
                name,
                follow=follow,
                tail=tail,
                timestamps=timestamps,
                previous=previous,
            ):
                if stop.is_set():
                    return
                if grep is None or grep in text:
                    lines.put(LogLine(name, text))
        except BaseException as exc:  # handed to the reader
            lines.put(exc)
        finally:
            lines.put(None)

    threads = [
        threading.Thread(target=pump, args=(w.name,), name=f"logs-{w.name}", daemon=True)
        for w in chosen
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    failures: list[str] = []
    try:
        while running:
            item = lines.get()
            if item is None:
                running -= 1
            elif isinstance(item, LogLine):
                yield item
            elif isinstance(item, LogsError) and len(chosen) > 1:
                failures.append(str(item))
            else:
                raise item
    finally:
        stop.set()
    if errors is not None:
        errors.extend(failures)


# --- the command --------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sedna logs``."""
    parser = subparsers.add_parser(
        "logs",
        help="print (or follow) the logs of a job's workers, from whichever node holds them",
        description=(
            "Reads the logs through the API server (as kubectl logs does), so only a "
            "kubeconfig is needed. JOB is a job's name or KIND/NAME."
        ),
    )
    parser.add_argument("job", metavar="JOB")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--worker", "-w", help="only this worker (default: all of the job's)")
    parser.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the workers end"
    )
    parser.add_argument("--tail", type=int, metavar="N", help="the last N lines of each worker")
    parser.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    parser.add_argument(
        "-p", "--previous", action="store_true", help="the run before a worker's restart"
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help=f"default: $KUBECONFIG, else {UP_KUBECONFIG} (sedna up), else ~/.kube/config",
    )
    parser.set_defaults(run=run)


def _kubeconfig(given: Path | None) -> str:
    if given is not None:
        if not given.is_file():
            raise LogsError(f"--kubeconfig {given}: no such file")
        return str(given)
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    if UP_KUBECONFIG.is_file():
        return str(UP_KUBECONFIG)
    return str(Path.home() / ".kube" / "config")


def run(args: argparse.Namespace) -> int:
    """Print the lines; exit 1 naming the problem when something cannot be read."""
    from gm.app import api_client_for  # the one way a kubeconfig becomes a client

    if args.tail is not None and args.tail < 0:
        print("sedna logs: --tail must be 0 or more", file=sys.stderr)
        return 2
    errors: list[str] = []
    try:
        api = api_client_for(_kubeconfig(args.kubeconfig))
        lines = read_logs(
            api,
            args.namespace,
            args.job,
            worker=args.worker,
            grep=args.grep,
            follow=args.follow,
            tail=args.tail,
            timestamps=args.timestamps,
            previous=args.previous,
            errors=errors,
        )
        prefix: bool | None = None
        for line in lines:
            if prefix is None:
                prefix = args.worker is None
            print(f"[{line.worker}] {line.text}" if prefix else line.text, flush=args.follow)
    except LogsError as exc:
        print(f"sedna logs: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0  # Ctrl-C ends a follow; nothing is wrong
    except Exception as exc:  # a kubeconfig that does not load, an unreachable server
        print(f"sedna logs: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for error in errors:
        print(f"sedna logs: {error}", file=sys.stderr)
    return 1 if errors else 0
