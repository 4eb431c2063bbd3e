"""Issue 13 items 1, 3 and 4 under a real Prometheus: `sedna up`'s GM, LCs and knowledge base
scraped every second (addresses from ``endpoints.json``) while an incremental, a lifelong and a
federated learning job run, and the events the event-only panels show happen for real (a
malformed bus payload, a report from the wrong node, a report with a bad worker token, killed
workers). Then every series of the docs table of the design's rows must be there with its
labels, and every query of every Prometheus panel of every dashboard must return data.

One stack and one Prometheus for the module."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.envelope import Envelope
from broker.topics import up_topic
from sedna_cli.stack import Stack, StackOptions
from tests.e2e import Cluster, joint_inference, models, post_report
from tests.metrics_seed import docs_rows
from tests.prometheus_service import PrometheusService
from tests.services import wait_for
from tests.test_dashboard import DASHBOARDS, targets
from tests.test_e2e_federated import EDGES
from tests.test_e2e_federated import _job as federated_job

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES / "incremental_learning"))
sys.path.insert(0, str(EXAMPLES / "lifelong_learning"))

import digits_il  # noqa: E402
import job as digits_ll  # noqa: E402

NODES = ["cloud0", *EDGES]
ROUND_TIMEOUT = 240.0
CUSTOM = {"name": "lifelong_recall", "label": "task,round"}


@dataclass
class Scraped:
    """The stack, the Prometheus scraping it, and what the module's jobs are."""

    cluster: Cluster
    prometheus: PrometheusService


def _hostport(url: str) -> str:
    return url.split("//", 1)[1].split("/", 1)[0]


def _targets(endpoints: dict[str, Any]) -> dict[str, list[str]]:
    """Scrape jobs from ``endpoints.json``: the GM, every LC, the knowledge base."""
    return {
        "sedna-gm": [_hostport(endpoints["gm"]["metrics"])],
        "sedna-lc": [_hostport(lc["metrics"]) for lc in endpoints["lcs"].values()],
        "sedna-kb": [_hostport(endpoints["kb"]["metrics"])],
    }


def _federated(root: Path) -> list[dict[str, Any]]:
    """The federated example's job of tests/test_e2e_federated.py, two rounds."""
    example = EXAMPLES / "federated_learning"
    data = root / "fl-data"
    subprocess.run(
        [sys.executable, str(example / "prepare_data.py"), "--out", str(data)],
        check=True,
        cwd=example,
        capture_output=True,
    )
    return federated_job(data, root / "fl-models", rounds=2)


def _fragile_service() -> dict[str, Any]:
    """A JointInferenceService of idle reporters: the edge worker is never restarted, the
    cloud worker always is (to be killed: a failed worker, a restart)."""
    service = joint_inference("fragile", {"REPORTS": "3"}, {})
    service["spec"]["edgeWorker"]["template"]["spec"]["restartPolicy"] = "Never"
    service["spec"]["cloudWorker"]["template"]["spec"]["restartPolicy"] = "Always"
    return service


def _kb_post(kb_url: str, route: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{kb_url}/knowledgebase{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def _kill(cluster: Cluster, node: str, worker: str) -> int:
    status = cluster.stack.lcs[node].runtime.status(worker)
    assert status is not None and status.pid, worker
    os.killpg(status.pid, signal.SIGKILL)
    return status.restarts


def _cause_events(cluster: Cluster) -> None:
    """What the event-only panels show, done for real."""
    status = lambda: cluster.status("jointinferenceservices", "fragile")  # noqa: E731
    wait_for(lambda: status().get("active") == 2, 60, "both workers of the fragile service")
    edge0, edge1 = cluster.stack.lcs["edge0"], cluster.stack.lcs["edge1"]
    # A malformed payload on edge0's upstream topic (the broker lets edge0 publish there).
    edge0.bus.publish(up_topic("edge0", "JointInferenceService", "default", "fragile"), b"{nope")
    # A worker message from the wrong node: edge1 names the worker edge0 runs.
    forged = {"type": "worker", "worker": "fragile-edge", "phase": "Failed", "status": "failed"}
    envelope = Envelope(seq=10**9, node="edge1", payload=forged)
    edge1.bus.publish(up_topic("edge1", "JointInferenceService", "default", "fragile"), envelope)
    # A worker report with a bad token.
    body = {
        "name": "fragile-edge",
        "namespace": "default",
        "ownerName": "fragile",
        "ownerKind": "jointinferenceservice",
        "kind": "inference",
        "status": "running",
    }
    code, _ = post_report(edge0, "fragile-edge", body, token="not-the-token")
    assert code in (401, 403), code
    # A worker killed and restarted, then one killed for good.
    restarts = _kill(cluster, "cloud0", "fragile-cloud")
    cloud = cluster.stack.lcs["cloud0"].runtime
    wait_for(
        lambda: (
            (s := cloud.status("fragile-cloud")) is not None
            and s.restarts > restarts
            and s.phase == "Running"
        ),
        60,
        "the cloud worker's restart",
    )
    _kill(cluster, "edge0", "fragile-edge")
    wait_for(lambda: (status().get("failed") or 0) >= 1, 60, "the failed edge worker counted")


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    root = tmp_path_factory.mktemp("prometheus-stack")
    stack = Stack(StackOptions(data_dir=root / "sedna", nodes=NODES))
    stack.start()
    prometheus = None
    try:
        cluster = Cluster(stack, root / "kube-cache")
        endpoints = json.loads(stack.endpoints_file.read_text())
        prometheus = PrometheusService(root / "prometheus", _targets(endpoints))
        prometheus.wait_ready()
        il = digits_il.Workspace(root / "il")
        il.prepare()
        ll = digits_ll.Workspace(root / "ll")
        ll.prepare()
        cluster.apply(digits_il.job_manifests(il, node="edge0", check_period=1, poll_period=1))
        cluster.apply(digits_ll.manifests(ll, node="edge1", check_period=1))
        cluster.apply(_federated(root))
        cluster.apply(models())
        cluster.apply(_fragile_service())
        kb = endpoints["kb"]["url"]
        _kb_post(kb, "/metric", CUSTOM)
        _kb_post(
            kb,
            "/metric_value",
            {"metric": CUSTOM["name"], "label_value": "upright,1", "value": 0.9},
        )
        il.append(il.batches()[0])
        ll.append(["upright", "mirrored"])
        _cause_events(cluster)
        for plural, name in (
            ("incrementallearningjobs", "digits-demo"),
            ("lifelonglearningjobs", digits_ll.NAME),
        ):
            wait_for(
                lambda plural=plural, name=name: (
                    (s := cluster.status(plural, name)).get("round") == 1
                    and s.get("state") == "Waiting"
                ),
                ROUND_TIMEOUT,
                f"round 1 of {name}",
            )
        # The lifelong inference worker starts with the first deploy; its counts follow.
        wait_for(
            lambda: any(
                m["key"] == "seenNumber"
                for m in cluster.status("lifelonglearningjobs", digits_ll.NAME).get("metrics") or []
            ),
            ROUND_TIMEOUT,
            "the lifelong inference worker's counts",
        )
        wait_for(
            lambda: cluster.status("federatedlearningjobs", "digits").get("phase") == "Succeeded",
            ROUND_TIMEOUT,
            "the federated job",
        )
        yield Scraped(cluster, prometheus)
    finally:
        if prometheus is not None:
            prometheus.stop()
        stack.stop()


def _present(prometheus: PrometheusService, expr: str, labels: tuple[str, ...] = ()) -> bool:
    return any(
        all(sample["metric"].get(label) for label in labels) for sample in prometheus.query(expr)
    )


def test_prometheus_scrapes_the_gm_every_lc_and_the_knowledge_base(scraped: Scraped) -> None:
    wait_for(
        lambda: all(t["health"] == "up" for t in scraped.prometheus.targets()),
        30,
        "every target up",
    )
    jobs = {t["labels"]["job"] for t in scraped.prometheus.targets()}
    assert jobs == {"sedna-gm", "sedna-lc", "sedna-kb"}
    assert len(scraped.prometheus.targets()) == 2 + len(NODES)


def test_every_design_row_is_a_series_with_its_labels(scraped: Scraped) -> None:
    missing = []
    for row in docs_rows():
        for series in row.series:
            if series.custom:
                expr, labels = CUSTOM["name"], tuple(CUSTOM["label"].split(","))
            else:
                expr, labels = series.selector(), series.labels
            try:
                wait_for(lambda e=expr, k=labels: _present(scraped.prometheus, e, k), 20, expr)
            except AssertionError:
                found = scraped.prometheus.query(expr)[:3]
                missing.append(f"{row.table} {row.row}: {expr} {labels} -> {found}")
    assert not missing, "\n".join(missing)


def _substitute(expr: str, dashboard: dict[str, Any]) -> str:
    """Grafana's template variables as Grafana would send them with "All" selected."""
    for variable in dashboard["templating"]["list"]:
        value = variable.get("allValue", "")
        expr = re.sub(r"\$\{?" + variable["name"] + r"\}?", value, expr)
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "5s")


def test_every_query_of_every_prometheus_panel_returns_data(scraped: Scraped) -> None:
    empty = []
    asked = 0
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for title, expr in targets(dashboard, "prometheus"):
            query = _substitute(expr, dashboard)
            asked += 1
            try:
                wait_for(lambda q=query: bool(scraped.prometheus.query(q)), 20, query)
            except AssertionError:
                empty.append(f"{path.stem} / {title}: {query}")
    assert asked > 50
    assert not empty, "no data:\n" + "\n".join(empty)


def test_loki_panels_ask_for_labels_the_log_targets_carry(scraped: Scraped) -> None:
    """Loki is not run here: the logs dashboard's stream labels must be labels of the promtail
    targets the LCs write for their workers."""
    files = list(scraped.cluster.stack.data_dir.glob("**/var/log/targets/*.json"))
    if not files:
        pytest.skip("no promtail target files under the stack's data directory (logs layout)")
    carried: set[str] = set()
    for file in files:
        for group in json.loads(file.read_text()):
            carried |= set(group.get("labels", {}))
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "sedna-logs.json").read_text())
    for title, expr in targets(dashboard, "loki"):
        stream = re.search(r"\{([^}]*)\}", expr)
        assert stream, title
        used = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", stream.group(1)))
        assert used <= carried, f"{title}: {used - carried} on no log target ({sorted(carried)})"


def _value(prometheus: PrometheusService, expr: str) -> float:
    found = prometheus.query(expr)
    assert len(found) == 1, f"{expr}: {found}"
    return float(found[0]["value"][1])


def test_the_series_say_what_the_jobs_did(scraped: Scraped) -> None:
    """Not only present: the values are those of the jobs that ran (round 1 of the digits
    examples: 300 incremental rows at once, 800 lifelong rows one by one, trainProb 0.8)."""
    p = scraped.prometheus
    il = 'kind="IncrementalLearningJob",name="digits-demo"'
    ll = f'kind="LifelongLearningJob",name="{digits_ll.NAME}"'
    assert _value(p, f"sedna_incremental_round{{{il}}}") == 1
    assert _value(p, f'sedna_incremental_round_samples{{{il},set="train"}}') == 240
    assert _value(p, 'sedna_dataset_stage_samples{job_name="digits-demo",stage="Eval"}') == 60
    assert _value(p, f'sedna_incremental_deploy_decisions{{{il},decision="deploy"}}') == 1
    assert _value(p, f'sedna_incremental_deploy_status{{{il},status="Ok"}}') == 1
    assert _value(p, f'sedna_incremental_eval_metric{{{il},metric="precision_delta"}}') > 0.05
    # The trigger (> 300 train samples) fires while the rows stream in: a round of 301-640.
    ll_train = _value(p, f'sedna_lifelong_round_samples{{{ll},set="train"}}')
    assert 300 < ll_train <= 640
    stage = f'sedna_dataset_stage_samples{{job_name="{digits_ll.NAME}",stage="Train"}}'
    assert _value(p, stage) == ll_train
    assert _value(p, f"sedna_kb_tasks{{{ll}}}") == 2
    assert _value(p, f"sedna_lifelong_known_tasks{{{ll}}}") == 2
    assert _value(p, f'sedna_job_condition{{{ll},type="Waiting",stage="Train"}}') == 1
    assert _value(p, f'sedna_job_inference{{{il},count="done"}}') > 0
    assert _value(p, f"sedna_job_inference_rate{{{il}}}") == 100
    tasks = p.query(f'sedna_job_task_info{{{il},work="infering",status="active"}}')
    assert [t["metric"]["node"] for t in tasks] == ["edge0"]
    assert tasks[0]["metric"]["location"] == "edge"
    fragile = 'kind="JointInferenceService",name="fragile"'
    assert _value(p, f'sedna_job_workers{{{fragile},state="failed"}}') >= 1
    assert _value(p, f'sedna_worker_info{{{fragile},worker="fragile-edge"}}') == 1
    dead = p.query(f'sedna_worker_info{{{fragile},worker="fragile-edge",status="dead"}}')
    assert dead and dead[0]["metric"]["node"] == "edge0"
    restarts = 'sedna_lc_worker_restarts_total{worker="fragile-cloud"}'
    assert _value(p, restarts) >= 1
    assert _value(p, 'sedna_gm_malformed_messages_total{source="decode"}') >= 1
    assert _value(p, 'sedna_gm_upstream_refused_total{node="edge1"}') >= 1
    assert _value(p, 'sum(sedna_lc_worker_reports_rejected_total{reason!=""})') >= 1
    assert _value(p, 'lifelong_recall{task="upright",round="1"}') == 0.9
    assert _value(p, 'sedna_kb_info{node_type="cloud"}') == 1
    assert _value(p, 'sedna_federated_current_round{name="digits"}') == 2
