"""The fleet-scale harness (``benchmarks/scale.py``) at a few nodes against a real control plane.

``sedna up``'s parts without its LCs (API server, GM, knowledge base, Mosquitto with a user and
ACL per node, Redis), as the benchmark runs them; 4 simulated nodes (real LocalControllers with
`lc.standin.StandInRuntime`) in 2 simulator processes. Checks that the stand-in workers show as
running in job status and that every upstream message the LCs sent is applied exactly once,
with every report counted.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from benchmarks import scale
from lc.errors import InvalidWorkerSpec
from lc.runtime import ProcessRuntime
from lc.standin import StandInOptions, StandInRuntime

pytestmark = pytest.mark.slow

NODES = 4


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[scale.ControlPlane, scale.Fleet]]:
    """A control plane with its GM started and 4 simulated nodes connected."""
    root = tmp_path_factory.mktemp("scale")
    plane = scale.ControlPlane(root / "plane", scale.node_names(NODES))
    sims: scale.Fleet | None = None
    try:
        plane.start()
        sims = scale.Fleet(plane, 2, root / "sims")
        sims.start()
        assert scale.wait_until(lambda: sims.connected() == NODES, 30, 0.2), "nodes connected"
        assert scale.wait_until(lambda: plane.gm_metrics()["online"] == NODES, 30, 0.2)
        yield plane, sims
    finally:
        if sims is not None:
            sims.close()
        plane.stop()


def test_standin_workers_run_and_every_report_is_applied_exactly_once(
    fleet: tuple[scale.ControlPlane, scale.Fleet],
) -> None:
    plane, sims = fleet
    api = client.CustomObjectsApi(plane.api_client())
    scale.create_models(api)
    status = scale.StatusWatch(api)
    status.start()
    try:
        jobs = [(f"{node}-j0", node) for node in plane.nodes]
        names = [name for name, _ in jobs]
        scale.create_services(plane, jobs)
        assert scale.wait_until(lambda: status.running_count(names) == NODES, 40, 0.1), (
            f"jobs with both stand-in workers running in status: {status.running}"
        )
        assert scale.wait_until(lambda: sims.pending() == 0, 30, 0.2), "phase changes acked"
        before, puts_before = plane.gm_metrics(), sims.status()["puts"]

        sims.set_interval(0.1)  # each edge worker reports 10 times a second
        scale.wait_until(lambda: sims.status()["reports"] >= 40 * NODES, 20, 0.2)
        sims.set_interval(None)
        assert scale.wait_until(lambda: sims.pending() == 0, 30, 0.2), "every report acked"
        sims.collect()
        sent = scale.last_sent(sims)
        assert scale.wait_until(lambda: scale.caught_up(sims, status), 20, 0.1), (
            f"status shows the last report: sent {sent}, shown "
            f"{ {j: status.latest(j) for j in names} }"
        )
        after, puts_after = plane.gm_metrics(), sims.status()["puts"]
    finally:
        status.stop()

    assert sorted(sent) == sorted(names)
    for job in names:
        numbers = [n for n, _ in sims.sent[job]]
        assert numbers == list(range(1, len(numbers) + 1)), f"{job} reported without gaps"
        assert status.latest(job) == numbers[-1]
    reports = sum(len(sims.sent[job]) for job in names)
    assert reports >= 40 * NODES
    # Every message the outboxes took (here: only the reports) applied once, none refused.
    assert puts_after - puts_before == reports
    assert after["applied"] - before["applied"] == reports
    assert after["refused"] == before["refused"] == 0
    assert after["malformed"] == 0


def test_standin_runtime_has_the_process_runtime_interface() -> None:
    public = {
        name
        for name, member in inspect.getmembers(ProcessRuntime, inspect.isfunction)
        if not name.startswith("_")
    }
    missing = sorted(name for name in public if not hasattr(StandInRuntime, name))
    assert not missing, f"StandInRuntime lacks {missing}"


def test_standin_runtime_rejects_a_bad_worker_spec(tmp_path: Path) -> None:
    runtime = StandInRuntime(node="edge0", data_dir=tmp_path)
    with pytest.raises(InvalidWorkerSpec, match="containers"):
        runtime.ensure({"name": "w", "template": {"spec": {"containers": []}}})
    assert runtime.statuses() == []


def test_standin_options_and_scale_flags_name_what_is_wrong(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ValueError, match="report_interval"):
        StandInOptions(report_interval=0)
    for flags, named in (
        (["--nodes", "0"], "--nodes"),
        (["--nodes", "ten"], "--nodes"),
        (["--rate", "0"], "--rate"),
        (["--jobs-per-node", "0"], "--jobs-per-node"),
    ):
        with pytest.raises(SystemExit):
            scale.parse_args(flags)
        assert named in capsys.readouterr().err
