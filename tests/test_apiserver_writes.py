"""The write path under concurrency: group commit keeps resourceVersion order, watches see every
write once in order, and an answered write survives a kill -9 of the server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from apiserver import ApiServer
from apiserver.server import ApiServerError
from apiserver.store import CommitFailed, Key, Store
from tests.apiserver_fixtures import DATASET_CRD_YAML, crds_for_tests, dataset
from tests.services import wait_for

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "sedna.io", "v1alpha1", "datasets"
THREADS, PER_THREAD = 8, 15
SERVER = [sys.executable, "-m", "apiserver", "--no-builtin-crds"]


def _custom(kubeconfig: Path) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))


def _create_concurrently(kubeconfig: Path, prefix: str) -> dict[str, int]:
    """THREADS threads, each with its own client, create PER_THREAD Datasets; name -> rv."""
    created: dict[str, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        api = _custom(kubeconfig)
        last = 0
        try:
            for index in range(PER_THREAD):
                name = f"{prefix}-{thread}-{index}"
                obj = api.create_namespaced_custom_object(
                    GROUP, VERSION, "default", PLURAL, dataset(name)
                )
                rv = int(obj["metadata"]["resourceVersion"])
                assert rv > last, f"{name}: resourceVersion {rv} after {last} on one thread"
                last = rv
                with lock:
                    created[name] = rv
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(created) == THREADS * PER_THREAD
    return created


def test_concurrent_creates_get_distinct_increasing_versions_seen_once_by_a_watch(
    tmp_path: Path,
) -> None:
    with ApiServer(tmp_path / "data", crds=crds_for_tests()) as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        start = server.resource_version
        total = THREADS * PER_THREAD
        seen: list[tuple[str, str, int]] = []
        watching = threading.Event()

        def watch_all() -> None:
            stream = watch.Watch().stream(
                _custom(kubeconfig).list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                PLURAL,
                resource_version=str(start),
                timeout_seconds=60,
            )
            watching.set()
            for event in stream:
                meta = event["object"]["metadata"]
                seen.append((event["type"], meta["name"], int(meta["resourceVersion"])))
                if len(seen) >= total:
                    return

        watcher = threading.Thread(target=watch_all, daemon=True)
        watcher.start()
        watching.wait(10)
        created = _create_concurrently(kubeconfig, "c")

        # Every create took its own resourceVersion, with no gap and no repeat.
        assert sorted(created.values()) == list(range(start + 1, start + total + 1))
        assert server.resource_version == start + total
        watcher.join(60)
        # The watch saw each create exactly once, in resourceVersion order, as answered.
        assert [rv for _, _, rv in seen] == sorted(created.values())
        assert all(kind == "ADDED" for kind, _, _ in seen)
        assert {name: rv for _, name, rv in seen} == created


def test_concurrent_transactions_are_committed_in_groups(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", sync="full")
    commits: list[int] = []
    write_batch = store._write_batch

    def counting(batch: list[Any]) -> int:
        commits.append(len(batch))
        return write_batch(batch)

    store._write_batch = counting  # type: ignore[method-assign]

    def work(thread: int) -> None:
        for index in range(25):
            with store.transaction() as txn:
                txn.put(Key("g", "things", "", f"t{thread}-{index}"), {"metadata": {}}, None)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(commits) == 200 == store.resource_version
    assert len(commits) < 200, "no two transactions shared a commit"
    events, _ = store.events_after(0, "g", "things", limit=500)
    assert [e.rv for e in events] == list(range(1, 201))
    store.close()


def test_a_transaction_sees_writes_still_waiting_for_their_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    release = threading.Event()
    write_batch = store._write_batch

    def slow(batch: list[Any]) -> int:
        release.wait(10)
        return write_batch(batch)

    store._write_batch = slow  # type: ignore[method-assign]
    key = Key("g", "things", "ns", "a")

    def create() -> None:
        with store.transaction() as txn:
            txn.put(key, {"metadata": {"name": "a"}}, None)

    writer = threading.Thread(target=create)
    writer.start()
    wait_for(lambda: store._pending, 5, "the write to be queued")
    # Readers see committed data only; a transaction sees the queued write.
    assert store.get(key) is None and store.resource_version == 0
    assert store.scan("g", "things") == ([], 0)
    seen: list[Any] = []

    def read_in_txn() -> None:
        with store.transaction() as txn:
            seen.append(txn.get(key))
            seen.append([k.name for k in txn.keys_in_namespace("ns")])

    reader = threading.Thread(target=read_in_txn)
    reader.start()
    wait_for(lambda: len(seen) == 2, 5, "the transaction's reads")
    assert seen == [{"metadata": {"name": "a", "resourceVersion": "1"}}, ["a"]]
    assert reader.is_alive(), "a transaction that read uncommitted data must wait for its commit"
    release.set()
    writer.join(10)
    reader.join(10)
    assert not reader.is_alive() and store.get(key) == seen[0]
    store.close()


def test_a_failed_group_commit_fails_its_requests_and_keeps_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    write_batch = store._write_batch
    failing = [True]

    def broken(batch: list[Any]) -> int:
        if failing[0]:
            raise OSError("disk full")
        return write_batch(batch)

    store._write_batch = broken  # type: ignore[method-assign]
    key = Key("g", "things", "", "a")
    with pytest.raises(CommitFailed, match="could not write"), store.transaction() as txn:
        txn.put(key, {"metadata": {}}, None)
    assert store.get(key) is None and store.resource_version == 0 and not store._pending
    failing[0] = False
    with store.transaction() as txn:
        assert txn.get(key) is None
        txn.put(key, {"metadata": {}}, None)
    assert store.resource_version == 1 and store.get(key) is not None
    store.close()


def test_an_unknown_sync_mode_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEDNA_APISERVER_SYNC", "sometimes")
    with pytest.raises(ApiServerError, match=r"SEDNA_APISERVER_SYNC\) must be one of full, normal"):
        ApiServer(tmp_path)
    monkeypatch.setenv("SEDNA_APISERVER_SYNC", "normal")
    with ApiServer(tmp_path / "data") as server:
        assert server.resource_version > 0  # the initial namespaces were written


@contextmanager
def _server_process(data_dir: Path, crd_file: Path, sync: str) -> Iterator[subprocess.Popen]:
    """`python -m apiserver` on `data_dir` until the test is done with it (or kills it)."""
    kubeconfig = data_dir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    process = subprocess.Popen(
        [*SERVER, "--data-dir", str(data_dir), "--crd", str(crd_file), "--sync", sync],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_for(lambda: kubeconfig.exists() or process.poll() is not None, 60, "the server")
        assert process.poll() is None, "the API server exited"
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_answered_writes_survive_kill_9_of_the_server(tmp_path: Path, sync: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(DATASET_CRD_YAML)
    kubeconfig = data_dir / "kubeconfig"
    with _server_process(data_dir, crd_file, sync) as process:
        created = _create_concurrently(kubeconfig, "k")
        os.kill(process.pid, signal.SIGKILL)  # no shutdown of any kind
        process.wait(10)

    with _server_process(data_dir, crd_file, sync):
        api = _custom(kubeconfig)
        listed = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
        stored = {
            o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in listed["items"]
        }
        assert stored == created
        newest = max(created.values())
        assert int(listed["metadata"]["resourceVersion"]) >= newest
        after = api.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, dataset("after-restart")
        )
        assert int(after["metadata"]["resourceVersion"]) > newest
