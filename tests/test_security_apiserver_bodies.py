"""Every class of bad body gets its 4xx from the embedded API server, naming what is wrong.

The bound on time is the client's socket timeout: a request that got no answer fails the test.
"""

from __future__ import annotations

import socket
import ssl

import pytest

from apiserver import ApiServer
from broker import boundedjson
from tests.apiserver_fixtures import dataset
from tests.test_apiserver_http import DATASETS, call

YAML = "application/yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"{not json", "application/json", "json parse error"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "deeper than 100"),
        (b'{"a":' * 101 + b"1" + b"}" * 101, "application/json", "deeper than 100"),
        (b"[" * 100_000, YAML, "deeper than 100"),
        (b"a: " + b"[" * 200 + b"]" * 200, YAML, "deeper than 100"),
        (
            b"a: &a [x, x, x, x, x, x, x, x]\n"
            + b"".join(
                b"%s: &%s [%s]\n" % (new, new, b", ".join([b"*" + old] * 8))
                for old, new in zip(
                    [b"a", b"b", b"c", b"d", b"e", b"f"],
                    [b"b", b"c", b"d", b"e", b"f", b"g"],
                    strict=True,
                )
            ),
            YAML,
            "more values than",
        ),
        (b"a: &a [*a]", YAML, "more values than"),
        (b"[1, 2]", "application/json", "cannot unmarshal array"),
    ],
    ids=[
        "syntax",
        "deep-array",
        "depth-101",
        "deep-yaml",
        "deep-yaml-flow",
        "alias-bomb",
        "alias-cycle",
        "array",
    ],
)
def test_bad_create_bodies_get_400(
    api_server: ApiServer, body: bytes, content_type: str, words: str
) -> None:
    status, _, answer = call(api_server, "POST", DATASETS, body, content_type=content_type)
    assert status == 400, answer
    assert answer["kind"] == "Status" and answer["reason"] == "BadRequest"
    assert words in answer["message"]


def test_depth_at_the_limit_is_accepted_by_the_decoder() -> None:
    deepest = '{"a":' * 99 + "1" + "}" * 99
    assert boundedjson.loads(deepest) is not None
    with pytest.raises(boundedjson.BodyError) as caught:
        boundedjson.loads('{"a":' * 100 + "[]" + "}" * 100)
    assert caught.value.reason == "too_deep"


@pytest.mark.parametrize(
    ("missing", "spelled"), [("kind", "Kind"), ("apiVersion", "apiVersion")], ids=str
)
def test_custom_resource_without_type_meta_is_refused(
    api_server: ApiServer, missing: str, spelled: str
) -> None:
    body = dataset(f"no-{missing.lower()}")
    del body[missing]
    status, _, answer = call(api_server, "POST", DATASETS, body)
    assert status == 400 and f"Object '{spelled}' is missing" in answer["message"]
    assert call(api_server, "GET", f"{DATASETS}/no-{missing.lower()}")[0] == 404


@pytest.mark.parametrize(
    ("content_type", "patch", "field"),
    [
        (JSON_PATCH, [{"op": "replace", "path": "/metadata/uid", "value": "forged"}], "uid"),
        (MERGE_PATCH, {"metadata": {"uid": "forged"}}, "uid"),
        (JSON_PATCH, [{"op": "replace", "path": "/metadata/name", "value": "other"}], "name"),
        (MERGE_PATCH, {"metadata": {"namespace": "kube-system"}}, "namespace"),
    ],
    ids=["json-uid", "merge-uid", "json-name", "merge-namespace"],
)
def test_patching_an_immutable_field_is_422(
    api_server: ApiServer, content_type: str, patch: object, field: str
) -> None:
    name = f"immutable-{field}-{content_type.split('/')[1][:4]}"
    status, _, created = call(api_server, "POST", DATASETS, dataset(name))
    assert status == 201
    status, _, answer = call(
        api_server, "PATCH", f"{DATASETS}/{name}", patch, content_type=content_type
    )
    assert status == 422, answer
    assert answer["reason"] == "Invalid"
    assert f"metadata.{field}: Invalid value" in answer["message"]
    assert "field is immutable" in answer["message"]
    _, _, stored = call(api_server, "GET", f"{DATASETS}/{name}")
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]


def test_server_owned_times_are_kept_not_refused(api_server: ApiServer) -> None:
    """As the real server's BeforeUpdate: creationTimestamp and generation are reset, 200."""
    _, _, created = call(api_server, "POST", DATASETS, dataset("owned-times"))
    patch = {"metadata": {"creationTimestamp": "2001-01-01T00:00:00Z", "generation": 99}}
    status, _, patched = call(
        api_server, "PATCH", f"{DATASETS}/owned-times", patch, content_type=MERGE_PATCH
    )
    assert status == 200
    assert patched["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert patched["metadata"]["generation"] == 1


def test_put_with_another_uid_is_a_failed_precondition(api_server: ApiServer) -> None:
    _, _, created = call(api_server, "POST", DATASETS, dataset("put-uid"))
    created["metadata"]["uid"] = "forged"
    status, _, answer = call(api_server, "PUT", f"{DATASETS}/put-uid", created)
    assert status == 409 and "Precondition failed: UID in precondition: forged" in answer["message"]


def _raw(server: ApiServer, head: bytes) -> bytes:
    """Send raw bytes over TLS and return what the server answers first."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(head)
        return sock.recv(65536)


@pytest.mark.parametrize(
    ("framing", "code", "words"),
    [
        (b"Content-Length: 999999999\r\n", b"413", b"exceeds the limit"),
        (b"Content-Length: -5\r\n", b"400", b"invalid Content-Length"),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", b"400", b"invalid chunk size"),
    ],
    ids=["too-large", "negative-length", "bad-chunk"],
)
def test_bad_framing_is_answered_without_reading_on(
    api_server: ApiServer, framing: bytes, code: bytes, words: bytes
) -> None:
    head = (
        b"POST " + DATASETS.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + api_server.token.encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + framing
    )
    if not framing.endswith(b"\r\n\r\nzz\r\n"):
        head += b"\r\n"
    answer = _raw(api_server, head)
    assert answer.split(b" ", 2)[1] == code, answer
    assert words in answer
