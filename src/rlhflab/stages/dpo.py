"""`dpo` stage: direct preference optimisation from the SFT model (ivison2024 §2.1 eq. 3, §3.2, appendix F.1).

Trains on the same preference files the RM learns from, so DPO and PPO see exactly the same
labelled data (ivison2024 §3.2). Loss options: DPO (sigmoid), conservative DPO (label smoothing), IPO.
Sequence log-probs are sums over completion tokens (EOS included). Reference log-probs are
computed once before training (default) or live every step. Logged per step: loss, implicit-reward
accuracy and margin, and the chosen/rejected log-probs, so the common "both log-probs fall"
pattern is visible. Model selection on ID validation preference accuracy (implicit reward).
"""

from __future__ import annotations

import contextlib

import torch
from accelerate.utils import set_seed

from rlhflab.algorithms.losses import dpo_loss
from rlhflab.data.tokenize import encode_pairs
from rlhflab.generation import completion_logprob_sums
from rlhflab.inputs import gold_reward_of, layout, mean_gold_of_samples, preference_needs, read_set
from rlhflab.lora import adapter_disabled, prepare_trainable, saves_adapter
from rlhflab.models import load_causal_lm, load_tokenizer, save_model
from rlhflab.pipeline import Stage, StageContext
from rlhflab.training import (BestWeights, FiniteGuard, batch_order, local_microbatches, make_accelerator,
                              make_optimizer, make_scheduler, optimizer_step, total_steps, unfreeze,
                              use_gradient_checkpointing)


def pair_logprobs(model, pairs, device, autocast=contextlib.nullcontext) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed completion log-probs of chosen and rejected, one forward over both halves."""
    with autocast():
        lp = completion_logprob_sums(model, [c for c, _ in pairs] + [r for _, r in pairs], device).float()
    return lp[: len(pairs)], lp[len(pairs):]


@torch.no_grad()
def all_pair_logprobs(model, pairs, device, batch_size: int = 32, autocast=contextlib.nullcontext) -> torch.Tensor:
    """[N, 2] (chosen, rejected) log-probs for every pair."""
    was = model.training
    model.eval()
    out = [torch.stack(pair_logprobs(model, pairs[i:i + batch_size], device, autocast), dim=1).cpu()
           for i in range(0, len(pairs), batch_size)]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 2)


def implicit_accuracy(policy_lp: torch.Tensor, ref_lp: torch.Tensor, tie: float = 1e-4) -> float:
    """Share of pairs whose implicit reward ranks chosen above rejected; margins within `tie` nats
    count as ties, half each, so the untrained policy scores 0.5. Two passes of the same weights
    agree only to float rounding (~1e-5 nats here: the policy's weights require grad and the
    reference's do not, and some kernels choose their blocking by that), and a validation
    accuracy of 0.524 from rounding noise at step 0 would keep the SFT weights."""
    margin = (policy_lp[:, 0] - ref_lp[:, 0]) - (policy_lp[:, 1] - ref_lp[:, 1])
    return ((margin > tie).float() + 0.5 * (margin.abs() <= tie).float()).mean().item()


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.dpo
    set_seed(ctx.seed)
    sft_dir = ctx.input("sft")
    tokenizer = load_tokenizer(sft_dir)
    model = load_causal_lm(sft_dir, ctx.cfg.model.dtype)
    data = layout(ctx)
    train_recs = read_set(ctx, data.require("preference", "train"))
    val_recs = read_set(ctx, data.require("preference", "validation"))
    train = encode_pairs(tokenizer, train_recs, cfg.max_length)
    val = encode_pairs(tokenizer, val_recs, cfg.max_length)
    model, metrics = prepare_trainable(model, ctx.cfg.model.lora, cfg.freeze_fraction)
    use_gradient_checkpointing(model, ctx.cfg.train)
    # the reference: with an adapter, the policy itself with the adapter off (one copy of the weights)
    ref = model if ctx.cfg.model.lora else load_causal_lm(sft_dir, ctx.cfg.model.dtype).requires_grad_(False).eval()
    gold = gold_reward_of(ctx)
    check_prompts = [r.prompt for r in val_recs[: cfg.n_sample_check]]

    accelerator = make_accelerator(ctx.cfg.train)
    dev = accelerator.device
    ref.to(dev)
    with adapter_disabled(ref):
        ref_train = all_pair_logprobs(ref, train, dev, autocast=accelerator.autocast) \
            if cfg.reference == "precomputed" else None
        ref_val = all_pair_logprobs(ref, val, dev, autocast=accelerator.autocast)

    optim = cfg.optim
    steps = total_steps(optim, len(train))
    optimizer = make_optimizer(model, optim)
    scheduler = make_scheduler(optimizer, optim, steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)
    # at step 0 the policy is the reference (an adapter starts at zero), so every margin is 0: no pass needed
    initial_acc = implicit_accuracy(ref_val, ref_val)
    best = BestWeights(raw, initial_acc)
    guard = FiniteGuard("dpo")
    ctx.log(0, {"val_accuracy": initial_acc})
    model.train()
    for step, batch in enumerate(batch_order(len(train), optim.batch_size, steps, ctx.seed), start=1):
        micro = local_microbatches(batch, accelerator, optim.micro_batch_size)
        sums = torch.zeros(7, device=dev)
        for k, mb in enumerate(micro):
            pairs = [train[j] for j in mb]
            with accelerator.no_sync(model) if k < len(micro) - 1 else contextlib.nullcontext():
                pc, pr = pair_logprobs(model, pairs, dev, accelerator.autocast)
                if ref_train is not None:
                    rc, rr = ref_train[mb, 0].to(dev), ref_train[mb, 1].to(dev)
                else:
                    with torch.no_grad(), adapter_disabled(ref):
                        rc, rr = pair_logprobs(ref, pairs, dev, accelerator.autocast)
                losses, rew_c, rew_r = dpo_loss(pc, pr, rc, rr, cfg.beta, cfg.loss, cfg.label_smoothing)
                # mean over the global batch, however it is split
                accelerator.backward(losses.sum() * accelerator.num_processes / len(batch))
            sums += torch.stack([losses.sum(), (rew_c > rew_r).float().sum(), (rew_c - rew_r).sum(),
                                 pc.detach().sum(), pr.detach().sum(), rew_c.sum(), rew_r.sum()])
        s = (accelerator.reduce(sums, "sum") / len(batch)).tolist()
        guard.check(step, {"loss": s[0], "logp_chosen": s[3], "logp_rejected": s[4]}, batch)  # before the step
        optimizer_step(accelerator, model, optimizer, scheduler, optim.max_grad_norm)
        row = {"loss": s[0], "reward_accuracy": s[1], "reward_margin": s[2], "logp_chosen": s[3],
               "logp_rejected": s[4], "reward_chosen": s[5], "reward_rejected": s[6],
               "lr": scheduler.get_last_lr()[0]}
        if step % cfg.eval_every == 0 or step == steps:
            val_lp = all_pair_logprobs(raw, val, dev, autocast=accelerator.autocast)
            row["val_accuracy"] = implicit_accuracy(val_lp, ref_val)
            row["val_logp_chosen"], row["val_logp_rejected"] = val_lp.mean(dim=0).tolist()
            best.offer(step, row["val_accuracy"])
        ctx.log(step, row)
        ctx.progress("dpo", step, steps)
    best.restore()
    unfreeze(raw)
    metrics.update({"steps": steps, "initial_val_accuracy": initial_acc, "best_val_accuracy": best.score,
                    "best_step": best.step, "train_pairs": len(train)})
    if gold and check_prompts:
        with adapter_disabled(ref):
            metrics["gold_reward_sft"] = mean_gold_of_samples(ctx, ref, tokenizer, check_prompts, gold)
        metrics["gold_reward_dpo"] = mean_gold_of_samples(ctx, raw, tokenizer, check_prompts, gold)
    if ctx.is_main:
        save_model(raw, tokenizer, ctx.out, adapter_only=saves_adapter(ctx.cfg.model.lora))
    return metrics


STAGE = Stage(name="dpo", needs=lambda cfg: preference_needs(cfg) + ["sft"],
              reads=("seed", "generation", "dpo", "model.dtype", "model.lora", "train"), run=run,
              enabled=lambda cfg: cfg.dpo.enabled, select=("best_val_accuracy", "max"),
              headline=("best_val_accuracy", "gold_reward_dpo"))
