"""Bus messages: camelCase JSON round trips and clear errors for malformed payloads."""

import json
from datetime import UTC, datetime

import pytest

from broker.envelope import (
    Ack,
    Envelope,
    MalformedMessage,
    Manifest,
    ManifestItem,
    NodeState,
    new_message_id,
)


def test_envelope_round_trip_in_camel_case() -> None:
    envelope = Envelope(
        seq=7,
        node="edge0",
        sent_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        payload={"phase": "train", "status": "completed", "output": {"models": []}},
    )
    wire = json.loads(envelope.to_bytes())
    assert wire == {
        "id": envelope.id,
        "seq": 7,
        "node": "edge0",
        "sentAt": "2024-05-01T12:00:00Z",
        "payload": {"phase": "train", "status": "completed", "output": {"models": []}},
    }
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope
    assert len(envelope.id) == 32 and envelope.id != new_message_id()


def test_other_messages_round_trip() -> None:
    state = NodeState(state="offline", version="0.1.0")
    manifest = Manifest(
        items=[ManifestItem(kind="Dataset", namespace="default", name="d", resource_version="42")]
    )
    ack = Ack(ids=[new_message_id(), new_message_id()])
    assert b'"resourceVersion":"42"' in manifest.to_bytes()
    for message in (state, manifest, ack):
        assert type(message).from_bytes(message.to_bytes()) == message


@pytest.mark.parametrize(
    ("model", "payload", "complaint"),
    [
        (Envelope, b"", "Envelope: payload is empty"),
        (Envelope, b"\xff\xfe", "Envelope: payload is not UTF-8"),
        (Envelope, b"{not json", "Envelope: payload is not JSON"),
        (Envelope, b"[1, 2]", "Envelope: payload must be a JSON object, got list"),
        (Envelope, b'{"seq": 1, "node": "edge0"}', "payload: Field required"),
        (Envelope, b'{"seq": -1, "node": "edge0", "payload": {}}', "seq: Input should be greater"),
        (Envelope, b'{"seq": 1, "node": "Edge 0", "payload": {}}', "node: Value error, node name"),
        (
            Envelope,
            b'{"id": "xyz", "seq": 1, "node": "edge0", "payload": {}}',
            "id: Value error, must be 32 lower-case hex digits",
        ),
        (
            Envelope,
            b'{"seq": 1, "node": "e", "sentAt": "2024-05-01T12:00:00", "payload": {}}',
            "sentAt: Value error, must carry a timezone",
        ),
        (
            NodeState,
            b'{"state": "maybe"}',
            "NodeState: state: Input should be 'online' or 'offline'",
        ),
        (Ack, b'{"ids": ["nope"]}', "Ack: ids: Value error, must be 32 lower-case hex digits"),
        (
            Manifest,
            b'{"items": [{"kind": "dataset", "namespace": "d", "name": "x"}]}',
            "items.0.kind: Value error, kind 'dataset'",
        ),
    ],
)
def test_malformed_payloads_raise_one_clear_error(
    model: type, payload: bytes, complaint: str
) -> None:
    with pytest.raises(MalformedMessage) as caught:
        model.from_bytes(payload)
    assert complaint in str(caught.value)
