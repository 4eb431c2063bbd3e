"""A tiny worker for end-to-end tests: reports ``REPORTS`` inference counts, then idles.

It records its own start in ``STARTS_FILE`` (one line per start) so tests can prove that no
worker is ever started twice, and stops cleanly on SIGTERM.
"""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

starts = os.environ.get("STARTS_FILE")
if starts:
    with open(starts, "a") as handle:
        handle.write(f"{os.getpid()}\n")

url = f"{os.environ['LC_SERVER']}/sedna/workers/{os.environ['WORKER_NAME']}/info"
reports = int(os.environ.get("REPORTS", "0"))
period = float(os.environ.get("PERIOD", "0.1"))
first = int(os.environ.get("FIRST_REPORT", "1"))

for number in range(first, first + reports):
    body = {
        "name": os.environ["WORKER_NAME"],
        "namespace": os.environ["NAMESPACE"],
        "ownerName": os.environ["JOB_NAME"],
        "ownerKind": "jointinferenceservice",
        "kind": "inference",
        "status": "running",
        "taskInfo": {"inferenceNumber": number, "hardExampleNumber": number // 10},
    }
    data = json.dumps(body).encode()
    while True:  # the LC accepts a report once it is in its outbox; retry until then
        request = urllib.request.Request(
            url,
            data=data,
            headers={
                "Content-Type": "application/json",
                "X-Sedna-Worker-Token": os.environ.get("SEDNA_WORKER_TOKEN", ""),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    time.sleep(period)

if os.environ.get("EXIT_WHEN_DONE"):
    sys.exit(int(os.environ.get("EXIT_CODE", "0")))
while True:
    time.sleep(1)
