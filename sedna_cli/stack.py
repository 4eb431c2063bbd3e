"""Everything ``sedna up`` runs on one machine: API server, broker, Redis, GM and one LC a node.

Each part is the real component; they talk to each other only as they would across machines
(Kubernetes API over HTTPS, MQTT, Redis). ``endpoints.json`` in the data directory says where
everything is.

A crash of ``sedna up`` (kill -9) leaves its Mosquitto, Redis and workers running. The next
start on the same data directory stops the services it finds by their PID files (checked by
process identity, never by name), starts them again on the ports kept in ``ports.json`` with
the same data, and the LCs adopt the workers, which keep running: their ``LC_SERVER`` is the
same. While up, Mosquitto and Redis are restarted when they die.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field

from apis import crd_manifests
from apiserver import ApiServer
from broker.localservices import (
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
        self.apiserver: ApiServer | None = None
        self.mosquitto: MosquittoService | None = None
        self.redis: RedisService | None = None
        self.gm: GMApp | None = None
        self.kb: KBServer | None = None
        self.lcs: dict[str, LocalController] = {}
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
        # What a crashed run left holds its ports: stop it before the ports are checked.
        for service, directory in ((MosquittoService, "mosquitto"), (RedisService, "redis")):
            stop_leftover(self.data_dir / directory / f"{service.binary}.pid", service.binary)
        self.ports = PortBook(self.data_dir / "ports.json")
        self.apiserver = ApiServer(
            self.data_dir / "apiserver",
            host=LOOPBACK,
            port=self.ports.port("apiServer", self.options.api_port),
            crds=crd_manifests(),
        )
        self.apiserver.start()
        self.apiserver.write_kubeconfig(self.kubeconfig)
        log.info("API server on %s; kubeconfig %s", self.apiserver.url, self.kubeconfig)

        mqtt_url, gm_user, gm_password = self._start_broker()
        redis_url = self._start_redis()
        self._register_nodes()
        self._start_kb()

        gm_values = {
            "kb_server": self.kb.url if self.kb else None,
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
        self.gm = GMApp(gm_settings.build({k: v for k, v in gm_values.items() if v is not None}))
        if self.on_node_state is not None:
            self.gm.manager.node_listeners.append(self.on_node_state)
        self.gm.start()
        for node in self.options.nodes:
            user, password = self._node_credentials(node)
            values = {
                "node": node,
                "data_dir": self.data_dir / "lc" / node,
                # A stable report port: workers adopted after a restart keep their LC_SERVER.
                "report_port": self.ports.port(f"lc/{node}"),
                "redis_url": redis_url,
                "mqtt_url": mqtt_url,
                "mqtt_username": user,
                "mqtt_password": password,
            }
            lc = LocalController(lc_settings.build({k: v for k, v in values.items() if v}))
            lc.start()
            self.lcs[node] = lc
        self._write_endpoints(mqtt_url, redis_url)
        services = [part for part in (self.mosquitto, self.redis) if part is not None]
        self.supervisor = ServiceSupervisor(services)
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

    def _start_kb(self) -> None:
        """The lifelong learning knowledge base, on the port it had before when still free."""
        settings = KBSettings(
            host=LOOPBACK, port=self.ports.port("kb"), data_dir=self.data_dir / "kb"
        )
        self.kb = KBServer(settings)
        self.kb.start()
        log.info("knowledge base on %s", self.kb.url)

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

    def _register_nodes(self) -> None:
        """Create a Node object per node, reachable on loopback, unless it exists."""
        api = client.CoreV1Api(api_client_for(str(self.kubeconfig)))
        for node in self.options.nodes:
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

    def endpoints(self, mqtt_url: str, redis_url: str) -> dict[str, Any]:
        """The address of everything this stack runs."""
        assert self.apiserver is not None and self.gm is not None
        data: dict[str, Any] = {
            "apiServer": {
                "url": self.apiserver.url,
                "port": self.apiserver.port,
                "kubeconfig": str(self.kubeconfig),
            },
            "mqtt": {"url": mqtt_url, "auth": bool(self.mosquitto and self.options.mqtt_auth)},
            "redis": {"url": redis_url},
            "gm": {"metrics": f"http://{LOOPBACK}:{self.gm.ops.port}/metrics"},
            "kb": self._kb_endpoint(),
            "lcs": {
                node: {
                    "reportServer": lc.report_url,
                    "reportPort": lc.reports.port,
                    "metrics": f"{lc.report_url}/metrics",
                }
                for node, lc in self.lcs.items()
            },
        }
        if self.mosquitto is not None and self.mosquitto.credentials is not None:
            data["mqtt"]["users"] = {
                u.username: u.password for u in self.mosquitto.credentials.users()
            }
        return data

    def _kb_endpoint(self) -> dict[str, Any]:
        if self.kb is None:
            return {}
        return {"url": self.kb.url, "port": self.kb.port, "metrics": f"{self.kb.url}/metrics"}

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
        for part in (self.gm, self.kb, self.redis, self.mosquitto, self.apiserver):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)
        self.gm = self.kb = self.redis = self.mosquitto = self.apiserver = None
        recorded = ProcessIdentity.load(self.pid_file)
        if recorded is not None and recorded.pid == os.getpid():
            self.pid_file.unlink(missing_ok=True)
