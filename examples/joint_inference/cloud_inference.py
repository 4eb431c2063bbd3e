"""Cloud worker of the digits joint inference example: serve the big model.

Environment: ``MODEL_URL`` (the cloud model pickle), ``BIG_MODEL_BIND_PORT`` (default 5000).
"""

from __future__ import annotations

from estimators import CloudEstimator

from sedna.core.joint_inference import BigModelService


def main() -> None:
    """Load the model from MODEL_URL and serve it until stopped."""
    BigModelService(estimator=CloudEstimator).start()


if __name__ == "__main__":
    main()
