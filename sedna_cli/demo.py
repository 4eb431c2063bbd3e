"""``sedna demo``: start everything, submit real jobs with kubectl, show what they did.

Stages: the stack comes up; the design documents' samples are applied and listed; the digits
joint inference example runs three ways (edge only, cloud only, joint) through the control
plane; a table compares them, next to the services' status as kubectl shows it; federated
learning; incremental learning round by round (trigger, samples, eval metrics, deploy or not,
the serving worker's accuracy and hard examples per pass); lifelong learning (the knowledge
base's tasks and the mixed-stream accuracy per round, next to one global model).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from gm.app import api_client_for
from sedna_cli import logs
from sedna_cli.stack import Stack, StackOptions

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "deploy" / "samples"
JI_EXAMPLE = ROOT / "examples" / "joint_inference"
FL_EXAMPLE = ROOT / "examples" / "federated_learning"
IL_EXAMPLE = ROOT / "examples" / "incremental_learning"
IL_JOB = "digits-demo"
LL_EXAMPLE = ROOT / "examples" / "lifelong_learning"
NODES = ["cloud0", "edge0", "edge1", "edge2"]

#: The three ways the digits stream is run: service name, hard example mining, parameters.
JI_MODES: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("edge-only", "digits-edge-only", "EdgeOnly", {}),
    ("cloud-only", "digits-cloud-only", "CloudOnly", {}),
    ("joint", "digits-joint", "CrossEntropy", {"threshold_cross_entropy": "0.6"}),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run joint inference, federated, incremental and lifelong learning end to end here",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data/demo"))
    parser.add_argument("--repeat", type=int, default=4, help="passes over the test split")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per stage")
    parser.add_argument("--log-level", default="WARNING")
    parser.set_defaults(run=run)


class Demo:
    """One demo run against a fresh stack."""

    def __init__(self, stack: Stack, work: Path, timeout: float) -> None:
        self.stack = stack
        self.work = work
        self.timeout = timeout
        self.api = client.CustomObjectsApi(api_client_for(str(stack.kubeconfig)))

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl against the stack and return what it printed."""
        env = {**os.environ, "KUBECONFIG": str(self.stack.kubeconfig)}
        result = subprocess.run(
            ["kubectl", "--cache-dir", str(self.work / "kube-cache"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def wait(self, what: str, ready: Callable[[], bool], progress: Callable[[], str]) -> None:
        """Poll ``ready`` until true, printing ``progress`` when it changes."""
        deadline = time.monotonic() + self.timeout
        shown = ""
        while not ready():
            line = progress()
            if line != shown:
                print(f"    {line}", flush=True)
                shown = line
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up waiting for {what} after {self.timeout:.0f}s")
            time.sleep(0.5)

    # -- stages ----------------------------------------------------------------------------

    def apply_seed_samples(self) -> None:
        """Apply every sample of the design documents unchanged and list them."""
        print(self.kubectl("apply", "-f", str(SAMPLES)), end="")
        print(self.kubectl("get", "datasets,models,incrementallearningjobs", "-A"), end="")
        print(self.kubectl("get", "neptunejointinferenceservices,federatedlearningtasks"))
        print(
            "      (the samples name images, models and nodes this machine does not have,\n"
            "       so their jobs stay Pending; the status says what they wait for)"
        )

    def train_models(self) -> Path:
        """Train the edge and cloud models into the work directory."""
        models = self.work / "models"
        subprocess.run(
            [sys.executable, str(JI_EXAMPLE / "train_models.py"), str(models)],
            check=True,
            cwd=JI_EXAMPLE,
        )
        return models

    def joint_inference_manifests(self, models: Path, repeat: int) -> list[dict[str, Any]]:
        """The example's service YAML, pointed at the trained models, once per mode."""
        documents = list(yaml.safe_load_all((JI_EXAMPLE / "service.yaml").read_text()))
        model_docs = [d for d in documents if d["kind"] == "Model"]
        for doc in model_docs:
            role = "edge" if "edge" in doc["metadata"]["name"] else "cloud"
            doc["spec"]["url"] = str(models / f"{role}_model.pkl")
        service = next(d for d in documents if d["kind"] == "JointInferenceService")
        manifests: list[dict[str, Any]] = list(model_docs)
        for _, name, algorithm, parameters in JI_MODES:
            svc = json.loads(json.dumps(service))
            svc["metadata"]["name"] = name
            svc["spec"]["edgeWorker"]["hardExampleMining"] = {
                "name": algorithm,
                "parameters": [{"key": k, "value": v} for k, v in parameters.items()],
            }
            for side in ("edgeWorker", "cloudWorker"):
                container = svc["spec"][side]["template"]["spec"]["containers"][0]
                container["workingDir"] = str(ROOT)
            edge = svc["spec"]["edgeWorker"]["template"]["spec"]
            edge["restartPolicy"] = "OnFailure"  # the edge stream ends when its input does
            edge["containers"][0]["env"] = [
                {"name": "input_url", "value": str(models / "test_samples.jsonl")},
                {"name": "repeat", "value": str(repeat)},
                {"name": "batch_size", "value": "32"},
                {"name": "OUTPUT_URL", "value": str(self.work / "results" / name)},
                {"name": "REPORT_INTERVAL_SECONDS", "value": "1"},
            ]
            manifests.append(svc)
        return manifests

    def run_joint_inference(self, models: Path, repeat: int) -> None:
        """Apply the three services one after the other (so they do not compete for the CPU)
        and follow each until its edge stream ends and its counts reach the status."""
        manifests = self.joint_inference_manifests(models, repeat)
        services = {m["metadata"]["name"]: m for m in manifests if m["kind"] != "Model"}
        model_docs = [m for m in manifests if m["kind"] == "Model"]
        self.kubectl("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(m) for m in model_docs))
        for mode, name, _, _ in JI_MODES:
            print(f"    {mode}: kubectl apply jointinferenceservice {name}")
            self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(services[name]))
            self._follow_service(name)

    def _service_status(self, name: str) -> dict[str, Any]:
        obj = self.api.get_namespaced_custom_object(
            "sedna.io", "v1alpha1", "default", "jointinferenceservices", name
        )
        return obj.get("status") or {}

    def _follow_service(self, name: str) -> None:
        summary_file = self.work / "results" / name / "summary.json"

        def counted() -> str:
            metrics = {
                m["key"]: m["value"] for m in self._service_status(name).get("metrics") or []
            }
            return metrics.get("inferenceNumber", "0")

        def progress() -> str:
            workers = {
                w["name"]: w.get("phase", "?")
                for w in self._service_status(name).get("workers", [])
            }
            edge = workers.get(f"{name}-edge", "Pending")
            cloud = workers.get(f"{name}-cloud", "Pending")
            return f"  edge worker {edge}, cloud worker {cloud}, {counted()} samples counted"

        def done() -> bool:
            if not summary_file.exists():
                return False
            return counted() == str(json.loads(summary_file.read_text())["samples"])

        self.wait(f"service {name}", done, progress)
        print(f"      {progress().strip()}")

    def joint_inference_table(self) -> str:
        """Accuracy, share sent to the cloud and samples/s of each mode."""
        rows = [f"{'mode':<11} {'accuracy':>9} {'to cloud':>9} {'samples/s':>10} {'samples':>8}"]
        for mode, name, _, _ in JI_MODES:
            summary = json.loads((self.work / "results" / name / "summary.json").read_text())
            share = summary["hard"] / summary["samples"] if summary["samples"] else 0.0
            rows.append(
                f"{mode:<11} {summary['accuracy']:>9.4f} {share:>9.1%} "
                f"{summary['samplesPerSecond']:>10,.0f} {summary['samples']:>8}"
            )
        return "\n".join(rows)

    def _il_status(self) -> dict[str, Any]:
        job = self.api.get_namespaced_custom_object(
            "sedna.io", "v1alpha1", "default", "incrementallearningjobs", IL_JOB
        )
        return job.get("status") or {}

    def _il_metrics(self) -> dict[str, str]:
        return {m["key"]: m["value"] for m in self._il_status().get("metrics") or []}

    def _il_next_pass(self, after: int) -> dict[str, str]:
        """The inference worker's report of the first pass that started after pass ``after``."""
        self.wait(
            "an inference pass",
            lambda: int(self._il_metrics().get("pass", "0")) > after + 1,
            lambda: "waiting for the inference worker's next pass",
        )
        return self._il_metrics()

    def run_incremental_learning(self) -> list[dict[str, Any]]:
        """The digits IncrementalLearningJob: batches appended one by one, each a round."""
        sys.path.insert(0, str(IL_EXAMPLE))
        from digits_il import Workspace, job_manifests

        work = Workspace(self.work / "incremental")
        work.prepare()
        manifests = job_manifests(work, node="edge0", check_period=2, poll_period=1, name=IL_JOB)
        print(self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests)), end="")
        served = self._il_next_pass(0)
        rounds = [{"round": 0, **served}]
        print(
            f"    initial model serving: accuracy {float(served['accuracy']):.3f}, "
            f"{served['passHardExamples']} hard examples per pass (pid {served['pid']})"
        )
        for number, batch in enumerate(work.batches(), start=1):
            work.append(batch)
            print(f"    round {number}: appended {len(batch)} labelled samples to the Dataset")

            def over(r: int = number) -> bool:
                status = self._il_status()
                return status.get("round") == r and status.get("state") == "Waiting"

            def where() -> str:
                status = self._il_status()
                return f"round {status.get('round')}: {status.get('stage')} {status.get('state')}"

            self.wait(f"round {number}", over, where)
            status = self._il_status()
            decision, data = status.get("lastDecision") or {}, status.get("roundData") or {}
            seen = decision.get("metrics") or {}
            trigger = next(
                (
                    c.get("message")
                    for c in reversed(status.get("conditions") or [])
                    if (c.get("stage"), c.get("type"), c.get("round")) == ("Train", "Ready", number)
                ),
                "",
            )
            print(
                f"      trigger: {trigger}; train {data.get('train')} / eval {data.get('eval')} "
                f"samples; precision trained {seen.get('precision', float('nan')):.3f}, "
                f"delta {seen.get('precision_delta', float('nan')):+.3f} -> "
                f"{'deploy' if decision.get('deploy') else 'no deploy'} ({decision.get('reason')})"
            )
            served = self._il_next_pass(int(self._il_metrics().get("pass", "0")))
            rounds.append({"round": number, "deploy": decision.get("deploy"), **served})
            print(
                f"      serving: accuracy {float(served['accuracy']):.3f}, "
                f"{served['passHardExamples']} hard examples per pass (pid {served['pid']})"
            )
        return rounds

    @staticmethod
    def incremental_table(rounds: list[dict[str, Any]]) -> str:
        """Accuracy and hard examples of the serving worker after each round."""
        lines = [f"{'round':<7} {'deployed':<9} {'accuracy':>8} {'hard examples':>13} {'pid':>8}"]
        for r in rounds:
            deployed = "" if r["round"] == 0 else ("yes" if r.get("deploy") else "no")
            lines.append(
                f"{r['round']:<7} {deployed:<9} {float(r['accuracy']):>8.3f} "
                f"{r['passHardExamples']:>13} {r['pid']:>8}"
            )
        return "\n".join(lines)

    def run_lifelong_learning(self) -> list[dict[str, Any]]:
        """The digits LifelongLearningJob: two tasks, then the third once its unseen samples
        are labelled; per round the knowledge base and the served accuracy."""
        sys.path.insert(0, str(LL_EXAMPLE))
        from job import NAME, Workspace, manifests
        from run_local import global_model

        work = Workspace(self.work / "lifelong")
        work.prepare()
        print(self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests(work))), end="")
        rounds = []
        for number in (1, 2):
            if number == 1:
                added = work.append(["upright", "mirrored"])
                print(f"    round 1: appended {added} labelled rows (upright, mirrored)")
            else:
                added = work.append_labelled_unseen()
                print(f"    round 2: labelled the {added} unseen rows saved, appended them")

            def status() -> dict[str, Any]:
                return (
                    self.api.get_namespaced_custom_object(
                        "sedna.io", "v1alpha1", "default", "lifelonglearningjobs", NAME
                    ).get("status")
                    or {}
                )

            def over(r: int = number) -> bool:
                current = status()
                return current.get("round") == r and current.get("state") == "Waiting"

            def current_pass() -> bool:
                summary = work.summary()
                deployed = work.deployed_create_time()
                return bool(summary and summary["index_create_time"] == deployed)

            def where() -> str:
                current = status()
                return "round " + " ".join(str(current.get(k)) for k in ("round", "stage", "state"))

            self.wait(f"round {number}", over, where)
            self.wait("an inference pass", current_pass, lambda: "waiting for the inference worker")
            done, summary = status(), work.summary() or {}
            models = done["knowledgeBase"]["AIModels"]["listOfAIModels"]
            held = summary["holdout"]
            total = sum(v["samples"] for v in held.values())
            files = [Path(c) for c in sorted(work.output.glob("data/train/*/data.csv"))]
            rounds.append(
                {
                    "round": number,
                    "tasks": [m["modelID"] for m in models],
                    "accuracy": {t: v["accuracy"] for t, v in held.items()},
                    "unseen": {t: v["unseen"] for t, v in held.items()},
                    "mixed": sum(v["accuracy"] * v["samples"] for v in held.values()) / total,
                    "global": global_model(work.root, files),
                    "decision": done["lastDecision"]["reason"],
                }
            )
            print(f"      {done['lastDecision']['reason']}; knowledge base: {rounds[-1]['tasks']}")
        return rounds

    @staticmethod
    def lifelong_table(rounds: list[dict[str, Any]]) -> str:
        """Per round: the tasks known, accuracy and unseen share per task, the mixed stream."""
        lines = [
            f"{'round':<6} {'tasks':<28} {'task':<9} {'accuracy':>8} {'global':>7} {'unseen':>7}"
        ]
        for r in rounds:
            for i, task in enumerate(r["accuracy"]):
                known = ", ".join(r["tasks"]) if i == 0 else ""
                accuracy, baseline = r["accuracy"][task], r["global"][task]
                lines.append(
                    f"{r['round'] if i == 0 else '':<6} {known:<28} {task:<9} "
                    f"{accuracy:>8.3f} {baseline:>7.3f} {r['unseen'][task]:>7.1%}"
                )
            lines.append(f"{'':<6} {'':<28} {'mixed':<9} {r['mixed']:>8.3f}")
        return "\n".join(lines)

    def run_federated_learning(self) -> dict[str, Any]:
        """Three edges train on label-skewed splits; follow the rounds; compare the result."""
        data, models = self.work / "fl-data", self.work / "fl-models"
        prepared = subprocess.run(
            [sys.executable, str(FL_EXAMPLE / "prepare_data.py"), "--out", str(data)],
            check=True,
            cwd=FL_EXAMPLE,
            capture_output=True,
            text=True,
        )
        print("".join(f"      {line}\n" for line in prepared.stdout.splitlines()), end="")
        documents = list(yaml.safe_load_all((FL_EXAMPLE / "federated_job.yaml").read_text()))
        for doc in documents:
            if doc["kind"] == "Dataset":
                node = doc["spec"]["nodeName"].removeprefix("edge")
                doc["spec"]["url"] = str(data / f"node{node}" / "train.csv")
            elif doc["kind"] == "Model":
                doc["spec"]["url"] = str(models / "global_model.npz")
        job = next(d for d in documents if d["kind"] == "FederatedLearningJob")
        agg = job["spec"]["aggregationWorker"]["template"]["spec"]
        agg["nodeName"] = "cloud0"
        templates = [agg] + [w["template"]["spec"] for w in job["spec"]["trainingWorkers"]]
        for spec in templates:
            spec["containers"][0]["workingDir"] = str(FL_EXAMPLE)
        parameters = {e["name"]: e["value"] for e in agg["containers"][0]["env"]}
        trainer_env = job["spec"]["trainingWorkers"][0]["template"]["spec"]["containers"][0]
        epochs = int({e["name"]: e["value"] for e in trainer_env["env"]}.get("epochs", "1"))
        rounds = int(parameters["exit_round"])
        self.kubectl("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(d) for d in documents))
        name = job["metadata"]["name"]

        def status() -> dict[str, Any]:
            obj = self.api.get_namespaced_custom_object(
                "sedna.io", "v1alpha1", "default", "federatedlearningjobs", name
            )
            return obj.get("status") or {}

        def progress() -> str:
            current = status()
            nodes = ", ".join(
                f"{n['nodeName']} {n.get('numberOfSamples', '?')} samples"
                for n in current.get("nodes") or []
            )
            phase = current.get("phase", "Pending")
            return f"{phase}: round {current.get('currentRound', 0)}/{rounds}  {nodes}".rstrip()

        self.wait(
            "the federated learning job",
            lambda: status().get("phase") in ("Succeeded", "Failed"),
            progress,
        )
        final = status()
        if final.get("phase") != "Succeeded":
            raise RuntimeError(f"the federated learning job ended {final.get('phase')}: {final}")
        compared = subprocess.run(
            [
                sys.executable,
                str(FL_EXAMPLE / "compare.py"),
                "--data",
                str(data),
                "--model",
                final["outputModel"],
                "--passes",
                str(rounds * epochs),
            ],
            check=True,
            cwd=FL_EXAMPLE,
            capture_output=True,
            text=True,
        )
        result = json.loads(compared.stdout)
        result.update(rounds=rounds, epochs=epochs, name=name)
        return result

    @staticmethod
    def federated_table(result: dict[str, Any]) -> str:
        """Federated accuracy next to centralized training and each node alone."""
        central = result["centralized"]
        rows = [
            (
                f"federated, FedAvg ({result['rounds']} rounds x {result['epochs']} epochs)",
                result["federated"],
            ),
            ("centralized (all data in one place)", central),
        ]
        for node, alone in result["nodes"].items():
            label = f"{node.replace('node', 'edge')} alone ({alone['samples']} samples)"
            rows.append((label, alone["accuracy"]))
        lines = [f"{'model':<44} {'accuracy':>9} {'vs centralized':>15}"]
        for label, value in rows:
            lines.append(f"{label:<44} {value:>9.4f} {(value - central) * 100:>+13.1f} pt")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the demo; exits non-zero if any stage fails."""
    logs.configure(args.log_level)
    data_dir = args.data_dir.resolve()
    if data_dir.exists():
        shutil.rmtree(data_dir)
    work = data_dir / "work"
    work.mkdir(parents=True)
    stack = Stack(StackOptions(data_dir=data_dir / "sedna", nodes=NODES))
    print(f"[1/7] starting sedna: API server, Mosquitto, Redis, GM, LCs {' '.join(NODES)}")
    stack.start()
    try:
        print(f"      KUBECONFIG={stack.kubeconfig}")
        demo = Demo(stack, work, args.timeout)
        print("[2/7] kubectl apply -f deploy/samples (the design documents' samples)")
        demo.apply_seed_samples()
        print("[3/7] training the digits models (scikit-learn's bundled digits)")
        models = demo.train_models()
        print("[4/7] joint inference through the control plane: edge only, cloud only, joint")
        demo.run_joint_inference(models, args.repeat)
        print()
        print(f"Joint inference on the digits test split ({args.repeat} passes), three services:")
        print(demo.joint_inference_table())
        print()
        print("$ kubectl get jointinferenceservices")
        print(demo.kubectl("get", "jointinferenceservices"))
        print("$ kubectl get jointinferenceservice digits-joint -o jsonpath='{.status.metrics}'")
        print(
            demo.kubectl(
                "get", "jointinferenceservice", "digits-joint", "-o", "jsonpath={.status.metrics}"
            )
        )
        print()
        print("[5/7] federated learning: three edges with label-skewed digits, one aggregator")
        result = demo.run_federated_learning()
        print()
        print("Federated learning on the digits test split")
        print(demo.federated_table(result))
        print()
        print("$ kubectl get federatedlearningjobs")
        print(demo.kubectl("get", "federatedlearningjobs"))
        print("[6/7] incremental learning: labelled digits arrive in batches, each a round")
        rounds = demo.run_incremental_learning()
        print()
        print("Incremental learning: the serving worker on the hold-out after each round")
        print(demo.incremental_table(rounds))
        print()
        print("$ kubectl get incrementallearningjobs")
        print(demo.kubectl("get", "incrementallearningjobs"))
        print("[7/7] lifelong learning: digits upright, mirrored, then inverted (unseen at first)")
        lifelong = demo.run_lifelong_learning()
        print()
        print("Lifelong learning: the served knowledge on the hold-out under each transform")
        print(demo.lifelong_table(lifelong))
        print()
        print("$ kubectl get lifelonglearningjobs")
        print(demo.kubectl("get", "lifelonglearningjobs"))
    finally:
        stack.stop()
    return 0
