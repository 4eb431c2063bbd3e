"""Two lifelong learning rounds on the digits tasks, without the control plane.

Runs the worker scripts as the LC would (one process per stage, Sedna's environment) against
a knowledge base, and does by hand what the control plane does between them: the round files
(``trainProb`` 0.8), copying the eval index to ``deploy/index.json``, labelling the unseen
samples and appending them to the dataset.

    python examples/lifelong_learning/run_local.py --workdir /tmp/ll   # starts `sedna kb`
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tasks as digits  # noqa: E402

JOB = "digits-ll"
EVAL_ENV = {
    "metrics": "precision_score",
    "metric_param": '{"average": "macro"}',
    "operator": ">=",
    "model_threshold": "0.6",
}


def worker(script: str, env: dict[str, str], common: dict[str, str]) -> float:
    """Run one worker script to completion; returns its duration in seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(HERE / script)],
        env={**os.environ, **common, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def pass_figures(per_task: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One file of an inference pass: per task, and the accuracy over all its labelled rows."""
    labelled = [v for v in per_task.values() if v["accuracy"] is not None]
    total = sum(v["samples"] for v in labelled)
    mixed = sum(v["accuracy"] * v["samples"] for v in labelled) / total if total else None
    return {"tasks": per_task, "mixed_accuracy": mixed}


def label_unseen(saved: Path, dataset: Path) -> int:
    """Label the saved unseen rows (the example knows the truth) and append them."""
    truth = {}
    for task in digits.TASKS:
        x, y = digits.task_rows(task)
        for row, label in zip(x, y, strict=True):
            truth[tuple(np.round(row, 4))] = int(label)
    labelled = 0
    with saved.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    x = np.asarray([[float(r[f"p{i}"]) for i in range(64)] for r in rows])
    y = np.asarray([truth[tuple(np.round(v, 4))] for v in x])
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_task[r["task"]].append(i)
    for task, idx in by_task.items():
        digits.write_csv(dataset, task, x[idx], y[idx])
        labelled += len(idx)
    return labelled


def kb_summary(kb_url: str) -> dict[str, Any]:
    """``status.knowledgeBase`` of the job, as the knowledge base has it."""
    url = f"{kb_url}/knowledgebase/summary?kb=default/{JOB}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def global_model(work: Path, train_files: list[Path]) -> dict[str, float]:
    """Hold-out accuracy per task of one model trained on every training row (no tasks)."""
    xs, ys = [], []
    for path in train_files:
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                xs.append([float(row[f"p{i}"]) for i in range(64)])
                ys.append(int(row["label"]))
    model = LogisticRegression(max_iter=2000).fit(np.asarray(xs), np.asarray(ys))
    scores = {}
    for task in digits.TASKS:
        x, y = digits.holdout(task)
        scores[task] = float((model.predict(x) == y).mean())
    return scores


def run(work: Path, kb_url: str, lc_server: str | None = None) -> dict[str, Any]:
    """Both rounds; returns every figure the README and the tests quote."""
    if work.exists():
        shutil.rmtree(work)
    out, data = work / "output", work / "data"
    common = {"JOB_NAME": JOB, "NAMESPACE": "default", "KB_SERVER": kb_url, "label": "label"}
    if lc_server:
        common["LC_SERVER"] = lc_server
    stream = data / "holdout.csv"
    for task in digits.TASKS:
        digits.write_csv(stream, task, *digits.holdout(task))
    arrivals = data / "arrivals.csv"  # production rows of the new task, unlabelled
    x_new, _ = digits.task_rows("inverted")
    digits.write_csv(arrivals, "inverted", x_new, None)
    figures: dict[str, Any] = {"rounds": []}
    durations: dict[str, list[float]] = defaultdict(list)

    def infer(name: str, source: Path, **extra: str) -> dict[str, Any]:
        env = {
            "WORKER_NAME": f"{JOB}-inference",
            "MODEL_URLS": str(out / "deploy" / "index.json"),
            "OUTPUT_URL": str(work / name),
            "UT_SAVED_URL": str(work / "unseen"),
            "infer_dataset_url": str(source),
            **extra,
        }
        durations["inference"].append(worker("inference.py", env, common))
        summary = json.loads((work / name / "inference" / "summary.json").read_text())
        return pass_figures(summary[source.stem])

    train_files, eval_files = [], []
    for round_number, new_tasks in ((1, ["upright", "mirrored"]), (2, [])):
        train_file = data / "train" / str(round_number) / "data.csv"
        eval_file = data / "eval" / str(round_number) / "data.csv"
        if round_number == 1:
            for task in new_tasks:
                (xt, yt), (xe, ye) = digits.split_train_eval(task)
                digits.write_csv(train_file, task, xt, yt)
                digits.write_csv(eval_file, task, xe, ye)
        else:
            labelled = data / "labelled.csv"
            saved = work / "unseen" / arrivals.stem / "unseen_samples.csv"
            figures["labelled"] = label_unseen(saved, labelled)
            with labelled.open(encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            cut = 1 + int(digits.TRAIN_PROB * (len(rows) - 1))
            for path, part in ((train_file, rows[1:cut]), (eval_file, rows[cut:])):
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", encoding="utf-8", newline="") as handle:
                    csv.writer(handle).writerows([rows[0], *part])
        train_files.append(train_file)
        eval_files.append(eval_file)
        # The eval set: every round's eval rows so far (the LC keeps the last few batches).
        eval_all = data / "eval" / str(round_number) / "all.csv"
        with eval_all.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for i, path in enumerate(eval_files):
                with path.open(encoding="utf-8") as source:
                    lines = list(csv.reader(source))
                writer.writerows(lines if i == 0 else lines[1:])
        train_env = {
            "WORKER_NAME": f"{JOB}-train-{round_number}",
            "TRAIN_DATASET_URL": str(train_file),
            "OUTPUT_URL": str(out / "train" / str(round_number)),
            "HAS_COMPLETED_INITIAL_TRAINING": "true" if round_number > 1 else "false",
        }
        if round_number > 1:
            train_env["CLOUD_KB_INDEX"] = str(out / "train" / str(round_number - 1) / "index.json")
        durations["train"].append(worker("train.py", train_env, common))
        eval_env = {
            "WORKER_NAME": f"{JOB}-eval-{round_number}",
            "MODEL_URLS": str(out / "train" / str(round_number) / "index.json"),
            "TEST_DATASET_URL": str(eval_all),
            "OUTPUT_URL": str(out / "eval" / str(round_number)),
            **EVAL_ENV,
        }
        durations["eval"].append(worker("eval.py", eval_env, common))
        (out / "deploy").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            out / "eval" / str(round_number) / "index.json", out / "deploy" / "index.json"
        )
        deployed = json.loads((out / "deploy" / "index.json").read_text())
        held = infer(f"infer-{round_number}", stream)
        record = {
            "round": round_number,
            "knowledge_base": kb_summary(kb_url),
            "eval": {g["entry"]: g["scores"] for g in deployed["seen_task"]["task_groups"]},
            "deployed": [g["entry"] for g in deployed["seen_task"]["task_groups"] if g["deploy"]],
            "threshold": (deployed["seen_task"].get("detector") or {}).get("threshold"),
            "inference": held,
            "global_model": global_model(work, train_files),
        }
        if round_number == 1:
            record["attribute_free"] = infer(
                "infer-1-no-attribute",
                stream,
                drop_task_column="true",
                UT_SAVED_URL=str(work / "x"),
            )
            record["arrivals"] = infer("arrivals-1", arrivals)
        figures["rounds"].append(record)
    figures["durations"] = {k: [round(v, 2) for v in vs] for k, vs in durations.items()}
    return figures


def start_kb(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``sedna kb`` on a free port; returns the process and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sedna_cli.main",
            "kb",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while True:
        try:
            opener.open(url + "/healthz", timeout=2).read()
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("sedna kb did not start") from None
            time.sleep(0.2)


def print_figures(figures: dict[str, Any]) -> None:
    """The per-round table."""
    for record in figures["rounds"]:
        kb = record["knowledge_base"]["AIModels"]
        held = record["inference"]
        print(
            f"round {record['round']}: knowledge base {kb['numberOfAIModels']} tasks "
            f"{[m['modelID'] for m in kb['listOfAIModels']]}, deployed {record['deployed']}"
        )
        for task, value in held["tasks"].items():
            print(
                f"  {task:9s} accuracy {value['accuracy']:.3f} (global model "
                f"{record['global_model'][task]:.3f})  unseen {value['unseen']:.1%}"
            )
        print(f"  mixed-stream accuracy {held['mixed_accuracy']:.3f}")
        if "attribute_free" in record:
            flagged = {
                t: f"{v['unseen']:.1%}" for t, v in record["attribute_free"]["tasks"].items()
            }
            print(
                f"  without the task column: threshold {record['threshold']:.3f}, unseen {flagged}"
            )
    print(
        f"labelled and appended: {figures.get('labelled')} rows; durations {figures['durations']}"
    )


def main() -> int:
    """Run both rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("ll-work"))
    parser.add_argument("--kb-url", help="use this knowledge base instead of starting one")
    args = parser.parse_args()
    process = None
    kb_url = args.kb_url
    if kb_url is None:
        process, kb_url = start_kb(args.workdir.with_name(args.workdir.name + "-kb"))
    try:
        figures = run(args.workdir, kb_url)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
