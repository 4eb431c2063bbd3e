"""Lifelong learning: ``from sedna.core.lifelong_learning import LifelongLearning``.

Tasks are defined from the training data (by attribute or attribute-free), one model is
trained per task group, and the task index (JSON) is kept in the knowledge base
(``KB_SERVER``). Inference flags samples of unseen tasks and saves them for labelling.
"""

from sedna.core.lifelong_learning.index import KnowledgeIndex
from sedna.core.lifelong_learning.kb_client import KBClient, KnowledgeBaseError
from sedna.core.lifelong_learning.lifelong_learning import LifelongLearning

__all__ = ["KBClient", "KnowledgeBaseError", "KnowledgeIndex", "LifelongLearning"]
