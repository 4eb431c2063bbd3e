"""The edge-cloud message bus: topics, envelopes, the MQTT client, outbox and de-duplication.

A ground-floor package: it imports nothing else of the project.
"""

from broker.client import (
    BusClient,
    BusClosed,
    BusError,
    BusMessage,
    BusSettings,
    BusUnavailable,
    PublishRefused,
    SubscriptionRefused,
    Will,
    offline_will,
)
from broker.dedup import Dedup
from broker.envelope import Ack, Envelope, MalformedMessage, Manifest, ManifestItem, NodeState
from broker.mosquitto import BrokerCredentials, UserCredentials
from broker.outbox import Outbox, OutboxSettings
from broker.store import StoreUnavailable, connect_redis
from broker.topics import (
    GM_STATE_SUBSCRIPTION,
    GM_UP_SUBSCRIPTION,
    AckTopic,
    DownTopic,
    InvalidTopic,
    ManifestTopic,
    StateTopic,
    UpTopic,
    WorkerTopic,
    parse_topic,
)
from broker.upstream import UpstreamReceiver

__all__ = [
    "GM_STATE_SUBSCRIPTION",
    "GM_UP_SUBSCRIPTION",
    "Ack",
    "AckTopic",
    "BrokerCredentials",
    "BusClient",
    "BusClosed",
    "BusError",
    "BusMessage",
    "BusSettings",
    "BusUnavailable",
    "Dedup",
    "DownTopic",
    "Envelope",
    "InvalidTopic",
    "MalformedMessage",
    "Manifest",
    "ManifestItem",
    "ManifestTopic",
    "NodeState",
    "Outbox",
    "OutboxSettings",
    "PublishRefused",
    "StateTopic",
    "StoreUnavailable",
    "SubscriptionRefused",
    "UpTopic",
    "UpstreamReceiver",
    "UserCredentials",
    "Will",
    "WorkerTopic",
    "connect_redis",
    "offline_will",
    "parse_topic",
]
