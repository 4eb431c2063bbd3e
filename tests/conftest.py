"""Shared pytest fixtures: real Mosquitto, Redis and the embedded API server."""

from tests.apiserver_fixtures import *  # noqa: F403
from tests.e2e import audit_log, cluster, crds_kubectl, pods_cluster  # noqa: F401
from tests.kb_fixtures import kb_server  # noqa: F401
from tests.services import *  # noqa: F403
