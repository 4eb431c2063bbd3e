import os

import joblib
import numpy as np

os.environ['BACKEND_TYPE'] = 'SKLEARN'


class Estimator:
    def __init__(self, **kwargs):
        """Model init"""
        self.model = None

    def load(self, model_url=""):
        self.model = joblib.load(model_url)

    def predict(self, data, **kwargs):
        """Class probabilities of one frame"""
        frame = np.asarray(data, dtype=float).reshape(1, -1)
        return self.model.predict_proba(frame)[0]
