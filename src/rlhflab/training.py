"""Plain functions shared by the trainers: optimiser, schedule, batching, the LM training loop.

Trainers run under `accelerate` (one process by default; `accelerate launch` / `torchrun` for
many). Every process sees the same shuffled order and takes its own slice of each global batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from transformers import get_scheduler

from rlhflab.algorithms.losses import lm_token_loss_sum
from rlhflab.config import Optim, Optimizer, Train
from rlhflab.data.tokenize import LMExample, collate
from rlhflab.models import labelled_logits

LogFn = Callable[[int, dict], None]


class BestWeights:
    """The weights with the best validation score so far, so a trainer can end on its best
    checkpoint (model selection on validation, kirk2024 appendix E.3). Kept as an in-memory copy,
    or, `on_disk`, in a file in `directory` or a private temporary folder (a second copy of a large
    policy in RAM for a whole PPO run is what a GPU box can least afford); `state_dict` reads it
    back only while a checkpoint is written, so resume stays exact."""

    def __init__(self, module: torch.nn.Module, score: float | None, step: int = 0, higher_is_better: bool = True,
                 on_disk: bool = False, directory: Path | None = None):
        """Keeps the module's current weights as scoring `score`; with `score=None` nothing is kept
        until the first `offer`."""
        self.module, self.sign = module, 1.0 if higher_is_better else -1.0
        self.score, self.step = score, step
        self.own_dir = Path(tempfile.mkdtemp(prefix="rlhflab-best-")) if on_disk and directory is None else None
        folder = directory if directory is not None else self.own_dir
        self.file = Path(folder) / f"best-weights-{os.getpid()}.pt" if on_disk else None
        self.weights = None
        if score is not None:
            self._keep(self._changing())

    def _keep(self, weights: dict) -> None:
        if self.file is None:
            self.weights = copy.deepcopy(weights)
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        torch.save(weights, tmp)
        os.replace(tmp, self.file)  # a crash mid-write never leaves a half file under the name

    def _kept(self) -> dict | None:
        if self.file is None:
            return self.weights
        return torch.load(self.file, weights_only=True) if self.file.exists() else None

    def offer(self, step: int, score: float, always: bool = False) -> bool:
        """Keep the current weights if `score` beats the best so far (or `always`)."""
        if always or self.score is None or self.sign * score > self.sign * self.score:
            self.score, self.step = score, step
            self._keep(self._changing())
            return True
        return False

    def _changing(self) -> dict:
        """The trainable parameters: frozen weights (a LoRA or QLoRA base, frozen layers) never change,
        so they are not copied, and 4-bit weights need not survive a state-dict round trip."""
        return {n: p.detach() for n, p in self.module.named_parameters() if p.requires_grad}

    def restore(self) -> None:
        kept = self._kept()  # on disk: read once
        missing_trainable = {n for n, p in self.module.named_parameters() if p.requires_grad} - set(kept)
        if missing_trainable:
            raise RuntimeError(f"best weights lack trainable parameters {sorted(missing_trainable)[:3]}")
        self.module.load_state_dict(kept, strict=False)

    def discard(self) -> None:
        """Delete the file of kept weights (after `restore`), and the folder if it made one."""
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self.own_dir is not None:
            shutil.rmtree(self.own_dir, ignore_errors=True)

    def state_dict(self) -> dict:
        return {"score": self.score, "step": self.step, "weights": self._kept()}

    def load_state_dict(self, state: dict) -> None:
        self.score, self.step = state["score"], state["step"]
        if state["weights"] is not None:
            self._keep(state["weights"])
        elif self.file is not None:
            self.file.unlink(missing_ok=True)
        else:
            self.weights = None


def unfreeze(model: torch.nn.Module) -> None:
    """Every parameter trainable again after training (saved models load fully trainable), except
    4-bit ones (QLoRA's bases), which are integers and cannot take gradients."""
    for p in model.parameters():
        if p.is_floating_point():
            p.requires_grad_(True)


class NonFiniteError(FloatingPointError):
    """A loss, reward or statistic became NaN or infinite; the message names the step and batch."""


class FiniteGuard:
    """Stops a trainer at the first NaN/inf among the values it watches, naming the step, the batch
    (example or prompt indices) and the last finite values, instead of saving a NaN model."""

    def __init__(self, stage: str):
        self.stage = stage
        self.last: dict = {}

    def check(self, step: int, values: dict[str, float], batch: list[int] | None = None) -> None:
        bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
        if bad:
            shown = "" if batch is None else f" on batch {batch[:8]}{' …' if len(batch) > 8 else ''}"
            raise NonFiniteError(
                f"{self.stage}: step {step}: {', '.join(f'{k} = {v}' for k, v in bad.items())}{shown}; last finite "
                f"values: {self.last or 'none yet'}; lower the learning rate or check the data of that batch")
        self.last = {"step": step, **{k: round(v, 6) for k, v in values.items() if v is not None}}


def make_accelerator(train: Train) -> Accelerator:
    """The trainers' accelerator, with `train.mixed_precision` (autocast of training forwards)."""
    if train.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("train.mixed_precision: fp16 needs a CUDA device; use bf16 or no on a CPU")
    if AcceleratorState._shared_state.get("_mixed_precision", train.mixed_precision) != train.mixed_precision:
        # accelerate keeps one precision per process; runs of another config in this process (the
        # seeds of an experiment, tests) reset it, keeping the process group (PartialState)
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=train.mixed_precision)


def use_gradient_checkpointing(model, train: Train) -> None:
    """Recompute activations in the backward pass when `train.gradient_checkpointing` asks."""
    if train.gradient_checkpointing:
        # non-reentrant: correct when the inputs' embeddings are frozen (LoRA, freeze_fraction)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def optimizer_step(accelerator: Accelerator, model, optimizer, scheduler, max_grad_norm: float | None):
    """Clip, step, advance the schedule, clear gradients; returns the pre-clip gradient norm (or None)."""
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm) if max_grad_norm else None
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def make_optimizer(model: torch.nn.Module, optim: Optimizer) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: freeze_fraction froze the whole model")
    return torch.optim.AdamW(params, lr=optim.lr, betas=(optim.adam_beta1, optim.adam_beta2),
                             eps=optim.adam_epsilon, weight_decay=optim.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, optim: Optimizer, total_steps: int):
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[optim.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=int(optim.warmup_ratio * total_steps),
                         num_training_steps=total_steps)


def total_steps(optim: Optim, n_examples: int) -> int:
    steps = max(1, math.ceil(optim.epochs * n_examples / optim.batch_size))
    return min(steps, optim.max_steps) if optim.max_steps else steps


def batch_order(n_examples: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Indices of each global batch: reshuffled every epoch, deterministic from the seed."""
    rng = random.Random(seed)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        while len(order) < batch_size:
            perm = list(range(n_examples))
            rng.shuffle(perm)
            order.extend(perm)
        batches.append(order[:batch_size])
        order = order[batch_size:]
    return batches


def local_microbatches(batch: list[int], accelerator: Accelerator, micro: int) -> list[list[int]]:
    """This process's share of a global batch, cut into micro-batches."""
    n, r = accelerator.num_processes, accelerator.process_index
    if len(batch) % n:
        raise ValueError(f"batch size {len(batch)} is not divisible by {n} processes")
    share = batch[r::n]
    return [share[i:i + micro] for i in range(0, len(share), micro)]


@torch.no_grad()
def lm_eval_loss(model, examples: Sequence[LMExample], accelerator: Accelerator, pad_id: int,
                 batch_size: int = 32) -> float:
    """Mean token loss over `examples` (completion tokens only where labels say so)."""
    model.eval()
    mine = list(range(accelerator.process_index, len(examples), accelerator.num_processes))
    total = torch.zeros(2, device=accelerator.device)
    for i in range(0, len(mine), batch_size):
        b = collate([examples[j] for j in mine[i:i + batch_size]], pad_id)
        b = {k: v.to(accelerator.device) for k, v in b.items()}
        with accelerator.autocast():
            s, n = lm_token_loss_sum(*labelled_logits(model, b["input_ids"], b["attention_mask"], b["labels"]))
        total += torch.stack([s.float(), n.float()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def train_lm(model, train: Sequence[LMExample], val: Sequence[LMExample], optim: Optim, *,
             accelerator: Accelerator, pad_id: int, seed: int, eval_every: int, log: LogFn,
             progress: Callable[[int, int], None] = lambda i, n: None, name: str = "training") -> dict:
    """Next-token training on labelled tokens, with model selection on validation loss.

    The loss of a global batch is Σ token losses / (labelled tokens in the global batch), so any
    split into processes × micro-batches yields the same gradient. Returns summary metrics; the
    model is left holding the weights with the best validation loss.
    """
    steps = total_steps(optim, len(train))
    optimizer = make_optimizer(model, optim)
    scheduler = make_scheduler(optimizer, optim, steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    initial_val = lm_eval_loss(model, val, accelerator, pad_id)
    best = BestWeights(raw, initial_val, higher_is_better=False)
    guard = FiniteGuard(name)
    log(0, {"val_loss": initial_val})
    model.train()
    train_loss = float("nan")
    for step, batch in enumerate(batch_order(len(train), optim.batch_size, steps, seed), start=1):
        micro = local_microbatches(batch, accelerator, optim.micro_batch_size)
        n_local = sum(sum(1 for t in train[j].labels[1:] if t != -100) for mb in micro for j in mb)
        n_global = accelerator.reduce(torch.tensor(float(n_local), device=accelerator.device), "sum")
        scale = accelerator.num_processes / n_global.clamp(min=1)
        loss_sum = 0.0
        for k, mb in enumerate(micro):
            b = {key: v.to(accelerator.device) for key, v in collate([train[j] for j in mb], pad_id).items()}
            ctx = accelerator.no_sync(model) if k < len(micro) - 1 else contextlib.nullcontext()
            with ctx, accelerator.autocast():
                s, _ = lm_token_loss_sum(*labelled_logits(model, b["input_ids"], b["attention_mask"], b["labels"]))
                accelerator.backward(s * scale)
            loss_sum += s.item()
        total = accelerator.reduce(torch.tensor(loss_sum, device=accelerator.device), "sum")
        train_loss = (total / n_global.clamp(min=1)).item()
        guard.check(step, {"train_loss": train_loss}, batch)  # before a NaN gradient reaches the weights
        grad_norm = optimizer_step(accelerator, model, optimizer, scheduler, optim.max_grad_norm)
        row = {"train_loss": train_loss, "lr": scheduler.get_last_lr()[0]}
        if grad_norm is not None:
            row["grad_norm"] = float(grad_norm)
        if step % eval_every == 0 or step == steps:
            val_loss = lm_eval_loss(model, val, accelerator, pad_id)
            row["val_loss"] = val_loss
            best.offer(step, val_loss)
        log(step, row)
        progress(step, steps)
    best.restore()
    return {"steps": steps, "initial_val_loss": initial_val, "best_val_loss": best.score,
            "best_step": best.step, "final_train_loss": train_loss}

