"""Run the digits federated learning job on this machine, without the control plane: one
aggregation worker and one training worker per node, as processes with the environment the
GM/LC would give them.

    python run_local.py --rounds 20 --epochs 2 --compression none

Logs go to <workdir>/logs; the global model to <workdir>/model/global_model.npz.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from mlp import DigitsMLP
from prepare_data import prepare

from sedna.datasources import CSVDataParse

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--aggregation", default="FedAvg")
    parser.add_argument("--compression", default="none")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sedna-fl-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    train_paths = prepare(workdir / "data", args.nodes, args.alpha)
    test_path = workdir / "data" / "test.csv"
    model_path = workdir / "model" / "global_model.npz"
    port = _free_port()
    job = {
        **os.environ,
        "JOB_NAME": "digits-federated",
        "NAMESPACE": "default",
        "SEDNA_JOB_TOKEN": secrets.token_hex(16),
        "aggregation": args.aggregation,
    }
    aggregator_env = {
        **job,
        "WORKER_NAME": "digits-federated-aggregation",
        "AGG_BIND_PORT": str(port),
        "agg_bind_host": "127.0.0.1",
        "PARTICIPANTS_COUNT": str(args.nodes),
        "exit_round": str(args.rounds),
        "min_node_number": str(max(1, args.nodes - 1)),
        "round_timeout_seconds": "60",
        "MODEL_URL": str(model_path),
    }
    commands = [("aggregator", aggregator_env, "aggregate.py")]
    for node, train_path in enumerate(train_paths):
        trainer_env = {
            **job,
            "WORKER_NAME": f"digits-federated-train-{node}",
            "NODE_NAME": f"edge{node}",
            "AGG_IP": "127.0.0.1",
            "AGG_PORT": str(port),
            "TRAIN_DATASET_URL": str(train_path),
            "TEST_DATASET_URL": str(test_path),
            # As upstream's GM does: every trainer saves the global model with its estimator.
            "MODEL_URL": str(model_path),
            "epochs": str(args.epochs),
            "learning_rate": "0.1",
            "batch_size": "32",
            "compression": args.compression,
        }
        commands.append((f"train-{node}", trainer_env, "train.py"))
    print(f"workdir {workdir}; aggregator on 127.0.0.1:{port}", flush=True)
    running = []
    for name, env, script in commands:
        log = (logs / f"{name}.log").open("w")
        running.append(
            (name, subprocess.Popen([sys.executable, str(HERE / script)], env=env, stderr=log))
        )
    failed = [name for name, process in running if process.wait() != 0]
    if failed:
        print(f"failed: {', '.join(failed)} (see {logs})", file=sys.stderr)
        return 1
    estimator = DigitsMLP()
    estimator.load(str(model_path))
    test = CSVDataParse(data_type="test").parse(test_path, label="label")
    print(f"global model: test accuracy {estimator.evaluate(test)['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
