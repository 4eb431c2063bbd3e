"""Start and stop a local ``mosquitto`` and ``redis-server`` on loopback (``sedna up``, tests).

Each service owns a directory holding its config, data and log, listens on 127.0.0.1 on a free
(or given) port and can be stopped, killed (SIGKILL), frozen (SIGSTOP), thawed (SIGCONT) and
restarted on the same port with the same data.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from broker.client import BusSettings
from broker.mosquitto import BrokerCredentials, MosquittoOptions, write_mosquitto_config

__all__ = [
    "LocalService",
    "MissingBinary",
    "MosquittoService",
    "RedisService",
    "ServiceError",
    "find_binary",
    "free_port",
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


_live: weakref.WeakSet[LocalService] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for service in list(_live):
        service.kill()


class LocalService:
    """A child process serving on ``host:port`` with its files in ``directory``."""

    binary: str = ""
    apt_package: str = ""

    def __init__(
        self, directory: Path, port: int | None = None, *, start_timeout: float = 10.0
    ) -> None:
        self.directory = Path(directory).resolve()
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._program = find_binary(self.binary, self.apt_package)

    # -- to be provided by each service ----------------------------------------------------

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
        if self._accepts_tcp():
            raise ServiceError(
                f"cannot start {self.name}: another process already listens on port {self.port}"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with self.log_path.open("ab") as out:
            self._process = subprocess.Popen(
                self._command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the child
            )
        _live.add(self)
        deadline = time.monotonic() + self.start_timeout
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

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM; services save their data), SIGKILL after ``timeout``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        self.thaw()
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %ss; killing it", self.name, timeout)
            process.kill()
            process.wait()
        _live.discard(self)

    def kill(self) -> None:
        """SIGKILL: the process loses whatever it had not saved."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()
        _live.discard(self)

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
        start_timeout: float = 10.0,
    ) -> None:
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        super().__init__(directory, port, start_timeout=start_timeout)
        self.appendfsync = appendfsync

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            self._program,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip

    def _ready(self) -> bool:
        # INFO fails with -LOADING while Redis reads its AOF; the pid proves it is our process.
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"INFO server\r\n")
                reply = b""
                while b"process_id:" not in reply or not reply.endswith(b"\r\n\r\n"):
                    chunk = sock.recv(65536)
                    if not chunk or reply.startswith(b"-"):
                        break
                    reply += chunk
        except OSError:
            return False
        return f"process_id:{self.pid}\r\n".encode() in reply
