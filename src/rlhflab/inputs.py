"""How a stage finds what upstream stages wrote: the task's layout and sets, the base model, the
gold reward, the trained policies. Every path goes through `ctx.input(stage)`, so a stage can read
only the stages it declares."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import torch

from rlhflab.data.gold import GoldReward, get_gold_reward
from rlhflab.data.records import RECORD_TYPES, read_json, read_records
from rlhflab.generation import sample_texts
from rlhflab.layout import TASK_INFO, DataSet, Layout
from rlhflab.pipeline import StageContext
from rlhflab.sampling import Sampler, policy_sampler

POLICIES = ("sft", "bon", "ppo", "dpo", "grpo", "rloo", "online_dpo")


def task_info(ctx: StageContext) -> dict:
    return read_json(ctx.input("data") / TASK_INFO)


def layout(ctx: StageContext) -> Layout:
    return Layout.from_task_info(task_info(ctx))


def set_path(ctx: StageContext, ds: DataSet) -> Path:
    """The file of a set: preference pairs from the comparisons stage when it runs (same layout),
    everything else from the data stage."""
    if ds.kind == "preference" and ctx.has_input("comparisons"):
        return ctx.input("comparisons") / ds.file
    return ctx.input("data") / ds.file


def read_set(ctx: StageContext, ds: DataSet) -> list:
    return read_records(set_path(ctx, ds), RECORD_TYPES[ds.kind])


def preference_needs(cfg) -> list[str]:
    """The stages a preference-reading stage needs for its pairs."""
    return ["data"] + (["comparisons"] if cfg.comparisons.source == "sft_samples" else [])


def base_model_needs(cfg) -> list[str]:
    """The stage that makes the base model, if any: a rebuilt GGUF file or our own pretraining."""
    if cfg.model.gguf is not None:
        return ["gguf"]
    return ["pretrain"] if cfg.model.name_or_path is None else []


def base_model_dir(ctx: StageContext) -> str:
    """The pretrained model SFT starts from: a rebuilt GGUF checkpoint, our own pretraining, or a
    named Hugging Face model (reads `model.name_or_path` only in that last case)."""
    for stage in ("gguf", "pretrain"):
        if ctx.has_input(stage):
            return str(ctx.input(stage))
    return ctx.cfg.model.name_or_path


def gold_reward_of(ctx: StageContext) -> GoldReward | None:
    return get_gold_reward(task_info(ctx).get("gold_reward"))


def mean_gold_of_samples(ctx: StageContext, model, tokenizer, prompts: list[str], gold: GoldReward,
                         seed_offset: int = 0) -> float:
    """Mean gold reward of one sample per prompt at the configured temperature."""
    g = ctx.cfg.generation
    torch.manual_seed(ctx.seed + 10_007 + seed_offset)
    texts = sample_texts(model, tokenizer, prompts, batch_size=g.batch_size, temperature=g.temperature,
                         top_p=g.top_p, max_new_tokens=g.max_new_tokens, decode_mode=g.decode)
    return mean(gold(p, t) for p, t in zip(prompts, texts))


def policy_wants(names: list[str], bon_reward_model: str) -> list[str]:
    """The optional inputs of a stage that samples `names`: each trained policy, and best-of-N's
    reward model (best-of-N samples the SFT model)."""
    return [n for n in names if n != "sft"] + ([bon_reward_model] if "bon" in names else [])


def available_policies(ctx: StageContext, names: list[str]) -> list[str]:
    """The listed policies whose stage is active in this run (SFT always is)."""
    return [n for n in names if n == "sft" or ctx.has_input(n)]


def sampler_of(ctx: StageContext, name: str, temperature: float, pool_temperature: float | None = None) -> Sampler:
    """A trained policy as a sampler at `temperature`; best-of-N instead picks with `bon.reward_model`
    among `bon.n` samples of the SFT model drawn at `pool_temperature`, by default `bon.temperature`
    (best-of-N as a policy, as eval uses it). The diversity stage passes its own τ, so every policy's
    samples come from one temperature; `bon.temperature` is then not read."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    cfg = ctx.cfg
    if name == "bon":
        tau = cfg.bon.temperature if pool_temperature is None else pool_temperature
        best_of = (ctx.input(cfg.bon.reward_model), cfg.bon.n, tau)
        return policy_sampler(ctx.input("sft"), cfg.model.dtype, cfg.generation, temperature, best_of)
    return policy_sampler(ctx.input(name), cfg.model.dtype, cfg.generation, temperature)
