"""`rung worker SPEC`: join a study and train its trials with Keras, until it is done.

SPEC is a module (`rung.examples.digits`) or a file (`./train.py`) that defines
    STUDY          the study: {"study": name, "objective": …, "max_epochs": …, …}
    build_model    build_model(hp) -> a compiled keras.Model (Keras Tuner's signature)
    fit_kwargs     fit_kwargs() -> the keyword arguments of model.fit (x, y, validation_data…)
Start one such process per GPU or machine; they share the study through the server.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser("worker", help="train a study's trials with Keras")
    parser.add_argument("spec", help="module or .py file with STUDY, build_model, fit_kwargs")
    parser.add_argument("--server", help="Rung server URL (default: RUNG_SERVER)")
    parser.add_argument("--token", help="API token (default: RUNG_TOKEN)")
    parser.add_argument("--study", help="study name (default: STUDY['study'])")
    parser.add_argument("--checkpoint-dir", help="directory shared by the workers")
    parser.add_argument("--worker-id", help="default: host name and process id")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--create-only",
        action="store_true",
        help="create the study (discovering its search space) and exit",
    )
    parser.set_defaults(func=run)


def load_spec(target: str) -> ModuleType:
    if target.endswith(".py") or Path(target).is_file():
        path = Path(target).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SystemExit(f"rung worker: cannot load {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    from .keras import Tuner  # imports Keras: only workers need it

    settings = dict(spec.STUDY)
    name = args.study or settings.pop("study", None)
    settings.pop("study", None)
    tuner = Tuner(
        getattr(spec, "hypermodel", None) or spec.build_model,
        study=name,
        server=args.server,
        token=args.token,
        worker_id=args.worker_id,
        checkpoint_dir=args.checkpoint_dir,
        verbose=0 if args.quiet else 1,
        **settings,
    )
    if args.create_only:
        study = tuner.study().study
        print(f"[rung] study {study.name!r} (id {study.id}) is ready", flush=True)
        return 0
    tuner.search(**spec.fit_kwargs())
    best = tuner.get_best_hyperparameters()
    if best:
        print(f"[rung] best configuration so far: {best[0].values}", flush=True)
    return 0
