"""`rm` and `rm_proxy` stages: Bradley–Terry reward models (kirk2024 §3, appendix E.1, J.3; ivison2024 eq. 1).

A scalar head reads the backbone's final hidden state at the last token (EOS) of prompt ⧺
completion. Loss −log σ(r_c − r_r − margin); one epoch; model selection by ID validation accuracy,
which is logged during training (kirk2024 fig. 23). Saved as a Hugging Face sequence-classification
model (`AutoModelForSequenceClassification.from_pretrained`).

The proxy RM (kirk2024 appendix J.3) is the held-out evaluator: "trained with a different random
seed and a different data distribution". Where the task has a proxy preference set (the synthetic
task's `preference/proxy.jsonl`) it learns from that alone: fresh inputs from both sides of the
ID/OOD split (J.3: "the full dataset ... without splitting") that no other set holds, labelled by
the gold reward, so it shares no pair and no input with the RM that PPO and best-of-N optimise and
none of its annotators' noise. Without one (files and datasets tasks) it falls back to the RM's
training and validation pairs with another seed -- a near-copy of the RM -- and never a test pair.
Either way its test-set accuracy (rm_eval) is out of sample, and the manifest records what it
learnt from and how much of it the RM also saw.
"""

from __future__ import annotations

import contextlib

import torch
from accelerate.utils import set_seed

from rlhflab.algorithms.losses import bradley_terry_loss
from rlhflab.contamination import input_text, normalise
from rlhflab.data.records import PreferenceRecord
from rlhflab.data.tokenize import encode_pairs
from rlhflab.evaluation.reward_model import (RewardScorer, example_rewards, pairwise_accuracy, record_scoring_length,
                                             score_pairs)
from rlhflab.inputs import base_model_dir, base_model_needs, layout, preference_needs, read_set
from rlhflab.layout import DataSet, Layout
from rlhflab.lora import prepare_trainable, saves_adapter
from rlhflab.models import load_reward_model, load_tokenizer, save_model
from rlhflab.pipeline import Stage, StageContext
from rlhflab.tasks.common import carve_validation
from rlhflab.training import (BestWeights, FiniteGuard, batch_order, local_microbatches, make_accelerator,
                              make_optimizer, make_scheduler, optimizer_step, total_steps, unfreeze,
                              use_gradient_checkpointing)


def val_accuracy(model, tokenizer, recs: list[PreferenceRecord], max_length: int) -> float:
    rc, rr = score_pairs(model, tokenizer, [r.prompt for r in recs], [r.chosen for r in recs],
                         [r.rejected for r in recs], max_length=max_length)
    return pairwise_accuracy(rc, rr)


def train_reward_model(ctx: StageContext, train_recs, val_recs, seed: int) -> dict:
    cfg = ctx.cfg.rm
    set_seed(seed)
    init = str(ctx.input("sft")) if cfg.init == "sft" else base_model_dir(ctx)
    tokenizer = load_tokenizer(init)
    model = load_reward_model(init, tokenizer, ctx.cfg.model.dtype)
    model, metrics = prepare_trainable(model, ctx.cfg.model.lora, cfg.freeze_fraction, reward=True)
    use_gradient_checkpointing(model, ctx.cfg.train)
    train = encode_pairs(tokenizer, train_recs, cfg.max_length)

    optim = cfg.optim
    steps = total_steps(optim, len(train))
    optimizer = make_optimizer(model, optim)
    scheduler = make_scheduler(optimizer, optim, steps)
    accelerator = make_accelerator(ctx.cfg.train)
    scorer, optimizer = accelerator.prepare(RewardScorer(model), optimizer)
    raw = accelerator.unwrap_model(scorer).rm
    # one process: the RM itself (prompts shared across a pair); several: the DDP wrapper
    model = scorer if accelerator.num_processes > 1 else raw
    initial_acc = val_accuracy(raw, tokenizer, val_recs, cfg.max_length)
    best = BestWeights(raw, initial_acc)
    guard = FiniteGuard(ctx.stage.name)
    ctx.log(0, {"val_accuracy": initial_acc})
    for step, batch in enumerate(batch_order(len(train), optim.batch_size, steps, seed), start=1):
        model.train()
        loss_total, correct = 0.0, 0
        micro = local_microbatches(batch, accelerator, optim.micro_batch_size)
        for k, mb in enumerate(micro):
            pairs = [train[j] for j in mb]
            with (accelerator.no_sync(model) if k < len(micro) - 1 else contextlib.nullcontext()), accelerator.autocast():
                rewards = example_rewards(model, [c for c, _ in pairs] + [r for _, r in pairs],
                                          tokenizer.pad_token_id, accelerator.device).float()
                rc, rr = rewards[: len(pairs)], rewards[len(pairs):]
                loss = bradley_terry_loss(rc, rr, cfg.margin, reduction="sum")
                # mean over the global batch, however it is split
                accelerator.backward(loss * accelerator.num_processes / len(batch))
            loss_total += loss.item()
            correct += int((rc > rr).sum())
        stats = accelerator.reduce(torch.tensor([loss_total, correct], dtype=torch.float, device=accelerator.device), "sum")
        guard.check(step, {"train_loss": stats[0].item() / len(batch)}, batch)  # before the weights see it
        optimizer_step(accelerator, model, optimizer, scheduler, optim.max_grad_norm)
        row = {"train_loss": stats[0].item() / len(batch), "train_accuracy": stats[1].item() / len(batch),
               "lr": scheduler.get_last_lr()[0]}
        if step % cfg.eval_every == 0 or step == steps:
            acc = val_accuracy(raw, tokenizer, val_recs, cfg.max_length)
            row["val_accuracy"] = acc
            best.offer(step, acc)
        ctx.log(step, row)
        ctx.progress(ctx.stage.name, step, steps)
    best.restore()
    unfreeze(raw)
    if ctx.is_main:
        record_scoring_length(raw, ctx.out, cfg.max_length)
        save_model(raw, tokenizer, ctx.out, adapter_only=saves_adapter(ctx.cfg.model.lora))
    return {**metrics, "steps": steps, "initial_val_accuracy": initial_acc, "best_val_accuracy": best.score,
            "best_step": best.step, "train_pairs": len(train), "init": init}


def run_rm(ctx: StageContext) -> dict:
    data = layout(ctx)
    train = read_set(ctx, data.require("preference", "train"))
    val = read_set(ctx, data.require("preference", "validation"))
    return train_reward_model(ctx, train, val, ctx.seed)


def rm_sets(data: Layout) -> list[DataSet]:
    """The preference sets the RM learns from or is selected on."""
    return [s for s in data.sets if s.kind == "preference" and s.role in ("train", "validation")]


def proxy_sets(data: Layout) -> list[DataSet]:
    """The preference sets the proxy RM learns from: the task's proxy set, else the RM's; no test set."""
    own = data.get("preference", "proxy")
    return [own] if own else rm_sets(data)


def provenance(pool: list[PreferenceRecord], rm_pairs: list[PreferenceRecord], own_set: bool) -> dict:
    """What separates the proxy RM from the RM, for its manifest."""
    seen_ids, seen_inputs = {r.id for r in rm_pairs}, {normalise(input_text(r)) for r in rm_pairs}
    return {"proxy_data": "gold-labelled pairs on held-out prompts (ID and OOD regions)" if own_set
            else "same pairs as rm, other seed",
            "proxy_labels": "gold reward (noise-free)" if own_set else "the RM's labels",
            "pairs_shared_with_rm": sum(r.id in seen_ids for r in pool),
            "prompts_shared_with_rm": len({normalise(input_text(r)) for r in pool} & seen_inputs)}


def proxy_split(pool: list[PreferenceRecord], seed: int) -> tuple[list, list]:
    """(training, selection) pairs of the proxy RM. Its pool has no validation set of its own (a
    proxy set is one file; without one the RM's validation pairs are in the pool), so checkpoint
    selection needs its own held-out pairs: a seeded 5% carved from the pool (as a
    task's missing validation set is), whole inputs at a time, so no selection input was seen in
    training (summarize-from-feedback has many pairs per post)."""
    return carve_validation(pool, seed, key=lambda r: normalise(input_text(r)))


def run_proxy(ctx: StageContext) -> dict:
    data = layout(ctx)
    sets = proxy_sets(data)
    pool = [r for ds in sets for r in read_set(ctx, ds)]
    own_set = sets != rm_sets(data)
    rm_pairs = [r for ds in rm_sets(data) for r in read_set(ctx, ds)] if own_set else pool
    seed = ctx.seed + ctx.cfg.rm.proxy_seed_offset
    train, val = proxy_split(pool, seed)
    return {**train_reward_model(ctx, train, val, seed), **provenance(pool, rm_pairs, own_set)}


def _needs(cfg) -> list[str]:
    needs = preference_needs(cfg) + base_model_needs(cfg) + (["sft"] if cfg.rm.init == "sft" else [])
    return list(dict.fromkeys(needs))


_READS = ("seed", "model.name_or_path", "model.dtype", "model.lora", "train", "rm.init", "rm.optim", "rm.freeze_fraction",
          "rm.margin", "rm.max_length", "rm.eval_every")
_HEADLINE = ("best_val_accuracy", "train_pairs")
STAGE = Stage(name="rm", needs=_needs, reads=_READS, run=run_rm, headline=_HEADLINE,
              select=("best_val_accuracy", "max"))
PROXY_STAGE = Stage(name="rm_proxy", needs=_needs, reads=_READS + ("rm.proxy_seed_offset",), run=run_proxy,
                    enabled=lambda cfg: cfg.rm.proxy, headline=_HEADLINE,
                    select=("best_val_accuracy", "max"))
