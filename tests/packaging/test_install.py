"""The two distributions install side by side from a checkout, in a fresh virtual
environment, in either order: the client (`rung`, in client/) owns the `rung` package and
command; the server (`rung-service`) depends on it and adds `serve`, `db` and `demo`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CLIENT_COMMANDS = {"worker", "studies", "show", "trials", "export"}


def run(*command: object, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's files: building a wheel writes into the source tree."""
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "build",
        "*.egg-info",
        "__pycache__",
        "rung-data",
        ".*_cache",
        "test-artifacts",
    )
    return Path(shutil.copytree(ROOT, tmp_path / "checkout", ignore=ignore))


def venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


def commands(bin_dir: Path) -> set[str]:
    """The subcommands `rung --help` lists."""
    text = run(bin_dir / "rung", "--help")
    listed = text.split("positional arguments:")[1].split("options:")[0]
    return {
        line.split()[0]
        for line in listed.splitlines()[2:]
        if line.startswith("    ") and not line.startswith("     ")  # not wrapped help
    }


def owners(bin_dir: Path) -> dict[str, list[str]]:
    """Which distribution ships each top-level package."""
    script = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({d.metadata['Name']: sorted({f.parts[0] for f in d.files or ()"
        " if f.suffix == '.py'}) for d in m.distributions()"
        " if d.metadata['Name'] in ('rung', 'rung-service')}))"
    )
    return json.loads(run(bin_dir / "python", "-c", script))


def test_client_then_server_then_either_uninstalled(tmp_path, checkout):
    bin_dir = venv(tmp_path / "venv")
    run(bin_dir / "pip", "install", "-q", "./client", cwd=checkout)
    assert commands(bin_dir) == CLIENT_COMMANDS
    run(bin_dir / "pip", "install", "-q", ".", cwd=checkout)
    assert commands(bin_dir) == CLIENT_COMMANDS | {"serve", "db", "demo"}
    assert owners(bin_dir) == {"rung": ["rung"], "rung-service": ["service"]}
    assert "usage: rung serve" in run(bin_dir / "rung", "serve", "--help")
    pages = "from service.api.pages import DASHBOARD as D, SWAGGER_UI as S; print(sorted("
    pages += "p.name for p in D.iterdir()), (S / 'swagger-ui-bundle.js').is_file())"
    shipped = run(bin_dir / "python", "-c", pages, cwd=tmp_path)  # the page files installed
    assert shipped.strip() == "['app.js', 'charts.js', 'index.html', 'style.css'] True"

    run(bin_dir / "pip", "uninstall", "-y", "-q", "rung-service")
    assert commands(bin_dir) == CLIENT_COMMANDS  # the client's files are untouched
    assert "usage: rung worker" in run(bin_dir / "rung", "worker", "--help")


def test_server_first_in_one_command_then_the_client_reinstalled(tmp_path, checkout):
    bin_dir = venv(tmp_path / "venv")
    run(bin_dir / "pip", "install", "-q", ".", "./client", cwd=checkout)
    assert commands(bin_dir) == CLIENT_COMMANDS | {"serve", "db", "demo"}
    run(
        bin_dir / "pip", "install", "-q", "--force-reinstall", "--no-deps", "./client", cwd=checkout
    )
    assert commands(bin_dir) == CLIENT_COMMANDS | {"serve", "db", "demo"}
    run(bin_dir / "python", "-c", "import service.app, rung.schemas", cwd=tmp_path)
