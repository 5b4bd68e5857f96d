"""Rendering chat messages into prompt text.

Instruction and dialogue sources give the conversation before the response as messages; the data
stage renders them once, so every later stage sees plain prompt strings. `auto` uses the
tokenizer's own chat template when it has one and the Tulu 2 format otherwise (the format of the
ivison2024 models; a model trained from scratch here has no template of its own).
"""

from __future__ import annotations

TULU_ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}


def tulu(messages: list[dict]) -> str:
    """Tulu 2: "<|user|>\\n{text}\\n<|assistant|>\\n" per turn, ending open for the reply."""
    out = "".join(f"{TULU_ROLES[m['role']]}\n{m['content']}\n" for m in messages)
    return out + "<|assistant|>\n"


def render(messages: list[dict], tokenizer=None, template: str = "auto") -> str:
    """The prompt for `messages` under `template` ('auto' | 'tulu' | 'none')."""
    if template == "none":
        # No template: the turns as plain paragraphs (for base models prompted zero-shot).
        return "\n\n".join(m["content"] for m in messages) + "\n\n"
    if template == "auto" and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The tokenizer adds its BOS itself when encoding; a template that writes it too would
        # double it.
        bos = tokenizer.bos_token
        if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
            text = text[len(bos):]
        return text
    if template not in ("auto", "tulu"):
        raise ValueError(f"unknown chat template {template!r}; use auto, tulu or none")
    return tulu(messages)


def render_records(records: list, tokenizer=None, template: str = "auto") -> list:
    """Records whose meta carries chat messages get their prompt rendered; others pass through."""
    for r in records:
        if r.meta.get("messages"):
            r.prompt = render(r.meta["messages"], tokenizer, template)
    return records
