"""Policies as samplers, and best-of-N: sampling pools, scoring them with a reward model, picking.

Every evaluation stage treats SFT, PPO, DPO and best-of-N alike through `policy_sampler`;
best-of-N (kirk2024 §3, ivison2024 appendix H) samples N completions from the SFT model and keeps the one the
reward model scores highest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from rlhflab.config import Generation
from rlhflab.evaluation.reward_model import load_scorer, score
from rlhflab.generation import sample_texts
from rlhflab.models import load_causal_lm, load_tokenizer
from rlhflab.stats import standard_error

# sampler(prompts, k) -> k outputs per prompt, input-major ([p0 s0, p0 s1, ..., p1 s0, ...])
Sampler = Callable[[list[str], int], list[str]]


def sample_pool(model, tokenizer, prompts: list[str], k: int, temperature: float, g: Generation) -> list[list[str]]:
    """k samples per prompt: pool[i][j] is sample j of prompt i."""
    flat = model_sampler(model, tokenizer, g, temperature)(prompts, k)
    return [flat[i * k:(i + 1) * k] for i in range(len(prompts))]


def score_pool(rm, tokenizer, prompts: list[str], pool: list[list[str]]) -> torch.Tensor:
    """RM scores of a pool: [P, K]."""
    k = len(pool[0])
    flat = score(rm, tokenizer, [p for p in prompts for _ in range(k)], [c for row in pool for c in row])
    return flat.view(len(prompts), k)


def best_of_n_curve(rm_scores: torch.Tensor, evaluator: torch.Tensor, sweep: list[int]) -> dict[int, dict]:
    """E[evaluator score of the RM's best of N] per prompt, averaged over disjoint blocks of the pool.

    rm_scores: the selecting RM's scores, evaluator: the scores of whatever judges the pick (the
    gold reward, or a proxy RM the selection never saw), both [P, K]. For each N the pool's first
    ⌊K/N⌋·N samples form ⌊K/N⌋ disjoint blocks of N; the RM picks one per block; the per-prompt
    mean over blocks is an unbiased estimate of E[evaluator(best-of-N)] with less variance than a
    single prefix. Returns {N: {"mean", "se" (over prompts), "rm_mean", "blocks"}}.
    """
    P, K = rm_scores.shape
    out = {}
    for n in sorted(sweep):
        if n > K:
            raise ValueError(f"best-of-{n} needs a pool of at least {n} samples, have {K}")
        blocks = K // n
        r = rm_scores[:, : blocks * n].reshape(P, blocks, n)
        g = evaluator[:, : blocks * n].reshape(P, blocks, n)
        pick = r.argmax(dim=2, keepdim=True)
        per_prompt = g.gather(2, pick).squeeze(2).mean(dim=1)
        per_prompt_rm = r.gather(2, pick).squeeze(2).mean(dim=1)
        out[n] = {"mean": per_prompt.mean().item(), "se": standard_error(per_prompt.tolist()),
                  "rm_mean": per_prompt_rm.mean().item(), "blocks": blocks}
    return out


def model_sampler(model, tokenizer, g: Generation, temperature: float) -> Sampler:
    """A loaded causal LM as a sampler at `temperature`."""
    return lambda prompts, k: sample_texts(model, tokenizer, prompts, k=k, batch_size=g.batch_size * 4,
                                           temperature=temperature, top_p=g.top_p,
                                           max_new_tokens=g.max_new_tokens, decode_mode=g.decode)


def policy_sampler(policy_dir: Path, dtype: str, g: Generation, temperature: float,
                   best_of: tuple[Path, int, float] | None = None) -> Sampler:
    """A sampler for the causal LM in `policy_dir` at `temperature`; with `best_of = (rm_dir, n, τ)`,
    each output is instead the RM's pick among n fresh samples at τ (best-of-N)."""
    tokenizer = load_tokenizer(policy_dir)
    model = load_causal_lm(policy_dir, dtype)
    if best_of is None:
        return model_sampler(model, tokenizer, g, temperature)
    rm_dir, n, bon_temperature = best_of
    rm, rm_tok = load_scorer(rm_dir, dtype)  # at the length it was trained at

    def best_of_n(prompts: list[str], k: int) -> list[str]:
        pool = sample_pool(model, tokenizer, prompts, k * n, bon_temperature, g)
        picks = score_pool(rm, rm_tok, prompts, pool).view(len(prompts), k, n).argmax(dim=2).tolist()
        return [pool[i][j * n + b] for i, row in enumerate(picks) for j, b in enumerate(row)]

    return best_of_n
