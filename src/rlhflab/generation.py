"""Batched sampling with a KV cache, and log-probabilities of given completions.

Used by every stage that samples (SFT checks, best-of-N, PPO rollouts, evaluation, diversity).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel, StaticCache
from transformers.cache_utils import DynamicLayer

from rlhflab.algorithms.losses import sequence_logprob_sum
from rlhflab.data.tokenize import collate
from rlhflab.models import labelled_logits, position_ids
from rlhflab.precision import inference_autocast
from rlhflab.shared_prompt import completion_logprob_sums_shared, group_by_prompt, in_caller_order, worth_sharing


@dataclass
class Samples:
    """A batch of sampled completions.

    prompt_ids:    [B, P] left-padded prompt tokens;   prompt_mask the same shape.
    response_ids:  [B, T] right-padded sampled tokens (EOS included when produced).
    response_mask: [B, T] 1 on real response tokens (up to and including EOS).
    logprobs:      [B, T] log π(token) under the sampling temperature, 0 on padding.
    finished:      [B]    True where the sample ended with EOS (False = truncated).
    texts:         decoded responses without special tokens.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    logprobs: torch.Tensor
    finished: torch.Tensor
    texts: list[str]


def encode_prompts(tokenizer, prompts: list[str], device: torch.device | str = "cpu",
                   max_length: int | None = None):
    """Left-pad prompts for generation; over-long prompts keep their last `max_length` tokens."""
    side, tside = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side = tokenizer.truncation_side = "left"
    try:
        enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=max_length is not None,
                        max_length=max_length)
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, tside
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering exactly as transformers' TopPLogitsWarper: drop the least likely tokens
    whose cumulative probability stays within 1 − top_p, always keeping the most likely one."""
    sorted_scores, order = torch.sort(scores, descending=False)
    drop_sorted = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    drop_sorted[..., -1:] = False
    return scores.masked_fill(drop_sorted.scatter(1, order, drop_sorted), -float("inf"))


class PreallocatedLayer(DynamicLayer):
    """A KV-cache layer with room for `capacity` positions, filled in place.

    DynamicLayer grows by `torch.cat`, which copies the whole cache every decode step; writing into
    a buffer sized once and returning a view of its filled part gives the attention the same
    tensors (bit-identical logits, tests/test_generation.py) without the copies and with one fixed
    allocation. On the 2-core CPU it measured no faster once memory is warm (benchmarks/README.md).
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.dtype, self.device = key_states.dtype, key_states.device
            b, h, _, d = key_states.shape
            self.key_buffer = key_states.new_empty(b, h, self.capacity, d)
            self.value_buffer = value_states.new_empty(b, h, self.capacity, d)
            self.is_initialized = True
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} positions, room for {self.capacity}")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.key_buffer = self.key_buffer.repeat_interleave(repeats, dim=0)
        self.value_buffer = self.value_buffer.repeat_interleave(repeats, dim=0)
        self.keys, self.values = self.key_buffer[:, :, :self.length], self.value_buffer[:, :, :self.length]


def preallocated_cache(capacity: int) -> DynamicCache:
    cache = DynamicCache()
    cache.layer_class_to_replicate = partial(PreallocatedLayer, capacity)
    return cache


@torch.no_grad()
def decode(model: PreTrainedModel, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, temperature: float,
           top_p: float, max_new_tokens: int, eos: int, pad: int, do_sample: bool = True, repeats: int = 1,
           mode: str = "eager") -> tuple[torch.Tensor, torch.Tensor]:
    """Sample `repeats` continuations of each prompt over the KV cache, input-major: ([B·repeats, T]
    tokens, pad after EOS; [B·repeats, T] log π of each sampled token at the sampling temperature,
    before top-p).

    The same draws as `model.generate(do_sample=True, temperature, top_p)` makes from the same RNG
    state on the prompts repeated (raw float32 logits / τ, top-p as transformers filters, softmax,
    one multinomial per step over the whole batch; finished rows get pad), but each prompt is
    encoded once and its cache shared by its repeats, only the last position's logits are
    computed from the prompt, only the sampled token's log-prob is kept (generate stacks [B, T, V]
    logits), the cache is filled in place, and no generic processors run per step. It stops once
    every row has produced EOS, as generate's output does.

    `mode` (config `generation.decode`): `eager` as above; `static` keeps every tensor of a step
    the same shape (transformers' StaticCache, sized to a multiple of 64 positions, and an
    attention mask over all of it), the precondition for `compiled`, which runs each step through
    `torch.compile` (CUDA graphs on a GPU, where a small model's step is launch-bound). The static
    modes encode each repeat of a prompt, so the cache's batch stays fixed.
    """
    if mode not in ("eager", "static", "compiled"):
        raise ValueError(f"generation.decode must be eager, static or compiled, not {mode!r}")
    device = prompt_ids.device
    with inference_autocast(device):
        if mode == "eager":
            cache = preallocated_cache(prompt_ids.shape[1] + max_new_tokens)
            step = _EagerSteps(model, cache, prompt_ids, prompt_mask, repeats)
        else:
            if repeats > 1:
                prompt_ids, prompt_mask = (t.repeat_interleave(repeats, dim=0) for t in (prompt_ids, prompt_mask))
            step = _StaticSteps(model, prompt_ids, prompt_mask, max_new_tokens, compiled=mode == "compiled")
        logits = step.first_logits
        batch = logits.shape[0]
        unfinished = torch.ones(batch, dtype=torch.bool, device=device)
        tokens, logps = [], []
        for i in range(max_new_tokens):
            scaled = logits / temperature if do_sample else logits
            if do_sample:
                scores = top_p_filter(scaled, top_p) if top_p < 1.0 else scaled
                nxt = torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)
            else:
                nxt = scaled.argmax(dim=-1)
            logp = scaled.gather(1, nxt[:, None]).squeeze(1) - scaled.logsumexp(dim=-1)
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad))
            tokens.append(nxt)
            logps.append(torch.where(unfinished, logp, torch.zeros_like(logp)))
            unfinished = unfinished & (nxt != eos)
            if not unfinished.any() or i == max_new_tokens - 1:
                break
            logits = step(nxt)
    return torch.stack(tokens, dim=1), torch.stack(logps, dim=1)


class _EagerSteps:
    """Prefill once per prompt, share the cache among its repeats, then one token per call."""

    def __init__(self, model, cache, prompt_ids, prompt_mask, repeats: int):
        self.model, self.cache = model, cache
        positions = position_ids(prompt_mask)
        out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions,
                    past_key_values=cache, use_cache=True, logits_to_keep=1)
        self.mask, self.next_pos = prompt_mask, positions[:, -1:] + 1
        self.first_logits = out.logits[:, -1].float()
        if repeats > 1:
            cache.batch_repeat_interleave(repeats)
            self.mask, self.next_pos, self.first_logits = (
                t.repeat_interleave(repeats, dim=0) for t in (self.mask, self.next_pos, self.first_logits))

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        out = self.model(input_ids=token[:, None], attention_mask=self.mask, position_ids=self.next_pos,
                         past_key_values=self.cache, use_cache=True)
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1].float()


class _StaticSteps:
    """The same steps over a StaticCache: fixed shapes, optionally compiled."""

    def __init__(self, model, prompt_ids, prompt_mask, max_new_tokens: int, compiled: bool):
        batch, length = prompt_ids.shape
        capacity = -(-(length + max_new_tokens) // 64) * 64  # few distinct shapes, so few recompiles
        self.cache = StaticCache(config=model.config, max_cache_len=capacity)
        self.mask = prompt_mask.new_zeros(batch, capacity)
        self.mask[:, :length] = prompt_mask
        self.position = torch.tensor([length], device=prompt_ids.device)
        positions = position_ids(prompt_mask)
        out = model(input_ids=prompt_ids, attention_mask=self.mask, position_ids=positions,
                    past_key_values=self.cache, use_cache=True, logits_to_keep=1,
                    cache_position=torch.arange(length, device=prompt_ids.device))
        self.next_pos = positions[:, -1:] + 1
        self.first_logits = out.logits[:, -1].float()
        self.forward = compiled_forward(model) if compiled else model

    def __call__(self, token: torch.Tensor) -> torch.Tensor:
        self.mask[:, self.position] = 1
        out = self.forward(input_ids=token[:, None], attention_mask=self.mask, position_ids=self.next_pos,
                           past_key_values=self.cache, use_cache=True, cache_position=self.position)
        self.position = self.position + 1
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1].float()


def compiled_forward(model: PreTrainedModel):
    """`model`'s forward through torch.compile, built once per model (CUDA graphs on a GPU)."""
    if getattr(model, "_rlhflab_compiled_forward", None) is None:
        mode = "reduce-overhead" if next(model.parameters()).is_cuda else None
        model._rlhflab_compiled_forward = torch.compile(model.forward, mode=mode, dynamic=False)
    return model._rlhflab_compiled_forward


@torch.no_grad()
def sample(model: PreTrainedModel, tokenizer, prompts: list[str], *, temperature: float = 0.7,
           top_p: float = 1.0, max_new_tokens: int = 48, do_sample: bool = True,
           max_prompt_length: int | None = None, k: int = 1, decode_mode: str = "eager") -> Samples:
    """Sample k completions per prompt, input-major (row i·k + j is sample j of prompt i); each
    prompt is encoded once for its k samples. Seed with `torch.manual_seed` for reproducibility."""
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = encode_prompts(tokenizer, prompts, device, max_prompt_length)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    was_training = model.training
    model.eval()
    response, logprobs = decode(model, prompt_ids, prompt_mask, temperature=temperature, top_p=top_p,
                                max_new_tokens=max_new_tokens, eos=eos, pad=pad, do_sample=do_sample, repeats=k,
                                mode=decode_mode)
    model.train(was_training)
    if k > 1:
        prompt_ids, prompt_mask = prompt_ids.repeat_interleave(k, dim=0), prompt_mask.repeat_interleave(k, dim=0)
    # Mask everything after the first EOS (pad may equal EOS for hub tokenizers, so position, not
    # token value, decides).
    is_eos = response == eos
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    response_mask = (~after_eos).long()
    finished = is_eos.any(dim=1)
    logprobs = logprobs * response_mask
    response = response.masked_fill(response_mask == 0, pad)
    texts = tokenizer.batch_decode(response, skip_special_tokens=True)
    return Samples(prompt_ids, prompt_mask, response, response_mask, logprobs, finished,
                   [t.strip() for t in texts])


def sample_texts(model, tokenizer, prompts: list[str], *, batch_size: int = 64, k: int = 1, **kw) -> list[str]:
    """Sample k completion texts per prompt (input-major), in batches of about `batch_size` samples."""
    out: list[str] = []
    step = max(1, batch_size // k)
    for i in range(0, len(prompts), step):
        out.extend(sample(model, tokenizer, prompts[i:i + step], k=k, **kw).texts)
    return out


def token_logprobs(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   temperature: float = 1.0, start: int = 1) -> torch.Tensor:
    """log π(x_t | x_<t) for t = start..L-1 of each row: [B, L-start]. Differentiable. Only the
    positions that predict those tokens are unembedded (a response's, with `start` at its first token).

    Position ids follow the attention mask so left padding does not shift positions.
    """
    keep = 0 if start <= 1 else input_ids.shape[1] - start + 1  # 0: every position
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                   logits_to_keep=keep).logits
    logits = logits[:, :-1].float() / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), 2, input_ids[:, max(start, 1):].unsqueeze(-1)).squeeze(-1)


def completion_logprob_sums(model: PreTrainedModel, examples, device) -> torch.Tensor:
    """Σ log π over each example's labelled (completion) tokens: [N]. Differentiable; pads are
    masked out, so their id does not matter. Examples with the same prompt (a pair's two sides)
    encode it once (rlhflab.shared_prompt)."""
    groups = group_by_prompt(list(examples))
    # two forwards (prompts, then completions) per step would upset DDP's gradient hooks
    if worth_sharing(groups) and not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return in_caller_order(completion_logprob_sums_shared(model, groups, 0, device), groups)
    b = collate(list(examples), pad_id=0)
    mask = b["attention_mask"].to(device)
    return sequence_logprob_sum(*labelled_logits(model, b["input_ids"].to(device), mask, b["labels"].to(device),
                                                 position_ids(mask)))
