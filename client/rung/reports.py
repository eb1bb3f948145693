"""A study seen from the terminal: `rung studies`, `rung show STUDY` (its Hyperband ladder and
best trials), `rung trials STUDY` (a table) and `rung export STUDY` (CSV or JSON). STUDY is
a study's name or id. They take `--server` and `--token` as `rung worker` does (default:
RUNG_SERVER, RUNG_TOKEN); a reader's token is enough."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .client import Client, RetryPolicy
from .errors import NotFoundError
from .schemas import Page, Study, Trial

T = TypeVar("T")

STATUSES = ("pending", "running", "completed", "failed")
# The columns of an export before the hyperparameters (`hp.<name>`) and final metrics
# (`metric.<name>`); the JSON export has every field of each trial, its history included.
EXPORT_FIELDS = (
    "id",
    "status",
    "iteration",
    "bracket",
    "round",
    "epochs",
    "initial_epoch",
    "parent_trial_id",
    "score",
    "best_epoch",
    "worker_id",
    "runs",
    "failed_runs",
    "lost_leases",
    "created_at",
    "finished_at",
    "error",
)


def register(commands: Any) -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--server", help="Rung server URL (default: RUNG_SERVER)")
    connection.add_argument("--token", help="API token (default: RUNG_TOKEN)")
    studies_ = commands.add_parser("studies", parents=[connection], help="list the studies")
    studies_.set_defaults(func=studies)
    show_ = commands.add_parser(
        "show", parents=[connection], help="a study's progress, ladder and best trials"
    )
    show_.add_argument("study", help="the study's name or id")
    show_.add_argument("--best", type=int, default=5, metavar="K", help="best trials shown")
    show_.set_defaults(func=show)
    trials_ = commands.add_parser("trials", parents=[connection], help="a study's trials")
    trials_.add_argument("study", help="the study's name or id")
    trials_.add_argument("--status", choices=STATUSES, help="only the trials in this status")
    trials_.set_defaults(func=trials)
    export_ = commands.add_parser(
        "export", parents=[connection], help="a study's trials as CSV or JSON"
    )
    export_.add_argument("study", help="the study's name or id")
    export_.add_argument("--format", choices=("csv", "json"), default="csv")
    export_.add_argument("--status", choices=STATUSES, help="only the trials in this status")
    export_.add_argument("--output", "-o", help="file to write (default: standard output)")
    export_.set_defaults(func=export)


def studies(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rows = [
            [s.id, s.name, s.status, _objective(s), str(s.settings.max_epochs), _time(s)]
            for s in _all_studies(client)
        ]
    print(table(["id", "name", "status", "objective", "max_epochs", "created"], rows))
    return 0


def show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        study = find(client, args.study)
        best = client.best(study.id, k=args.best) if args.best > 0 else []
    progress = study.progress
    assert progress is not None  # GET of one study has it
    counts = progress.trials
    print(f"study {study.name!r} (id {study.id}): {study.status}" + _reason(study))
    print(f"objective {_objective(study)}; seed {study.seed}")
    print(
        f"trials: {counts.completed} completed, {counts.running} running, "
        f"{counts.pending} pending, {counts.failed} failed"
    )
    ladder = [
        [
            str(b.iteration),
            str(b.bracket),
            "open" if b.open else "closed",
            str(r.round),
            str(r.epochs),
            str(r.size),
            str(r.created),
            str(r.completed),
        ]
        for b in progress.brackets
        for r in b.rounds
    ]
    print()
    headers = ["iteration", "bracket", "", "round", "epochs", "planned", "created", "completed"]
    print(table(headers, ladder))
    if best:
        print()
        print(f"best {len(best)}:")
        print(
            table(
                ["trial", "score", "epochs", "bracket", "round", "hyperparameters"],
                [
                    [
                        t.id,
                        _number(t.score),
                        str(t.epochs),
                        str(t.bracket),
                        str(t.round),
                        _values(t),
                    ]
                    for t in best
                ],
            )
        )
    return 0


def trials(args: argparse.Namespace) -> int:
    with _client(args) as client:
        study = find(client, args.study)
        rows = [
            [
                t.id,
                t.status,
                str(t.bracket),
                str(t.round),
                f"{t.initial_epoch}->{t.epochs}",
                t.parent_trial_id or "",
                _number(t.score),
                t.worker_id or "",
                _values(t),
            ]
            for t in all_trials(client, study.id, args.status)
        ]
    headers = ["trial", "status", "bracket", "round", "epochs", "parent", "score", "worker"]
    print(table([*headers, "hyperparameters"], rows))
    return 0


def export(args: argparse.Namespace) -> int:
    with _client(args) as client:
        study = find(client, args.study)
        found = list(all_trials(client, study.id, args.status))
    text = to_json(found) if args.format == "json" else to_csv(found)
    if args.output:
        with open(args.output, "w", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def to_csv(found: Sequence[Trial]) -> str:
    """One row per trial: EXPORT_FIELDS, then `hp.<name>` and `metric.<name>` columns (in
    the order first seen); empty where a trial has no value."""
    hp_names = _names(t.hyperparameters for t in found)
    metric_names = _names(t.metrics or {} for t in found)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [*EXPORT_FIELDS, *(f"hp.{n}" for n in hp_names), *(f"metric.{n}" for n in metric_names)]
    )
    for t in found:
        shown = t.model_dump(mode="json")
        writer.writerow(
            [_cell(shown[f]) for f in EXPORT_FIELDS]
            + [_cell(t.hyperparameters.get(n)) for n in hp_names]
            + [_cell((t.metrics or {}).get(n)) for n in metric_names]
        )
    return out.getvalue()


def to_json(found: Sequence[Trial]) -> str:
    return json.dumps([t.model_dump(mode="json") for t in found], indent=1) + "\n"


def find(client: Client, key: str) -> Study:
    """The study named `key`, else the one whose id is `key`; SystemExit if there is none."""
    named = client.find_study(key)
    if named is not None:
        return client.get_study(named.id)
    if key.isdigit():
        try:
            return client.get_study(key)
        except NotFoundError:
            pass
    raise SystemExit(f"rung: no study is named {key!r} or has that id")


def all_trials(client: Client, study_id: str, status: str | None) -> Iterator[Trial]:
    return _every_page(
        lambda cursor: client.trials(study_id, status=status, limit=1000, cursor=cursor)
    )


def _every_page(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """The items of every page `fetch(cursor)` answers, from the first (cursor None) on."""
    cursor = None
    while True:
        page = fetch(cursor)
        yield from page.items
        if not (cursor := page.next_cursor):
            return


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, the last one left as it is."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(
            cell if i == len(line) - 1 else cell.ljust(widths[i]) for i, cell in enumerate(line)
        ).rstrip()
        for line in lines
    )


def _client(args: argparse.Namespace) -> Client:
    # A person waits at the terminal: give up on an unreachable server after 10 s, not the
    # two minutes a worker rides out.
    return Client(args.server, token=args.token, retry=RetryPolicy(max_wait_s=10))


def _all_studies(client: Client) -> Iterator[Study]:
    return _every_page(lambda cursor: client.list_studies(limit=1000, cursor=cursor))


def _names(mappings: Iterator[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(name for mapping in mappings for name in mapping))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _objective(study: Study) -> str:
    objectives = study.objective if isinstance(study.objective, list) else [study.objective]
    return ", ".join(f"{o['name']} ({o['direction']})" for o in objectives)


def _reason(study: Study) -> str:
    return f" ({study.reason})" if study.reason else ""


def _time(study: Study) -> str:
    return study.created_at.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _values(trial: Trial) -> str:
    return json.dumps(trial.hyperparameters, separators=(", ", ": "))
