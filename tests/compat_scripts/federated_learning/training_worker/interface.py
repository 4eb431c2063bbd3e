import os
import pickle

import numpy as np

os.environ['BACKEND_TYPE'] = 'NUMPY'


class Estimator:
    """Softmax regression on 8x8 digits, trained by minibatch gradient descent."""

    def __init__(self, **kwargs):
        """Model init"""
        self.weights = [np.zeros((64, 10)), np.zeros(10)]

    def _probabilities(self, x):
        logits = x.reshape(len(x), -1) @ self.weights[0] + self.weights[1]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def train(self,
              train_data, valid_data=None,
              epochs=1,
              batch_size=1,
              learning_rate=0.01,
              validation_split=0.2):
        """ Model train """
        x, y = np.stack(train_data.x), np.stack(train_data.y)
        history = {"loss": [], "accuracy": []}
        for _ in range(int(epochs)):
            for start in range(0, len(x), int(batch_size)):
                xb, yb = x[start:start + int(batch_size)], y[start:start + int(batch_size)]
                grad = (self._probabilities(xb) - yb) / len(xb)
                self.weights[0] -= learning_rate * xb.reshape(len(xb), -1).T @ grad
                self.weights[1] -= learning_rate * grad.sum(axis=0)
            probabilities = self._probabilities(x)
            history["loss"].append(
                float(-np.mean(np.sum(y * np.log(probabilities + 1e-12), axis=1))))
            history["accuracy"].append(
                float(np.mean(probabilities.argmax(1) == y.argmax(1))))
        return {k: list(map(float, v)) for k, v in history.items()}

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, dtype=float) for w in weights]

    def predict(self, datas):
        return self._probabilities(np.asarray(datas)).argmax(axis=1)

    def evaluate(self, test_data, **kwargs):
        pass

    def load(self, model_url):
        with open(model_url, "rb") as fin:
            self.weights = pickle.load(fin)["weights"]

    def save(self, model_path=None):
        """
        save model as a single pickle file
        """
        with open(model_path, "wb") as fout:
            pickle.dump({"weights": self.weights}, fout)
