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
from rlhflab.generation import token_logprobs
from rlhflab.online_trainer import OnlineTrainer, clock
from rlhflab.ppo_models import reference_logprobs
from rlhflab.training import optimizer_step
from rlhflab.lora import adapter_disabled


class OnlineDPOTrainer(OnlineTrainer):
    name = "online_dpo"
    finite = ("rm_score", "kl", "loss")
    cfg: OnlineDPOStage

    def __init__(self, cfg: OnlineDPOStage, generation, **kw):
        super().__init__(cfg, generation, kl_coef=cfg.beta, **kw)

    def sums(self, model_logprobs, ids, attn, start, mask) -> torch.Tensor:
        return (model_logprobs(ids, attn, start) * mask).sum(dim=1)

    def train_step(self, step: int) -> dict:
        cfg, acc = self.cfg, self.accelerator
        _, prompts = self.local_prompts(step)
        t0 = clock()
        s, raw_scores, scores = self.rollout(prompts)
        t_rollout = clock() - t0
        ids, attn, start, mask = self.sequences(s)
        chosen, rejected, weight = preference_pairs(scores)
        pair_rows = torch.stack([chosen, rejected], dim=1)  # [P, 2]: a pair's rows stay together
        with torch.no_grad():
            ref = torch.cat([self.sums(self.dpo_reference_logprobs, ids[c], attn[c], start, mask[c])
                             for c in chunks(ids.shape[0], cfg.minibatch_size // self.world)])
            sampled = torch.cat([self.sums(self.dpo_policy_logprobs, ids[c], attn[c], start, mask[c])
                                 for c in chunks(ids.shape[0], cfg.minibatch_size // self.world)])

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
                    logp = self.sums(self.dpo_policy_logprobs, ids[rows], attn[rows], start, mask[rows]).view(-1, 2)
                    r = ref[rows].view(-1, 2)
                    losses, rc, rr = dpo_loss(logp[:, 0], logp[:, 1], r[:, 0], r[:, 1], cfg.beta, cfg.loss)
                    w = weight[pairs]
                    loss = (losses * w).sum() / w.sum().clamp(min=1)
                    acc.backward(loss / cfg.grad_accum)
                if sync:
                    optimizer_step(acc, self.model, self.optimizer, self.scheduler, cfg.optim.max_grad_norm)
                logs["loss"].append(loss.item())
                logs["reward_margin"].append((rc - rr).mean().item())
                logs["reward_accuracy"].append((rc > rr).float().mean().item())
        seq_kl = sampled - ref  # k1 at τ = 1 over each sample's tokens
        row = {**self.rollout_row(s, raw_scores, prompts, t_rollout, t0), "score": scores.mean().item(),
               "kl": seq_kl.mean().item(), "tie_fraction": 1.0 - weight.mean().item(),
               "score_gap": (scores[chosen] - scores[rejected]).mean().item(), **{k: mean(v) for k, v in logs.items()}}
        return self.reduce(row)

    def dpo_policy_logprobs(self, ids, attn, start: int) -> torch.Tensor:
        with self.accelerator.autocast():
            return token_logprobs(self.model, ids, attn, 1.0, start=start)

    def dpo_reference_logprobs(self, ids, attn, start: int) -> torch.Tensor:
        with adapter_disabled(self.reference):
            return reference_logprobs(self.reference, ids, attn, start, 1.0)
