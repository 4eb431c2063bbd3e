"""Unseen sample recognition: which samples belong to no task the knowledge base knows.

Registered under ``ClassType.UTD`` (upstream's names, which upstream spells ``Regonition``):

- ``SampleRegonitionDefault``: by attribute when the samples carry the task attribute, else
  by distance (upstream: random for one sample, "second half of the batch" otherwise).
- ``TaskAttrFilter`` / ``SampleRecognitionByAttribute``: unseen iff the sample's attribute
  values match no deployed task (upstream silently allocates them to task 0).
- ``SampleRecognitionByDistance``: unseen iff the distance to the ``k``-th nearest training
  sample of the closest deployed task exceeds a threshold calibrated on seen evaluation data
  (:func:`calibrate_threshold`, a quantile of those distances).
- ``SampleReRegonitionDefault``: the same rules, applied to new training data in ``update``.
"""

from sedna.algorithms.unseen_task_detection.recognition import (
    SampleRecognitionByAttribute,
    SampleRecognitionByDistance,
    SampleRegonitionDefault,
    SampleReRegonitionDefault,
    calibrate_threshold,
    knn_distance,
)

__all__ = [
    "SampleReRegonitionDefault",
    "SampleRecognitionByAttribute",
    "SampleRecognitionByDistance",
    "SampleRegonitionDefault",
    "calibrate_threshold",
    "knn_distance",
]
