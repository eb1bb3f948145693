"""Every benchmark in its seconds-long smoke mode: it runs and prints its table. Numbers are
not checked here (a benchmark never fails a test by being slow); docs/benchmarks.md has them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
DATABASES = "sqlite,postgresql" if POSTGRES_URL else "sqlite"


@pytest.mark.parametrize(
    "benchmark, header",
    [
        ("core_decision", "µs per decision"),
        ("throughput", "Rung/floor"),
        ("growth", "server peak RSS MiB"),
        ("cluster", "utilisation"),
        ("checkpoints", "peak checkpoints kept"),
        ("instructions", "instructions/request"),
        ("keras_overhead", "outside fit ms/trial"),
        ("dashboard", "the study page, all requests"),
        ("search_efficiency", "time to target"),
    ],
)
def test_benchmark_runs_in_smoke_mode(benchmark, header):
    if benchmark == "instructions" and shutil.which("valgrind") is None:
        if os.environ.get("RUNG_TEST_REQUIRE_VALGRIND"):  # .ci/run installs it and sets this
            pytest.fail("valgrind is required here (RUNG_TEST_REQUIRE_VALGRIND) but missing")
        pytest.skip("valgrind is not installed (apt-get install valgrind); CI installs it")
    args = [sys.executable, "-m", f"benchmarks.{benchmark}", "--smoke"]
    if benchmark not in ("core_decision", "checkpoints", "keras_overhead"):
        args += ["--databases", DATABASES]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert header in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(rows) >= 2  # a header and at least one measured row
