"""The examples a case runs on: JSONL, JSON or CSV files, or rows in code, read for a task."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from .tasks import Task


#: Rows given in code, or a file of them.
Dataset = Union[str, Path, Sequence[Mapping[str, Any]]]


def load_rows(dataset: Dataset) -> list[dict[str, Any]]:
    """Every example of a dataset: a ``.jsonl``, ``.json`` (a list of objects) or ``.csv`` file, or rows."""
    if not isinstance(dataset, (str, Path)):
        return [dict(row) for row in dataset]
    path = Path(dataset)
    if not path.is_file():
        raise ValueError(f"dataset file {path} does not exist")
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if path.suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            return list(json.load(handle))
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    raise ValueError(f"dataset file {path}: expected .jsonl, .json or .csv")


def _picked(dataset: Dataset, task: Task, columns: Mapping[str, str]) -> list[dict[str, Any]]:
    """The task's fields of every example as the dataset holds them, renamed where ``columns`` says."""
    rows = load_rows(dataset)
    if not rows:
        raise ValueError(f"dataset {dataset if isinstance(dataset, (str, Path)) else '(rows)'} is empty")
    wanted = [*task.inputs, task.target]
    picked = []
    for index, row in enumerate(rows):
        example = {}
        for name in wanted:
            column = columns.get(name, name)
            if column not in row:
                raise ValueError(f"dataset example {index} has no column {column!r} (needed for {name!r} of "
                                 f"task {task.name}); map it with columns={{{name!r}: '<column>'}}")
            example[name] = row[column]
        picked.append(example)
    return picked


def examples(dataset: Dataset, task: Task, columns: Mapping[str, str]) -> list[dict[str, Any]]:
    """The task's fields of every example, renamed from the dataset's columns where ``columns`` says,
    in the form the task runs them (``Task.prepare``)."""
    picked = _picked(dataset, task, columns)
    return [task.prepare(example) for example in picked] if task.prepare is not None else picked


def example_keys(dataset: Dataset, task: Task, columns: Mapping[str, str]) -> list[str]:
    """A short content hash of each example's task fields (as the dataset holds them, before
    ``Task.prepare``), in :func:`examples`' order: a quality verdict pairs the examples a run and its
    baseline both scored by these keys, so an edited or reordered dataset pairs what is still the same."""
    return [hashlib.sha256(json.dumps(example, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:10]
            for example in _picked(dataset, task, columns)]


def fingerprint(dataset: Dataset) -> str:
    """A short content hash of a dataset, so caches notice when its data changes."""
    digest = hashlib.sha256()
    if isinstance(dataset, (str, Path)):
        digest.update(Path(dataset).read_bytes())
    else:
        digest.update(json.dumps([dict(r) for r in dataset], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
