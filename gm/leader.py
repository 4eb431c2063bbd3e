"""Leader election through a ``coordination.k8s.io/v1`` Lease, so a second GM can stand by."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


class LeaderElector:
    """Acquires and renews a Lease; calls ``on_lost`` if another holder takes it over."""

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
    ) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.is_leader = threading.Event()
        self._stop = threading.Event()

    def try_acquire(self) -> bool:
        """Take the Lease if it is free, expired or ours; renew it if ours."""
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _stamp(now),
        }
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": _stamp(now), "leaseTransitions": 0},
            }
            try:
                self._api.create_namespaced_lease(self.namespace, body)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            return True
        holder = lease.spec.holder_identity
        renewed = _parse(lease.spec.renew_time)
        duration = lease.spec.lease_duration_seconds or int(self.duration)
        expired = renewed is None or renewed + timedelta(seconds=duration) < now
        if holder not in (None, "", self.identity) and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _stamp(now)
            spec["leaseTransitions"] = (lease.spec.lease_transitions or 0) + 1
        body = {"metadata": {"resourceVersion": lease.metadata.resource_version}, "spec": spec}
        try:
            self._api.patch_namespaced_lease(self.name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def acquire(self) -> None:
        """Block until this GM leads (or ``stop`` is called)."""
        while not self._stop.is_set():
            try:
                if self.try_acquire():
                    self.is_leader.set()
                    log.info("acquired the leader lease", extra={"identity": self.identity})
                    return
            except (ApiException, OSError) as exc:
                log.warning("leader election failed: %s", exc)
            self._stop.wait(self.duration / 3)

    def keep_renewing(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew the Lease in the background; call ``on_lost`` if it is lost."""

        def loop() -> None:
            failures_since: datetime | None = None
            while not self._stop.wait(self.duration / 3):
                try:
                    if self.try_acquire():
                        failures_since = None
                        continue
                    lost = True
                except (ApiException, OSError) as exc:
                    log.warning("lease renewal failed: %s", exc)
                    failures_since = failures_since or _now()
                    lost = _now() - failures_since > timedelta(seconds=self.duration)
                if lost:
                    self.is_leader.clear()
                    log.error("lost the leader lease", extra={"identity": self.identity})
                    on_lost()
                    return

        thread = threading.Thread(target=loop, name="leader-renew", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop acquiring and renewing."""
        self._stop.set()
