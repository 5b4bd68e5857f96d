"""What the LLM judges are asked and how their answers are read (kirk2024 figures 7–8, appendix D).

The prompts are the authors' released AlpacaEval templates, byte for byte (a changed byte changes the
verdicts, so each template's digest is part of the judge's identity, the judgement cache key):

- tldr: facebookresearch/rlfh-gen-div, rlvsil/alpaca_eval_configs/tldr_gpt4_eval_prompt.txt
  (commit 7291e6deb5127ca07497da21b4bd72e4f4afab4e; kirk2024 figure 8);
- news: the same folder's cnndm_gpt4_eval_prompt.txt (figure 7): the TL;DR template with "news
  article" for "forum post" (it still says "Post:");
- instruction: tatsu-lab/alpaca_eval, src/alpaca_eval/evaluators_configs/alpaca_eval_gpt4/alpaca_eval.txt
  (commit cd543a149df89434d8a54582c0151c0b945c3d20, unchanged since 14230f34), the `alpaca_eval_gpt4`
  annotator, with its own wording ("different of large-language models", "responses", ...).

tests/fixtures/judge_prompts/ holds copies of the files; tests/test_judge_prompts.py checks both the texts
and the rendered messages against AlpacaEval's own rendering (`make_prompts`, `prompt_to_chatml`).

Also here: which prompt a record declares (`record_prompt`), what an LLM judge reads of a
summarisation prompt (`judge_text`), the safe parser for a generated ranking, and the two exact
replies whose likelihoods `LocalJudge` compares.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import partial

from rlhflab.data.sources.common import article_prompt

_TLDR = '''<|im_start|>system
You are a helpful assistant, that ranks models by the quality of their answers.
<|im_end|>
<|im_start|>user
Which of the following summaries does a better job of summarizing the most important points in the given forum post, without including unimportant or irrelevant details? A good summary is both precise and concise.
Post: """{instruction}"""
Summary A:
{
    "model": "model_1",
    "summary": """{output_1}"""
}
Summary B:
{
    "model": "model_2",
    "summary": """{output_2}"""
}

Now please rank the models by the quality of their summaries, so that the model with rank 1 has the best summary. Then return a list of the model names and ranks, i.e., produce the following output:
[
    {'model': <model-name>, 'rank': <model-rank>},
    {'model': <model-name>, 'rank': <model-rank>}
]

Your response must be a valid Python dictionary and should contain nothing else because we will directly execute it in Python. Please provide the ranking that the majority of humans would give.
<|im_end|>
'''

_ALPACA_EVAL_GPT4 = '''<|im_start|>system
You are a helpful assistant, that ranks models by the quality of their answers.
<|im_end|>
<|im_start|>user
I want you to create a leaderboard of different of large-language models. To do so, I will give you the instructions (prompts) given to the models, and the responses of two models. Please rank the models based on which responses would be preferred by humans. All inputs and outputs should be python dictionaries.

Here is the prompt:
{
    "instruction": """{instruction}""",
}

Here are the outputs of the models:
[
    {
        "model": "model_1",
        "answer": """{output_1}"""
    },
    {
        "model": "model_2",
        "answer": """{output_2}"""
    }
]

Now please rank the models by the quality of their answers, so that the model with rank 1 has the best output. Then return a list of the model names and ranks, i.e., produce the following output:
[
    {'model': <model-name>, 'rank': <model-rank>},
    {'model': <model-name>, 'rank': <model-rank>}
]

Your response must be a valid Python dictionary and should contain nothing else because we will directly execute it in Python. Please provide the ranking that the majority of humans would give.
<|im_end|>'''

# The released files (ChatML text, as AlpacaEval reads templates), by judge prompt name.
TEMPLATES = {
    "tldr": _TLDR,
    "news": _TLDR.replace("in the given forum post,", "in the given news article,"),
    "instruction": _ALPACA_EVAL_GPT4,
}
TEMPLATE_DIGESTS = {k: hashlib.sha256(v.encode()).hexdigest()[:16] for k, v in TEMPLATES.items()}


def _chatml(text: str) -> list[tuple[str, str]]:
    """(role, content) of a ChatML template, as AlpacaEval's `prompt_to_chatml` splits it."""
    out = []
    for part in text.strip().split("<|im_start|>")[1:]:
        role, body = part.split("\n", 1)
        out.append((role.strip(), body.split("<|im_end|>", 1)[0].strip()))
    return out


_SPLIT = {k: dict(_chatml(v)) for k, v in TEMPLATES.items()}
SYSTEM_PROMPT = _SPLIT["tldr"]["system"]
if any(s["system"] != SYSTEM_PROMPT or set(s) != {"system", "user"} for s in _SPLIT.values()):
    raise RuntimeError("every judge template is one system and one user message, with the same system prompt")
_PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")


def render(name: str, *, instruction: str, output_1: str, output_2: str) -> str:
    """The user message of template `name` with its three placeholders filled, AlpacaEval's way
    (each `{key}` replaced by the text, every other brace kept), in one pass, so a placeholder
    inside an input or output is never filled in turn."""
    values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), _SPLIT[name]["user"])


PROMPTS = {name: partial(render, name) for name in TEMPLATES}

# --------------------------------------------------------------------- which prompt, what input ---

# meta["domain"] values that declare a judge prompt (the synthetic task writes reddit | news; a
# files task's records may declare any of these); other values are free metadata, not a declaration.
DOMAIN_PROMPTS = {"reddit": "tldr", "tldr": "tldr", "news": "news", "instruction": "instruction", "chat": "instruction"}
# Adapters whose records are all of one domain (rlhflab.data.sources), by meta["source"].
SOURCE_PROMPTS = {"tldr": "tldr", "cnn_dailymail": "news"}


def record_prompt(record) -> str | None:
    """The judge prompt a record declares, or None when it declares none: "instruction" for chat
    records (meta.messages), else its meta.domain, else its source adapter's domain
    (summarize_from_feedback holds posts and articles: the format its adapter chose for the record,
    `article_prompt` for an article). Never guessed from a set's name or a prompt's first words."""
    meta = record.meta or {}
    if meta.get("messages"):
        return "instruction"
    if isinstance(meta.get("domain"), str) and meta["domain"] in DOMAIN_PROMPTS:
        return DOMAIN_PROMPTS[meta["domain"]]
    if meta.get("source") == "summarize_from_feedback" and isinstance(meta.get("input"), str):
        return "news" if record.prompt == article_prompt(meta["input"]) else "tldr"
    return SOURCE_PROMPTS.get(meta.get("source"))


TLDR_CUE = "\nTL;DR:"


def judge_text(prompt: str) -> str:
    """What the seed's judge read of a summarisation prompt: the policy's input without the
    trailing "\\nTL;DR:" cue, so "SUBREDDIT: r/…\\nTITLE: …\\nPOST: …" or "ARTICLE: …" (kirk2024's
    released rlvsil/human_eval_scripts/evaluate_generated_text_with_alpaca.py passes
    `make_input_example_tldr(...)[: -len("\\nTL;DR:")]` as {instruction}). Other prompts unchanged."""
    return prompt[: -len(TLDR_CUE)] if prompt.endswith(TLDR_CUE) else prompt


MAX_REPLY_CHARS = 2000


class ReplyError(ValueError):
    """A judge reply that is not the ranking asked for."""


def parse_ranking(reply: str) -> float:
    """1.0 if the reply ranks model_1 first, 0.0 if model_2. Parsed as a Python literal only.

    Accepts the list of two {'model', 'rank'} dicts that all three prompts show (on one line or laid
    out as they show it), or a dict holding it (the prompts also say "dictionary"), optionally in a
    Markdown code fence; ranks are the integers 1 and 2. Anything else raises ReplyError.
    (AlpacaEval's `ranking_parser` reads the same list, looking only at model_1's rank.)
    """
    if len(reply) > MAX_REPLY_CHARS:
        raise ReplyError(f"reply of {len(reply)} characters exceeds the {MAX_REPLY_CHARS} limit")
    text = reply.strip()
    fence = re.fullmatch(r"```[a-zA-Z]*\s*(.*?)\s*```", text, flags=re.S)
    if fence:
        text = fence.group(1)
    try:
        value = ast.literal_eval(text)  # literals only: no names, calls or attribute access
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as e:
        raise ReplyError(f"not a Python literal: {type(e).__name__}") from None
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, dict) for v in value)):
        raise ReplyError("expected a list of two {'model': ..., 'rank': ...} entries")
    ranks = {}
    for v in value:
        if set(v) != {"model", "rank"} or v["model"] not in ("model_1", "model_2") or type(v["rank"]) is not int \
                or v["rank"] not in (1, 2):
            raise ReplyError(f"bad ranking entry {v!r}")
        ranks[v["model"]] = v["rank"]
    if set(ranks) != {"model_1", "model_2"} or set(ranks.values()) != {1, 2}:
        raise ReplyError("the ranking must name model_1 and model_2 once each, with ranks 1 and 2")
    return 1.0 if ranks["model_1"] == 1 else 0.0


FIRST_RANKED = "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"
SECOND_RANKED = "[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]"
