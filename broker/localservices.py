"""Start and stop a local ``mosquitto`` and ``redis-server`` on loopback (``sedna up``, tests).

Each service owns a directory holding its config, data, log and PID file, listens on 127.0.0.1
on a free (or given) port and can be stopped, killed (SIGKILL), frozen (SIGSTOP), thawed
(SIGCONT) and restarted on the same port with the same data. A process that an earlier run left
in the directory (its owner crashed) is found by its PID file and stopped before a new one
starts; it is recognised by its identity (command line and start time in ``/proc``), never by
name. `ServiceSupervisor` restarts services that die, with back-off.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Protocol, Self

from broker.client import BusSettings
from broker.mosquitto import BrokerCredentials, MosquittoOptions, write_mosquitto_config

__all__ = [
    "LocalService",
    "MissingBinary",
    "MosquittoService",
    "ProcessHandle",
    "ProcessIdentity",
    "RedisService",
    "ServiceError",
    "ServiceSupervisor",
    "find_binary",
    "free_port",
    "port_free",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Debian installs mosquitto in /usr/sbin, which is not on every user's PATH.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin")


class ServiceError(RuntimeError):
    """A local service could not be started or controlled."""


class MissingBinary(ServiceError):
    """The service's program is not installed."""


def find_binary(name: str, apt_package: str) -> str:
    """Return the path of program ``name``; raise `MissingBinary` naming its apt package."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_EXTRA_BIN_DIRS))
    if path is None:
        raise MissingBinary(
            f"{name!r} is not installed (looked in PATH and {', '.join(_EXTRA_BIN_DIRS)}); "
            f"install it with: apt-get install -y {apt_package}"
        )
    return path


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether ``port`` can be bound now; with SO_REUSEADDR, as every server here binds, so
    connections of an earlier process still in TIME_WAIT do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ProcessIdentity:
    """Who a process is: pid, start time (clock ticks since boot) and executable.

    A pid alone can be reused by an unrelated process after a crash; pid plus start time plus
    executable cannot. (Not the command line: Redis rewrites its own.)
    """

    def __init__(self, pid: int, start_ticks: int, exe: str) -> None:
        self.pid = pid
        self.start_ticks = start_ticks
        self.exe = exe

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of a live process, or None when there is none with that pid."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
            return None
        return cls(pid, int(fields[19]), exe)

    @classmethod
    def load(cls, path: Path) -> ProcessIdentity | None:
        """The identity recorded in a PID file, or None when there is no readable one."""
        try:
            data = json.loads(path.read_text())
            return cls(int(data["pid"]), int(data["startTicks"]), str(data["exe"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        """Write the PID file (atomically)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"pid": self.pid, "startTicks": self.start_ticks, "exe": self.exe})
        )
        tmp.replace(path)

    def alive(self) -> bool:
        """Whether this very process still runs."""
        now = ProcessIdentity.of(self.pid)
        return now is not None and (now.start_ticks, now.exe) == (self.start_ticks, self.exe)


def stop_leftover(pid_file: Path, what: str, timeout: float = 10.0) -> bool:
    """Stop the process a PID file names if it is still that process; returns whether one was.

    SIGTERM first (services save their data), SIGKILL after ``timeout``. The PID file goes.
    """
    recorded = ProcessIdentity.load(pid_file)
    found = recorded is not None and recorded.alive()
    if recorded is not None and found:
        log.warning("stopping %s left by an earlier run", what, extra={"pid": recorded.pid})
        os.kill(recorded.pid, signal.SIGCONT)
        os.kill(recorded.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while recorded.alive():
            if time.monotonic() > deadline:
                os.kill(recorded.pid, signal.SIGKILL)
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return found


class ProcessHandle(Protocol):
    """What `LocalService` needs of its process (`subprocess.Popen` has it)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def send_signal(self, sig: int) -> None: ...


_live: weakref.WeakSet[LocalService] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for service in list(_live):
        service.kill()


class LocalService:
    """A child process serving on ``host:port`` with its files in ``directory``."""

    binary: str = ""
    apt_package: str = ""
    #: Seconds `stop` waits for a graceful exit before SIGKILL.
    stop_timeout: float = 10.0

    def __init__(
        self, directory: Path, port: int | None = None, *, start_timeout: float = 10.0
    ) -> None:
        self.directory = Path(directory).resolve()
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self._process: ProcessHandle | None = None
        self._launched_at = 0.0
        self._stop_requested = False
        self._program = self._find_program()
        #: Whether the service should run (set by `start`, cleared by `stop` and `kill`).
        self.wanted = False

    # -- to be provided by each service ----------------------------------------------------

    def _find_program(self) -> str:
        """The program to run (default: ``binary`` on the PATH, or `MissingBinary`)."""
        return find_binary(self.binary, self.apt_package)

    def _spawn(self, out: IO[bytes]) -> ProcessHandle:
        """Start the process with its output going to ``out`` (the log file)."""
        return subprocess.Popen(
            self._command(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the child
        )

    def _request_stop(self, process: ProcessHandle) -> None:
        """Ask the process to stop gracefully (default SIGTERM: services save their data)."""
        process.terminate()

    def _prepare(self) -> None:
        """Write the config files (first start only)."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the service accepts connections."""
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Program name and address, for messages."""
        return f"{self.binary} on {self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file holding the process's output."""
        return self.directory / f"{self.binary}.log"

    @property
    def pid_file(self) -> Path:
        """The identity of the running process, so a later run can find what a crash left."""
        return self.directory / f"{self.binary}.pid"

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the process exists (it may be frozen)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the process and wait until it accepts connections."""
        if self.running:
            return self
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it (`wait_ready` does); several services
        launched one after the other then start side by side."""
        if self.running:
            return
        stop_leftover(self.pid_file, self.binary)
        if self._accepts_tcp():
            raise ServiceError(
                f"cannot start {self.name}: another process already listens on port {self.port}"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with self.log_path.open("ab") as out:
            self._process = self._spawn(out)
        self._stop_requested = False
        _live.add(self)
        self.wanted = True
        identity = ProcessIdentity.of(self._process.pid)
        if identity is not None:
            identity.save(self.pid_file)
        self._launched_at = time.monotonic()

    def wait_ready(self) -> Self:
        """Wait until the launched process accepts connections (`ServiceError` if it exits or
        takes longer than ``start_timeout``)."""
        if self._process is None:
            raise ServiceError(f"{self.name} was not launched")
        deadline = self._launched_at + self.start_timeout
        while True:
            if self._process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self._process.returncode} while starting; "
                    f"its log ({self.log_path}) ends with:\n{self._log_tail()}"
                )
            if self._ready():
                break
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(
                    f"{self.name} did not accept connections within {self.start_timeout}s; "
                    f"its log ({self.log_path}) ends with:\n{self._log_tail()}"
                )
            time.sleep(0.02)
        log.info("started %s", self.name, extra={"pid": self._process.pid})
        return self

    def request_stop(self) -> None:
        """Ask the process to stop and return at once (`stop` waits): stopping several
        services side by side takes as long as the slowest, not the sum."""
        self.wanted = False
        process = self._process
        if process is None or process.poll() is not None or self._stop_requested:
            return
        self.thaw()
        self._request_stop(process)
        self._stop_requested = True

    def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully (SIGTERM; services save their data), SIGKILL after ``timeout``
        (default ``stop_timeout``)."""
        timeout = self.stop_timeout if timeout is None else timeout
        self.request_stop()
        process = self._process
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %ss; killing it", self.name, timeout)
            process.kill()
            process.wait()
        _live.discard(self)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: the process loses whatever it had not saved."""
        self.wanted = False
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()
        _live.discard(self)
        self.pid_file.unlink(missing_ok=True)

    def freeze(self) -> None:
        """SIGSTOP: the process holds its connections but answers nothing."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        self._signal(signal.SIGCONT)

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        return self.start()

    def _signal(self, signum: int) -> None:
        if not self.running or self._process is None:
            raise ServiceError(f"{self.name} is not running")
        self._process.send_signal(signum)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _accepts_tcp(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MosquittoService(LocalService):
    """A Mosquitto broker with persistence, optionally with per-node users and ACL."""

    binary = "mosquitto"
    apt_package = "mosquitto"

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        auth: bool = False,
        nodes: Iterable[str] = (),
        credentials: BrokerCredentials | None = None,
        max_queued_messages: int = 100_000,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__(directory, port, start_timeout=start_timeout)
        self.auth = auth
        self.nodes = list(nodes)
        self.credentials = credentials
        self.max_queued_messages = max_queued_messages
        self._prepared = False

    def _prepare(self) -> None:
        if self._prepared:
            return
        options = MosquittoOptions(
            port=self.port,
            host=self.host,
            data_dir=self.directory / "data",
            auth=self.auth,
            max_queued_messages=self.max_queued_messages,
        )
        files = write_mosquitto_config(
            self.directory, options, nodes=self.nodes, credentials=self.credentials
        )
        self.credentials = files.credentials
        self.config_path = files.config
        self._prepared = True

    def _command(self) -> list[str]:
        return [self._program, "-c", str(self.config_path)]

    def _ready(self) -> bool:
        return self._accepts_tcp()

    def settings(self, user: str | None = None, **overrides: object) -> BusSettings:
        """Bus settings for this broker; ``user`` is ``gm`` or a node name when auth is on."""
        username = password = None
        if self.auth:
            if self.credentials is None:
                raise ServiceError(f"{self.name}: start it before asking for credentials")
            if user is None:
                raise ValueError("this broker requires a user: 'gm' or a node name")
            creds = (
                self.credentials.gm
                if user == self.credentials.gm.username
                else self.credentials.for_node(user)
            )
            username, password = creds.username, creds.password
        return BusSettings(
            host=self.host, port=self.port, username=username, password=password, **overrides
        )


class RedisService(LocalService):
    """A Redis server with append-only persistence in its directory."""

    binary = "redis-server"
    apt_package = "redis-server"

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        appendfsync: str = "everysec",
        password: str | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        if password is not None and not password.isalnum():
            raise ValueError("the Redis password must be letters and digits (it goes in a URL)")
        super().__init__(directory, port, start_timeout=start_timeout)
        self.appendfsync = appendfsync
        self.password = password

    @property
    def url(self) -> str:
        """``redis://[:<password>@]127.0.0.1:<port>/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def config_path(self) -> Path:
        """``redis.conf``: private (mode 0600) because it holds the password."""
        return self.directory / "redis.conf"

    def _prepare(self) -> None:
        # In a file, not on the command line, which every local user can read in /proc.
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            f'dir "{self.directory}"',
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            "protected-mode yes",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _command(self) -> list[str]:
        return [self._program, str(self.config_path)]

    def _ready(self) -> bool:
        # INFO fails with -LOADING while Redis reads its AOF; the pid proves it is our process.
        auth = f"AUTH {self.password}\r\n".encode() if self.password else b""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(auth + b"INFO server\r\n")
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n\r\n"):
                    chunk = sock.recv(65536)
                    if not chunk or reply.startswith(b"-"):
                        break
                    reply += chunk
        except OSError:
            return False
        return f"process_id:{self.pid}\r\n".encode() in reply


class ServiceSupervisor:
    """Restarts services that die (a crash, an OOM kill), waiting longer after each failure.

    A service is restarted when it should run (`LocalService.wanted`) but its process is gone.
    The delay doubles from ``min_delay`` to ``max_delay`` with every restart that follows
    closely on the last, and starts over once the service has stayed up for ``max_delay``.
    """

    def __init__(
        self,
        services: Iterable[LocalService],
        *,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        poll: float = 0.2,
    ) -> None:
        self.services = list(services)
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.poll = poll
        #: Restarts done, by service name (for logs and tests).
        self.restarts: dict[str, int] = {}
        self._delay = {id(s): min_delay for s in self.services}
        self._last_restart = {id(s): 0.0 for s in self.services}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="service-supervisor", daemon=True)

    def start(self) -> None:
        """Watch in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the services keep running)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        died_at: dict[int, float] = {}
        while not self._stop.wait(self.poll):
            for service in self.services:
                key = id(service)
                if not service.wanted or service.running:
                    died_at.pop(key, None)
                    continue
                now = time.monotonic()
                if key not in died_at:
                    died_at[key] = now
                    if now - self._last_restart[key] > self.max_delay:
                        self._delay[key] = self.min_delay
                    log.warning("%s died; restarting in %.1fs", service.name, self._delay[key])
                if now - died_at[key] < self._delay[key]:
                    continue
                self._delay[key] = min(self._delay[key] * 2, self.max_delay)
                self._last_restart[key] = now
                died_at[key] = now
                try:
                    service.start()
                except ServiceError as exc:
                    log.error("restarting %s failed: %s", service.name, exc)
                    service.wanted = True  # a failed start gave up; keep trying
                    continue
                self.restarts[service.name] = self.restarts.get(service.name, 0) + 1
                log.info("restarted %s", service.name, extra={"pid": service.pid})
