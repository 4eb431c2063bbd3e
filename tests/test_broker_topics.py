"""Topic builders and parsers of the bus."""

import pytest

from broker.topics import (
    GM_STATE_SUBSCRIPTION,
    GM_UP_SUBSCRIPTION,
    AckTopic,
    DownTopic,
    InvalidTopic,
    ManifestTopic,
    ReporterTopic,
    StateTopic,
    UpTopic,
    WorkerTopic,
    ack_topic,
    down_filter,
    down_topic,
    manifest_topic,
    parse_topic,
    reporter_topic,
    state_topic,
    strip_share,
    up_topic,
    worker_topic,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "sedna/node/edge0/down/FederatedLearningJob/default/fl-job",
            DownTopic("edge0", "FederatedLearningJob", "default", "fl-job"),
        ),
        (
            "sedna/node/edge0/down/workers/default/fl-job-train-0",
            WorkerTopic("edge0", "default", "fl-job-train-0"),
        ),
        (
            "sedna/node/edge0/down/reporters/default/svc-edge",
            ReporterTopic("edge0", "default", "svc-edge"),
        ),
        ("sedna/node/edge0/down/manifest", ManifestTopic("edge0")),
        (
            "sedna/node/node.example.com/up/Dataset/kube-system/data.v1",
            UpTopic("node.example.com", "Dataset", "kube-system", "data.v1"),
        ),
        ("sedna/node/edge0/state", StateTopic("edge0")),
        ("sedna/node/edge0/ack", AckTopic("edge0")),
    ],
)
def test_parse_and_build_round_trip(text: str, value: object) -> None:
    assert parse_topic(text) == value
    assert str(value) == text


def test_builders_match_the_contract() -> None:
    assert down_topic("e", "Model", "ns", "m") == "sedna/node/e/down/Model/ns/m"
    assert worker_topic("e", "ns", "w") == "sedna/node/e/down/workers/ns/w"
    assert reporter_topic("e", "ns", "w") == "sedna/node/e/down/reporters/ns/w"
    assert manifest_topic("e") == "sedna/node/e/down/manifest"
    assert up_topic("e", "Model", "ns", "m") == "sedna/node/e/up/Model/ns/m"
    assert state_topic("e") == "sedna/node/e/state"
    assert ack_topic("e") == "sedna/node/e/ack"
    assert down_filter("e") == "sedna/node/e/down/#"
    assert GM_UP_SUBSCRIPTION == "$share/gm/sedna/node/+/up/#"
    assert GM_STATE_SUBSCRIPTION == "sedna/node/+/state"
    assert strip_share(GM_UP_SUBSCRIPTION) == "sedna/node/+/up/#"


@pytest.mark.parametrize(
    ("topic", "complaint"),
    [
        ("other/node/edge0/state", "does not start with 'sedna/node/<node>/'"),
        ("sedna/node/edge0", "does not start with"),
        ("sedna/node/Edge0/state", "node name 'Edge0' is not a DNS-1123 subdomain"),
        ("sedna/node/edge_0/ack", "node name 'edge_0'"),
        ("sedna/node/edge0/down/Dataset/default", "expected down/<kind>/<namespace>/<name>"),
        ("sedna/node/edge0/down/dataset/default/d", "kind 'dataset' is not a Kubernetes Kind"),
        ("sedna/node/edge0/down/Dataset/my.ns/d", "namespace 'my.ns' is not a DNS-1123 label"),
        ("sedna/node/edge0/up/Dataset/default/-d", "object name '-d'"),
        ("sedna/node/edge0/up/manifest", "expected up/<kind>/<namespace>/<name>"),
        ("sedna/node/edge0/state/extra", "expected 'down/...', 'up/...', 'state' or 'ack'"),
        ("sedna/node/edge0/sideways/x", "expected 'down/...'"),
    ],
)
def test_bad_topics_raise_a_clear_error(topic: str, complaint: str) -> None:
    with pytest.raises(InvalidTopic) as caught:
        parse_topic(topic)
    assert complaint in str(caught.value)
    assert repr(topic) in str(caught.value)


def test_builders_reject_bad_names() -> None:
    with pytest.raises(InvalidTopic, match="namespace 'a/b'"):
        up_topic("edge0", "Model", "a/b", "m")
    with pytest.raises(InvalidTopic, match="node name '\\+'"):
        down_filter("+")
    with pytest.raises(InvalidTopic, match="longer than 253"):
        state_topic("a" * 254)
    with pytest.raises(InvalidTopic, match=r"\$share/<group>/<filter>"):
        strip_share("$share/gm")
