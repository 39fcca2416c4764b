"""WordNet 3.0 for NLTK from a system package, never from a download.

Debian's ``wordnet-base`` and ``wordnet-sense-index`` install the WordNet 3.0 database under
``/usr/share/wordnet``. NLTK's reader can use those files once they sit in a ``corpora/wordnet`` folder
on ``nltk.data.path``, as regular files of their own (NLTK refuses symlinks and hard links, which could
point outside its data root), with WordNet's ``lexnames`` file beside them, which Debian does not ship.
:func:`nltk_root` copies that folder once into a cache directory (about 35 MB) and returns its root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Where Debian's packages put the database.
SYSTEM_WORDNET = Path("/usr/share/wordnet")

#: The files NLTK's WordNet reader opens (``lexnames`` is written from LEXICOGRAPHER_FILES).
_NEEDED = ("data.adj", "data.adv", "data.noun", "data.verb", "index.adj", "index.adv", "index.noun",
           "index.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc", "index.sense")

#: WordNet 3.0's 45 lexicographer files, numbered as its ``lexnames(5WN)`` page gives them, with their
#: syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb). The list is fixed by the database format.
LEXICOGRAPHER_FILES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1),
    ("noun.food", 1), ("noun.group", 1), ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1),
    ("noun.person", 1), ("noun.phenomenon", 1), ("noun.plant", 1), ("noun.possession", 1),
    ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1), ("noun.shape", 1),
    ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2), ("verb.change", 2),
    ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)


def lexnames_text() -> str:
    """The ``lexnames`` file: one ``NN<tab>name<tab>category`` line per lexicographer file."""
    return "".join(f"{number:02d}\t{name}\t{category}\n"
                   for number, (name, category) in enumerate(LEXICOGRAPHER_FILES))


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "pytest-energy" / "nltk_data"


def _place(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically (NLTK refuses both symlinks and hard links)."""
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def nltk_root(source: Path = SYSTEM_WORDNET, cache: Path | None = None) -> Path | None:
    """An NLTK data root holding ``corpora/wordnet`` built from ``source``; None where it is incomplete.

    Built once: files already in place with the source's size are kept. Where the cache folder cannot
    be written, a temporary one is used for this process.
    """
    if not all((source / name).is_file() for name in _NEEDED):
        return None
    for root in (cache or _cache_root(), Path(tempfile.gettempdir()) / f"pytest-energy-nltk-{getattr(os, 'getuid', lambda: 0)()}"):
        folder = root / "corpora" / "wordnet"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name in _NEEDED:
                target = folder / name
                if not target.is_file() or target.stat().st_size != (source / name).stat().st_size:
                    _place(source / name, target)
            lexnames = folder / "lexnames"
            if not lexnames.is_file() or lexnames.read_text() != lexnames_text():
                lexnames.write_text(lexnames_text())
        except OSError:
            continue
        return root
    return None
