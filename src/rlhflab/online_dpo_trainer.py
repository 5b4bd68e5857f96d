"""Online DPO (Guo et al. 2024, "Direct language model alignment from online AI feedback"), driven by
the `online_dpo` stage.

Every rollout batch samples two completions of each of B prompts from the current policy at τ; the
reward model labels each pair (the higher score is chosen; a completion truncated without EOS
scores `eos_penalty`, as PPO's EOS trick; a tie teaches nothing and weighs 0), and the DPO loss
(ivison2024 eq. 3, or IPO) against the SFT reference is taken on the pairs, e inner epochs over
minibatches of b/2 pairs. Unlike offline DPO, the pairs come from the policy being trained, so it
never learns from stale samples. Log-probabilities are at temperature 1, as the dpo stage's, and
summed over each completion's tokens.

The loop, rollouts, validation (selected on RM score − β·KL with DPO's β) and resume are
rlhflab.online_trainer's; the maths are rlhflab.algorithms.group.preference_pairs and
rlhflab.algorithms.losses.dpo_loss.
"""

from __future__ import annotations

import contextlib
from statistics import mean

import torch

from rlhflab.algorithms.group import preference_pairs
from rlhflab.algorithms.losses import dpo_loss
from rlhflab.algorithms.ppo import chunks
from rlhflab.config import OnlineDPOStage
from rlhflab.online_trainer import OnlineTrainer
from rlhflab.training import optimizer_step


class OnlineDPOTrainer(OnlineTrainer):
    name = "online_dpo"
    finite = ("rm_score", "kl", "loss")
    cfg: OnlineDPOStage

    def __init__(self, cfg: OnlineDPOStage, generation, **kw):
        super().__init__(cfg, generation, kl_coef=cfg.beta, **kw)

    def train_step(self, step: int) -> dict:
        cfg, acc = self.cfg, self.accelerator
        r = self.collect(step)
        scores = r.scores
        ids, attn, start, mask = self.sequences(r.samples)
        chosen, rejected, weight = preference_pairs(scores)
        pair_rows = torch.stack([chosen, rejected], dim=1)  # [P, 2]: a pair's rows stay together
        with torch.no_grad():
            parts = chunks(ids.shape[0], cfg.minibatch_size // self.world)
            ref = torch.cat([(self.reference_logprobs(ids[c], attn[c], start, 1.0) * mask[c]).sum(dim=1)
                             for c in parts])
            sampled = torch.cat([(self.policy_logprobs(ids[c], attn[c], start, 1.0) * mask[c]).sum(dim=1)
                                 for c in parts])

        n_pairs, mb = pair_rows.shape[0], cfg.minibatch_size // self.world // 2
        logs: dict[str, list[float]] = {k: [] for k in ("loss", "reward_margin", "reward_accuracy")}
        self.model.train()
        for _ in range(cfg.inner_epochs):
            order = torch.randperm(n_pairs)
            for k, part in enumerate(chunks(n_pairs, mb)):
                pairs = order[part]
                rows = pair_rows[pairs].reshape(-1)  # chosen, rejected, chosen, rejected, ...
                sync = (k + 1) % cfg.grad_accum == 0
                with acc.no_sync(self.model) if not sync else contextlib.nullcontext():
                    logp = (self.policy_logprobs(ids[rows], attn[rows], start, 1.0) * mask[rows]).sum(dim=1)
                    logp = logp.view(-1, 2)
                    ref_pairs = ref[rows].view(-1, 2)
                    losses, rc, rr = dpo_loss(logp[:, 0], logp[:, 1], ref_pairs[:, 0], ref_pairs[:, 1], cfg.beta,
                                              cfg.loss)
                    w = weight[pairs]
                    loss = (losses * w).sum() / w.sum().clamp(min=1)
                    acc.backward(loss / cfg.grad_accum)
                if sync:
                    optimizer_step(acc, self.model, self.optimizer, self.scheduler, cfg.optim.max_grad_norm)
                logs["loss"].append(loss.item())
                logs["reward_margin"].append((rc - rr).mean().item())
                logs["reward_accuracy"].append((rc > rr).float().mean().item())
        seq_kl = sampled - ref  # k1 at τ = 1 over each sample's tokens
        row = {**self.rollout_row(r), "score": scores.mean().item(),
               "kl": seq_kl.mean().item(), "tie_fraction": 1.0 - weight.mean().item(),
               "score_gap": (scores[chosen] - scores[rejected]).mean().item(), **{k: mean(v) for k, v in logs.items()}}
        return self.reduce(row)
