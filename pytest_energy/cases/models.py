"""Loading a case's model without a network: hub ids from the local cache only, folders, packages,
factories, and the small fallback where the named hub model is not cached.

A hub id is looked up in the local Hugging Face cache and nowhere else, so a CI machine without a hub
(``HF_HUB_OFFLINE=1``) never waits on a connection: a case falls back at once, or fails with one line
saying how to make the model available.
"""

from __future__ import annotations

import hashlib
import os
import re
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .base import Fallback, ModelSource, ModelUnavailableError, PackagedModel, describe_model
from .tasks import Task

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Loaded:
    """A model ready to run, its processor (tokenizer or image processor), and what records say about
    where it came from."""

    model: Any
    processor: Any
    facts: dict[str, Any] = field(default_factory=dict)


def pick_device(device: str) -> str:
    """``auto`` is the first CUDA GPU where there is one, else the CPU; CUDA asked for but absent skips."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise unittest.SkipTest(f"the case asks for device {device!r} and this machine has no CUDA GPU")
    return device


def _looks_like_path(name: str) -> bool:
    # A hub id is "name" or "owner/name"; anything else written as a path is meant as a local folder.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")


def hub_cached(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds this model's config (no network is touched)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id (HFValidationError): it cannot be cached either
        return False
    return isinstance(found, str)


def _from_folder(location: str, task: Task) -> tuple[Any, Any]:
    """The task's model class and processor class (transformers auto classes) from a folder or the cache."""
    import transformers

    model = getattr(transformers, task.model_class).from_pretrained(location, local_files_only=True)
    processor = getattr(transformers, task.processor_class).from_pretrained(location, local_files_only=True)
    return model, processor


#: What a model's digest covers: its config and its weights (tokenizer files do not change the work).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_BLOB = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _file_digest(path: Path) -> str:
    """A file's content digest; a Hugging Face cache link is named by its blob's hash, read as it is."""
    target = path.resolve()
    if path.is_symlink() and _BLOB.fullmatch(target.name):
        return target.name
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_digest(folder: Path) -> str:
    """The digest of a model folder: its config.json and weight files (16 hex digits)."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and (p.name == "config.json" or p.name.endswith(WEIGHT_SUFFIXES)))
    lines = "".join(f"{p.name}:{_file_digest(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def weights_digest(model: Any) -> str:
    """The digest of the weights training changes (the parameters that require gradients: every weight
    of a model trained from scratch, a LoRA's adapters), as they are now. Two runs whose models trained
    to the same bytes score the same example for example; any other run trained another model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        if tensor.requires_grad:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def model_digest(model: Any) -> str:
    """The digest of a built model (a factory's): its config and every weight's bytes."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    digest.update((config.to_json_string() if hasattr(config, "to_json_string") else repr(config)).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _hub_folder(repo_id: str) -> Path:
    from huggingface_hub import try_to_load_from_cache

    return Path(str(try_to_load_from_cache(repo_id, "config.json"))).parent


def _unavailable_reason() -> str:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set and the model is not in the local Hugging Face cache"
    return "the model is not in the local Hugging Face cache (cases never download at run time)"


def load(model: ModelSource, task: Task, *, fallback: Fallback | None, prefix: str, columns: dict[str, str],
         max_input_tokens: int) -> Loaded:
    """Load a case's model and processor (on the CPU, in float32), falling back where allowed.

    Raises :class:`ModelUnavailableError` (one line) for a hub id that is not cached and has no
    fallback, and ``unittest.SkipTest`` (a skip in pytest) for a packaged model not installed.
    """
    requested = describe_model(model)
    if isinstance(model, PackagedModel):
        folder = model.locate()
        if folder is None:
            raise unittest.SkipTest(f"{model.distribution} is not installed (pip install {model.distribution})")
        built, processor = _from_folder(str(folder), task)
        return Loaded(built, processor, {"requested": requested, "ran": requested, "source": "package",
                                         "location": str(folder), "digest": folder_digest(folder),
                                         "reason": f"weights shipped in the {model.distribution} package"})
    if callable(model) and not isinstance(model, (str, Path)):
        built, processor = model()
        return Loaded(built, processor, {"requested": requested, "ran": requested, "source": "factory",
                                         "digest": model_digest(built), "reason": "built by the case's factory"})
    name = str(model)
    folder = Path(name).expanduser()
    if folder.is_dir():
        built, processor = _from_folder(str(folder), task)
        return Loaded(built, processor, {"requested": name, "ran": name, "source": "folder",
                                         "location": str(folder.resolve()), "digest": folder_digest(folder),
                                         "reason": "local model folder"})
    if isinstance(model, Path) or _looks_like_path(name):
        raise ModelUnavailableError(f"model folder {name} does not exist: give an existing local folder or a hub id")
    if hub_cached(name):
        built, processor = _from_folder(name, task)
        return Loaded(built, processor, {"requested": name, "ran": name, "source": "hub cache",
                                         "digest": folder_digest(_hub_folder(name)),
                                         "reason": "found in the local Hugging Face cache"})
    reason = _unavailable_reason()
    if fallback is None:
        raise ModelUnavailableError(
            f"model {name!r} cannot be loaded: {reason}; fetch it once with `huggingface-cli download {name}`, "
            "or give a local folder or a fallback")
    from .fallback import build

    built, processor, facts = build(fallback, task, prefix=prefix, columns=columns, max_input_tokens=max_input_tokens)
    return Loaded(built, processor, {"requested": name, "ran": facts.pop("ran"), "source": "fallback",
                                     "digest": facts["fallback_key"], "reason": f"{name}: {reason}", **facts})


def place(model: Any, device: str, dtype: str) -> Any:
    """Move a model to its device and dtype for running."""
    return model.to(device=device, dtype=DTYPES[dtype])
