"""Fixtures for the embedded API server tests: a running server, real kubectl, the Python client.

The CRDs here are the tests' own (small, covering every schema feature the server checks) plus
the `neptune.io` JointInferenceService CRD exactly as the joint inference design document gives
it, so these tests do not depend on `apis/`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from apiserver import ApiServer

__all__ = ["api_client", "api_kubeconfig", "api_kubectl", "api_server"]

# The CRD from the joint inference design document (neptune.io, the legacy group).
NEPTUNE_JIS_CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: jointinferenceservices.neptune.io
spec:
  group: neptune.io
  names:
    kind: JointInferenceService
    plural: jointinferenceservices
    shortNames:
      - jointinferenceservice
      - jis
  scope: Namespaced
  versions:
    - name: v1alpha1
      subresources:
        status: {}
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [edgeWorker, cloudWorker]
              properties:
                edgeWorker:
                  type: object
                  required: [name, model, nodeName, hardExampleAlgorithm, workerSpec]
                  properties:
                    name: {type: string}
                    model:
                      type: object
                      required: [name]
                      properties:
                        name: {type: string}
                    nodeName: {type: string}
                    hardExampleAlgorithm:
                      type: object
                      required: [name]
                      properties:
                        name: {type: string}
                    workerSpec: &workerSpec
                      type: object
                      required: [scriptDir, scriptBootFile, frameworkType, frameworkVersion]
                      properties:
                        scriptDir: {type: string}
                        scriptBootFile: {type: string}
                        frameworkType: {type: string}
                        frameworkVersion: {type: string}
                        parameters:
                          type: array
                          items:
                            type: object
                            required: [key, value]
                            properties:
                              key: {type: string}
                              value: {type: string}
                cloudWorker:
                  type: object
                  required: [name, model, nodeName, workerSpec]
                  properties:
                    name: {type: string}
                    model:
                      type: object
                      required: [name]
                      properties:
                        name: {type: string}
                    nodeName: {type: string}
                    workerSpec: *workerSpec
            status:
              type: object
              properties:
                conditions:
                  type: array
                  items:
                    type: object
                    properties:
                      type: {type: string}
                      status: {type: string}
                      lastHeartbeatTime: {type: string, format: date-time}
                      lastTransitionTime: {type: string, format: date-time}
                      reason: {type: string}
                      message: {type: string}
                startTime: {type: string, format: date-time}
                active: {type: integer}
                failed: {type: integer}
                metrics:
                  type: array
                  items:
                    type: object
                    properties:
                      key: {type: string}
                      value: {type: string}
      additionalPrinterColumns:
        - name: status
          type: string
          description: The status of the jointinference service
          jsonPath: ".status.conditions[-1].type"
        - name: active
          type: integer
          description: The number of active worker
          jsonPath: ".status.active"
        - name: failed
          type: integer
          description: The number of failed worker
          jsonPath: ".status.failed"
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
"""

# The sample from the same document.
NEPTUNE_JIS_SAMPLE_YAML = """
apiVersion: neptune.io/v1alpha1
kind: JointInferenceService
metadata:
  name: helmet-detection-demo
  namespace: default
spec:
  edgeWorker:
    name: "edgeworker"
    model:
      name: "small-model"
    nodeName: "edge0"
    hardExampleAlgorithm:
      name: "IBT"
    workerSpec:
      scriptDir: "/code"
      scriptBootFile: "edge_inference.py"
      frameworkType: "tensorflow"
      frameworkVersion: "1.18"
      parameters:
        - key: "nms_threshold"
          value: "0.6"
  cloudWorker:
    name: "work"
    model:
      name: "big-model"
    nodeName: "solar-corona-cloud"
    workerSpec:
      scriptDir: "/code"
      scriptBootFile: "cloud_inference.py"
      frameworkType: "tensorflow"
      frameworkVersion: "1.18"
      parameters:
        - key: "nms_threshold"
          value: "0.6"
"""

# A test Dataset kind exercising every schema feature the server validates.
DATASET_CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: datasets.sedna.io
spec:
  group: sedna.io
  names: {kind: Dataset, plural: datasets, singular: dataset, shortNames: [dset]}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      selectableFields:
        - jsonPath: .spec.nodeName
      additionalPrinterColumns:
        - {name: NodeName, type: string, jsonPath: .spec.nodeName}
        - {name: Format, type: string, jsonPath: .spec.format}
        - {name: Samples, type: integer, jsonPath: .status.numberOfSamples, priority: 1}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [url, format]
              properties:
                url: {type: string, minLength: 1}
                format: {type: string, enum: [txt, csv]}
                nodeName: {type: string, pattern: '^[a-z0-9-]+$'}
                replicas: {type: integer, format: int32, minimum: 1, maximum: 10, default: 1}
                ratio: {type: number, exclusiveMaximum: true, maximum: 1}
                tags: {type: array, maxItems: 3, items: {type: string}}
                params: {type: object, additionalProperties: {type: string}}
                extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
                startTime: {type: string, format: date-time}
                port: {x-kubernetes-int-or-string: true}
                note: {type: string, nullable: true}
                retries: {type: integer, default: 3}
            status:
              type: object
              properties:
                numberOfSamples: {type: integer, minimum: 0}
                phase: {type: string}
"""

# A second kind in the canonical group whose plural and short name the legacy group shares.
SEDNA_JIS_CRD_YAML = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: jointinferenceservices.sedna.io
spec:
  group: sedna.io
  names: {kind: JointInferenceService, plural: jointinferenceservices, shortNames: [jis]}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def crds_for_tests() -> list[dict[str, Any]]:
    """The CRDs the test servers start with."""
    return [
        yaml.safe_load(text)
        for text in (DATASET_CRD_YAML, SEDNA_JIS_CRD_YAML, NEPTUNE_JIS_CRD_YAML)
    ]


def dataset(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A valid test Dataset manifest."""
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": f"/data/{name}.csv", "format": "csv", "nodeName": "edge0", **spec},
    }


@dataclass
class Kubectl:
    """The real kubectl, pointed at a test server, with its own discovery cache."""

    kubeconfig: Path
    cache_dir: Path

    def command(self, *args: str) -> list[str]:
        """The argv of a kubectl invocation."""
        return [
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["KUBECACHEDIR"] = str(self.cache_dir)
        return env

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl and return the finished process."""
        return subprocess.run(
            self.command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl, require success, return stdout."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def fails(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl, require failure, return stderr."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start kubectl in the background (for `get -w`), stdout as a text pipe."""
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self._env(),
        )


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A running API server with the test CRDs, shared by one test module."""
    server = ApiServer(tmp_path_factory.mktemp("apiserver"), crds=crds_for_tests())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_kubeconfig(api_server: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for the module's server."""
    path = tmp_path_factory.mktemp("kubeconfig") / "config"
    api_server.write_kubeconfig(path)
    return path


@pytest.fixture
def api_kubectl(api_kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """kubectl against the module's server, with a discovery cache private to the test."""
    return Kubectl(api_kubeconfig, tmp_path / "kube-cache")


@pytest.fixture(scope="module")
def api_client(api_kubeconfig: Path) -> Iterator[client.ApiClient]:
    """The official Python client configured from the kubeconfig."""
    configured = config.new_client_from_config(config_file=str(api_kubeconfig))
    try:
        yield configured
    finally:
        configured.close()
