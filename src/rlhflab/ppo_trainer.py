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
Checkpoints (model, optimiser, scheduler, RNGs, data position, KL controller, best model so far,
which waits on disk, not in RAM) go every `save_every` batches to `checkpoint_dir`; a rerun after
a crash resumes from the last one and ends where an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path
from statistics import mean
from typing import Callable

import torch
from accelerate.utils import set_seed
from torch import nn

from rlhflab.algorithms.ppo import (AdaptiveKLController, chunks, entropy_from_logits, eos_trick, gae,
                                   kl_objective, masked_mean, policy_loss, token_rewards, value_loss, whiten)
from rlhflab.config import Generation, LoRA, PPOStage, Train
from rlhflab.data.gold import GoldReward
from rlhflab.evaluation.reward_model import score
from rlhflab.generation import Samples, sample
from rlhflab.lora import adapter_disabled
from rlhflab.models import ActorCritic
from rlhflab.ppo_models import load_ppo_models, reference_logprobs
from rlhflab.training import (BestWeights, FiniteGuard, batch_order, make_accelerator, make_optimizer,
                              make_scheduler, optimizer_step)


class LoopState:
    """Everything besides model/optimiser/scheduler/RNG that exact resume needs."""

    def __init__(self, kl_coef: float, best: BestWeights):
        self.step = 0
        self.kl_coef = kl_coef
        self.score_norm: list[float] | None = None
        self.best = best
        self.best_val: dict = {}  # the validation row of the kept weights, so every number is theirs

    def state_dict(self) -> dict:
        return {"step": self.step, "kl_coef": self.kl_coef, "score_norm": self.score_norm,
                "best": self.best.state_dict(), "best_val": self.best_val}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.kl_coef, self.score_norm = state["step"], state["kl_coef"], state["score_norm"]
        self.best.load_state_dict(state["best"])
        self.best_val = state.get("best_val", {})


def _clock() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # time the GPU's work, not the kernel launches
    return time.perf_counter()


class PPOTrainer:
    """The PPO loop over plain functions; see the module docstring for the algorithm."""

    def __init__(self, cfg: PPOStage, generation: Generation, *, sft_dir: Path, rm_dir: Path, seed: int,
                 prompts: list[str], val_prompts: list[str], dtype: str = "float32", lora: LoRA | None = None,
                 train: Train = Train(), gold: GoldReward | None = None,
                 log: Callable[[int, dict], None] = lambda step, row: None,
                 progress: Callable[[int, int], None] = lambda done, total: None,
                 checkpoint_dir: Path | None = None, metrics_file: Path | None = None):
        """PPO from the SFT model in `sft_dir` against the RM in `rm_dir` on `prompts`; `checkpoint_dir`
        (None: none) holds resumable state and a copy of `metrics_file` for a resumed run to continue."""
        self.cfg, self.generation, self.seed = cfg, generation, seed
        self.log, self.progress = log, progress
        self.checkpoint_dir, self.metrics_file = checkpoint_dir, metrics_file
        set_seed(seed)
        self.accelerator = make_accelerator(train)
        self.world = self.accelerator.num_processes
        for name, n in (("prompt_batch_size", cfg.prompt_batch_size), ("minibatch_size", cfg.minibatch_size)):
            if n % self.world:
                raise ValueError(f"ppo.{name} ({n}) must be divisible by the number of processes ({self.world})")
        m = load_ppo_models(cfg, sft_dir, rm_dir, dtype, lora, train)
        self.tokenizer, self.rm_tokenizer, self.ref, self.rm, self.params = (
            m.tokenizer, m.rm_tokenizer, m.reference, m.rm, m.params)
        model = m.actor_critic

        self.prompts = prompts
        self.val_prompts = val_prompts[: cfg.val_prompts]
        self.gold = gold
        self.steps = max(1, math.ceil(cfg.epochs * len(self.prompts) / cfg.prompt_batch_size))
        if cfg.max_steps:
            self.steps = min(self.steps, cfg.max_steps)
        self.batches = batch_order(len(self.prompts), cfg.prompt_batch_size, self.steps, seed)
        n_minibatches = cfg.prompt_batch_size * cfg.rollouts_per_prompt // cfg.minibatch_size
        self.updates = self.steps * cfg.inner_epochs * n_minibatches // cfg.grad_accum
        optimizer = make_optimizer(model, cfg.optim)
        self.scheduler = make_scheduler(optimizer, cfg.optim, self.updates)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.raw: ActorCritic = self.accelerator.unwrap_model(self.model)
        if self.ref is not None:
            self.ref.to(self.accelerator.device)
        self.rm.to(self.accelerator.device)
        self.loop = LoopState(cfg.kl_coef, BestWeights(self.raw.policy, None, on_disk=True, directory=checkpoint_dir))
        self.accelerator.register_for_checkpointing(self.scheduler, self.loop)
        self.max_new_tokens = cfg.max_new_tokens or generation.max_new_tokens

    # ------------------------------------------------------------------------- rollouts ---

    def rollout(self, prompts: list[str]) -> tuple[Samples, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        s = sample(self.raw.policy, self.tokenizer, prompts, temperature=cfg.temperature,
                   top_p=self.generation.top_p, max_new_tokens=self.max_new_tokens,
                   max_prompt_length=cfg.max_prompt_length, decode_mode=self.generation.decode)
        with adapter_disabled(self.rm):
            raw = score(self.rm, self.rm_tokenizer, prompts, s.texts).to(self.accelerator.device)
        return s, raw, eos_trick(raw, s.finished.to(raw.device), cfg.eos_penalty)

    def sequences(self, s: Samples):
        """prompt ⧺ response ids and mask on the device, where responses start, and the response mask."""
        dev = self.accelerator.device
        ids = torch.cat([s.prompt_ids, s.response_ids], dim=1).to(dev)
        attn = torch.cat([s.prompt_mask, s.response_mask], dim=1).to(dev)
        return ids, attn, s.prompt_ids.shape[1], s.response_mask.to(dev).float()

    def normalise(self, scores: torch.Tensor) -> torch.Tensor:
        if not self.cfg.normalize_rewards:
            return scores
        if self.loop.score_norm is None:  # fixed from the first batch, so rewards stay comparable
            self.loop.score_norm = [scores.mean().item(), scores.std().clamp(min=1e-6).item()]
        mu, sd = self.loop.score_norm
        return (scores - mu) / sd

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
        batch = self.batches[step - 1]
        per = len(batch) // self.world
        local = batch[acc.process_index * per:(acc.process_index + 1) * per]
        prompts = [self.prompts[i] for i in local for _ in range(cfg.rollouts_per_prompt)]
        t0 = _clock()
        s, raw_scores, scores = self.rollout(prompts)
        t_rollout = _clock() - t0
        scores = self.normalise(scores)
        ids, attn, start, mask = self.sequences(s)
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
        row = {"rm_score": raw_scores.mean().item(), "score": scores.mean().item(), "kl": kl_mean,
               "objective": kl_objective(scores, seq_kl, self.loop.kl_coef),
               "kl_coef": self.loop.kl_coef, "ratio_first_minibatch": first_ratio,
               "response_length": s.response_mask.sum(dim=1).float().mean().item(),
               "truncated_fraction": 1.0 - s.finished.float().mean().item(),
               "lr": self.scheduler.get_last_lr()[0], **{k: mean(v) for k, v in logs.items()},
               # Throughput: generation + RM scoring of the rollout batch, then everything else
               # (reference/value forward, GAE, the e × minibatch updates).
               "rollout_seconds": t_rollout, "update_seconds": _clock() - t0 - t_rollout,
               "rollout_tokens_per_s": s.response_mask.sum().item() / max(t_rollout, 1e-9)}
        if self.gold:
            row["gold"] = mean(self.gold(p, t) for p, t in zip(prompts, s.texts))
        row = self._reduce(row)
        if cfg.adaptive_kl:
            ctl = AdaptiveKLController(self.loop.kl_coef, cfg.kl_target, cfg.kl_horizon)
            ctl.update(row["kl"], len(batch) * cfg.rollouts_per_prompt)
            self.loop.kl_coef = ctl.value
        return row

    def _reduce(self, row: dict) -> dict:  # the mean over processes
        if self.world == 1:
            return row
        keys = sorted(row)
        t = self.accelerator.reduce(torch.tensor([float(row[k]) for k in keys], device=self.accelerator.device), "mean")
        return dict(zip(keys, t.tolist()))

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation RM score, KL and score − β·KL (β now in force) of one sample per validation prompt."""
        cfg = self.cfg
        prompts = self.val_prompts
        s, raw, scores = self.rollout(prompts)
        ids, attn, start, mask = self.sequences(s)
        kls = []
        for c in chunks(ids.shape[0], 64):
            with self.accelerator.autocast():
                lp, _, _ = self.raw(ids[c], attn[c], start, cfg.temperature)
            ref = self.reference_logprobs(ids[c], attn[c], start)
            kls.append(((lp - ref) * mask[c]).sum(dim=1))
        kl = torch.cat(kls)
        out = {"val_rm_score": raw.mean().item(), "val_kl": kl.mean().item(), "val_kl_coef": self.loop.kl_coef,
               "val_objective": kl_objective(scores, kl, self.loop.kl_coef)}
        if self.gold:
            out["val_gold"] = mean(self.gold(p, t) for p, t in zip(prompts, s.texts))
        return out

    # ------------------------------------------------------------------------- checkpoints ---

    def save_checkpoint(self) -> None:
        folder = self.checkpoint_dir
        tmp = folder / "state.tmp"
        if self.accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(tmp))
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            if self.metrics_file is not None and self.metrics_file.exists():
                shutil.copy(self.metrics_file, tmp / "metrics.jsonl")
            old = folder / "state.old"
            shutil.rmtree(old, ignore_errors=True)
            if (folder / "state").exists():
                (folder / "state").rename(old)
            tmp.rename(folder / "state")  # the switch to the new checkpoint is one rename
            shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def maybe_resume(self) -> bool:
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "state").exists():
            return False
        state = self.checkpoint_dir / "state"
        self.accelerator.load_state(str(state))
        if self.accelerator.is_main_process and self.metrics_file is not None and (state / "metrics.jsonl").exists():
            shutil.copy(state / "metrics.jsonl", self.metrics_file)
        return True

    # ------------------------------------------------------------------------- main loop ---

    def train(self) -> dict:
        """Run (or resume) the loop; leaves `self.policy` holding the selected weights and returns
        summary metrics."""
        cfg, best = self.cfg, self.loop.best
        resumed_at = self.loop.step if self.maybe_resume() else None
        if resumed_at is None:
            self.loop.best_val = first = self.validate()
            self.log(0, first)
            best.offer(0, first["val_objective"], always=True)
        rates, step_seconds = [], []
        guard = FiniteGuard("ppo")
        for step in range(self.loop.step + 1, self.steps + 1):
            row = self.train_step(step)
            guard.check(step, {k: row[k] for k in ("rm_score", "kl", "policy_loss", "value_loss")},
                        self.batches[step - 1])
            rates.append(row["rollout_tokens_per_s"])
            step_seconds.append(row["rollout_seconds"] + row["update_seconds"])
            if step % cfg.eval_every == 0 or step == self.steps:
                val = self.validate()
                row.update(val)
                if best.offer(step, val["val_objective"], always=cfg.select_on == "last"):
                    self.loop.best_val = val
            self.log(step, row)
            self.progress(step, self.steps)
            self.loop.step = step
            if self.checkpoint_dir is not None and step % cfg.save_every == 0 and step < self.steps:
                self.save_checkpoint()
        best.restore()
        best.discard()
        self.policy.requires_grad_(True)
        last = row if self.steps else {}
        return {**self.params, "steps": self.steps, "optimizer_updates": self.updates,
                "best_step": best.step, "best_val_objective": best.score,
                "selected": {"step": best.step, **self.loop.best_val},  # validation of the weights kept
                "resumed_at_step": resumed_at, "rollout_tokens_per_s": mean(rates) if rates else None,
                "step_seconds": mean(step_seconds) if step_seconds else None,
                **{f"final_{k}": v for k, v in last.items() if k in
                   ("rm_score", "kl", "gold", "val_rm_score", "val_kl", "val_gold", "entropy")}}

    @property
    def policy(self):  # with LoRA, a peft model; save_model merges it
        return self.raw.policy

    @property
    def reference(self) -> nn.Module:
        """The reference policy; with LoRA, the policy itself, to be run under adapter_disabled."""
        return self.ref if self.ref is not None else self.raw.policy

    def reference_logprobs(self, ids, attn, start: int) -> torch.Tensor:
        with adapter_disabled(self.reference):
            return reference_logprobs(self.reference, ids, attn, start, self.cfg.temperature)
