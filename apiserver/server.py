"""`ApiServer`: the embedded API server's lifecycle (storage, TLS, token, HTTP thread)."""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from apiserver.app import ApiApp
from apiserver.audit import RequestLog
from apiserver.builtins import BUILTIN_TYPES, INITIAL_NAMESPACES
from apiserver.errors import ApiError
from apiserver.httpd import ApiHttpServer, tls_context
from apiserver.kubeconfig import KubeconfigSettings, write_kubeconfig
from apiserver.objects import ObjectService
from apiserver.pki import Credentials, ensure_credentials
from apiserver.registry import Registry
from apiserver.store import SYNC_MODES, Store

log = logging.getLogger(__name__)

DEFAULT_HISTORY_SIZE = 10_000
# Every answered write survives a power loss (apiserver/README.md, "Writes: group commit...").
DEFAULT_SYNC = "full"
SYNC_ENV = "SEDNA_APISERVER_SYNC"


class ApiServerError(RuntimeError):
    """The server cannot start (data directory in use, bad CRD, port taken...)."""


class ApiServer:
    """A Kubernetes-compatible API server backed by SQLite in `data_dir`.

    Serves HTTPS with a CA and bearer token created on first start and kept in `data_dir`;
    `write_kubeconfig` produces a kubeconfig for kubectl and the `kubernetes` client. `sync`
    ("full" or "normal", default `$SEDNA_APISERVER_SYNC` or "full") is how far a write is on
    disk before it is answered. `node_log_secret` lets it read workers' logs from their nodes'
    LCs (`apiserver.podlogs`); without it `pods/<name>/log` answers 503.
    """

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        crds: Sequence[dict[str, Any]] = (),
        *,
        history_size: int = DEFAULT_HISTORY_SIZE,
        audit_log: Path | None = None,
        sync: str | None = None,
        node_log_secret: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._node_log_secret = node_log_secret
        self.host = host
        self._requested_port = port
        self._crds = tuple(copy.deepcopy(dict(c)) for c in crds)
        self._history_size = history_size
        self._sync = sync or os.environ.get(SYNC_ENV) or DEFAULT_SYNC
        if self._sync not in SYNC_MODES:
            raise ApiServerError(
                f"sync (or ${SYNC_ENV}) must be one of {', '.join(SYNC_MODES)}, not {self._sync!r}"
            )
        self._request_log = RequestLog.from_environment(audit_log)
        self._store: Store | None = None
        self._http: ApiHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._credentials: Credentials | None = None
        self._lock_file: IO[str] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Open storage, install CRDs and start serving; returns once requests are accepted."""
        if self._http is not None:
            raise ApiServerError("the API server is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        try:
            self._start()
        except BaseException:
            self._release()
            raise

    def _start(self) -> None:
        self._stopping.clear()
        hosts = [self.host] if self.host not in ("", "0.0.0.0", "::") else []
        self._credentials = ensure_credentials(self.data_dir, hosts)
        self._store = Store(
            self.data_dir / "store.sqlite3", history_size=self._history_size, sync=self._sync
        )
        registry = Registry(BUILTIN_TYPES)
        service = ObjectService(self._store, registry)
        service.ensure_namespaces(INITIAL_NAMESPACES)
        try:
            service.install_crds(self._crds)
        except ApiError as exc:
            raise ApiServerError(f"cannot install the given CRDs: {exc.message}") from exc
        app = ApiApp(
            registry,
            service,
            token=self._credentials.token,
            stopping=self._stopping,
            server_address=lambda: f"{self.host}:{self.port}",
            request_log=self._request_log,
            node_log_secret=self._node_log_secret,
        )
        try:
            self._http = ApiHttpServer(
                (self.host, self._requested_port),
                app,
                tls_context(str(self._credentials.server_cert), str(self._credentials.server_key)),
            )
        except OSError as exc:
            raise ApiServerError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"apiserver-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info(
            "API server serving at %s (data in %s, resourceVersion %d)",
            self.url,
            self.data_dir,
            self._store.resource_version,
            extra={"url": self.url, "data_dir": str(self.data_dir)},
        )

    def stop(self) -> None:
        """Stop serving, end watches, close storage. Safe to call twice."""
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._store is not None:
            self._store.close()
        self._http = None
        self._thread = None
        self._store = None
        self._release()
        log.info(
            "API server stopped (data in %s)", self.data_dir, extra={"data_dir": str(self.data_dir)}
        )

    def _lock_data_dir(self) -> None:
        handle = open(self.data_dir / "apiserver.lock", "a+")  # noqa: SIM115 - held until stop
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise ApiServerError(
                f"data directory {self.data_dir} is used by another running API server"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _release(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- facts ----------------------------------------------------------------------------

    def _running(self) -> tuple[ApiHttpServer, Credentials]:
        if self._http is None or self._credentials is None:
            raise ApiServerError("the API server is not running")
        return self._http, self._credentials

    @property
    def port(self) -> int:
        """The port served (the one picked when constructed with port 0)."""
        http, _ = self._running()
        return int(http.server_address[1])

    @property
    def url(self) -> str:
        """`https://127.0.0.1:<port>` (loopback when listening on every address)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def token(self) -> str:
        """The bearer token clients must send."""
        _, credentials = self._running()
        return credentials.token

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that signed the serving certificate."""
        _, credentials = self._running()
        return credentials.ca_cert

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion (for diagnostics and tests)."""
        if self._store is None:
            raise ApiServerError("the API server is not running")
        return self._store.resource_version

    def write_kubeconfig(self, path: Path) -> None:
        """Write a kubeconfig (CA data, token, current context) for this server."""
        _, credentials = self._running()
        write_kubeconfig(
            Path(path),
            KubeconfigSettings(
                server=self.url, ca_pem=credentials.ca_cert.read_bytes(), token=credentials.token
            ),
        )
