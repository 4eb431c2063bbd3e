"""The ops page's parts without a stack: settings, the sampler against a real ``/metrics``,
the plots, job references."""

from __future__ import annotations

import argparse
import json
import socket
import urllib.request
from pathlib import Path

import pytest
import yaml

from apis import InvalidSettings
from kb import KBServer, KBSettings
from opsui import OpsSettings, OpsUI
from opsui.jobs import JobRef
from opsui.plots import Line, plot
from opsui.scrape import Sampler
from sedna_cli.main import main


def _settings(**environ: str) -> OpsSettings:
    parser = argparse.ArgumentParser()
    OpsSettings.add_arguments(parser)
    return OpsSettings.from_args(parser.parse_args([]), environ)


def test_targets_parse_from_the_flag_form() -> None:
    settings = _settings(
        SEDNA_OPS_TARGETS="gm=http://127.0.0.1:9000/metrics, lc/edge0=http://127.0.0.1:9100/metrics"
    )
    assert settings.targets == {
        "gm": "http://127.0.0.1:9000/metrics",
        "lc/edge0": "http://127.0.0.1:9100/metrics",
    }


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SEDNA_OPS_TARGETS": "gm"}, "'gm' is not NAME=URL"),
        ({"SEDNA_OPS_TARGETS": "gm=ftp://x/metrics"}, "is not an http(s) URL"),
        ({"SEDNA_OPS_TARGETS": "GM!=http://x/metrics"}, "target name 'GM!'"),
        ({"SEDNA_OPS_INTERVAL": "0"}, "--interval (or SEDNA_OPS_INTERVAL)"),
        ({"SEDNA_OPS_PORT": "70000"}, "--port (or SEDNA_OPS_PORT)"),
    ],
)
def test_bad_settings_name_the_flag_and_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidSettings) as caught:
        _settings(**environ)
    message = str(caught.value)
    assert named in message
    if "TARGETS" in next(iter(environ)):
        assert "--targets (or SEDNA_OPS_TARGETS)" in message


def test_the_token_is_never_shown_in_an_error() -> None:
    with pytest.raises(InvalidSettings) as caught:
        OpsSettings.build({"token": "s3cret-token", "history": 1})
    assert "s3cret-token" not in str(caught.value)


def test_without_a_token_sedna_ops_refuses_to_start(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as caught:
        main(["ops", "--kubeconfig", str(kubeconfig), "--port", "0"])
    assert "no token to ask for" in str(caught.value)
    assert "--token (or SEDNA_OPS_TOKEN)" in str(caught.value)


def test_an_explicit_token_is_the_one_asked_for(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "from-kubeconfig"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    ops = OpsUI(OpsSettings.build({"kubeconfig": kubeconfig, "port": 0}))
    try:
        assert ops.auth.token_ok("from-kubeconfig")
    finally:
        ops.stop()
    ops = OpsUI(OpsSettings.build({"kubeconfig": kubeconfig, "port": 0, "token": "given"}))
    try:
        assert ops.auth.token_ok("given") and not ops.auth.token_ok("from-kubeconfig")
    finally:
        ops.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_the_sampler_keeps_bounded_history_of_a_real_metrics_endpoint(tmp_path: Path) -> None:
    kb = KBServer(KBSettings(host="127.0.0.1", port=0, data_dir=tmp_path / "kb"))
    kb.start()
    try:
        # A custom metric of the knowledge base (seed 004's metric tables) is a real gauge.
        _post(f"{kb.url}/knowledgebase/metric", {"name": "ops_gauge", "label": "x"})
        down = f"http://127.0.0.1:{_closed_port()}/metrics"
        sampler = Sampler({"kb": f"{kb.url}/metrics", "gone": down}, ["ops_gauge"], points=3)
        for value in range(5):
            _post(
                f"{kb.url}/knowledgebase/metric_value",
                {"metric": "ops_gauge", "label_value": "a", "value": value},
            )
            sampler.sample()
        (points,) = sampler.history("ops_gauge", {"x": "a"}).values()
        assert [p.value for p in points] == [2.0, 3.0, 4.0]  # the last 3 samples only
        assert sampler.value("ops_gauge", {"x": "a"}) == 4.0
        assert sampler.history("ops_gauge", {"x": "b"}) == {}
        info = sampler.values("sedna_kb_info")
        assert [dict(labels)["server"] for labels in info] == [kb.url]
        assert sampler.history("sedna_kb_info") == {}  # not a history series
        assert sampler.states()["kb"].ok and sampler.states()["kb"].samples > 0
        # A target that is down is reported, and costs nothing else.
        assert not sampler.states()["gone"].ok and sampler.states()["gone"].error
    finally:
        kb.stop()


def test_a_plot_draws_every_point_and_says_what_it_shows() -> None:
    svg = plot("Rounds", [Line("round", [(1000.0, 0.0), (1010.0, 1.0), (1020.0, 3.0)])])
    assert 'data-points="3"' in svg and svg.count("<circle") == 3
    assert "<title" in svg and "Latest: round: 3 at" in svg
    assert 'role="img"' in svg
    empty = plot("Rounds", [Line("round", [])])
    assert 'data-points="0"' in empty and "No samples yet" in empty
    lanes = plot("Conditions", [Line("c", [(1.0, 0.0), (2.0, 1.0)])], y_names=["A&B", "C"])
    assert "A&amp;B" in lanes and "Latest: c: C at" in lanes


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("digits", "expected plural/namespace/name"),
        ("a/b/c/d", "expected plural/namespace/name"),
        ("federatedlearningjobs//x", "expected plural/namespace/name"),
        ("datasets/default/x", "'datasets' is not a job kind"),
    ],
)
def test_a_job_reference_names_what_is_wrong(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobRef.parse(key)
    assert JobRef.parse("lifelonglearningjobs/default/x").info.kind == "LifelongLearningJob"
