"""LoRA adapters for a fine-tune case, through ``peft`` where it is installed.

With adapters only their low-rank matrices train and the base weights stay frozen (how the fine-tune
study trains its LLaMA arm). Without ``peft`` the case trains every weight instead and its record says
so: a full fine-tune is a different arm, never silently passed off as LoRA.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from typing import Any, Mapping


def _task_type(model: Any) -> str:
    from .generation.causal import is_causal

    if is_causal(model):
        return "CAUSAL_LM"
    return "SEQ_2_SEQ_LM" if getattr(model.config, "is_encoder_decoder", False) else "SEQ_CLS"


def trainable(model: Any) -> int:
    """Parameters the optimiser updates."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapt(model: Any, lora: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """The model to train (LoRA-wrapped where asked and ``peft`` is installed) and facts for the record:
    ``method`` (``LoRA`` or ``full fine-tune``), why, the adapter's settings and the trainable share."""
    if lora is None:
        return model, {"method": "full fine-tune", "reason": "no adapter asked for: every weight trains",
                       "parameters_trainable": trainable(model)}
    if importlib.util.find_spec("peft") is None:
        return model, {"method": "full fine-tune", "reason": "LoRA asked for but peft is not installed "
                       "(pip install peft): every weight trains", "lora_asked": dict(lora),
                       "parameters_trainable": trainable(model)}
    import peft

    settings = {"task_type": _task_type(model), **lora}
    wrapped = peft.get_peft_model(model, peft.LoraConfig(**settings))
    total = sum(p.numel() for p in wrapped.parameters())
    return wrapped, {"method": "LoRA", "reason": f"peft {importlib.metadata.version('peft')}",
                     "lora": {k: (sorted(v) if isinstance(v, (set, frozenset)) else v) for k, v in settings.items()},
                     "parameters_trainable": trainable(wrapped), "trainable_share": trainable(wrapped) / total}
