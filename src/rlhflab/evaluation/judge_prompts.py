"""What the LLM judges are asked and how their answers are read (kirk2024 figures 7–8, appendix D).

The system prompt and ranking templates (kept verbatim: changing a byte changes the verdicts and
the cache keys), the safe parser for a generated ranking, and the two exact replies whose
likelihoods `LocalJudge` compares.
"""

from __future__ import annotations

import ast
import re


SYSTEM_PROMPT = "You are a helpful assistant, that ranks models by the quality of their\nanswers."

_SUMMARY_TEMPLATE = '''Which of the following summaries does a better job of summarizing the most
important points in the given {source}, without including unimportant
or irrelevant details? A good summary is both precise and concise.
Post: {q}{instruction}{q}
Summary A:
{{
  "model": "model_1",
  "summary": {q}{output_1}{q}
}}
Summary B:
{{
  "model": "model_2",
  "summary": {q}{output_2}{q}
}}

Now please rank the models by the quality of their summaries, so that the
model with rank 1 has the best summary. Then return a list of the model
names and ranks, i.e., produce the following output:
[
  {{'model': <model-name>, 'rank': <model-rank>}},
  {{'model': <model-name>, 'rank': <model-rank>}}
]

Your response must be a valid Python dictionary and should contain nothing
else because we will directly execute it in Python. Please provide the
ranking that the majority of humans would give.'''

# AlpacaEval-style ranking prompt for instructions, in the same output format as the papers'.
_INSTRUCTION_TEMPLATE = '''I want you to create a leaderboard of different large-language models. To
do so, I will give you the instructions (prompts) given to the models, and
the responses of two models. Please rank the models based on which response
would be preferred by humans.

Here is the prompt:
{{
  "instruction": """{instruction}""",
}}

Here are the outputs of the models:
[
  {{
    "model": "model_1",
    "answer": """{output_1}"""
  }},
  {{
    "model": "model_2",
    "answer": """{output_2}"""
  }}
]

Now please rank the models by the quality of their answers, so that the
model with rank 1 has the best output. Then return a list of the model names
and ranks, i.e., produce the following output:
[
  {{'model': <model-name>, 'rank': <model-rank>}},
  {{'model': <model-name>, 'rank': <model-rank>}}
]

Your response must be a valid Python dictionary and should contain nothing
else because we will directly execute it in Python. Please provide the
ranking that the majority of humans would give.'''

PROMPTS = {
    # kirk2024 figure 8 (TL;DR) uses "" quotes, figure 7 (CNN/DailyMail) """ quotes: kept verbatim.
    "tldr": lambda **kw: _SUMMARY_TEMPLATE.format(source="forum post", q='""', **kw),
    "news": lambda **kw: _SUMMARY_TEMPLATE.format(source="news article", q='"""', **kw),
    "instruction": lambda **kw: _INSTRUCTION_TEMPLATE.format(**kw),
}

MAX_REPLY_CHARS = 2000


class ReplyError(ValueError):
    """A judge reply that is not the ranking asked for."""


def parse_ranking(reply: str) -> float:
    """1.0 if the reply ranks model_1 first, 0.0 if model_2. Parsed as a Python literal only.

    Accepts the list the prompt shows (or a dict holding it, since the prompt also says
    "dictionary"), optionally inside a Markdown code fence. Anything else raises ReplyError.
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
        if set(v) != {"model", "rank"} or v["model"] not in ("model_1", "model_2") or v["rank"] not in (1, 2):
            raise ReplyError(f"bad ranking entry {v!r}")
        ranks[v["model"]] = v["rank"]
    if set(ranks) != {"model_1", "model_2"} or set(ranks.values()) != {1, 2}:
        raise ReplyError("the ranking must name model_1 and model_2 once each, with ranks 1 and 2")
    return 1.0 if ranks["model_1"] == 1 else 0.0


FIRST_RANKED = "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"
SECOND_RANKED = "[{'model': 'model_1', 'rank': 2}, {'model': 'model_2', 'rank': 1}]"
