"""The GM's seams: kind names only in gm/kinds, upstream messages recorded durably and applied
once, one status writer that reads the informer cache instead of the API."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from apis import KINDS
from apis.messages import DatasetMessage, WorkerMessage, WorkerOutput
from broker.envelope import Envelope
from gm.kinds import POLICIES, JobPolicy, policy_for
from gm.records import Records
from lc.reports import parse_report
from tests.e2e import Cluster, post_report, run_joint_inference
from tests.services import wait_for

GM = Path(__file__).parent.parent / "gm"
KIND_NAME = re.compile(r"\b(" + "|".join(sorted({info.kind for info in KINDS})) + r")\b")


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_kind_name_is_tested_in_gm_outside_its_kind_modules() -> None:
    found = [
        f"{path.relative_to(GM.parent)}:{line}: {text!r}"
        for path in sorted(GM.rglob("*.py"))
        if "kinds" not in path.relative_to(GM).parts
        for line, text in _string_constants(ast.parse(path.read_text()))
        if KIND_NAME.search(text)
    ]
    assert found == []


def test_the_check_above_would_see_a_kind_name() -> None:
    tree = ast.parse('"""JointInferenceService is fine here."""\nif kind == "Dataset":\n    pass\n')
    assert [text for _, text in _string_constants(tree)] == ["Dataset"]
    assert KIND_NAME.search("Dataset") and not KIND_NAME.search("ModelLoadFailed")


def test_every_served_kind_with_a_policy_resolves_legacy_kinds_to_the_canonical_one() -> None:
    resolved = {info.kind: policy_for(info) for info in KINDS}
    assert resolved["FederatedLearningTask"] is POLICIES["FederatedLearningJob"]
    assert all(isinstance(POLICIES[k], JobPolicy) for k in ("JointInferenceService",))


def _envelope(seq: int, payload: dict[str, Any], sent: datetime | None = None) -> Envelope:
    return Envelope(seq=seq, node="edge0", payload=payload, sent_at=sent or datetime.now(UTC))


def _report(count: int) -> WorkerMessage:
    return WorkerMessage(
        worker="svc-edge",
        node="edge0",
        status="running",
        output=WorkerOutput(task_info={"inferenceNumber": count}),
    )


def test_records_keep_the_latest_state_per_worker_and_survive_a_restart(
    redis_client: redis.Redis, unique_name: str
) -> None:
    key = "jointinferenceservices.sedna.io/default/svc"
    records = Records(redis_client, prefix=unique_name)
    phase = WorkerMessage(worker="svc-edge", node="edge0", phase="Running")
    assert records.record(key, _envelope(1, phase.to_api()), phase)
    assert records.record(key, _envelope(2, _report(5).to_api()), _report(5))
    # A copy and an older message change nothing: applying twice is applying once.
    assert not records.record(key, _envelope(2, _report(5).to_api()), _report(5))
    assert not records.record(key, _envelope(1, _report(3).to_api()), _report(3))
    dataset = DatasetMessage(number_of_samples=4)
    assert records.record("datasets.sedna.io/default/d", _envelope(3, {}), dataset)

    # A GM that crashed after recording (before writing status) finds everything again.
    again = Records(redis_client, prefix=unique_name)
    assert again.load() == 2
    ((subject, message, _),) = again.of(key)
    assert subject == "svc-edge" and isinstance(message, WorkerMessage)
    assert message.phase == "Running" and message.status == "running"
    assert message.output is not None and message.output.task_info == {"inferenceNumber": 5}
    # An outbox that lost its counter starts from 1 again, later: its messages still count.
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert again.record(key, _envelope(1, _report(6).to_api(), later), _report(6))
    again.drop(key)
    redis_client.hset(f"{unique_name}:{key}", "svc-cloud", b"{not json")  # an unreadable record
    assert Records(redis_client, prefix=unique_name).load() == 1  # is dropped, not fatal


@pytest.mark.slow
def test_reports_reach_status_through_the_cache_without_a_get_per_message(
    cluster: Cluster,
) -> None:
    assert cluster.stack.gm is not None
    custom = cluster.stack.gm.manager._custom
    reads: list[str] = []
    for name in ("get_namespaced_custom_object", "get_namespaced_custom_object_status"):
        original = getattr(custom, name)

        def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            reads.append(str(args))
            return _original(*args, **kwargs)

        setattr(custom, name, counting)
    run_joint_inference(cluster, "cached")
    lc = cluster.stack.lcs["edge0"]
    for count in range(1, 41):
        body = {
            "name": "cached-edge",
            "ownerName": "cached",
            "ownerKind": "jointinferenceservice",
            "kind": "inference",
            "status": "running",
            "taskInfo": {"inferenceNumber": count},
        }
        assert post_report(lc, "cached-edge", body)[0] == 200

    def counted() -> str | None:
        metrics = cluster.status("jointinferenceservices", "cached").get("metrics") or []
        return {m["key"]: m["value"] for m in metrics}.get("inferenceNumber")

    wait_for(lambda: counted() == "40", 30, "the last count in status")
    assert reads == []


def test_the_edge_workers_cloud_failures_reach_status_metrics() -> None:
    from sedna.core.joint_inference.stats import InferenceStats

    sent = InferenceStats(inference_number=10, hard_example_number=3, cloud_failures=2)
    task_info = json.loads(sent.task_info().model_dump_json(by_alias=True, exclude_none=True))
    report = parse_report(
        {
            "name": "svc-edge",
            "ownerName": "svc",
            "ownerKind": "jointinferenceservice",
            "kind": "inference",
            "status": "running",
            "taskInfo": task_info,
        }
    )
    message = WorkerMessage(worker=report.name, status=report.status, output=report.output())
    status = POLICIES["JointInferenceService"].fold({}, message, "edge", "t")
    metrics = {m["key"]: m["value"] for m in status["metrics"]}
    assert (metrics["cloudFailures"], metrics["inferenceNumber"]) == ("2", "10")
