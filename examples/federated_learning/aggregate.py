"""Aggregation worker of the digits federated learning example.

Everything comes from the environment the GM/LC (or run_local.py) sets: SEDNA_JOB_TOKEN,
AGG_BIND_PORT, PARTICIPANTS_COUNT, MODEL_URL and the job parameters exit_round, aggregation,
min_node_number, round_timeout_seconds, checkpoint_dir.
"""

from __future__ import annotations

from sedna.common.log import setup_logging
from sedna.core.federated_learning import AggregationServer


def main() -> None:
    setup_logging()
    final = AggregationServer().start()
    print(f"aggregation finished at round {final.round} ({final.total_samples} samples)")


if __name__ == "__main__":
    main()
