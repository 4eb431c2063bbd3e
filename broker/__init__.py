"""The edge-cloud message bus: topics, envelopes, the MQTT client, outbox and de-duplication,
and the local Mosquitto/Redis services ``sedna up`` starts.

A ground-floor package: it imports nothing else of the project. Other packages use the names
below and the ``topics`` module (topic builders and parsers).
"""

from broker import topics
from broker.boundedjson import BodyError
from broker.client import BusClient, BusError, BusMessage, Will
from broker.dedup import Dedup
from broker.envelope import Envelope, MalformedMessage, Manifest, ManifestItem, NodeState
from broker.localservices import MosquittoService, RedisService, free_port
from broker.outbox import Outbox
from broker.store import connect_redis, retry_redis
from broker.topics import UpTopic
from broker.upstream import UpstreamReceiver
from broker.urls import bus_settings_from_url

__all__ = [
    "BodyError",
    "BusClient",
    "BusError",
    "BusMessage",
    "Dedup",
    "Envelope",
    "MalformedMessage",
    "Manifest",
    "ManifestItem",
    "MosquittoService",
    "NodeState",
    "Outbox",
    "RedisService",
    "UpTopic",
    "UpstreamReceiver",
    "Will",
    "bus_settings_from_url",
    "connect_redis",
    "free_port",
    "retry_redis",
    "topics",
]
