"""A name -> definition table that users extend from a conftest: the home of tasks and metrics alike.

Both registries behave the same way: registering a name twice is refused in one line unless asked to
replace (two conftests defining "ner" differently would otherwise run whichever came last), the same
definition registered again (its module imported anew) replaces the first, and an unknown name fails
with the known ones listed.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

Entry = TypeVar("Entry")


def origin(function: Any) -> tuple[str, str]:
    """Where a function is defined: the same code imported again has the same origin."""
    inner = getattr(function, "func", function)  # a functools.partial's function
    return getattr(inner, "__module__", ""), getattr(inner, "__qualname__", repr(inner))


class Registry(Mapping[str, Entry], Generic[Entry]):
    """Entries by their ``name``, in registration order (the bundled ones first); read like a dict.

    ``kind`` names an entry in messages ("task"), ``register_call`` is the function users call (named in
    the refusal), ``code`` gives the function that identifies a definition (its origin decides "the same
    definition"), and ``hint`` ends the unknown-name message.
    """

    def __init__(self, kind: str, register_call: str, code: Callable[[Entry], Any], hint: str = "") -> None:
        self._entries: dict[str, Entry] = {}
        self._kind, self._register_call, self._code, self._hint = kind, register_call, code, hint

    def register(self, entry: Entry, *, replace: bool = False) -> Entry:
        """Add ``entry`` under its name; returns it. See the module docstring for a name taken twice."""
        name = entry.name  # type: ignore[attr-defined]
        known = self._entries.get(name)
        if known is not None and not replace and origin(self._code(known)) != origin(self._code(entry)):
            raise ValueError(f"{self._kind} {name!r} is already registered; give {self._register_call}(..., "
                             "replace=True) to replace it")
        self._entries[name] = entry
        return entry

    def get_entry(self, name: str, owner: str = "case") -> Entry:
        """The entry registered as ``name``; raises ValueError (one line, naming ``owner``) when unknown."""
        if name not in self._entries:
            raise ValueError(f"{owner}: unknown {self._kind} {name!r}; known: {', '.join(self._entries)}{self._hint}")
        return self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
