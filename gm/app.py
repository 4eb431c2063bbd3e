"""Run the GlobalManager: connect to the API, the broker and Redis, lead, reconcile."""

from __future__ import annotations

import logging
import threading

from kubernetes import client, config
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

from broker import (
    BusClient,
    BusError,
    Dedup,
    UpstreamReceiver,
    bus_settings_from_url,
    connect_redis,
    topics,
)
from broker.client import BusUnavailable
from broker.envelope import Ack
from gm.controller import GlobalManager
from gm.http import OpsServer
from gm.jobmetrics import JobStateCollector
from gm.leader import LeaderElector
from gm.metrics import GMMetrics
from gm.settings import GMSettings

log = logging.getLogger(__name__)

USER_AGENT = "sedna-gm"


def api_client_for(kubeconfig: str | None) -> client.ApiClient:
    """An API client from a kubeconfig file, or the in-cluster service account."""
    configuration = client.Configuration()
    if kubeconfig:
        merged = KubeConfigMerger(kubeconfig)
        loader = KubeConfigLoader(config_dict=merged.config, config_persister=merged.save_changes)
        loader.load_and_set(configuration)
        if "expiry" not in vars(loader):
            # With a token, the loader re-applies the whole kubeconfig before every request
            # (the proxy resolved from the environment again each time: milliseconds a
            # status write); that matters only for a token that expires (exec, OIDC).
            configuration.refresh_api_key_hook = None
    else:
        config.load_incluster_config(client_configuration=configuration)
    # Informers, reconcile threads and upstream appliers share one pool.
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


class GMApp:
    """The GM process: operations endpoint, bus, leader election, reconcilers, upstream."""

    def __init__(self, settings: GMSettings) -> None:
        self.settings = settings
        self.metrics = GMMetrics()
        self.api_client = api_client_for(settings.kubeconfig)
        # Names the GM in API server logs (and the RBAC test's request log).
        self.api_client.user_agent = USER_AGENT
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.bus = BusClient(
            f"sedna-gm-{settings.identity}",
            # No session kept while away: what the GM missed is in the LCs' outboxes, sent again
            # when it asks (`_ask_resend`). A queue kept for it would come at connect, before
            # its upstream handler is subscribed, and be dropped; at a thousand nodes it also
            # held up the answers to its subscriptions past their timeout.
            bus_settings_from_url(settings.mqtt_url, settings.mqtt_username, password).model_copy(
                update={"session_expiry": 0}
            ),
        )
        self.redis = connect_redis(settings.redis_url)
        self.elector = LeaderElector(
            self.api_client,
            settings.lease_namespace,
            settings.lease_name,
            settings.identity,
            settings.lease_duration,
        )
        self.manager = GlobalManager(settings, self.api_client, self.bus, self.metrics, self.redis)
        self.metrics.registry.register(
            JobStateCollector(
                self.manager.job_objects, self.manager.input_objects, self.manager.node_labels
            )
        )
        self.receiver = UpstreamReceiver(
            self.bus,
            Dedup(self.redis),
            self.manager.apply_upstream,
            on_malformed=lambda reason: self.metrics.malformed.labels(source=reason).inc(),
            workers=settings.upstream_workers,
            batch_max=settings.upstream_batch,
        )
        self.ops = OpsServer(self.metrics.registry, self.health, port=settings.http_port)
        self.lost = threading.Event()
        self._stop = threading.Event()

    def health(self) -> tuple[bool, str]:
        """Healthy while connected to the broker and, when leading, reconciling."""
        if not self.bus.connected.is_set():
            return False, "no broker connection\n"
        if self.elector.is_leader.is_set() and not self.manager.ready.is_set():
            return False, "starting\n"
        role = "leader" if self.elector.is_leader.is_set() else "standby"
        return True, f"ok ({role})\n"

    def start(self) -> None:
        """Serve metrics, connect, wait for leadership, then reconcile (returns when ready)."""
        self.ops.start()
        log.info("GM operations endpoint on 127.0.0.1:%d", self.ops.port)
        self.bus.start()
        self.elector.acquire()
        if self._stop.is_set():
            return
        self.metrics.leader.set(1)
        self.elector.keep_renewing(self._on_lost)
        self.manager.start()
        try:
            self.receiver.start()
        except BusUnavailable as exc:  # the handler stays; the broker's answer comes later
            log.warning("upstream subscription not confirmed yet: %s", exc)
        self._ask_resend()
        self.bus.connect_listeners.append(self._on_reconnect)

    def _ask_resend(self) -> None:
        """Ask every LC to send again at once what it has not seen acknowledged: what the last
        GM held when it died is lost with it, and an LC's outbox would wait ``resend_after``."""
        nodes = sorted(self.manager.lc_nodes())
        try:
            for node in nodes:
                self.bus.publish_async(topics.ack_topic(node), Ack(resend=True))
        except BusError as exc:  # the outboxes re-send after their own wait
            log.warning("could not ask the LCs to re-send: %s", exc)
            return
        log.info("asked %d LCs to re-send what is not acknowledged", len(nodes))

    def _on_lost(self) -> None:
        self.metrics.leader.set(0)
        self.lost.set()
        self.stop()

    def _on_reconnect(self) -> None:
        """The broker connection came back (on paho's thread): resync on a thread of its own."""
        if not self._stop.is_set():
            threading.Thread(target=self._resync, name="gm-reconnected", daemon=True).start()

    def _resync(self) -> None:
        """After a reconnect the broker may have lost retained messages and what was in
        flight: publish the whole desired state again and ask the LCs to re-send."""
        log.info("broker connection back: republishing the desired state")
        self.manager.on_reconnect()
        self._ask_resend()

    def stop(self) -> None:
        """Stop everything."""
        self._stop.set()
        self.elector.stop()
        self.receiver.stop()
        self.manager.stop()
        self.bus.close()
        self.ops.stop()
