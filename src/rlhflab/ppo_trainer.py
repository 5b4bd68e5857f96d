"""The PPO trainer (kirk2024 eq. 4, appendix E.2/F, table 4; ivison2024 §2.1 eq. 2, appendix F.2, tables 9–10),
driven by the `ppo` stage and by the `kl_sweep` stage at several KL coefficients.

One rollout batch = B prompts × r samples from the current policy at τ. Each sample is scored by
the RM (a completion truncated without EOS gets `eos_penalty` instead: the EOS trick); per-token
rewards are −β·KL(π‖π_ref) with the score added at the last token (ivison2024 eq. 4); GAE (γ, λ) gives
advantages, whitened over valid tokens; then e inner epochs of clipped policy + α·clipped value
loss over minibatches of b, g minibatches per optimiser step. The maths are the pure functions
of rlhflab.algorithms.ppo; the actor-critic is rlhflab.models.ActorCritic.

Log-probabilities are taken at the sampling temperature, for the policy and the reference alike.
Dropout is 0 in policy, reference, value model and RM (ivison2024 table 9), rates zeroed on load, so
old-policy statistics, updates and validation see the same deterministic network in any mode.
Rollouts, validation, selection, checkpoints and exact resume are rlhflab.online_trainer's, shared
with RLOO, GRPO and online DPO.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from statistics import mean

import torch

from rlhflab.algorithms.ppo import (AdaptiveKLController, chunks, entropy_from_logits, gae, kl_objective,
                                   masked_mean, policy_loss, token_rewards, value_loss, whiten)
from rlhflab.config import LoRA, PPOStage, Train
from rlhflab.models import ActorCritic
from rlhflab.online_trainer import OnlineTrainer
from rlhflab.ppo_models import load_ppo_models
from rlhflab.training import optimizer_step


class PPOTrainer(OnlineTrainer):
    """The PPO step over plain functions; see the module docstring for the algorithm."""

    name = "ppo"
    finite = ("rm_score", "kl", "policy_loss", "value_loss")
    cfg: PPOStage

    def __init__(self, cfg: PPOStage, generation, **kw):
        super().__init__(cfg, generation, kl_coef=cfg.kl_coef, **kw)

    def build(self, sft_dir: Path, rm_dir: Path, dtype: str, lora: LoRA | None, train: Train) -> ActorCritic:
        m = load_ppo_models(self.cfg, sft_dir, rm_dir, dtype, lora, train)
        self.tokenizer, self.rm_tokenizer, self.ref, self.rm, self.params = (
            m.tokenizer, m.rm_tokenizer, m.reference, m.rm, m.params)
        return m.actor_critic

    @property
    def policy(self):  # with LoRA, a peft model; save_model merges it
        return self.raw.policy

    def policy_logprobs(self, ids, attn, start: int, temperature: float | None = None) -> torch.Tensor:
        with self.accelerator.autocast():
            return self.raw(ids, attn, start, temperature or self.cfg.temperature)[0]

    @torch.no_grad()
    def rollout_targets(self, ids, attn, start, mask, scores, rows: slice | None = None):
        """What the update needs for rows of a rollout batch, under the current weights: old
        log-probs and values, per-token KL, KL-shaped rewards, advantages (GAE) and returns."""
        cfg = self.cfg
        idx = rows or slice(0, ids.shape[0])
        ids, attn, mask, scores = ids[idx], attn[idx], mask[idx], scores[idx]
        logps, values, refs = [], [], []
        for c in chunks(ids.shape[0], cfg.minibatch_size // self.world):
            with self.accelerator.autocast():  # the update's precision, so its first ratio is 1
                lp, v, _ = self.raw(ids[c], attn[c], start, cfg.temperature)
            logps.append(lp)
            values.append(v)
            refs.append(self.reference_logprobs(ids[c], attn[c], start))
        logp, value, ref = torch.cat(logps), torch.cat(values) * mask, torch.cat(refs)
        rewards, kl = token_rewards(scores, logp, ref, mask, self.loop.kl_coef, cfg.kl_estimator, cfg.kl_clamp_min)
        if cfg.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        adv, returns = gae(rewards, value, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:
            adv = whiten(adv, mask)
        return {"logp": logp * mask, "values": value, "kl": kl, "adv": adv, "returns": returns}

    # ------------------------------------------------------------------------- training ---

    def train_step(self, step: int) -> dict:  # one rollout batch and its updates
        cfg, acc = self.cfg, self.accelerator
        r = self.collect(step)
        scores = self.normalise(r.scores)
        ids, attn, start, mask = self.sequences(r.samples)
        stats = self.rollout_targets(ids, attn, start, mask, scores)
        seq_kl = stats["kl"].sum(dim=1)

        n_local, mb = ids.shape[0], cfg.minibatch_size // self.world
        logs: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "clipfrac", "vf_clipfrac",
                                                        "approx_kl", "entropy")}
        first_ratio = None
        self.model.train()
        for _ in range(cfg.inner_epochs):
            order = torch.randperm(n_local)
            parts = chunks(n_local, mb)
            for k, part in enumerate(parts):
                rows = order[part]
                if cfg.minibatch_forward:  # ivison2024 appendix G: fresh log-probs and values per minibatch
                    sub = self.rollout_targets(ids[rows], attn[rows], start, mask[rows], scores[rows])
                else:
                    sub = {key: v[rows] for key, v in stats.items()}
                sync = (k + 1) % cfg.grad_accum == 0
                with acc.no_sync(self.model) if not sync else contextlib.nullcontext(), acc.autocast():
                    logp, values, logits = self.model(ids[rows], attn[rows], start, cfg.temperature)
                    m = mask[rows]
                    pl, ps = policy_loss(logp, sub["logp"], sub["adv"], m, cfg.clip_range)
                    vl, vs = value_loss(values, sub["values"], sub["returns"], m, cfg.value_clip_range)
                    acc.backward((pl + cfg.vf_coef * vl) / cfg.grad_accum)
                if first_ratio is None:
                    first_ratio = ps["ratio"].item()
                if sync:
                    optimizer_step(acc, self.model, self.optimizer, self.scheduler, cfg.optim.max_grad_norm)
                with torch.no_grad():
                    logs["entropy"].append(masked_mean(entropy_from_logits(logits), m).item())
                logs["policy_loss"].append(pl.item())
                logs["value_loss"].append(vl.item())
                for key, v in {**ps, **vs}.items():
                    if key in logs:
                        logs[key].append(v.item())
        kl_mean = seq_kl.mean().item()
        row = {**self.rollout_row(r), "score": scores.mean().item(),
               "kl": kl_mean, "objective": kl_objective(scores, seq_kl, self.loop.kl_coef),
               "kl_coef": self.loop.kl_coef, "ratio_first_minibatch": first_ratio,
               **{k: mean(v) for k, v in logs.items()}}
        row = self.reduce(row)
        if cfg.adaptive_kl:
            ctl = AdaptiveKLController(self.loop.kl_coef, cfg.kl_target, cfg.kl_horizon)
            ctl.update(row["kl"], len(r.batch) * cfg.rollouts_per_prompt)
            self.loop.kl_coef = ctl.value
        return row

