"""Mutants of the scheduling rules that the differential tests must catch, on both stores.

    python -m tests.mutants [name fragment …]

Each mutant changes one line of the service (a rule applied differently), runs the
differential tests that cover it, restores the line and prints the tests that failed. A
mutant no test fails is a hole in the tests. Run it by hand after changing a rule or the
differential tests; it takes a few minutes (the SQL ones need RUNG_TEST_POSTGRES_URL for
PostgreSQL).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MEMORY = "tests/core/test_keras_tuner_parity.py"
SQL = "tests/db/test_keras_tuner_parity_sql.py"

# name: (file, the line as it is, the mutant, the tests to run)
MUTANTS = {
    "memory: retries oldest-first": (
        "service/core/memory.py",
        "return TrialRef(max(self._pending, key=self._pending.__getitem__))",
        "return TrialRef(min(self._pending, key=self._pending.__getitem__))",
        MEMORY,
    ),
    "sql: retries oldest-first": (
        "service/db/repository.py",
        ".order_by(TrialRow.queue_seq.desc())",
        ".order_by(TrialRow.queue_seq.asc())",
        SQL,
    ),
    "memory: dedup off": (
        "service/core/memory.py",
        "        return values_hash in self._tried\n",
        "        return False\n",
        MEMORY,
    ),
    "sql: dedup off": (  # the stored hash is what the SQL store's unique constraint checks
        "service/core/transitions.py",
        '        "values_hash": values_hash,',
        '        "values_hash": None,',
        SQL,
    ),
    "core: promote at >=": (
        "service/core/hyperband.py",
        "if bracket.promotable(round) > sizes[round - 1] - sizes[round]:",
        "if bracket.promotable(round) >= sizes[round - 1] - sizes[round]:",
        f"{MEMORY} {SQL}",
    ),
    "memory: ties to the latest": (
        "service/core/memory.py",
        "key=lambda t: (t.score_key, t.number))",
        "key=lambda t: (t.score_key, -t.number))",
        MEMORY,
    ),
    "sql: ties to the latest": (
        "service/db/repository.py",
        "    .order_by(TrialRow.score_key, TrialRow.number)\n    .limit(1)",
        "    .order_by(TrialRow.score_key, -TrialRow.number)\n    .limit(1)",
        SQL,
    ),
}


def main(fragments: list[str]) -> int:
    survivors = []
    for name, (path, line, mutant, tests) in MUTANTS.items():
        if fragments and not any(f in name for f in fragments):
            continue
        source = Path(path).read_text()
        assert source.count(line) == 1, f"{name}: the line to mutate is not in {path} once"
        Path(path).write_text(source.replace(line, mutant))
        try:
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests.split()],
                capture_output=True,
                text=True,
            )
        finally:
            Path(path).write_text(source)
        caught = sorted(
            {x.split(" - ")[0][7:] for x in run.stdout.splitlines() if x.startswith("FAILED")}
        )
        print(f"{name}: {'caught by' if caught else 'NOT CAUGHT'}")
        for test in caught:
            print(f"    {test}")
        if not caught:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
