"""The knowledge base of lifelong learning: a cloud-side HTTP service over SQLite.

Train and eval workers post the task index (JSON data, never pickled objects) and deploy flags;
the GM reads what each job's knowledge base holds. Like ``gm/`` and ``lc/`` it imports only
``apis/`` and ``broker/`` of the project (its settings: ``apis.settings``). ``sedna kb`` runs
it alone and ``sedna up`` starts one.
"""

from kb.models import KBIndex, KBSummary, StatusUpdate
from kb.server import KBServer
from kb.settings import InvalidKBSettings, KBSettings
from kb.store import KnowledgeStore, StoreError, UnknownEntity

__all__ = [
    "InvalidKBSettings",
    "KBIndex",
    "KBServer",
    "KBSettings",
    "KBSummary",
    "KnowledgeStore",
    "StatusUpdate",
    "StoreError",
    "UnknownEntity",
]
