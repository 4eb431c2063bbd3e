"""Incremental learning: train on each round's new samples, evaluate, serve with hot update.

``IncrementalLearning`` is what train, eval and inference workers call (upstream Sedna's API);
``ModelHotUpdater`` polls the model config the LC writes; ``HardExampleStore`` keeps the hard
examples for labelling, indexed in the Dataset's txt format.
"""

from sedna.core.incremental_learning.hard_examples import HardExampleStore
from sedna.core.incremental_learning.hot_update import ModelHotUpdater, read_model_config
from sedna.core.incremental_learning.incremental_learning import IncrementalLearning

__all__ = ["HardExampleStore", "IncrementalLearning", "ModelHotUpdater", "read_model_config"]
