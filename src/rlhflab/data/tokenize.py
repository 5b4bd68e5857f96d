"""Turning records into token tensors for the trainers."""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100  # label of positions that take no loss (prompt, padding), as torch's cross-entropy expects


@dataclass
class LMExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken


def encode_completion(tokenizer, prompt: str, completion: str, max_length: int) -> LMExample:
    """prompt ⧺ completion ⧺ EOS, loss on the completion and EOS only.

    Over-long examples lose the start of the prompt (after BOS), never the completion: the
    summary's tokens are what SFT learns from.
    """
    p = tokenizer(prompt)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    c = c[: max_length - 2]  # leave room for BOS and at least one prompt token
    overflow = len(p) + len(c) - max_length
    if overflow > 0:
        keep_head = 1 if p and p[0] == tokenizer.bos_token_id else 0
        p = p[:keep_head] + p[keep_head + overflow:]
    return LMExample(p + c, [IGNORE] * len(p) + c)


def leading_space(prompt: str, text: str) -> str:
    """Completions follow the prompt verbatim, so one that does not start with a space gets one
    (as references are written) unless the prompt already ends in whitespace (a chat template's
    "assistant\\n"): the RM, DPO and scoring all see the same tokens."""
    if text[:1].isspace() or prompt[-1:].isspace():
        return text
    return " " + text


def encode_pairs(tokenizer, recs, max_length: int) -> list[tuple[LMExample, LMExample]]:
    """(chosen, rejected) examples of preference records."""
    return [(encode_completion(tokenizer, r.prompt, leading_space(r.prompt, r.chosen), max_length),
             encode_completion(tokenizer, r.prompt, leading_space(r.prompt, r.rejected), max_length)) for r in recs]


def encode_text(tokenizer, text: str, max_length: int) -> LMExample:
    """A whole document as a language-modelling example (pretraining): loss on every token."""
    ids = tokenizer(text)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
    labels = list(ids)
    if ids and ids[0] == tokenizer.bos_token_id:
        labels[0] = IGNORE
    return LMExample(ids, labels)


def collate(examples: list[LMExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of examples into input_ids / attention_mask / labels tensors."""
    n = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), n), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), n), dtype=torch.long)
    for i, e in enumerate(examples):
        k = len(e.input_ids)
        ids[i, :k] = torch.tensor(e.input_ids)
        labels[i, :k] = torch.tensor(e.labels)
        mask[i, :k] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
