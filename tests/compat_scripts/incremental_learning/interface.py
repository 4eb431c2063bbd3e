import logging
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_score, recall_score

os.environ['BACKEND_TYPE'] = 'SKLEARN'
LOG = logging.getLogger(__name__)


def preprocess(image, input_shape):
    """Preprocess functions in edge model inference"""
    image = np.asarray(image, dtype=float).reshape(input_shape)
    return image.reshape(1, -1) / 16.0


def load_sample(line):
    """An index line `<sample path> <label>` as (image, label)"""
    file_path, label = line.split()
    return np.load(file_path), int(label)


class Estimator:

    def __init__(self, **kwargs):
        """
        initialize the classifier
        """
        self.model = LogisticRegression(max_iter=200)

    def train(self, train_data, valid_data=None, **kwargs):
        """
        train
        """
        samples = [load_sample(line) for line in train_data.x]
        x = np.concatenate([preprocess(img, (8, 8)) for img, _ in samples])
        y = np.array([label for _, label in samples])
        max_epochs = int(kwargs.get("max_epochs", "1"))
        self.model = LogisticRegression(max_iter=200 * max_epochs)
        self.model.fit(x, y)
        LOG.info(f"trained on {len(y)} samples")
        return {"loss": float(1 - self.model.score(x, y))}

    def evaluate(
            self,
            valid_data,
            model_path="",
            class_names="",
            input_shape=(8, 8),
            **kwargs):
        """
        validate
        """
        model = joblib.load(model_path)
        samples = [load_sample(line) for line in valid_data.x]
        x = np.concatenate([preprocess(img, input_shape) for img, _ in samples])
        y = np.array([label for _, label in samples])
        labels = [int(name) for name in class_names]
        predicted = model.predict(x)
        precision = precision_score(
            y, predicted, labels=labels, average=None, zero_division=0)
        recall = recall_score(
            y, predicted, labels=labels, average=None, zero_division=0)
        return {
            "recall": recall.tolist(), "precision": precision.tolist()
        }

    def predict(self, data, input_shape=None, **kwargs):
        new_image = preprocess(data, input_shape)
        probabilities = self.model.predict_proba(new_image)[0]
        return self.model.classes_, probabilities

    def load(self, model_url):
        LOG.info(f"Load model {model_url}")
        self.model = joblib.load(model_url)

    def save(self, model_path=None):
        """
        save model as a single pkl file
        """
        model_dir, model_name = os.path.split(model_path)
        os.makedirs(model_dir, exist_ok=True)
        joblib.dump(self.model, os.path.join(model_dir, model_name))
