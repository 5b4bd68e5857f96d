"""Tagging policy-training prompts by task type and building prompt sets from the tags
(ivison2024 §3.4 and appendix J).

ivison2024 mines unlabelled prompts, asks an LLM (TULU 2 70B there; any chat model here) to tag each with
the prompt of its figure 5, drops prompts tagged Unclear or Multilingual, and builds targeted sets
by picking prompts that carry a wanted tag "and as few other tags as possible". `tag_prompts`
does the first part with any tagger (an OpenAI-compatible endpoint or a local HF model);
`build_prompt_set` the second, for any mix of tags.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol, Sequence

from rlhflab.data.records import PromptRecord
from rlhflab.llm_client import EndpointError, chat_completion

TAGS = ("Coding", "Math", "Asking for Advice", "Brainstorming", "Classification", "Closed Question Answering",
        "Creative Writing", "Extraction", "Inhabiting a Character/Persona", "Open Question Answering",
        "Rewriting", "Summarization", "Multilingual", "Unclear")
EXCLUDED = ("Unclear", "Multilingual")

# ivison2024 figure 5, with the instruction substituted for {instruction}.
TAG_PROMPT = """# Instruction

Please label the task tags for the user query.

## User Query
'''
{instruction}
'''

## Tagging the user input

### Task Tags

all_task_tags = [
    "Coding", # Users seek help with writing, reviewing, or fixing code in programming.
    "Math", # Queries related to mathematical concepts, problems, and calculations.
    "Asking for Advice", # Users seek recommendations, suggestions, or advice on various topics.
    "Brainstorming", # Involves generating ideas, creative thinking, or exploring possibilities.
    "Classification", # Queries require categorizing or organizing information into groups or classes.
    "Closed Question Answering", # Users ask questions that require a specific answer or a short response.
    "Creative Writing", # Users seek assistance with crafting stories, poems, or other creative texts.
    "Extraction", # Involves extracting specific information or details from a larger body of text.
    "Inhabiting a Character/Persona", # Users engage in scenarios requiring the model to adopt a character or persona.
    "Open Question Answering", # Users ask questions that require detailed or elaborate responses.
    "Rewriting", # Users ask for help in rephrasing, summarizing, or rewriting text.
    "Summarization", # Involves condensing information, text, or content into a shorter form.
    "Multilingual", # Queries involving non-English natural languages.
    "Unclear", # Queries that are ambiguous, vague, or unclear.
]

## Output Format

Note that you can only select the most relevant task types.
Please use the multilingual tag if the query is in a language other than English.
Add the unclear tag if there is no obvious question to answer in the prompt.
Now, please output your tags below in a json format by filling in the placeholders in []:
'''
{{
    "tags": ["[tag 1]", "[tag 2]", ... ]
}}
'''
Do not add any additional characters.
"""

_CANONICAL = {t.lower(): t for t in TAGS}


class TagReplyError(ValueError):
    """A tagger's reply holds no {"tags": [...]} object with known tags."""


def parse_tags(reply: str) -> list[str]:
    """The known tags of a reply's {"tags": [...]} object (fences, quotes and case tolerated;
    unknown tags dropped). Raises TagReplyError when there is no such object or no known tag."""
    match = re.search(r"\{[^{}]*\"tags\"\s*:\s*\[[^\]]*\][^{}]*\}", reply, flags=re.S)
    if match is None:
        raise TagReplyError(f"no {{\"tags\": [...]}} object in {reply[:80]!r}")
    try:
        tags = json.loads(match.group(0))["tags"]
    except json.JSONDecodeError as e:
        raise TagReplyError(f"tags object is not JSON ({e.msg})") from None
    known = list(dict.fromkeys(_CANONICAL[t.strip().lower()] for t in tags
                               if isinstance(t, str) and t.strip().lower() in _CANONICAL))
    if not known:
        raise TagReplyError(f"no known tag among {tags!r}")
    return known


class Tagger(Protocol):
    def identity(self) -> dict: ...

    def replies(self, queries: list[str]) -> list[str | None]: ...


class ChatTagger:
    """Any model behind an OpenAI-compatible `/chat/completions` endpoint (OpenAI, vLLM, TGI)."""

    def __init__(self, *, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0):
        self.base_url, self.model = base_url, model
        self.api_key_env, self.api_key = api_key_env, os.environ.get(api_key_env, "")
        self.last_error: str | None = None  # what the endpoint last said, for the command's message
        self.concurrency, self.timeout, self.max_retries, self.backoff = concurrency, timeout, max_retries, backoff

    def identity(self) -> dict:
        return {"tagger": "chat", "base_url": self.base_url, "model": self.model}

    def _one(self, query: str) -> str | None:
        for attempt in range(self.max_retries + 1):
            try:
                return chat_completion(self.base_url, self.model, self.api_key,
                                       [{"role": "user", "content": TAG_PROMPT.format(instruction=query)}],
                                       temperature=0.0, max_tokens=100, timeout=self.timeout)
            except EndpointError as e:
                self.last_error = f"{e}; {e.advice('--', self.api_key_env)}"
                if not e.retryable:
                    return None
            time.sleep(self.backoff * 2 ** attempt)
        return None

    def replies(self, queries):
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, queries))


class LocalTagger:
    """A Hugging Face causal LM answering the tagging prompt greedily (its chat template if any)."""

    def __init__(self, model, tokenizer, name: str, batch_size: int = 8, max_new_tokens: int = 64):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens

    def identity(self) -> dict:
        return {"tagger": "local", "model": self.name}

    def replies(self, queries):
        from rlhflab.data.chat import render
        from rlhflab.generation import sample_texts

        prompts = [render([{"role": "user", "content": TAG_PROMPT.format(instruction=q)}], self.tokenizer)
                   for q in queries]
        return sample_texts(self.model, self.tokenizer, prompts, batch_size=self.batch_size, do_sample=False,
                            max_new_tokens=self.max_new_tokens)


def tag_prompts(records: Sequence[PromptRecord], tagger: Tagger) -> tuple[list[PromptRecord], dict]:
    """Records with meta["tags"] (or meta["tag_error"] when the reply could not be read), and counts."""
    queries = [r.meta.get("input") or r.prompt for r in records]
    replies = tagger.replies(queries)
    out, counts, errors = [], {}, 0
    for rec, reply in zip(records, replies):
        meta = dict(rec.meta)
        try:
            if reply is None:
                raise TagReplyError("no reply from the tagger")
            meta["tags"] = parse_tags(reply)
            for t in meta["tags"]:
                counts[t] = counts.get(t, 0) + 1
        except TagReplyError as e:
            meta["tag_error"] = str(e)
            errors += 1
        out.append(replace(rec, meta=meta))
    return out, {"tagger": tagger.identity(), "tag_counts": counts, "unreadable": errors, "n": len(records)}


def build_prompt_set(records: Sequence[PromptRecord], mix: dict[str, int], seed: int = 0,
                     exclude: Sequence[str] = EXCLUDED) -> list[PromptRecord]:
    """A prompt set of mix[tag] prompts per tag ("any" = untargeted), each prompt used once.

    Prompts with an excluded tag or no tags are never picked. For a tag, prompts carrying it are
    taken in order of how few other tags they carry (ties in seeded random order), as ivison2024 picks
    its Code and Math prompts; "any" draws uniformly from what is left. Each picked record gets
    meta["bucket"]. Asking for more prompts than a tag has raises, naming the tag and its count.
    """
    unknown = sorted(set(mix) - set(TAGS) - {"any"})
    if unknown:
        raise ValueError(f"unknown tag(s) {unknown}; known: {', '.join(TAGS)} or 'any'")
    rng = random.Random(seed)
    pool = [r for r in records if r.meta.get("tags") and not set(r.meta["tags"]) & set(exclude)]
    order = {id(r): rng.random() for r in pool}
    used: set[int] = set()
    out = []
    for tag in sorted((t for t in mix if t != "any"), key=lambda t: TAGS.index(t)) + (["any"] if "any" in mix else []):
        free = [r for r in pool if id(r) not in used]
        if tag == "any":
            chosen = rng.sample(free, min(mix[tag], len(free)))
        else:
            having = sorted((r for r in free if tag in r.meta["tags"]), key=lambda r: (len(r.meta["tags"]), order[id(r)]))
            chosen = having[:mix[tag]]
        if len(chosen) < mix[tag]:
            raise ValueError(f"prompt set: {mix[tag]} prompts wanted for {tag!r} but only {len(chosen)} usable "
                             "prompts carry it (after excluding used, unclear and multilingual ones)")
        used.update(id(r) for r in chosen)
        out.extend(replace(r, meta={**r.meta, "bucket": tag}) for r in chosen)
    return out
