"""Pairwise judges: P(output_1 is better than output_2 | prompt), batched (kirk2024 §5.1, appendix D).

Judges: `GoldJudge` (the synthetic task's gold reward, optionally with the simulated annotators'
noise), `RewardModelJudge` (any trained RM or the proxy RM, kirk2024 appendix J.3), `OpenAIJudge` (an
LLM behind any OpenAI-compatible chat endpoint, with the seed's prompts, kirk2024 figures 7–8) and
`LocalJudge` (a local causal LM scoring the same prompts' two possible rankings). An LLM judge sends
the released template's system prompt and its user message (AlpacaEval's ChatML split); its
identity holds the template's digest, so cached verdicts never outlive a changed prompt.

Prompts and reply parsing live in `judge_prompts`; position randomisation and the on-disk cache
in `annotations`. An LLM reply is parsed as data, never executed; replies that do not parse into
the expected ranking are retried, then recorded as invalid (preference None) and counted by the
metrics.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from rlhflab.evaluation.judge_prompts import (FIRST_RANKED, PROMPTS, SECOND_RANKED, SYSTEM_PROMPT, TEMPLATE_DIGESTS,
                                              ReplyError, parse_ranking)
from rlhflab.llm_client import EndpointError, chat_completion
from rlhflab.stats import sigmoid


@dataclass
class Judgement:
    preference: float | None  # P(first output better) in [0, 1]; 0.5 = tie; None = invalid
    raw: str | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def missing(self) -> bool:
        """No verdict because the judge could not be reached (transport or HTTP errors), as opposed
        to a reply that was not a ranking: a missing judgement is asked again, never cached."""
        return self.preference is None and self.error is not None and not self.error.startswith("unparseable")


class Judge(Protocol):
    def identity(self) -> dict:
        """Everything that determines this judge's verdicts (the cache key)."""

    def __call__(self, prompts: list[str], first: list[str], second: list[str]) -> list[Judgement]:
        ...


# ------------------------------------------------------------------------------ gold / RM ---


class GoldJudge:
    """The gold reward decides: 1 / 0.5 / 0 by comparison, or σ(Δgold / s) with annotator noise."""

    def __init__(self, gold: Callable[[str, str], float], name: str, noise_scale: float | None = None):
        self.gold, self.name, self.noise_scale = gold, name, noise_scale

    def identity(self) -> dict:
        return {"judge": "gold", "reward": self.name, "noise_scale": self.noise_scale}

    def __call__(self, prompts, first, second):
        out = []
        for p, a, b in zip(prompts, first, second):
            d = self.gold(p, a) - self.gold(p, b)
            if self.noise_scale:
                pref = sigmoid(d / self.noise_scale)
            else:
                pref = 1.0 if d > 0 else 0.0 if d < 0 else 0.5
            out.append(Judgement(pref))
        return out


class RewardModelJudge:
    """Bradley–Terry preference of a reward model: σ(r_1 − r_2)."""

    def __init__(self, model, tokenizer, name: str, max_length: int | None = None):
        self.model, self.tokenizer, self.name, self.max_length = model, tokenizer, name, max_length

    def identity(self) -> dict:
        return {"judge": "reward-model", "model": self.name, "max_length": self.max_length}

    def __call__(self, prompts, first, second):
        from rlhflab.evaluation.reward_model import score_pairs

        r1, r2 = score_pairs(self.model, self.tokenizer, prompts, first, second, max_length=self.max_length)
        return [Judgement(p) for p in torch.sigmoid(r1 - r2).tolist()]


# ---------------------------------------------------------------------------- LLM judges ---


class OpenAIJudge:
    """An LLM behind an OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, TGI, ...)."""

    def __init__(self, *, base_url: str, model: str, prompt: str = "tldr", api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 8, timeout: float = 60.0, max_retries: int = 4, backoff: float = 1.0,
                 temperature: float = 0.0, max_tokens: int = 100):
        if prompt not in PROMPTS:
            raise ValueError(f"unknown judge prompt {prompt!r}; choose from {', '.join(PROMPTS)}")
        self.base_url, self.model, self.prompt = base_url.rstrip("/"), model, prompt
        self.api_key_env, self.api_key = api_key_env, os.environ.get(api_key_env, "")
        self.concurrency, self.timeout, self.max_retries, self.backoff = concurrency, timeout, max_retries, backoff
        self.temperature, self.max_tokens = temperature, max_tokens

    def identity(self) -> dict:
        return {"judge": "openai", "base_url": self.base_url, "model": self.model, "prompt": self.prompt,
                "template": TEMPLATE_DIGESTS[self.prompt], "temperature": self.temperature}

    def _request(self, content: str) -> str:
        return chat_completion(self.base_url, self.model, self.api_key,
                               [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
                               temperature=self.temperature, max_tokens=self.max_tokens, timeout=self.timeout)

    def _one(self, prompt: str, a: str, b: str) -> Judgement:
        content = PROMPTS[self.prompt](instruction=prompt, output_1=a, output_2=b)
        raw, error = None, None
        for attempt in range(1, self.max_retries + 2):
            try:
                raw = self._request(content)
                return Judgement(parse_ranking(raw), raw=raw, attempts=attempt)
            except EndpointError as e:
                error = f"{e}; {e.advice('eval.openai', self.api_key_env)}"
                if not e.retryable:  # a wrong key, URL or model will not fix itself
                    break
            except ReplyError as e:
                error = f"unparseable reply: {e}"
            if attempt <= self.max_retries:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        return Judgement(None, raw=raw, error=error, attempts=attempt)

    def __call__(self, prompts, first, second):
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, prompts, first, second))


class LocalJudge:
    """A Hugging Face causal LM judging with the same prompts: the preference is the normalised
    probability of the two possible rankings as its reply, P(first) / (P(first) + P(second)),
    so nothing is generated or parsed. Uses the tokenizer's chat template when it has one."""

    def __init__(self, model, tokenizer, name: str, prompt: str = "tldr", batch_size: int = 8):
        if prompt not in PROMPTS:
            raise ValueError(f"unknown judge prompt {prompt!r}; choose from {', '.join(PROMPTS)}")
        self.model, self.tokenizer, self.name, self.prompt, self.batch_size = model, tokenizer, name, prompt, batch_size

    def identity(self) -> dict:
        return {"judge": "local", "model": self.name, "prompt": self.prompt, "template": TEMPLATE_DIGESTS[self.prompt]}

    def _context(self, content: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}],
                tokenize=False, add_generation_prompt=True)
        return f"{SYSTEM_PROMPT}\n\n{content}\n\n"

    @torch.no_grad()
    def _reply_logprob(self, contexts: list[str], reply: str) -> torch.Tensor:
        from rlhflab.data.tokenize import encode_completion
        from rlhflab.generation import completion_logprob_sums

        ex = [encode_completion(self.tokenizer, c, reply, 10**6) for c in contexts]
        return completion_logprob_sums(self.model, ex, next(self.model.parameters()).device).cpu()

    def __call__(self, prompts, first, second):
        self.model.eval()
        out = []
        for i in range(0, len(prompts), self.batch_size):
            ctx = [self._context(PROMPTS[self.prompt](instruction=p, output_1=a, output_2=b))
                   for p, a, b in zip(prompts[i:i + self.batch_size], first[i:i + self.batch_size],
                                      second[i:i + self.batch_size])]
            lp1, lp2 = self._reply_logprob(ctx, FIRST_RANKED), self._reply_logprob(ctx, SECOND_RANKED)
            out += [Judgement(p) for p in torch.sigmoid(lp1 - lp2).tolist()]
        return out
