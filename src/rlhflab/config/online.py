"""The on-policy stages: PPO, RLOO, GRPO and online DPO. Each samples rollout batches from its current
policy, scores them with the reward model and is validated, checkpointed and selected the same way
(rlhflab.online_trainer); `OnlineRL` holds those shared knobs and each stage adds its own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rlhflab.config.base import Section
from rlhflab.config.sections import Optimizer


class OnlineRL(Section):
    """Rollout batches of B prompts × k samples from the current policy, scored by the RM."""

    enabled: bool = False
    freeze_fraction: float = Field(0.0, ge=0.0, le=1.0, description="bottom layers frozen (kirk2024 table 4: 80%)")
    # --- batch shape (ivison2024 table 9) ---
    prompt_batch_size: int = Field(64, ge=1, description="B: prompts per rollout batch")
    rollouts_per_prompt: int = Field(1, ge=1, description="k (r in ivison2024): samples per prompt")
    minibatch_size: int = Field(64, ge=1, description="b: rollouts per forward-backward pass")
    grad_accum: int = Field(1, ge=1, description="g: minibatches per optimiser step")
    inner_epochs: int = Field(1, ge=1, description="e: passes over each rollout batch (kirk2024 table 4: 4)")
    epochs: float = Field(1.0, gt=0.0, description="E: passes over the prompt set")
    max_steps: int | None = Field(None, ge=1, description="cap on rollout batches (overrides epochs)")
    max_prompt_length: int = Field(1024, ge=8, description="L_p; longer prompts keep their last tokens")
    max_new_tokens: int | None = Field(None, ge=1, description="L_c; default generation.max_new_tokens")
    temperature: float = Field(0.7, gt=0.0, description="τ for rollouts")
    # --- reward ---
    eos_penalty: float | None = Field(-10.0, description="EOS trick: score of a truncated completion; null = off")
    normalize_rewards: bool = Field(
        False, description="standardise RM scores with the mean/std of the starting policy's samples (the first "
        "validation pass, else the first rollout batch), in training and in checkpoint selection; ivison2024 does not")
    optim: Optimizer = Field(default_factory=lambda: Optimizer(
        lr=1e-6, warmup_ratio=0.1, schedule="constant", adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-5,
        weight_decay=0.0, max_grad_norm=1.0), description="ivison2024 table 9: lr 1e-6, Adam β2 0.95, ε 1e-5, constant")
    # --- bookkeeping ---
    eval_every: int = Field(10, ge=1, description="rollout batches between validation passes")
    val_prompts: int | None = Field(None, ge=1, description="validation prompts per pass (default: all)")
    select_on: Literal["val_objective", "last"] = Field(
        "val_objective", description="keep the checkpoint with the best validation RM score − β·KL, or the last")
    save_every: int = Field(10, ge=1, description="rollout batches between resumable checkpoints")

    @model_validator(mode="after")
    def _check(self):
        rollouts = self.prompt_batch_size * self.rollouts_per_prompt
        if rollouts % self.minibatch_size:
            raise ValueError(f"prompt_batch_size × rollouts_per_prompt ({rollouts}) must be a multiple "
                             f"of minibatch_size ({self.minibatch_size})")
        if (rollouts // self.minibatch_size) % self.grad_accum:
            raise ValueError(f"minibatches per batch ({rollouts // self.minibatch_size}) must be a "
                             f"multiple of grad_accum ({self.grad_accum})")
        return self


class PPOStage(OnlineRL):
    """RLHF with PPO. Defaults: ivison2024 appendix F.2 / table 9 unless noted; kirk2024 table 4 in comments."""

    enabled: bool = True
    value_model: Literal["separate", "shared"] = Field(
        "separate", description="separate: a value model initialised from the RM (ivison2024 F.2, InstructGPT); "
        "shared: a randomly initialised value head on the policy backbone (kirk2024 appendix E.2/F)")
    kl_coef: float = Field(0.05, ge=0.0, description="β (ivison2024: 0.05; 0.0325 with 70B RMs; kirk2024: 0.05)")
    adaptive_kl: bool = Field(False, description="Ziegler et al.'s adaptive controller (ivison2024 uses fixed β)")
    kl_target: float = Field(6.0, gt=0.0, description="adaptive KL target (nats per sequence)")
    kl_horizon: int = Field(10000, ge=1, description="adaptive KL horizon (samples)")
    kl_estimator: Literal["k1", "k3"] = "k1"
    kl_clamp_min: float | None = Field(None, description="clamp per-token KL from below (AlpacaFarm); off")
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    lam: float = Field(0.95, ge=0.0, le=1.0)
    clip_range: float = Field(0.2, gt=0.0, description="ε for the policy ratio")
    value_clip_range: float = Field(0.2, gt=0.0, description="ε for the value loss")
    vf_coef: float = Field(0.1, ge=0.0, description="α, value loss coefficient")
    whiten_advantages: bool = True
    whiten_rewards: bool = Field(False, description="whiten step-level rewards per batch (ivison2024 does not)")
    minibatch_forward: bool = Field(
        False, description="recompute log-probs, values and advantages per minibatch with current weights (ivison2024 G)")


class RLOOStage(OnlineRL):
    """REINFORCE with a leave-one-out baseline (Ahmadian et al. 2024, "Back to basics"): k samples per
    prompt, each rewarded r_RM − β·KL(π‖π_ref) over the whole sequence, its advantage the reward minus
    the mean reward of the prompt's other k − 1 samples. No value model."""

    rollouts_per_prompt: int = Field(4, ge=2, description="k (Ahmadian et al.: 2 and 4; 4 did better)")
    kl_coef: float = Field(0.05, ge=0.0, description="β of the sequence reward (PPO's default here, so the two compare)")
    kl_estimator: Literal["k1", "k3"] = Field("k1", description="per-token KL summed into the reward")
    clip_range: float | None = Field(
        None, gt=0.0, description="null: plain REINFORCE, one update per batch (the paper); a number: PPO's clipped "
        "sequence-level ratio (TRL's RLOOTrainer), for inner_epochs > 1")
    whiten_advantages: bool = Field(False, description="standardise advantages over the batch (TRL: off)")


class GRPOStage(OnlineRL):
    """Group relative policy optimisation (Shao et al. 2024, DeepSeekMath §4.1): k samples per prompt,
    each advantage the sample's RM score standardised within its group, PPO's clipped ratio per
    token, and KL to the reference as a loss term (k3) rather than a reward penalty. No value model."""

    prompt_batch_size: int = Field(16, ge=1, description="B: Shao et al. train on 1024 rollouts = 16 × 64")
    rollouts_per_prompt: int = Field(64, ge=2, description="G, samples per prompt (Shao et al.: 64)")
    kl_coef: float = Field(0.04, ge=0.0, description="β of the KL loss term (Shao et al.: 0.04)")
    kl_estimator: Literal["k1", "k3"] = Field("k3", description="Shao et al. eq. 4: k3, unbiased and ≥ 0")
    clip_range: float = Field(0.2, gt=0.0, description="ε")
    averaging: Literal["sequence", "token"] = Field(
        "sequence", description="sequence: mean over each sample's tokens, then over samples (Shao et al.); token: "
        "one mean over all tokens of the batch (DAPO)")
    scale_rewards: bool = Field(True, description="divide by the group's std (Shao et al.); false: Dr. GRPO")


class OnlineDPOStage(OnlineRL):
    """Online DPO (Guo et al. 2024, "Direct language model alignment from online AI feedback"): every
    rollout batch samples two completions per prompt from the current policy, the reward model labels
    the pair, and the DPO loss against the SFT reference is taken on it."""

    rollouts_per_prompt: int = Field(2, ge=2, le=2, description="a pair per prompt")
    beta: float = Field(0.1, gt=0.0, description="DPO's β (Guo et al.: 0.1); also the β of selection's RM − β·KL")
    loss: Literal["dpo", "ipo"] = Field("dpo", description="dpo; ipo (Azar et al.), as Guo et al. also run")
    optim: Optimizer = Field(default_factory=lambda: Optimizer(
        lr=5e-7, warmup_ratio=0.1, schedule="constant", adam_beta1=0.9, adam_beta2=0.999, max_grad_norm=1.0),
        description="the dpo stage's learning rate (ivison2024 F.1: 5e-7)")

    @model_validator(mode="after")
    def _pairs(self) -> "OnlineDPOStage":
        if self.minibatch_size % 2:
            raise ValueError(f"online_dpo.minibatch_size ({self.minibatch_size}) must be even: it holds whole pairs")
        return self
