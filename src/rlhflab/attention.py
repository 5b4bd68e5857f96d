"""Scaled-dot-product attention that lets the kernel share each key/value head among its query heads.

transformers' `sdpa` copies every key/value head once per query head (`repeat_kv`) whenever an
attention mask is given and the device is not CUDA, because CUDA's fused kernels fall back to the
math kernel for grouped heads with a mask. rlhflab always passes a mask (left-padded prompts,
right-padded batches), so on CPU every decode step copied each layer's whole KV cache three times
for SmolLM2 (9 query heads, 3 key/value heads). torch's CPU kernel takes the grouped heads
directly (`enable_gqa=True`) with the same outputs; `benchmarks/decode_time.py` measures the gain.
Everywhere else this defers to transformers' own `sdpa`.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GROUPED_SDPA = "rlhflab_grouped_sdpa"


def grouped_sdpa_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    if (not grouped or attention_mask is None or query.device.type != "cpu"
            or kwargs.get("position_bias") is not None or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if attention_mask.ndim == 4:
        attention_mask = attention_mask[:, :, :, : key.shape[-2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=kwargs.get("dropout", 0.0),
        scale=kwargs.get("scaling"), is_causal=False, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED_SDPA, grouped_sdpa_forward)
AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)  # the masks `sdpa` gets (None where causal is enough)


def use_grouped_sdpa(model: PreTrainedModel) -> PreTrainedModel:
    """Switch a model that runs transformers' `sdpa` and groups its key/value heads to the grouped
    kernel above; any other model is returned as it is."""
    config = model.config
    grouped = getattr(config, "num_key_value_heads", None) not in (None, getattr(config, "num_attention_heads", None))
    if grouped and config._attn_implementation == "sdpa" and model._can_set_attn_implementation():
        model.set_attn_implementation(GROUPED_SDPA)
    return model
