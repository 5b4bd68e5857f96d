"""Low-rank adapters (peft) for every trainer, and what they change around the trainer.

`prepare_trainable` replaces `freeze_bottom` in the stages: without `model.lora` it freezes the
bottom `freeze_fraction` of the layers as before; with it, the base weights stay frozen and LoRA
adapters go on the layers `freeze_fraction` leaves trainable (all of them at 0). A reward model's
scalar head is trained in full beside its adapters (peft's `modules_to_save`).

With an adapter the reference model is free: `adapter_disabled(policy)` runs the policy as the
weights it started from, so DPO and PPO hold one copy of the SFT weights instead of two, and PPO's
separate value model is the RM itself with an adapter of its own (the RM's scores are read with
the adapter off). Artefacts are saved merged (W + (alpha/r)·B·A), so every stage downstream loads
an ordinary model with `from_pretrained`; with `lora.save: adapter` each is the adapter alone and
`models.load_causal_lm` / `load_reward_model` merge it into its base (itself perhaps an adapter).

peft is imported only when adapters go on: importing peft imports bitsandbytes wherever it is
installed, and bitsandbytes logs a warning about optional kernels at import, which a run without
adapters should neither pay for nor print.
"""

from __future__ import annotations

import contextlib
import sys

from torch import nn

from rlhflab.config import LoRA
from rlhflab.models import decoder_layers, freeze_bottom, parameter_counts


def prepare_trainable(model: nn.Module, lora: LoRA | None, freeze_fraction: float,
                      reward: bool = False) -> tuple[nn.Module, dict[str, int]]:
    """(the model to train, trainable/total parameter counts). A reward model (`reward`) keeps
    its scalar head `score` fully trainable."""
    if lora is None:
        freeze_bottom(model, freeze_fraction)
        if reward:
            model.score.requires_grad_(True)
        return model, parameter_counts(model)
    n_layers = len(decoder_layers(model))
    first = int(round(freeze_fraction * n_layers))
    if first >= n_layers:
        raise ValueError(f"freeze_fraction {freeze_fraction} leaves no layer for model.lora's adapters; lower it")
    from peft import LoraConfig, TaskType, get_peft_model

    if lora.quantize == "nf4":  # before the adapters, which then wrap the 4-bit layers
        from rlhflab.quantization import quantize_decoder_linears

        quantize_decoder_linears(model, decoder_layers(model))
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=list(lora.target_modules),
                        layers_to_transform=list(range(first, n_layers)) if first else None,
                        task_type=TaskType.SEQ_CLS if reward else TaskType.CAUSAL_LM)
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as e:
        raise ValueError(f"model.lora.target_modules {lora.target_modules}: {e}") from None
    return peft_model, parameter_counts(peft_model)


def saves_adapter(lora: LoRA | None) -> bool:
    """Whether trained models are saved as their adapter alone (`model.lora.save: adapter`)."""
    return lora is not None and lora.save == "adapter"


def _is_peft_model(model: nn.Module) -> bool:
    peft = sys.modules.get("peft")  # a PeftModel exists only once peft has been imported
    return peft is not None and isinstance(model, peft.PeftModel)


def has_adapter(model: nn.Module) -> bool:
    return _is_peft_model(model)


def adapter_disabled(model: nn.Module) -> contextlib.AbstractContextManager:
    """Inside the block, an adapted model computes as its base weights (a no-op without an adapter)."""
    return model.disable_adapter() if _is_peft_model(model) else contextlib.nullcontext()
