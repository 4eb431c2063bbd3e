"""Training worker of the digits federated learning example.

Reads its node's split from TRAIN_DATASET_URL (CSV, label column ``label``), trains the numpy
MLP locally for ``epochs`` per round and federates through the aggregator at AGG_IP:AGG_PORT.
Job parameters: learning_rate, batch_size, epochs, aggregation, compression, topk_ratio, seed.
TEST_DATASET_URL, when set, is evaluated at the end; each round's global model is saved at
MODEL_URL (when set) with the estimator's own ``save``.
"""

from __future__ import annotations

from mlp import DigitsMLP  # the example's estimator, next to this script

from sedna.common.config import BaseConfig, Context
from sedna.common.log import setup_logging
from sedna.core.federated_learning import FederatedLearning
from sedna.datasources import CSVDataParse


def main() -> None:
    setup_logging()
    train_data = CSVDataParse(data_type="train").parse(BaseConfig.train_dataset_url, label="label")
    estimator = DigitsMLP(
        learning_rate=float(Context.get_parameters("learning_rate", 0.1)),
        batch_size=int(Context.get_parameters("batch_size", 32)),
        epochs=int(Context.get_parameters("epochs", 1)),
        # Every node starts from the same initial weights.
        seed=int(Context.get_parameters("seed", 0)),
    )
    aggregation = Context.get_parameters("aggregation", "FedAvg")
    summary = FederatedLearning(estimator, aggregation=aggregation).train(train_data)
    first = summary.rounds_trained[0] if summary.rounds_trained else summary.final_round
    line = f"{BaseConfig.worker_name}: trained rounds {first}..{summary.final_round}"
    if BaseConfig.test_dataset_url:
        test_data = CSVDataParse(data_type="test").parse(BaseConfig.test_dataset_url, label="label")
        line += f", test accuracy {estimator.evaluate(test_data)['accuracy']:.4f}"
    if summary.model_path:  # the library saved each round's global model with estimator.save
        line += f", model {summary.model_path}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
