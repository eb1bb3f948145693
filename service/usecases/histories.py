"""BOHB's results per study, kept between asks so that an ask stays cheap in a long study.

An ask reads only the results told since its last read (`ix_trials_results`), in a read
transaction of its own: it sees committed results only, so a batch that rolls back leaves
nothing behind, and results are numbered under the study's lock, so the committed ones are
always the first n. Each server process keeps its own copy and catches up on its next ask.
"""

from __future__ import annotations

import threading

from service.core.bohb import History, read_results
from service.core.state import StudyConfig
from service.db import repository as repo
from service.db.models import StudyRow
from service.db.transactions import Database

MAX_STUDIES = 1000  # histories kept; past this the cache starts again (they are re-read)


class Histories:
    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._by_study: dict[tuple[int, int], History] = {}

    def read(self, study: StudyRow, config: StudyConfig) -> History:
        """The study's history, with the results told since the last read. Called with the
        study's lock held, so one study's history is never read twice at once."""
        key = (study.id, study.space_version)  # a new entry in the space: a new model
        with self._lock:
            history = self._by_study.get(key)
            if history is None:
                if len(self._by_study) >= MAX_STUDIES:
                    self._by_study.clear()
                history = self._by_study[key] = History()
        with self.db.read() as session:
            rows = repo.results_since(session, study.id, history.seen)
        read_results(history, config.space, rows)
        return history
