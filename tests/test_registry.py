"""The one registry shape behind tasks and metrics."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from pytest_energy.cases import metrics as quality
from pytest_energy.cases import tasks
from pytest_energy.core.registry import Registry


@dataclass(frozen=True)
class Entry:
    name: str
    run: Callable[..., Any]


def first(x: int) -> int:
    return x


def second(x: int) -> int:
    return -x


def test_a_name_taken_by_other_code_is_refused_unless_replaced():
    table: Registry[Entry] = Registry("widget", "register_widget", code=lambda e: e.run)
    table.register(Entry("a", first))
    with pytest.raises(ValueError, match=r"^widget 'a' is already registered; give register_widget\(\.\.\., "
                                         r"replace=True\) to replace it$"):
        table.register(Entry("a", second))
    assert table["a"].run is first
    table.register(Entry("a", second), replace=True)
    assert table["a"].run is second


def test_the_same_definition_registered_again_replaces_the_first():
    table: Registry[Entry] = Registry("widget", "register_widget", code=lambda e: e.run)
    table.register(Entry("a", functools.partial(first)))
    again = Entry("a", functools.partial(first))  # a conftest imported anew: same code, new objects
    assert table.register(again) is again and table["a"] is again


def test_an_unknown_name_lists_the_known_ones_in_order_and_the_hint():
    table: Registry[Entry] = Registry("widget", "register_widget", code=lambda e: e.run, hint=" (add one)")
    for name in ("b", "a"):
        table.register(Entry(name, first))
    with pytest.raises(ValueError, match=r"^my case: unknown widget 'c'; known: b, a \(add one\)$"):
        table.get_entry("c", "my case")
    assert list(table) == ["b", "a"] and len(table) == 2 and "a" in table
    copy = dict(table)
    copy.pop("a")
    assert "a" in table  # the copy is the caller's


def test_tasks_and_metrics_are_both_registries():
    assert isinstance(tasks.TASKS, Registry) and isinstance(quality.METRICS, Registry)
    assert list(tasks.registered_tasks())[0] == "text-classification"  # the bundled ones first
    with pytest.raises(ValueError, match=r"unknown metric 'bleu'; known: .*accuracy"):
        quality.metric("bleu")
    with pytest.raises(ValueError, match=r"unknown task 'ner'; .*pytest_energy\.cases\.register_task"):
        tasks.get_task("ner")
