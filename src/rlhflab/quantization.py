"""QLoRA (Dettmers et al. 2023): the frozen base weights of a LoRA-adapted model held in 4-bit NormalFloat.

`quantize_decoder_linears` replaces every linear layer inside the decoder blocks with bitsandbytes'
`Linear4bit` (NF4, blocks of 64, computing in the model's dtype); embeddings, norms, the LM head and
an RM's scalar head stay in full precision, as in QLoRA. It runs after a model is loaded and before
its adapters go on, so it works on every model rlhflab loads (a GGUF rebuild, a merged adapter chain,
a fresh RM). With the adapter off the model is the *quantized* base, so DPO's and PPO's reference is
what the adapters were trained against.

`merged_plain_model` is what a QLoRA run saves: each 4-bit weight dequantized, the adapter's
(alpha/r)·B·A added in full precision (re-quantizing the sum would round most of the update away),
as a plain model that `from_pretrained` loads without bitsandbytes.

One kernel path on every CPU. On a CPU with AVX512-BF16 (Intel Sapphire Rapids and later),
bitsandbytes >= 0.49 repacks a `Linear4bit`'s weight *in place* the first time it runs in eval mode
on an input without grad, and from then on multiplies with a fused bf16 kernel. That path (1) needs
out_features % 32 == 0 and in_features % 64 == 0 and fails on other shapes, (2) computes in bf16, so
the same layer gives other numbers in eval and in training (about 6e-3 on a 64×128 layer): DPO's and
PPO's reference log-probs, taken without grad, would not match the policy's at step 0, and (3) has
no backward, so a training step after any validation pass sends no gradient through the layer to
the adapters below it (torch warns "an autograd kernel was not registered", then drops the
gradient). rlhflab turns it off per layer (`support_avx512bf16_for_cpu = False`), so every CPU runs
what AVX2 machines run: dequantize the block (libbitsandbytes_cpu) and multiply in the compute
dtype with torch, in eval and in training alike.
"""

from __future__ import annotations

import torch
from torch import nn


def _bnb():
    try:
        import bitsandbytes
    except ImportError:
        raise RuntimeError("model.lora.quantize: nf4 needs bitsandbytes: pip install 'rlhflab[qlora]' "
                           "(or set model.lora.quantize: none)") from None
    return bitsandbytes


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def quantize_decoder_linears(model: nn.Module, layers: nn.ModuleList) -> int:
    """Replace each nn.Linear inside `layers` (the model's decoder blocks) with an NF4 `Linear4bit`
    holding the same weight, frozen; returns how many were replaced."""
    bnb = _bnb()
    done = 0
    for block in layers:
        for name, module in list(block.named_modules()):
            if type(module) is not nn.Linear:
                continue
            w = module.weight
            q = bnb.nn.Linear4bit(module.in_features, module.out_features, bias=module.bias is not None,
                                  compute_dtype=w.dtype, quant_type="nf4", device="meta")
            q.support_avx512bf16_for_cpu = False  # one kernel path on every CPU: see the module docstring
            q.weight = bnb.nn.Params4bit(w.data.detach().to("cpu"), requires_grad=False, quant_type="nf4")
            if module.bias is not None:
                q.bias = nn.Parameter(module.bias.data.detach().clone(), requires_grad=False)
            _replace(block, name, q.to(w.device))  # moving it to a device quantizes it
            done += 1
    return done


def is_quantized(model: nn.Module) -> bool:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return False
    return any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


def weight_count(p: torch.Tensor) -> int:
    """The number of weights a parameter holds: a 4-bit one packs two per byte, so its own numel
    is half its weight matrix's; the quantization state keeps the matrix's shape."""
    state = getattr(p, "quant_state", None)
    return p.numel() if state is None else state.shape.numel()


def dequantized_weight(layer: nn.Module) -> torch.Tensor:
    """A Linear4bit's weight in its compute dtype (what its forward multiplies by)."""
    bnb = _bnb()
    return bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(layer.compute_dtype)


def merged_plain_model(peft_model: nn.Module) -> nn.Module:
    """The adapted, quantized model as a plain one: every LoRA layer becomes an nn.Linear holding its
    (dequantized) base weight plus its delta, every other Linear4bit an nn.Linear of its dequantized
    weight. Consumes `peft_model` (its modules are replaced in place), like peft's merge_and_unload."""
    from peft.tuners.lora import LoraLayer

    bnb = _bnb()
    model = peft_model.get_base_model() if hasattr(peft_model, "get_base_model") else peft_model
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        if any(name.startswith(r + ".") for r in replaced):
            continue
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            w = dequantized_weight(base) if isinstance(base, bnb.nn.Linear4bit) else base.weight.data
            w = w + sum(module.get_delta_weight(a) for a in module.active_adapters).to(w.dtype)
        elif isinstance(module, bnb.nn.Linear4bit):
            base, w = module, dequantized_weight(module)
        else:
            continue
        plain = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                          device=w.device, dtype=w.dtype)
        with torch.no_grad():
            plain.weight.copy_(w)
            if base.bias is not None:
                plain.bias.copy_(base.bias)
        _replace(model, name, plain)
        replaced.append(name)
    return model
