"""The estimator and data configuration, as in upstream's ``atcii/interface.py`` (a scikit-learn
gradient boosting classifier instead of xgboost)."""

import os
import pickle

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

os.environ["BACKEND_TYPE"] = "SKLEARN"

DATACONF = {
    "ATTRIBUTES": ["Season", "Cooling startegy_building level"],
    "LABEL": "Thermal preference",
}


def feature_process(df: pd.DataFrame):
    """Numbers as floats (empty cells 0.0), the label as an int (empty: 1, "no change")."""
    if "City" in df.columns:
        df.drop(["City"], axis=1, inplace=True)
    for feature in df.columns:
        if feature in DATACONF["ATTRIBUTES"] or feature == DATACONF["LABEL"]:
            continue
        df[feature] = df[feature].apply(lambda x: float(x) if x != "" else 0.0)
    if DATACONF["LABEL"] in df.columns:
        df[DATACONF["LABEL"]] = df[DATACONF["LABEL"]].apply(
            lambda x: int(float(x)) if x != "" else 1
        )
    return df


class Estimator:
    def __init__(self, **kwargs):
        """Model init"""
        self.model = GradientBoostingClassifier(n_estimators=60, max_depth=2, random_state=27)

    def predict(self, datas, **kwargs):
        return self.model.predict(datas)

    def predict_proba(self, datas, **kwargs):
        return self.model.predict_proba(datas)

    def train(self, train_data, valid_data=None, metric_name="log_loss", early_stopping_rounds=100):
        # xgboost's early stopping on ``metric_name``; scikit-learn's stops on its own loss.
        self.model.set_params(n_iter_no_change=early_stopping_rounds, validation_fraction=0.1)
        x, y = (train_data.x, train_data.y)
        self.model.fit(np.asarray(x, dtype=float), np.asarray(y))
        return {"n_estimators": float(self.model.n_estimators_)}

    def load(self, model_url):
        with open(model_url, "rb") as fin:
            self.model = pickle.load(fin)
        return self

    def save(self, model_path=None):
        if not model_path:
            return
        with open(model_path, "wb") as fout:
            pickle.dump(self.model, fout)
