import csv
import json
import os
import time

from interface import DATACONF, Estimator, feature_process

from sedna.common.config import Context
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse


def main():
    ut_saved_url = Context.get_parameters("UT_SAVED_URL", "/tmp")
    attribute = json.dumps({"attribute": DATACONF["ATTRIBUTES"]})
    task_definition = {"method": "TaskDefinitionByDataAttr", "param": attribute}
    task_allocation = {"method": "TaskAllocationByDataAttr", "param": attribute}

    ll_service = LifelongLearning(
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

    infer_dataset_url = Context.get_parameters("infer_dataset_url")
    file_handle = open(infer_dataset_url, "r", encoding="utf-8")

    header = list(csv.reader([file_handle.readline().strip()]))[0]

    os.makedirs(ut_saved_url, exist_ok=True)
    unseen_sample = open(os.path.join(ut_saved_url, "unseen_sample.csv"), "w", encoding="utf-8")
    unseen_sample.write("\t".join(header + ["pred"]) + "\n")
    output_sample = open(f"{infer_dataset_url}_out.csv", "w", encoding="utf-8")
    output_sample.write("\t".join(header + ["pred"]) + "\n")

    while 1:
        where = file_handle.tell()
        line = file_handle.readline()
        if not line:
            time.sleep(1)
            file_handle.seek(where)
            continue
        reader = list(csv.reader([line.strip()]))
        rows = reader[0]
        data = dict(zip(header, rows))

        infer_data = CSVDataParse(data_type="test", func=feature_process)
        infer_data.parse([data], label=DATACONF["LABEL"])
        rsl, is_unseen, target_task = ll_service.inference(infer_data)

        rows.append(list(rsl)[0])

        output = "\t".join(map(str, rows)) + "\n"
        if is_unseen:
            unseen_sample.write(output)
            unseen_sample.flush()
        output_sample.write(output)
        output_sample.flush()


if __name__ == "__main__":
    main()
