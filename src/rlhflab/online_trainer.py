"""What every on-policy trainer shares: rollouts from the current policy scored by the RM (with the
EOS trick), validation, selection on validation RM score − β·KL, checkpoints and exact resume.

A method (PPO: rlhflab.ppo_trainer; RLOO, GRPO: rlhflab.group_trainer; online DPO:
rlhflab.online_dpo_trainer) supplies three things: `build` (its models; returns the module the
optimiser trains), `policy` (the language model inside it) and `train_step` (one rollout batch
and its updates, returning the row it logs). Batch b of step s is `self.batches[s - 1]`, k
samples of each prompt in consecutive rows.

Checkpoints (model, optimiser, scheduler, RNGs, data position, KL coefficient, best weights so far,
which wait on disk, not in RAM) go every `save_every` batches to `checkpoint_dir`; a rerun after a
crash resumes from the last one and ends where an uninterrupted run would.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Callable

import torch
from accelerate.utils import gather_object, set_seed
from torch import nn

from rlhflab.algorithms.ppo import chunks, eos_trick, kl_objective
from rlhflab.config import Generation, LoRA, OnlineRL, Train
from rlhflab.data.gold import GoldReward
from rlhflab.evaluation.reward_model import load_scorer, score
from rlhflab.generation import Samples, sample, token_logprobs
from rlhflab.lora import adapter_disabled, prepare_trainable
from rlhflab.models import disable_dropout, load_causal_lm, load_tokenizer
from rlhflab.ppo_models import reference_logprobs
from rlhflab.quantization import is_quantized
from rlhflab.training import (BestWeights, FiniteGuard, batch_order, make_accelerator, make_optimizer,
                              make_scheduler, unfreeze, use_gradient_checkpointing)


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


@dataclass
class Rollout:
    """One rollout batch: its prompt indices (all processes'), this process's prompts (each k times),
    samples, raw and EOS-tricked RM scores, when sampling started and how long it took with scoring."""

    batch: list[int]
    prompts: list[str]
    samples: Samples
    raw_scores: torch.Tensor
    scores: torch.Tensor
    started: float
    seconds: float


def clock() -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # time the GPU's work, not the kernel launches
    return time.perf_counter()


def score_norm(scores: torch.Tensor) -> list[float]:
    """The mean and standard deviation that standardise RM scores (`normalize_rewards`)."""
    return [scores.mean().item(), scores.std().clamp(min=1e-6).item()]


class OnlineTrainer:
    """The shared loop; see the module docstring for what a method adds."""

    name = "online"
    finite = ("rm_score", "kl")  # row entries that must stay finite (rlhflab.training.FiniteGuard)

    def __init__(self, cfg: OnlineRL, generation: Generation, *, sft_dir: Path, rm_dir: Path, seed: int,
                 prompts: list[str], val_prompts: list[str], kl_coef: float, dtype: str = "float32",
                 lora: LoRA | None = None, train: Train = Train(), gold: GoldReward | None = None,
                 log: Callable[[int, dict], None] = lambda step, row: None,
                 progress: Callable[[int, int], None] = lambda done, total: None,
                 checkpoint_dir: Path | None = None, metrics_file: Path | None = None,
                 on_resume: Callable[[int, int], None] = lambda step, total: None):
        """Train from the SFT model in `sft_dir` against the RM in `rm_dir` on `prompts`; `kl_coef` is
        the β of the validation objective; `checkpoint_dir` (None: none) holds resumable state and a
        copy of `metrics_file` for a resumed run to continue; `on_resume(step, total)` is told where a
        resumed run picks up."""
        self.cfg, self.generation, self.seed = cfg, generation, seed
        self.log, self.progress, self.on_resume = log, progress, on_resume
        self.checkpoint_dir, self.metrics_file = checkpoint_dir, metrics_file
        set_seed(seed)
        self.accelerator = make_accelerator(train)
        self.world = self.accelerator.num_processes
        for key, n in (("prompt_batch_size", cfg.prompt_batch_size), ("minibatch_size", cfg.minibatch_size)):
            if n % self.world:
                raise ValueError(f"{self.name}.{key} ({n}) must be divisible by the number of processes ({self.world})")
        model = self.build(sft_dir, rm_dir, dtype, lora, train)
        self.prompts = prompts
        self.val_prompts = val_prompts[: cfg.val_prompts]
        if len(self.val_prompts) < self.world:
            raise ValueError(f"{self.name}: {len(self.val_prompts)} validation prompts for {self.world} processes; "
                             f"each process validates on its share, so give {self.name}.val_prompts >= {self.world}")
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
        self.raw = self.accelerator.unwrap_model(self.model)
        if self.ref is not None:
            self.ref.to(self.accelerator.device)
        self.rm.to(self.accelerator.device)
        self.loop = LoopState(kl_coef, BestWeights(self.policy, None, on_disk=True, directory=checkpoint_dir))
        self.accelerator.register_for_checkpointing(self.scheduler, self.loop)
        self.max_new_tokens = cfg.max_new_tokens or generation.max_new_tokens

    # ------------------------------------------------------------------------- what a method adds ---

    def build(self, sft_dir: Path, rm_dir: Path, dtype: str, lora: LoRA | None, train: Train) -> nn.Module:
        """Load the models: set tokenizer, rm_tokenizer, ref (None with LoRA: the policy with its
        adapter off), rm, params; return the module to train. By default the policy alone."""
        self.tokenizer = load_tokenizer(sft_dir)
        policy, self.params = prepare_trainable(load_causal_lm(sft_dir, dtype), lora, self.cfg.freeze_fraction)
        self.ref = None if lora else load_causal_lm(sft_dir, dtype).requires_grad_(False).eval()
        self.rm, self.rm_tokenizer = load_scorer(rm_dir, dtype)
        self.rm.requires_grad_(False).eval()
        use_gradient_checkpointing(policy, train)
        disable_dropout(policy, self.ref, self.rm)
        return policy

    @property
    def policy(self) -> nn.Module:  # with LoRA, a peft model; save_model merges it
        return self.raw

    def train_step(self, step: int) -> dict:
        raise NotImplementedError

    def policy_logprobs(self, ids, attn, start: int, temperature: float | None = None) -> torch.Tensor:
        """log π_θ of the response tokens at `temperature` (default the rollout τ), [B, T], in the
        update's precision."""
        with self.accelerator.autocast():
            return token_logprobs(self.model, ids, attn, temperature or self.cfg.temperature, start=start)

    # ------------------------------------------------------------------------- rollouts ---

    def local_prompts(self, step: int) -> tuple[list[int], list[str]]:
        """This process's share of batch `step`, and its prompts with each repeated k times in a row."""
        batch = self.batches[step - 1]
        per = len(batch) // self.world
        local = batch[self.accelerator.process_index * per:(self.accelerator.process_index + 1) * per]
        return batch, [self.prompts[i] for i in local for _ in range(self.cfg.rollouts_per_prompt)]

    def collect(self, step: int) -> Rollout:
        """This process's rollout batch of `step`, timed; scores not yet normalised."""
        batch, prompts = self.local_prompts(step)
        started = clock()
        s, raw, scores = self.rollout(prompts)
        return Rollout(batch, prompts, s, raw, scores, started, clock() - started)

    def rollout(self, prompts: list[str]) -> tuple[Samples, torch.Tensor, torch.Tensor]:
        """Samples from the current policy, their raw RM scores, and the scores after the EOS trick."""
        cfg = self.cfg
        s = sample(self.policy, self.tokenizer, prompts, temperature=cfg.temperature,
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
        if self.loop.score_norm is None:  # fixed from the first samples, so rewards stay comparable
            whole = self.accelerator.gather(scores) if self.world > 1 else scores  # every process, the same norm
            self.loop.score_norm = score_norm(whole)
        mu, sd = self.loop.score_norm
        return (scores - mu) / sd

    def rollout_row(self, r: Rollout) -> dict:
        """The row entries every method logs about its rollout batch (call it after the updates)."""
        s = r.samples
        row = {"rm_score": r.raw_scores.mean().item(),
               "response_length": s.response_mask.sum(dim=1).float().mean().item(),
               "truncated_fraction": 1.0 - s.finished.float().mean().item(),
               "lr": self.scheduler.get_last_lr()[0],
               # Throughput: generation + RM scoring of the rollout batch, then everything else.
               "rollout_seconds": r.seconds, "update_seconds": clock() - r.started - r.seconds,
               "rollout_tokens_per_s": s.response_mask.sum().item() / max(r.seconds, 1e-9)}
        if self.gold:
            row["gold"] = mean(self.gold(p, t) for p, t in zip(r.prompts, s.texts))
        return row

    def reduce(self, row: dict) -> dict:  # the mean over processes
        if self.world == 1:
            return row
        keys = sorted(row)
        t = self.accelerator.reduce(torch.tensor([float(row[k]) for k in keys], device=self.accelerator.device), "mean")
        return dict(zip(keys, t.tolist()))

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation RM score, KL and score − β·KL (β now in force) of one sample per validation prompt.
        Each process samples its share of the prompts and every process gets the whole set's numbers, so
        all of them select the same checkpoint."""
        rank, world = self.accelerator.process_index, self.world
        n = len(self.val_prompts)
        prompts = self.val_prompts[rank * n // world:(rank + 1) * n // world]
        s, raw, scores = self.rollout(prompts)
        ids, attn, start, mask = self.sequences(s)
        kls = []
        for c in chunks(ids.shape[0], 64):
            lp = self.policy_logprobs(ids[c], attn[c], start)
            ref = self.reference_logprobs(ids[c], attn[c], start)
            kls.append(((lp - ref) * mask[c]).sum(dim=1))
        kl = torch.cat(kls)
        gold = [self.gold(p, t) for p, t in zip(prompts, s.texts)] if self.gold else []
        if world > 1:  # shares differ in size by one at most, so gather them as lists
            raw, scores, kl = (torch.tensor(gather_object(t.tolist()), dtype=t.dtype) for t in (raw, scores, kl))
            gold = gather_object(gold)
        if self.cfg.normalize_rewards and self.loop.score_norm is None:
            # the first validation pass samples the starting policy, as the first batch would; every process
            # holds the whole set here, so all of them get the same norm without another gather
            self.loop.score_norm = score_norm(scores)
        # select on the reward the policy is trained on: with normalised scores, β·KL is weighed against
        # score standard deviations, not the RM's raw units
        out = {"val_rm_score": raw.mean().item(), "val_kl": kl.mean().item(), "val_kl_coef": self.loop.kl_coef,
               "val_objective": kl_objective(self.normalise(scores), kl, self.loop.kl_coef)}
        if self.gold:
            out["val_gold"] = mean(gold)
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
        # a 4-bit base (QLoRA) saves its quantization state beside its weights, which the plain loader
        # does not take back; the base is frozen and quantized the same way on every load, so skip it
        self.accelerator.load_state(str(state), strict=not is_quantized(self.raw))
        if self.accelerator.is_main_process and self.metrics_file is not None and (state / "metrics.jsonl").exists():
            shutil.copy(state / "metrics.jsonl", self.metrics_file)
        return True

    # ------------------------------------------------------------------------- main loop ---

    def train(self) -> dict:
        """Run (or resume) the loop; leaves `self.policy` holding the selected weights and returns
        summary metrics."""
        cfg, best = self.cfg, self.loop.best
        resumed_at = self.loop.step if self.maybe_resume() else None
        if resumed_at is not None:
            self.on_resume(resumed_at, self.steps)
        else:
            self.loop.best_val = first = self.validate()
            self.log(0, first)
            best.offer(0, first["val_objective"], always=True)
        rates, step_seconds = [], []
        guard = FiniteGuard(self.name)
        for step in range(self.loop.step + 1, self.steps + 1):
            row = self.train_step(step)
            guard.check(step, {k: row[k] for k in self.finite}, self.batches[step - 1])
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
        unfreeze(self.policy)
        last = row if self.steps else {}
        return {**self.params, "steps": self.steps, "optimizer_updates": self.updates,
                "best_step": best.step, "best_val_objective": best.score,
                "selected": {"step": best.step, **self.loop.best_val},  # validation of the weights kept
                "resumed_at_step": resumed_at, "rollout_tokens_per_s": mean(rates) if rates else None,
                "step_seconds": mean(step_seconds) if step_seconds else None,
                **{f"final_{k}": v for k, v in last.items() if k in
                   ("rm_score", "kl", "gold", "val_rm_score", "val_kl", "val_gold", "entropy")}}

    @property
    def reference(self) -> nn.Module:
        """The reference policy; with LoRA, the policy itself, to be run under adapter_disabled."""
        return self.ref if self.ref is not None else self.policy

    def reference_logprobs(self, ids, attn, start: int, temperature: float | None = None) -> torch.Tensor:
        with adapter_disabled(self.reference):
            return reference_logprobs(self.reference, ids, attn, start, temperature or self.cfg.temperature)
