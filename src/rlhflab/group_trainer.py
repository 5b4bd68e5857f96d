"""RLOO and GRPO: policy gradients whose baseline is the other samples of the same prompt, so no
value model is trained (driven by the `rloo` and `grpo` stages).

One rollout batch = B prompts × k samples from the current policy at τ, scored by the RM (EOS trick
as PPO). Old-policy and reference log-probs are taken once per batch under the current weights;
then e inner epochs over minibatches of b samples, g minibatches per optimiser step.

- RLOO (Ahmadian et al. 2024): R_i = r_i − β·Σ_t KL_t (k1 by default), advantage R_i minus the mean
  R of the prompt's other samples, loss −A·ν on the whole-sequence ratio ν (plain REINFORCE, or
  clipped with `clip_range`).
- GRPO (Shao et al. 2024): advantage (r_i − mean r) / std r within the prompt's group, PPO's clipped
  ratio per token, and β·KL_t (k3) to the reference added to the loss instead of the reward;
  averaged per sequence (the paper) or per token (DAPO).

The maths are rlhflab.algorithms.group; the loop, rollouts, validation and resume are
rlhflab.online_trainer's. Log-probabilities are at the sampling temperature, as in PPO.
"""

from __future__ import annotations

import contextlib
from statistics import mean

import torch

from rlhflab.algorithms.group import (grpo_loss, group_normalised_advantages, leave_one_out_advantages, rloo_loss,
                                      sequence_kl_penalised)
from rlhflab.algorithms.ppo import chunks, kl_per_token, whiten
from rlhflab.config import GRPOStage, RLOOStage
from rlhflab.online_trainer import OnlineTrainer
from rlhflab.training import optimizer_step


class GroupTrainer(OnlineTrainer):
    """The shared step; `advantages` and `loss` are the method."""

    finite = ("rm_score", "kl", "loss")

    def __init__(self, cfg: RLOOStage | GRPOStage, generation, **kw):
        super().__init__(cfg, generation, kl_coef=cfg.kl_coef, **kw)

    def advantages(self, scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, logp, old: dict, adv, mask) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    @torch.no_grad()
    def old_logprobs(self, ids, attn, start, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """π_old and π_ref log-probs of the batch's response tokens, 0 on padding."""
        olds, refs = [], []
        for c in chunks(ids.shape[0], self.cfg.minibatch_size // self.world):
            olds.append(self.policy_logprobs(ids[c], attn[c], start))
            refs.append(self.reference_logprobs(ids[c], attn[c], start))
        return torch.cat(olds) * mask, torch.cat(refs) * mask

    def train_step(self, step: int) -> dict:
        cfg, acc = self.cfg, self.accelerator
        r = self.collect(step)
        scores = self.normalise(r.scores)
        ids, attn, start, mask = self.sequences(r.samples)
        old, ref = self.old_logprobs(ids, attn, start, mask)
        kl = kl_per_token(old, ref, cfg.kl_estimator) * mask
        adv = self.advantages(scores, kl, mask)
        targets = {"logp": old, "ref": ref}

        n_local, mb = ids.shape[0], cfg.minibatch_size // self.world
        logs: dict[str, list[float]] = {k: [] for k in ("loss", "clipfrac", "approx_kl", "ratio")}
        first_ratio = None
        self.model.train()
        for _ in range(cfg.inner_epochs):
            order = torch.randperm(n_local)
            for k, part in enumerate(chunks(n_local, mb)):
                rows = order[part]
                sync = (k + 1) % cfg.grad_accum == 0
                with acc.no_sync(self.model) if not sync else contextlib.nullcontext():
                    logp = self.policy_logprobs(ids[rows], attn[rows], start) * mask[rows]  # 0 on padding, as old
                    loss, stats = self.loss(logp, {key: v[rows] for key, v in targets.items()}, adv[rows], mask[rows])
                    acc.backward(loss / cfg.grad_accum)
                if first_ratio is None:
                    first_ratio = stats["ratio"].item()
                if sync:
                    optimizer_step(acc, self.model, self.optimizer, self.scheduler, cfg.optim.max_grad_norm)
                logs["loss"].append(loss.item())
                for key in ("clipfrac", "approx_kl", "ratio"):
                    logs[key].append(stats[key].item())
        seq_kl = ((old - ref) * mask).sum(dim=1)  # k1, as every method reports it
        row = {**self.rollout_row(r), "score": scores.mean().item(),
               "kl": seq_kl.mean().item(), "kl_coef": self.loop.kl_coef, "ratio_first_minibatch": first_ratio,
               "advantage_std": adv.std().item(), **{k: mean(v) for k, v in logs.items()}}
        return self.reduce(row)


class RLOOTrainer(GroupTrainer):
    name = "rloo"
    cfg: RLOOStage

    def advantages(self, scores, kl, mask):
        rewards = sequence_kl_penalised(scores, kl, self.loop.kl_coef)
        adv = leave_one_out_advantages(rewards, self.cfg.rollouts_per_prompt)
        if self.cfg.whiten_advantages:
            ones = torch.ones_like(adv).unsqueeze(1)
            adv = whiten(adv.unsqueeze(1), ones).squeeze(1)
        return adv

    def loss(self, logp, old, adv, mask):
        return rloo_loss(logp, old["logp"], adv, mask, self.cfg.clip_range)


class GRPOTrainer(GroupTrainer):
    name = "grpo"
    cfg: GRPOStage

    def advantages(self, scores, kl, mask):
        return group_normalised_advantages(scores, self.cfg.rollouts_per_prompt, scale=self.cfg.scale_rewards)

    def loss(self, logp, old, adv, mask):
        cfg = self.cfg
        return grpo_loss(logp, old["logp"], old["ref"], adv, mask, cfg.clip_range, self.loop.kl_coef,
                         cfg.averaging, cfg.kl_estimator)
