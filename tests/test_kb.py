"""The knowledge base service: storage across restarts, upstream routes, refused requests."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from broker.localservices import free_port
from kb import KBServer, KBSettings
from tests.services import wait_for

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(base: str, method: str, path: str, body: Any = None, ctype: str = "application/json"):
    """(status, decoded JSON or text) of one request."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", ctype)
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def index(kb: str = "default", tasks: tuple[str, ...] = ("upright", "mirrored")) -> dict:
    """A two-level index as the worker library posts it."""
    return {
        "kb": kb,
        "create_time": "1700000000.0",
        "classes": [str(c) for c in range(10)],
        "seen_task": {
            "extractor": {"method": "TaskDefinitionByDataAttr", "attribute": ["task"]},
            "task_groups": [
                {
                    "entry": name,
                    "tasks": [
                        {
                            "entry": name,
                            "meta_attr": [name],
                            "samples": {"data_url": f"/d/{name}.csv", "sample_num": 320},
                        }
                    ],
                    "model": {"url": f"/out/{name}.model", "format": "pkl"},
                    "sample_num": 320,
                    "scores": {"precision_score": 0.9 + i / 100},
                }
                for i, name in enumerate(tasks)
            ],
        },
    }


def test_update_query_summary_and_deploy_flags(kb_server: KBServer) -> None:
    base = kb_server.url + "/knowledgebase"
    status, path = call(base, "POST", "/update", index())
    assert status == 200 and path == "/file/download?files=index.json&name=index.json"
    status, document = call(base, "GET", path)
    assert status == 200 and [g["entry"] for g in document["seen_task"]["task_groups"]] == [
        "upright",
        "mirrored",
    ]
    status, held = call(base, "POST", "/query", {"kb": "default"})
    assert status == 200
    assert [(g["name"], g["deploy"], g["sample_num"]) for g in held["task_groups"]] == [
        ("upright", True, 320),
        ("mirrored", True, 320),
    ]
    assert held["task_groups"][0]["tasks"][0]["task_attr"] == ["upright"]
    assert held["task_groups"][0]["tasks"][0]["transfer_radio"] == 1.0
    assert held["task_groups"][0]["models"][0]["is_current"] is True
    assert held["task_groups"][0]["samples"][0]["data_url"] == "/d/upright.csv"

    status, _ = call(base, "POST", "/update/status", {"tasks": "mirrored", "status": 0})
    assert status == 200
    _, document = call(base, "GET", "/index")
    assert [g["deploy"] for g in document["seen_task"]["task_groups"]] == [True, False]
    _, summary = call(base, "GET", "/summary")
    assert summary["AIModels"]["numberOfAIModels"] == 2
    assert summary["AIModels"]["listOfAIModels"][1] == {
        "modelID": "mirrored",
        "averagePrecision": 0.91,
        "numberOfTrainSamples": 320,
    }
    assert summary["AIClasses"]["numberOfAIClasses"] == 10

    # A later index is the whole knowledge: a third task joins, nothing is counted twice.
    call(base, "POST", "/update", index(tasks=("upright", "mirrored", "inverted")))
    _, held = call(base, "GET", "/query")
    assert [g["sample_num"] for g in held["task_groups"]] == [320, 320, 320]
    assert held["version"] == 3
    _, kbs = call(base, "GET", "/kbs")
    assert kbs == ["default"]


def test_jobs_have_separate_knowledge(kb_server: KBServer) -> None:
    base = kb_server.url + "/knowledgebase"
    call(base, "POST", "/update", index("ns/a", ("upright",)))
    _, path = call(base, "POST", "/update", index("ns/b", ("inverted",)))
    assert "kb=ns%2Fb" in path
    _, a = call(base, "GET", "/query?kb=ns/a")
    _, b = call(base, "GET", "/query?kb=ns/b")
    assert [g["name"] for g in a["task_groups"]] == ["upright"]
    assert [g["name"] for g in b["task_groups"]] == ["inverted"]


def test_multipart_update_and_files_as_upstream_clients_send_them(kb_server: KBServer) -> None:
    base = kb_server.url + "/knowledgebase"
    boundary = "sednaboundary"

    def multipart(field: str, filename: str, payload: bytes) -> bytes:
        return (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + payload
            + f"\r\n--{boundary}--\r\n".encode()
        )

    ctype = f"multipart/form-data; boundary={boundary}"
    body = multipart("task", "index.json", json.dumps(index()).encode())
    status, _ = call(base, "POST", "/update", body, ctype)
    assert status == 200
    status, path = call(
        base, "POST", "/file/upload", multipart("file", "a.model", b"\x00ab"), ctype
    )
    assert status == 200 and path == "/file/download?files=a.model&name=a.model"
    request = urllib.request.Request(base + path)
    with _OPENER.open(request, timeout=10) as response:
        assert response.read() == b"\x00ab"


def test_custom_metric_tables_on_metrics(kb_server: KBServer) -> None:
    base = kb_server.url + "/knowledgebase"
    call(base, "POST", "/update", index())
    status, _ = call(base, "POST", "/metric", {"name": "Precision", "label": "task,round"})
    assert status == 200
    status, _ = call(
        base,
        "POST",
        "/metric_value",
        {"metric": "Precision", "label_value": "upright,1", "value": 0.97},
    )
    assert status == 200
    status, text = call(kb_server.url, "GET", "/metrics")
    assert status == 200
    assert 'Precision{round="1",task="upright"} 0.97' in text
    assert 'sedna_kb_tasks{kb="default",kind="",name="default",namespace=""} 2.0' in text
    assert (
        'sedna_kb_task_samples{group="upright",kb="default",kind="",name="default",'
        'namespace=""} 320.0' in text
    )
    assert (
        'sedna_kb_task_score{group="mirrored",kb="default",kind="",metric="precision_score",'
        'name="default",namespace=""} 0.91' in text
    )
    assert 'sedna_kb_requests_total{code="200",route="/knowledgebase/update"} 1.0' in text


_GROUP = {"entry": "a", "tasks": [{"entry": "a"}]}


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/update", b"{not json", 400, "body"),
        ("/update", b"[" * 100_000 + b"]" * 100_000, 400, "body"),
        ("/update", b'{"a":' * 101 + b"1" + b"}" * 101, 400, "body"),
        ("/update", {"seen_task": {}}, 422, "create_time"),
        (
            "/update",
            {"create_time": "1", "seen_task": {"task_groups": [{"entry": "a", "tasks": []}]}},
            422,
            "seen_task.task_groups.0.tasks",
        ),
        (
            "/update",
            {"create_time": "1", "seen_task": {"task_groups": [_GROUP, _GROUP]}},
            422,
            "seen_task.task_groups",
        ),
        ("/update", {"create_time": "1", "kb": "../etc"}, 422, "kb"),
        ("/update", pickle.dumps({"seen_task": {}}), 415, "task"),
        ("/update/status", {"tasks": "x", "status": 2}, 422, "status"),
        ("/update/status", {"tasks": "upright", "status": 1, "kb": "nope"}, 404, "kb"),
        ("/update/status", {"tasks": "upright,ghost", "status": 1}, 404, "tasks"),
        ("/update/status", {"tasks": "upright", "status": 1, "extra": 1}, 422, "extra"),
        ("/metric", {"name": "1bad"}, 422, "name"),
        ("/metric", {"name": "sedna_kb_tasks"}, 422, "name"),
        ("/metric", {"name": "ok", "label": "a,a"}, 422, "label"),
        ("/metric_value", {"metric": "ghost", "value": 1}, 404, "metric"),
        (
            "/metric_value",
            {"metric": "Recall", "label_value": "a,b", "value": 1},
            422,
            "label_value",
        ),
        ("/metric_value", {"metric": "Recall", "value": "high"}, 422, "value"),
        ("/nowhere", {}, 404, "path"),
    ],
)
def test_malformed_requests_get_a_4xx_naming_the_field(
    kb_server: KBServer, path: str, body: Any, status: int, field: str
) -> None:
    base = kb_server.url + "/knowledgebase"
    call(base, "POST", "/update", index())
    call(base, "POST", "/metric", {"name": "Recall", "label": "task"})
    got, answer = call(base, "POST", path, body)
    assert (got, answer["field"]) == (status, field), answer
    assert answer["error"]
    # Nothing was lost or half-applied.
    _, held = call(base, "GET", "/query")
    assert [(g["name"], g["deploy"]) for g in held["task_groups"]] == [
        ("upright", True),
        ("mirrored", True),
    ]


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/file/download?files=../kb.sqlite3", 400, "files"),
        ("/file/download?files=%2Fetc%2Fpasswd", 400, "files"),
        ("/file/download?files=missing.model", 404, "files"),
        ("/file/download", 400, "files"),
        ("/query?kb=a%20b", 400, "kb"),
        ("/summary?kb=ghost", 404, "kb"),
        ("/update", 405, "method"),
    ],
)
def test_bad_reads_get_a_4xx_naming_the_field(
    kb_server: KBServer, path: str, status: int, field: str
) -> None:
    got, answer = call(kb_server.url + "/knowledgebase", "GET", path)
    assert (got, answer["field"]) == (status, field), answer


def test_wrong_content_type_and_oversized_bodies(tmp_path: Path) -> None:
    server = KBServer(KBSettings(port=0, data_dir=tmp_path / "kb", max_body=1000))
    server.start()
    try:
        base = server.url + "/knowledgebase"
        got, answer = call(base, "POST", "/update", b"x" * 2000)
        assert (got, answer["field"]) == (413, "body")
        got, answer = call(base, "POST", "/update", b"<xml/>", "application/xml")
        assert (got, answer["field"]) == (415, "Content-Type")
    finally:
        server.stop()


def _start_kb(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SEDNA_KB_DATA_DIR": str(data_dir), "SEDNA_KB_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sedna_cli.main", "kb", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def healthy() -> bool:
        try:
            return call(f"http://127.0.0.1:{port}", "GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(healthy, timeout=20, what="sedna kb to answer /healthz")
    return process


def test_sedna_kb_killed_and_restarted_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/knowledgebase"
    process = _start_kb(tmp_path / "kb", port)
    try:
        call(base, "POST", "/update", index())
        call(base, "POST", "/update/status", {"tasks": "mirrored", "status": 0})
        call(base, "POST", "/metric", {"name": "Recall", "label": "task"})
        call(base, "POST", "/metric_value", {"metric": "Recall", "label_value": "a", "value": 0.5})
        _, before = call(base, "GET", "/query")
        _, index_before = call(base, "GET", "/index")
    finally:
        process.send_signal(signal.SIGKILL)  # no clean shutdown: only committed data survives
        process.wait(timeout=10)
    process = _start_kb(tmp_path / "kb", port)
    try:
        _, after = call(base, "GET", "/query")
        _, index_after = call(base, "GET", "/index")
        _, metrics = call(base, "GET", "/metric")
        assert after == before
        assert index_after == index_before
        assert after["task_groups"][1]["deploy"] is False  # upstream never committed this flag
        assert metrics == [
            {
                "name": "Recall",
                "label": "task",
                "note": "",
                "values": [{"label_value": "a", "value": 0.5}],
            }
        ]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_sedna_kb_refuses_bad_settings(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sedna_cli.main", "kb", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SEDNA_KB_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "--port (or SEDNA_KB_PORT)" in result.stderr
