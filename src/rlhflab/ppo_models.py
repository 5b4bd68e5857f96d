"""The models PPO holds: the actor-critic it trains, the reference policy and the reward model.

Full fine-tuning holds four networks: the policy, a frozen copy of it (the reference), the RM and
the value model (a second copy of the RM, or a head on the policy). With `model.lora` the reference
is the policy with its adapter off and a separate value model is the RM with an adapter of its own,
so only the SFT and RM weights are held, once each (rlhflab.lora).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rlhflab.config import LoRA, PPOStage, Train
from rlhflab.evaluation.reward_model import load_scorer
from rlhflab.generation import token_logprobs
from rlhflab.lora import prepare_trainable
from rlhflab.models import ActorCritic, disable_dropout, load_causal_lm, load_reward_model, load_tokenizer
from rlhflab.precision import inference_autocast
from rlhflab.training import use_gradient_checkpointing


@dataclass
class PPOModels:
    actor_critic: ActorCritic
    reference: nn.Module | None  # None: the policy with its adapter off
    rm: nn.Module  # score with rlhflab.lora.adapter_disabled(rm): it may carry the value adapter
    tokenizer: object
    rm_tokenizer: object
    params: dict[str, int]


def load_ppo_models(cfg: PPOStage, sft_dir: Path, rm_dir: Path, dtype: str, lora: LoRA | None,
                    train: Train) -> PPOModels:
    tokenizer = load_tokenizer(sft_dir)
    policy, params = prepare_trainable(load_causal_lm(sft_dir, dtype), lora, cfg.freeze_fraction)
    reference = None if lora else load_causal_lm(sft_dir, dtype).requires_grad_(False).eval()
    rm, rm_tokenizer = load_scorer(rm_dir, dtype)
    value_model = None
    if cfg.value_model == "separate":
        if rm_tokenizer.get_vocab() != tokenizer.get_vocab():
            raise ValueError("ppo.value_model=separate reads the policy's tokens with the RM's backbone, "
                             "so the RM must share the policy's tokenizer; use ppo.value_model: shared")
        if lora:  # the RM itself, adapted; its scores are read with the adapter off
            rm = value_model = prepare_trainable(rm, lora, cfg.freeze_fraction, reward=True)[0]
        else:
            value_model = prepare_trainable(load_reward_model(rm_dir, rm_tokenizer, dtype), None,
                                            cfg.freeze_fraction, reward=True)[0]
    if value_model is not rm:
        rm.requires_grad_(False).eval()
    for m in (policy, value_model):
        if m is not None:
            use_gradient_checkpointing(m, train)
    model = ActorCritic(policy, value_model)
    disable_dropout(model, reference, rm)
    return PPOModels(model, reference, rm, tokenizer, rm_tokenizer, params)


@torch.no_grad()
def reference_logprobs(ref: nn.Module, input_ids, attention_mask, start: int, temperature: float) -> torch.Tensor:
    """log π_ref of the response tokens input_ids[:, start:]: [B, T], in rlhflab.precision's autocast."""
    with inference_autocast(input_ids.device):
        return token_logprobs(ref, input_ids, attention_mask, temperature, start=start)
