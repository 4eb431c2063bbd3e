"""Everything ``sedna up`` runs on one machine: API server, broker, Redis, GM and one LC a node.

Each part is the real component; they talk to each other only as they would across machines
(Kubernetes API over HTTPS, MQTT, Redis). ``endpoints.json`` in the data directory says where
everything is.

Where the parts run (``StackOptions.processes``):
- ``all`` (``sedna up``): the API server, the GM, the knowledge base and each LC in a process
  of its own (`sedna_cli.procs.ComponentProcess`), so neither the GIL nor the GM's reaction to
  a burst starves the API server, and a two-core machine uses both cores;
- ``apiserver``: only the API server in its own process, the rest in this one (benchmarks that
  observe the GM and LCs from inside);
- ``none``: everything but Mosquitto and Redis in this process (tests that reach into parts).

A crash of ``sedna up`` (kill -9) leaves its Mosquitto, Redis and workers running; its
component processes see their pipe to it close and stop, leaving the workers running. The next start
on the same data directory stops whatever it still finds by the PID files (checked by process
identity, never by name), starts everything again on the ports kept in ``ports.json`` with the
same data, and the LCs adopt the workers, which keep running: their ``LC_SERVER`` is the same.
While up, Mosquitto, Redis and every component process are restarted when they die, with
back-off.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field

from apis import node_log_token
from broker.localservices import (
    LocalService,
    MosquittoService,
    ProcessIdentity,
    RedisService,
    ServiceSupervisor,
    free_port,
    port_free,
    stop_leftover,
)
from gm import settings as gm_settings
from gm.app import GMApp, api_client_for
from kb import KBServer, KBSettings
from lc import settings as lc_settings
from lc.agent import LocalController
from opsui import OpsSettings, OpsUI
from sedna_cli.components import ApiServerComponent, ApiServerSettings, ChildEvent
from sedna_cli.procs import ComponentProcess, prepare_children

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class StackOptions(BaseModel):
    """What ``sedna up`` was asked to run."""

    data_dir: Path
    nodes: list[str] = Field(default_factory=lambda: ["cloud0", "edge0", "edge1"])
    api_port: int = 0
    mqtt_url: str | None = None
    redis_url: str | None = None
    mqtt_auth: bool = True
    gm_port: int = 0
    backend: str = "edge-process"
    #: Which parts run in processes of their own (see the module's docstring).
    processes: Literal["none", "apiserver", "all"] = "none"
    #: Log level of the component processes (their JSON logs: ``<part dir>/<part>.log``).
    log_level: str = "INFO"
    #: Seconds between the ops page's samples of the metrics (and its refreshes).
    ops_interval: float = 5.0
    #: Run an LC per node. False: the nodes get their Node objects and broker users, and
    #: something else connects as their LCs (a fleet simulator, ``benchmarks/scale.py``).
    lcs: bool = True


class StackError(RuntimeError):
    """The stack cannot start (e.g. another ``sedna up`` runs on the data directory)."""


class PortBook:
    """The ports of a data directory (``ports.json``), kept across restarts.

    A remembered port is used again when it can be bound (with SO_REUSEADDR, so connections
    of the crashed run in TIME_WAIT do not count); else a free one is taken and remembered.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.ports: dict[str, int] = {
                str(k): int(v) for k, v in json.loads(path.read_text()).items()
            }
        except (OSError, ValueError, AttributeError):
            self.ports = {}

    def port(self, name: str, requested: int = 0) -> int:
        """The port of part ``name``: ``requested`` if given, else the remembered or a new one."""
        port = requested or self.ports.get(name, 0)
        if not port or (not requested and not port_free(port)):
            if port:
                log.warning("port %d of %s is taken; using another", port, name)
            port = free_port()
        if self.ports.get(name) != port:
            self.ports[name] = port
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.ports, indent=2, sort_keys=True) + "\n")
            tmp.replace(self.path)
        return port


class Stack:
    """Starts and stops the parts in dependency order."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self.kubeconfig = self.data_dir / "kubeconfig"
        self.endpoints_file = self.data_dir / "endpoints.json"
        self.apiserver: ApiServerComponent | ComponentProcess | None = None
        self.mosquitto: MosquittoService | None = None
        self.redis: RedisService | None = None
        # The parts run in this process (``processes`` none/apiserver) ...
        self.gm: GMApp | None = None
        self.kb: KBServer | None = None
        self.lcs: dict[str, LocalController] = {}
        self.ops: OpsUI | None = None
        # ... or as child processes (``processes`` all), by part: "gm", "kb", "lc/<node>".
        self.children: dict[str, ComponentProcess] = {}
        self.supervisor: ServiceSupervisor | None = None
        self.pid_file = self.data_dir / "sedna-up.pid"
        #: Called with (node, state) on every LC state change, e.g. to print it.
        self.on_node_state: Callable[[str, str], None] | None = None

    # -- start -----------------------------------------------------------------------------

    def _secret(self, name: str) -> str:
        path = self.data_dir / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def start(self) -> None:
        """Start every part; returns once the GM reconciles and every LC is connected."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._claim_data_dir()
        if self.options.processes != "none":
            prepare_children()
        # What a crashed run left holds its ports: stop it before the ports are checked.
        self._stop_leftovers()
        self.ports = PortBook(self.data_dir / "ports.json")
        mqtt_url, gm_user, gm_password = self._start_broker()
        redis_url = self._start_redis()
        self._start_apiserver()
        self._register_nodes()
        parts = self._parts(mqtt_url, gm_user, gm_password, redis_url)
        if self.options.processes == "all":
            self._start_children(parts)
        else:
            self._start_in_process(parts)
        self._write_endpoints(mqtt_url, redis_url)
        services: list[LocalService] = [
            part for part in (self.mosquitto, self.redis) if part is not None
        ]
        if isinstance(self.apiserver, ComponentProcess):
            services.append(self.apiserver)
        self.supervisor = ServiceSupervisor([*services, *self.children.values()])
        self.supervisor.start()

    def _claim_data_dir(self) -> None:
        """Refuse to run twice on one data directory; record who runs on it."""
        other = ProcessIdentity.load(self.pid_file)
        if other is not None and other.pid != os.getpid() and other.alive():
            raise StackError(
                f"sedna up already runs on {self.data_dir} (pid {other.pid}); stop it first"
            )
        me = ProcessIdentity.of(os.getpid())
        if me is not None:
            me.save(self.pid_file)

    def _stop_leftovers(self) -> None:
        """Stop the services and component processes a crashed run left (by PID file)."""
        for service, directory in ((MosquittoService, "mosquitto"), (RedisService, "redis")):
            stop_leftover(self.data_dir / directory / f"{service.binary}.pid", service.binary)
        # Each part's directory holds its PID file: apiserver/apiserver.pid, gm/gm.pid, ...
        cloud = [p for p in self.data_dir.glob("*/*.pid") if p.stem == p.parent.name]
        for pid_file in [*cloud, *self.data_dir.glob("lc/*/lc.pid")]:
            stop_leftover(pid_file, str(pid_file.parent.relative_to(self.data_dir)))

    def _start_apiserver(self) -> None:
        settings = ApiServerSettings(
            data_dir=self.data_dir / "apiserver",
            host=LOOPBACK,
            port=self.ports.port("apiServer", self.options.api_port),
            kubeconfig=self.kubeconfig,
            node_log_secret=self._secret("node-log-secret"),
        )
        if self.options.processes == "none":
            self.apiserver = ApiServerComponent(settings)
            self.apiserver.start()
        else:
            self.apiserver = self._child("apiserver", "apiserver", settings, settings.port)
            self.apiserver.start()
        log.info("API server on %s; kubeconfig %s", self._api_url, self.kubeconfig)

    @property
    def ops_url(self) -> str:
        """Where the ops page is."""
        return f"http://{LOOPBACK}:{self.ports.ports['opsui']}/"

    @property
    def _api_url(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.ports['apiServer']}"

    def _parts(
        self, mqtt_url: str, gm_user: str | None, gm_password: str | None, redis_url: str
    ) -> list[tuple[str, str, Any, int]]:
        """(part, component, settings, port) of every part after the API server: the cloud
        parts (knowledge base, GM, and where the ops page goes), then one LC per node."""
        kb = KBSettings(host=LOOPBACK, port=self.ports.port("kb"), data_dir=self.data_dir / "kb")
        gm_values = {
            "kb_server": f"http://{LOOPBACK}:{kb.port}",
            "kubeconfig": str(self.kubeconfig),
            "mqtt_url": mqtt_url,
            "mqtt_username": gm_user,
            "mqtt_password": gm_password,
            "redis_url": redis_url,
            "http_port": self.ports.port("gm", self.options.gm_port),
            "backend": self.options.backend,
            "default_node_address": LOOPBACK,
            "token_secret": self._secret("gm-token-secret"),
            "identity": "sedna-up",
            "lease_duration": 5.0,
        }
        gm = gm_settings.build({k: v for k, v in gm_values.items() if v is not None})
        # A new cloud part is one more entry here: (part, component, its settings, its port),
        # with its component in sedna_cli.components.COMPONENTS.
        lcs: list[tuple[str, str, Any, int]] = []
        for node in self.options.nodes if self.options.lcs else []:
            user, password = self._node_credentials(node)
            values = {
                "node": node,
                "data_dir": self.data_dir / "lc" / node,
                # A stable report port: workers adopted after a restart keep their LC_SERVER.
                "report_port": self.ports.port(f"lc/{node}"),
                # Where the API server reads the node's worker logs, with the node's own token.
                "log_port": self.ports.port(f"lc/{node}/logs"),
                "log_token": node_log_token(self._secret("node-log-secret"), node),
                "redis_url": redis_url,
                "mqtt_url": mqtt_url,
                "mqtt_username": user,
                "mqtt_password": password,
            }
            lc = lc_settings.build({k: v for k, v in values.items() if v})
            lcs.append((f"lc/{node}", "lc", lc, lc.report_port))
        ops = self._ops_settings(kb.port, gm.http_port, {p: port for p, _, _, port in lcs})
        cloud = [("kb", "kb", kb, kb.port), ("gm", "gm", gm, gm.http_port)]
        return [*cloud, ("opsui", "opsui", ops, ops.port), *lcs]

    def _ops_settings(self, kb_port: int, gm_port: int, lc_ports: dict[str, int]) -> OpsSettings:
        """The ops page: reads the API server and every part's ``/metrics``."""
        targets = {
            "gm": f"http://{LOOPBACK}:{gm_port}/metrics",
            "kb": f"http://{LOOPBACK}:{kb_port}/metrics",
            **{part: f"http://{LOOPBACK}:{port}/metrics" for part, port in lc_ports.items()},
        }
        return OpsSettings(
            host=LOOPBACK,
            port=self.ports.port("opsui"),
            kubeconfig=self.kubeconfig,
            targets=targets,
            interval=self.options.ops_interval,
        )

    def _child(self, part: str, component: str, settings: Any, port: int) -> ComponentProcess:
        directory = self.data_dir / part  # "apiserver", "gm", "kb", "lc/<node>"
        return ComponentProcess(
            component,
            settings,
            directory,
            port,
            label=part,
            log_level=self.options.log_level,
            # An LC stopping with the stack gives its workers their grace period first.
            stop_timeout=15.0 + (settings.worker_grace_period if component == "lc" else 0),
            on_event=self._on_child_event,
        )

    def _on_child_event(self, event: ChildEvent) -> None:
        if event.event == "node" and event.node and event.state and self.on_node_state:
            self.on_node_state(event.node, event.state)

    def _start_children(self, parts: list[tuple[str, str, Any, int]]) -> None:
        """Launch every part's process, then wait for each: they start side by side."""
        for part, component, settings, port in parts:
            child = self._child(part, component, settings, port)
            self.children[part] = child
            child.launch()
        for child in self.children.values():
            child.wait_ready()
        for part, child in self.children.items():
            log.info("%s running in process %s", part, child.pid)

    def _start_in_process(self, parts: list[tuple[str, str, Any, int]]) -> None:
        for part, _component, settings, _port in parts:
            if part == "kb":
                self.kb = KBServer(settings)
                self.kb.start()
                log.info("knowledge base on %s", self.kb.url)
            elif part == "gm":
                self.gm = GMApp(settings)
                if self.on_node_state is not None:
                    self.gm.manager.node_listeners.append(self.on_node_state)
                self.gm.start()
            elif part == "opsui":
                self.ops = OpsUI(settings)
                self.ops.start()
                log.info("ops page on %s", self.ops.url)
            elif part.startswith("lc/"):
                lc = LocalController(settings)
                lc.start()
                self.lcs[settings.node] = lc

    def _start_broker(self) -> tuple[str, str | None, str | None]:
        if self.options.mqtt_url:
            return self.options.mqtt_url, None, None
        self.mosquitto = MosquittoService(
            self.data_dir / "mosquitto",
            self.ports.port("mqtt"),
            auth=self.options.mqtt_auth,
            nodes=self.options.nodes,
        )
        self.mosquitto.start()
        log.info("Mosquitto on %s:%d", LOOPBACK, self.mosquitto.port)
        url = f"mqtt://{LOOPBACK}:{self.mosquitto.port}"
        if self.mosquitto.credentials is None:
            return url, None, None
        gm = self.mosquitto.credentials.gm
        return url, gm.username, gm.password

    def _node_credentials(self, node: str) -> tuple[str | None, str | None]:
        if self.mosquitto is None or self.mosquitto.credentials is None:
            return None, None
        creds = self.mosquitto.credentials.for_node(node)
        return creds.username, creds.password

    def _start_redis(self) -> str:
        if self.options.redis_url:
            return self.options.redis_url
        self.redis = RedisService(
            self.data_dir / "redis",
            self.ports.port("redis"),
            password=self._secret("redis-password"),
        )
        self.redis.start()
        log.info("Redis on %s:%d (with a password)", LOOPBACK, self.redis.port)
        return self.redis.url

    def _register_nodes(self, threads: int = 8) -> None:
        """Create a Node object per node, reachable on loopback, unless it exists (from a few
        threads: a thousand nodes one call after another take a minute)."""
        api = client.CoreV1Api(api_client_for(str(self.kubeconfig)))

        def register(node: str) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node, "labels": {"sedna.io/lc": "true"}},
                "status": {"addresses": [{"type": "InternalIP", "address": LOOPBACK}]},
            }
            try:
                api.create_node(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            api.patch_node_status(node, {"status": body["status"]})

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(register, self.options.nodes))

    def endpoints(self, mqtt_url: str, redis_url: str) -> dict[str, Any]:
        """The address of everything this stack runs."""
        ports = self.ports.ports  # as given to the parts (which hold them now)
        api_port = ports["apiServer"]
        kb_url = f"http://{LOOPBACK}:{ports['kb']}"
        data: dict[str, Any] = {
            "apiServer": {
                "url": self._api_url,
                "port": api_port,
                "kubeconfig": str(self.kubeconfig),
            },
            "mqtt": {"url": mqtt_url, "auth": bool(self.mosquitto and self.options.mqtt_auth)},
            "redis": {"url": redis_url},
            "gm": {"metrics": f"http://{LOOPBACK}:{ports['gm']}/metrics"},
            "kb": {"url": kb_url, "port": ports["kb"], "metrics": f"{kb_url}/metrics"},
            "ops": {"url": self.ops_url},
            "lcs": {},
        }
        for node in self.options.nodes if self.options.lcs else []:
            port = ports[f"lc/{node}"]
            url = f"http://{LOOPBACK}:{port}"
            data["lcs"][node] = {
                "reportServer": url,
                "reportPort": port,
                "metrics": f"{url}/metrics",
            }
        if self.mosquitto is not None and self.mosquitto.credentials is not None:
            data["mqtt"]["users"] = {
                u.username: u.password for u in self.mosquitto.credentials.users()
            }
        return data

    def _write_endpoints(self, mqtt_url: str, redis_url: str) -> None:
        text = json.dumps(self.endpoints(mqtt_url, redis_url), indent=2)
        self.endpoints_file.write_text(text + "\n")
        self.endpoints_file.chmod(0o600)

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything: each LC with its workers first, then the GM and the services.

        The jobs stay in the API: the next start on the same data directory runs them again.
        """
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        for node, lc in self.lcs.items():
            try:
                lc.stop(stop_workers=True)
            except Exception:
                log.exception("stopping LC failed", extra={"node": node})
        self.lcs.clear()
        lcs = [c for part, c in self.children.items() if part.startswith("lc/")]
        cloud = [c for part, c in self.children.items() if not part.startswith("lc/")]
        self._stop_side_by_side(lcs)  # the LCs (and their workers) first, all at once
        self._stop_side_by_side(cloud)
        self.children.clear()
        for part in (self.ops, self.gm, self.kb, self.redis, self.mosquitto, self.apiserver):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self.ops = self.gm = self.kb = self.redis = self.mosquitto = self.apiserver = None
        recorded = ProcessIdentity.load(self.pid_file)
        if recorded is not None and recorded.pid == os.getpid():
            self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _stop_side_by_side(children: list[ComponentProcess]) -> None:
        for child in children:
            child.request_stop()
        for child in children:
            try:
                child.stop()
            except Exception:
                log.exception("stopping %s failed", child.name)
