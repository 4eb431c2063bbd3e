"""deploy/cluster: valid for every Kubernetes release from 1.28 on (offline schemas), accepted by
the embedded server with ``kubectl apply --dry-run=server``, and in step with the code it runs
(settings variables, commands, the generated Mosquitto configuration)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

from apis import crd_manifests
from broker.mosquitto import MosquittoOptions, render_config
from gm import settings as gm_settings
from lc import settings as lc_settings
from sedna_cli.cluster import cluster_secrets
from sedna_cli.main import build_parser
from tests.apiserver_fixtures import Kubectl

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "deploy" / "cluster"
OLDEST = (1, 28)


class _Loader(yaml.SafeLoader):
    """PyYAML reading kustomize's output, which leaves a bare ``=`` (YAML 1.1's value tag)."""


_Loader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def rendered() -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/cluster``: every object as the cluster gets it."""
    out = subprocess.run(
        ["kubectl", "kustomize", str(CLUSTER)], capture_output=True, text=True, check=True
    ).stdout
    return [doc for doc in yaml.load_all(out, Loader=_Loader) if doc]


def releases() -> list[str]:
    """Every minor release from 1.28 to the newest that kubernetes-validate knows."""
    minors = {major_minor(v) for v in all_versions()}
    chosen = [m for m in minors if tuple(map(int, m.split("."))) >= OLDEST]
    return sorted(chosen, key=lambda m: tuple(map(int, m.split("."))))


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return by_kind(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


def test_the_cluster_has_every_part() -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered())
    assert {
        "Namespace/sedna",
        "Deployment/sedna-gm",
        "DaemonSet/sedna-lc",
        "Deployment/sedna-mosquitto",
        "StatefulSet/sedna-redis",
        "ClusterRole/sedna-gm",
        "Role/sedna-gm-leader-election",
    } <= set(kinds)
    assert sum(k.startswith("CustomResourceDefinition/") for k in kinds) == len(crd_manifests())
    assert len(releases()) >= 8 and releases()[0] == "1.28"


@pytest.mark.parametrize("release", releases())
def test_every_manifest_validates_against_the_release_schemas(release: str) -> None:
    problems = []
    for obj in [*rendered(), *cluster_secrets(["edge0"], "mqtt://192.0.2.1:31883", "sedna")]:
        try:
            kubernetes_validate.validate(obj, release, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert problems == []


def test_validation_catches_a_wrong_field() -> None:
    """The check above is not vacuous: a misspelt field fails it."""
    gm = by_kind(rendered(), "Deployment", "sedna-gm")
    gm["spec"]["template"]["spec"]["containers"][0]["enviroment"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="enviroment"):
        kubernetes_validate.validate(gm, releases()[-1], strict=True)


def test_the_embedded_server_accepts_the_whole_cluster_in_a_server_dry_run(
    crds_kubectl: Kubectl,
) -> None:
    kubectl = crds_kubectl
    kubectl.ok("create", "namespace", "sedna")  # as on a real cluster: objects need it first
    out = kubectl.ok("apply", "--dry-run=server", "-k", str(CLUSTER))
    lines = [line for line in out.splitlines() if line]
    assert len(lines) == len(rendered())
    assert all(line.endswith("(server dry run)") for line in lines), out
    assert "deployment.apps/sedna-gm created (server dry run)" in lines
    assert "daemonset.apps/sedna-lc created (server dry run)" in lines
    # Nothing was stored, and `ds` means DaemonSets here as everywhere.
    assert "No resources found" in kubectl.run("get", "ds", "-n", "sedna").stderr
    assert kubectl.fails("get", "deployment", "sedna-gm", "-n", "sedna")


def test_the_crds_apply_as_a_directory_and_as_a_kustomization(crds_kubectl: Kubectl) -> None:
    crds = ROOT / "deploy" / "crds"
    for how in ("-f", "-k"):
        out = crds_kubectl.ok("apply", "--dry-run=server", how, str(crds))
        assert out.count("(server dry run)") == len(crd_manifests()), (how, out)


EXAMPLE = CLUSTER / "examples" / "joint-inference-digits.yaml"


def test_the_example_service_fits_the_crds_and_its_pod_templates_are_valid_pods(
    crds_kubectl: Kubectl,
) -> None:
    out = crds_kubectl.ok("apply", "--dry-run=server", "-f", str(EXAMPLE))
    assert "jointinferenceservice.sedna.io/digits created (server dry run)" in out
    service = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d["kind"] != "Model")
    for worker in ("edgeWorker", "cloudWorker"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": worker.lower()}}
        pod["spec"] = service["spec"][worker]["template"]["spec"]
        for release in (releases()[0], releases()[-1]):
            kubernetes_validate.validate(pod, release, strict=True)


def _env_names(spec: dict[str, Any]) -> set[str]:
    return {e["name"] for e in spec.get("env") or []}


def test_the_gm_and_lc_read_only_variables_their_settings_define() -> None:
    objects = rendered()
    gm_vars = {source.env for source in gm_settings.SOURCES.values()}
    gm = container(objects, "Deployment", "sedna-gm")
    assert gm["args"] == ["gm"]
    assert _env_names(gm) - {"SEDNA_REDIS_PASSWORD"} <= gm_vars
    lc_vars = {source.env for source in lc_settings.SOURCES.values()}
    lc = container(objects, "DaemonSet", "sedna-lc")
    assert _env_names(lc) <= lc_vars
    env_file = cluster_secrets(["edge0"], "mqtt://192.0.2.1:31883", "sedna")[-1]
    written = re.findall(r"^(\w+)=", env_file["stringData"]["lc.env"], flags=re.M)
    assert set(written) <= lc_vars
    unit = (CLUSTER / "systemd" / "sedna-lc.service").read_text()
    assert set(re.findall(r"^Environment=(\w+)=", unit, flags=re.M)) <= lc_vars


def _command(argv: list[str]) -> str:
    """The ``sedna`` subcommand ``argv`` runs (the parser exits on an unknown one)."""
    return build_parser().parse_known_args(argv)[0].command


def test_the_commands_the_manifests_run_exist() -> None:
    objects = rendered()
    assert _command(container(objects, "Deployment", "sedna-gm")["args"]) == "gm"
    with pytest.raises(SystemExit):
        _command(["no-such-command"])
    assert "exec sedna lc" in container(objects, "DaemonSet", "sedna-lc")["args"][0]
    unit = (CLUSTER / "systemd" / "sedna-lc.service").read_text()
    assert re.search(r"^ExecStart=/opt/sedna/bin/sedna lc$", unit, flags=re.M)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["sedna"]' in dockerfile
    assert "python -m venv /opt/sedna" in dockerfile  # where the unit's ExecStart points
    for copied in re.findall(r"^COPY (\S+) \S+$", dockerfile, flags=re.M):
        assert (ROOT / copied).exists(), copied
    images = {c["image"] for o in objects if "template" in o.get("spec", {}) for c in
              o["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert "sedna-py:0.1.0" in images


def test_the_broker_configuration_is_the_generated_one() -> None:
    config = by_kind(rendered(), "ConfigMap", "sedna-mosquitto")["data"]["mosquitto.conf"]
    options = MosquittoOptions(
        host="0.0.0.0", port=1883, data_dir=Path("/mosquitto/data"), auth=True, run_as_root=False
    )
    expected = render_config(
        options, password_file=Path("/mosquitto/auth/passwd"), acl_file=Path("/mosquitto/auth/acl")
    )
    assert config == expected


def test_cluster_secrets_give_each_node_its_own_user() -> None:
    objects = cluster_secrets(["edge0", "edge1"], "mqtt://192.0.2.1:31883", "sedna")
    names = [o["metadata"]["name"] for o in objects]
    assert names == ["sedna-mosquitto-auth", "sedna-gm", "sedna-redis", "sedna-lc-edge0",
                     "sedna-lc-edge1"]  # fmt: skip
    auth = objects[0]["stringData"]
    assert [line.split(":")[0] for line in auth["passwd"].splitlines()] == ["gm", "edge0", "edge1"]
    assert "topic write sedna/node/edge1/up/#" in auth["acl"]
    edge0 = objects[3]["stringData"]["lc.env"]
    assert "SEDNA_MQTT_USERNAME=edge0\n" in edge0 and "edge1" not in edge0
    with pytest.raises(ValueError, match="DNS-1123"):
        cluster_secrets(["Edge_0"], "mqtt://192.0.2.1:31883", "sedna")
