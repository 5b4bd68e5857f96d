"""The trained policies as samplers, so evaluation stages treat SFT, PPO, DPO and best-of-N alike."""

from __future__ import annotations

from typing import Callable

from rlhflab.generation import sample_texts
from rlhflab.models import load_causal_lm, load_tokenizer
from rlhflab.pipeline import StageContext

MODEL_POLICIES = ("sft", "ppo", "dpo")  # stages whose artefact is a causal LM
POLICIES = MODEL_POLICIES + ("bon",)

Sampler = Callable[[list[str], int], list[str]]


def policy_needs(cfg, names: list[str]) -> list[str]:
    """Stages a list of policies reads (best-of-N samples the SFT model and scores with its RM)."""
    out: list[str] = []
    for name in names:
        out += ["sft", cfg.bon.reward_model] if name == "bon" else [name]
    return list(dict.fromkeys(out))


def enabled_policies(cfg, names: list[str]) -> list[str]:
    flags = {"ppo": cfg.ppo.enabled, "dpo": cfg.dpo.enabled, "bon": cfg.bon.enabled}
    return [n for n in names if flags.get(n, True)]


def policy_sampler(ctx: StageContext, name: str, temperature: float) -> Sampler:
    """sampler(prompts, k) -> k outputs per prompt, input-major ([p0 s0, p0 s1, ..., p1 s0, ...])."""
    g = ctx.cfg.generation
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    model_dir = ctx.input("sft" if name == "bon" else name)
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, ctx.cfg.model.dtype)

    def draw(prompts: list[str], k: int, temp: float) -> list[str]:
        return sample_texts(model, tokenizer, [p for p in prompts for _ in range(k)], batch_size=g.batch_size * 4,
                            temperature=temp, top_p=g.top_p, max_new_tokens=g.max_new_tokens)

    if name != "bon":
        return lambda prompts, k: draw(prompts, k, temperature)

    from rlhflab.stages.bon import sample_pool, score_pool
    from rlhflab.stages.rm import load_reward_model

    rm_dir = ctx.input(ctx.cfg.bon.reward_model)
    rm_tok = load_tokenizer(rm_dir)
    rm = load_reward_model(str(rm_dir), rm_tok)
    n = ctx.cfg.bon.n

    def best_of_n(prompts: list[str], k: int) -> list[str]:
        # each of the k outputs is the RM's pick among n fresh samples at the BoN temperature
        pool = sample_pool(model, tokenizer, prompts, k * n, ctx)
        picks = score_pool(rm, rm_tok, prompts, pool).view(len(prompts), k, n).argmax(dim=2).tolist()
        return [pool[i][j * n + b] for i, row in enumerate(picks) for j, b in enumerate(row)]

    return best_of_n
