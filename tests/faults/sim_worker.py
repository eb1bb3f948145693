"""A simulated training worker on the real SDK, for the fault tests: it asks, "trains" by
sleeping per epoch while reporting (the SDK heartbeats in the background), and tells a score.
Every hand-out and every accepted tell is appended to a JSON-lines record file.

Run in a thread (`run`) or as a process that tests can kill:
    python -m tests.faults.sim_worker URL STUDY_NAME WORKER_ID RECORD [--epoch-seconds S]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time

from rung import Client, RetryPolicy
from rung.errors import ConflictError
from tests.api.helpers import SPACE

STUDY = {
    "objective": "val_loss",
    "max_epochs": 27,
    "factor": 3,
    "seed": 11,
    "lease_seconds": 60.0,
    "hyperparameters": SPACE,
}
_lock = threading.Lock()


def write(record: str, entry: dict) -> None:
    with _lock, open(record, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def score_of(trial) -> float:
    """A deterministic learning curve: the same trial always scores the same."""
    base = random.Random(repr(sorted(trial.hyperparameters.items()))).random()
    return base + 1.0 / trial.epochs


def run(
    url: str,
    study_name: str,
    worker_id: str,
    record: str,
    *,
    epoch_seconds: float = 0.05,
    study: dict | None = None,
    token: str | None = None,
    retry: RetryPolicy | None = None,
) -> None:
    retry = retry or RetryPolicy(max_attempts=200, base=0.05, cap=0.5)
    with Client(url, retry=retry, token=token, timeout=10) as client:
        handle = client.study(study_name, worker_id=worker_id, **(study or STUDY))
        while (trial := handle.next_trial()) is not None:
            write(
                record,
                {
                    "event": "run",
                    "trial": trial.id,
                    "worker": worker_id,
                    "at": time.time(),
                    "runs": trial.runs,
                },
            )
            try:
                with handle.session(trial) as session:
                    for epoch in range(trial.initial_epoch, trial.epochs):
                        time.sleep(epoch_seconds)
                        session.report(epoch, {"val_loss": score_of(trial) + 0.01 * epoch})
                        if session.lost.is_set():
                            break
                if session.lost.is_set():
                    write(record, {"event": "lost", "trial": trial.id, "worker": worker_id})
                    continue
                told = handle.tell(trial, {"val_loss": score_of(trial)})
            except ConflictError as exc:  # lease lost while telling: another worker has it
                write(
                    record,
                    {"event": "refused", "trial": trial.id, "worker": worker_id, "code": exc.code},
                )
                continue
            write(
                record,
                {
                    "event": "told",
                    "trial": trial.id,
                    "worker": worker_id,
                    "score": told.score,
                    "at": time.time(),
                },
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("url", "study", "worker", "record"):
        parser.add_argument(name)
    parser.add_argument("--epoch-seconds", type=float, default=0.05)
    parser.add_argument("--lease-seconds", type=float, default=60.0)
    args = parser.parse_args()
    run(
        args.url,
        args.study,
        args.worker,
        args.record,
        epoch_seconds=args.epoch_seconds,
        study={**STUDY, "lease_seconds": args.lease_seconds},
    )
