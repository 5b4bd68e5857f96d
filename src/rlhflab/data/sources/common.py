"""What every source adapter shares: the record helpers, the prompt formats, binarisation of
multi-response preference data, the Anthropic transcript parser and the `Adapter` description."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Callable

from rlhflab.data.records import PreferenceRecord, PromptRecord, RecordError, SFTRecord

Row = dict[str, Any]
KINDS = ("sft", "preference", "prompt")


class SourceError(RecordError):
    """A source row does not have the shape its adapter expects; the message names the row."""


# ------------------------------------------------------------------------------- helpers ---


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text.strip()}]


def instruction_text(instruction: str, input_: str | None) -> str:
    """Alpaca-style instruction plus optional input, as AlpacaFarm formats them for chat."""
    instruction = instruction.strip()
    return f"{instruction}\n\n{input_.strip()}" if input_ and input_.strip() else instruction


def tldr_prompt(subreddit: str | None, title: str | None, post: str) -> str:
    """The TL;DR prompt format of Stiennon et al. (used by kirk2024)."""
    head = f"SUBREDDIT: r/{subreddit}\n" if subreddit else ""
    head += f"TITLE: {title.strip()}\n" if title else ""
    return f"{head}POST: {post.strip()}\nTL;DR:"


def article_prompt(article: str) -> str:
    return f"ARTICLE: {article.strip()}\nTL;DR:"


def binarise(responses: list[str], scores: list[float], rng: random.Random) -> tuple[int, int] | None:
    """(chosen, rejected) indices: the best-scored response and a random strictly worse one, or
    None when every response scores the same (no preference to learn from)."""
    if len(responses) < 2:
        return None
    best = max(range(len(scores)), key=lambda i: scores[i])
    worse = [i for i in range(len(scores)) if scores[i] < scores[best]]
    if not worse:
        return None
    return best, rng.choice(worse)


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh(text: str) -> list[dict]:
    """An Anthropic-format transcript ("\\n\\nHuman: … \\n\\nAssistant: …") as chat messages."""
    text = text if text.startswith("\n\n") else "\n\n" + text
    parts = _HH_TURN.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ValueError("not a '\\n\\nHuman: … \\n\\nAssistant: …' transcript")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]


def chat_sft(messages: list[dict], response: str, source: str, id_: str, category: str | None = None) -> SFTRecord:
    return SFTRecord(prompt=messages[-1]["content"], completion=response.strip(), id=id_,
                     meta=_meta(source, messages, category))


def chat_pref(messages: list[dict], chosen: str, rejected: str, source: str, id_: str,
              category: str | None = None, **extra) -> PreferenceRecord:
    return PreferenceRecord(prompt=messages[-1]["content"], chosen=chosen.strip(), rejected=rejected.strip(),
                            id=id_, meta={**_meta(source, messages, category), **extra})


def chat_prompt(messages: list[dict], reference: str | None, source: str, id_: str,
                category: str | None = None) -> PromptRecord:
    return PromptRecord(prompt=messages[-1]["content"], reference=reference.strip() if reference else None,
                        id=id_, meta=_meta(source, messages, category))


def _meta(source: str, messages: list[dict], category: str | None) -> dict:
    # The split builders measure the last user turn (what the response answers).
    meta = {"source": source, "input": messages[-1]["content"], "messages": messages}
    if category is not None:
        meta["category"] = category
    return meta


# ------------------------------------------------------------------------------- adapter ---


@dataclass(frozen=True)
class Adapter:
    """One public dataset. `convert(rows, kind, rng)` returns records of `kind`; `hub` is
    (dataset id, config name or None, {our split name: the hub's split name})."""

    name: str
    hub: tuple[str, str | None, dict[str, str]]
    kinds: tuple[str, ...]
    convert: Callable[[list[Row], str, random.Random], list]
    description: str
    grouped: bool = False  # convert needs all rows at once (responses grouped by prompt)
