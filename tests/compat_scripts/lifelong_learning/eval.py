import json

from interface import DATACONF, Estimator, feature_process
from sklearn.metrics import precision_score

from sedna.common.config import BaseConfig
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse


def main():
    test_dataset_url = BaseConfig.test_dataset_url
    valid_data = CSVDataParse(data_type="valid", func=feature_process)
    valid_data.parse(test_dataset_url, label=DATACONF["LABEL"])
    attribute = json.dumps({"attribute": DATACONF["ATTRIBUTES"]})

    task_definition = {"method": "TaskDefinitionByDataAttr", "param": attribute}
    task_allocation = {"method": "TaskAllocationByDataAttr", "param": attribute}

    ll_job = LifelongLearning(
        estimator=Estimator,
        task_definition=task_definition,
        task_relationship_discovery=None,
        task_allocation=task_allocation,
        task_remodeling=None,
        inference_integrate=None,
        task_update_decision=None,
        unseen_task_allocation=None,
        unseen_sample_recognition=None,
        unseen_sample_re_recognition=None,
    )
    eval_experiment = ll_job.evaluate(
        valid_data, metrics=precision_score, metrics_param={"average": "micro"}
    )
    return eval_experiment


if __name__ == "__main__":
    print(main())
