"""Config sections for training at real sizes: LoRA adapters, mixed precision, activation checkpointing,
experiment tracking."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rlhflab.config.base import Section


class LoRA(Section):
    """Low-rank adapters (Hu et al. 2021, through peft) instead of full fine-tuning, for SFT, the
    RMs, DPO and PPO. The adapters go on the layers `freeze_fraction` leaves trainable; with
    LoRA, DPO's and PPO's reference is the policy with its adapter switched off (no second copy of
    the weights) and PPO's separate value model is the RM with an adapter of its own."""

    r: int = Field(16, ge=1, description="rank of each adapter")
    alpha: float = Field(32.0, gt=0.0, description="scale alpha / r on the adapter's output")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="0, as every dropout in PPO (ivison2024 table 9)")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1, description="names of the linear layers that get adapters (Llama's attention and MLP)")
    save: Literal["merged", "adapter"] = Field(
        "merged", description="merged: each trained model is saved with its adapter folded into the weights (a "
        "plain model folder); adapter: the adapter alone (adapter_config.json + adapter_model.safetensors, a few "
        "MB), naming the folder it was trained on as its base")
    quantize: Literal["none", "nf4"] = Field(
        "none", description="nf4: QLoRA, the frozen base weights of the decoder blocks held in 4-bit NormalFloat "
        "through bitsandbytes (pip install 'rlhflab[qlora]'; CPU or CUDA); saved merged, each weight dequantized "
        "with the adapter added in full precision")


class Train(Section):
    """Numerics of every trainer (pretrain, SFT, RMs, DPO, PPO), through accelerate."""

    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="autocast for training forwards (accelerate); fp16 needs a CUDA device")
    gradient_checkpointing: bool = Field(
        False, description="recompute each decoder layer's activations in the backward pass instead of keeping them")


class Tracking(Section):
    """Where every stage's per-step metrics and summary also go (metrics.jsonl and the manifest
    always get them). Not part of any cache key: tracking changes no result."""

    backend: Literal["none", "tensorboard", "trackio", "wandb"] = Field(
        "none", description="tensorboard: event files under <run>/tensorboard/<stage>, so `tensorboard --logdir "
        "runs` shows every stage of every run; trackio / wandb: one run per stage, grouped by experiment")
    project: str = Field("rlhflab", min_length=1, description="the trackio / wandb project")
