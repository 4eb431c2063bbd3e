"""The supervisor's parts: process identity, leftovers of a crashed run, restarts, one run per
data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.localservices import (
    MosquittoService,
    ProcessIdentity,
    RedisService,
    ServiceError,
    ServiceSupervisor,
    free_port,
    stop_leftover,
)
from kb import KBSettings
from sedna_cli.procs import ComponentProcess
from sedna_cli.stack import PortBook, Stack, StackError, StackOptions
from tests.services import wait_for


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_a_pid_file_naming_another_process_stops_nothing(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Same pid, other start time (the pid was reused after a crash): left alone."""
    real = ProcessIdentity.of(sleeper.pid)
    assert real is not None
    ProcessIdentity(sleeper.pid, real.start_ticks + 1, real.exe).save(tmp_path / "x.pid")
    assert stop_leftover(tmp_path / "x.pid", "x") is False
    assert sleeper.poll() is None and not (tmp_path / "x.pid").exists()
    real.save(tmp_path / "x.pid")
    assert stop_leftover(tmp_path / "x.pid", "x") is True
    assert sleeper.wait(5) == -signal.SIGTERM


def test_a_new_service_object_stops_what_a_crashed_owner_left(tmp_path: Path) -> None:
    first = RedisService(tmp_path / "redis", password="secret1").start()
    orphan = first.pid
    assert orphan is not None
    first._process = None  # its owner crashed: nobody will stop it
    second = RedisService(tmp_path / "redis", first.port, password="secret1").start()
    try:
        assert ProcessIdentity.of(orphan) is None and second.pid != orphan
    finally:
        second.stop()


def test_dead_services_are_restarted_on_their_port_but_stopped_ones_are_not(
    tmp_path: Path,
) -> None:
    broker = MosquittoService(tmp_path / "mosquitto").start()
    store = RedisService(tmp_path / "redis").start()
    supervisor = ServiceSupervisor([broker, store], min_delay=0.1, max_delay=1.0, poll=0.05)
    supervisor.start()
    try:
        for round_number in (1, 2):
            old = broker.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            wait_for(
                lambda n=round_number: supervisor.restarts.get(broker.name) == n,
                10,
                f"Mosquitto restarted ({round_number})",
            )
            assert broker.pid != old and broker._ready()
        assert supervisor.restarts == {broker.name: 2}
        store.stop()
        time.sleep(0.5)  # ten polls: a stopped service stays stopped
        assert not store.running and store.name not in supervisor.restarts
    finally:
        supervisor.stop()
        broker.stop()


def test_a_second_sedna_up_on_one_data_directory_is_refused(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    running = ProcessIdentity.of(sleeper.pid)
    assert running is not None
    running.save(data / "sedna-up.pid")
    with pytest.raises(StackError, match=f"already runs .*pid {sleeper.pid}"):
        Stack(StackOptions(data_dir=data, nodes=["edge0"])).start()


def test_ports_are_remembered_and_replaced_only_when_taken(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "ports.json")
    port = book.port("mqtt")
    assert PortBook(tmp_path / "ports.json").port("mqtt") == port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        replaced = PortBook(tmp_path / "ports.json").port("mqtt")
    assert replaced != port
    assert PortBook(tmp_path / "ports.json").port("mqtt") == replaced


def test_a_component_process_is_restarted_and_a_bad_one_fails_with_its_reason(
    tmp_path: Path,
) -> None:
    """A component of ``sedna up`` in its own process: PID file by identity, JSON log file,
    restarted on its port when it dies; settings it cannot start with name the problem."""
    port = free_port()
    kb = ComponentProcess(
        "kb", KBSettings(port=port, data_dir=tmp_path / "kb" / "data"), tmp_path / "kb", port
    ).start()
    supervisor = ServiceSupervisor([kb], min_delay=0.1, max_delay=1.0, poll=0.05)
    supervisor.start()
    try:
        first = ProcessIdentity.load(tmp_path / "kb" / "kb.pid")
        assert first is not None and first.alive() and first.pid == kb.pid
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: supervisor.restarts.get(kb.name) == 1, 30, "kb restarted")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            assert reply.status == 200
    finally:
        supervisor.stop()
        kb.stop()
    assert not (tmp_path / "kb" / "kb.pid").exists()
    assert all(json.loads(line) for line in (tmp_path / "kb" / "kb.log").read_text().splitlines())

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    with taken:
        busy = taken.getsockname()[1]
        broken = ComponentProcess(
            "kb", KBSettings(port=busy, data_dir=tmp_path / "kb2"), tmp_path / "kb2", free_port()
        )
        with pytest.raises(ServiceError, match=r"kb on .* could not start: OSError: .*in use"):
            broken.start()
