"""The series the page reads, by name, as the components expose them (``docs/operations.md``).

Labels ``namespace`` and ``name`` select a job; the knowledge base labels its series with
``kb="<namespace>/<name>"``.
"""

from __future__ import annotations

#: Workers of a job by ``state`` (``active``, ``failed``), with ``kind``, from the GM.
JOB_WORKERS = "sedna_job_workers"

#: The current round of a job, per kind (GM).
ROUND = {
    "FederatedLearningJob": "sedna_federated_current_round",
    "IncrementalLearningJob": "sedna_incremental_round",
    "LifelongLearningJob": "sedna_lifelong_round",
}

#: Samples each node trained on in the latest round it took part in, by ``node`` (GM).
FEDERATED_NODE_SAMPLES = "sedna_federated_node_samples"

#: Task models in a lifelong job's knowledge base, as the job's status has it (GM).
LIFELONG_KNOWN_TASKS = "sedna_lifelong_known_tasks"
#: Known tasks of a knowledge base, label ``kb`` (the knowledge base itself).
KB_TASKS = "sedna_kb_tasks"
#: Where the knowledge base runs (always exposed by it: tells its scrapes from others').
KB_INFO = "sedna_kb_info"

#: The series whose history is kept in memory for the plots.
HISTORY = frozenset({*ROUND.values(), LIFELONG_KNOWN_TASKS, KB_TASKS})
