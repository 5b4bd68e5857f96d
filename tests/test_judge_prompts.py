"""The LLM judges' prompts: the released texts byte for byte, the prompt a test set's records
declare, and what the judge reads of each record."""

import os

import pytest

from rlhflab.evaluation.judge_prompts import parse_ranking
from rlhflab.evaluation.judges import OpenAIJudge

FIRST_WINS = "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"


def alpaca_eval_messages(template: str, **values) -> list[dict]:
    """AlpacaEval's rendering: `make_prompts` fills each {key} once, `prompt_to_chatml` splits and strips."""
    for key, text in values.items():
        template = template.replace("{" + key + "}", text, 1)
    parts = [p.split("\n", 1) for p in template.strip().split("<|im_start|>")[1:]]
    return [{"role": role.strip(), "content": body.split("<|im_end|>", 1)[0].strip()} for role, body in parts]


def test_judge_prompts_are_the_released_files_byte_for_byte(monkeypatch):
    from rlhflab.evaluation import judges
    from rlhflab.evaluation.judge_prompts import TEMPLATES

    sent = []
    monkeypatch.setattr(judges, "chat_completion", lambda *a, **kw: sent.append(a[3]) or FIRST_WINS)
    values = {"instruction": 'SUBREDDIT: r/x\nTITLE: "Hi" {y}\nPOST: a """q""" post', "output_1": " café {z}",
              "output_2": "line\nbreak"}
    for name, file in {"tldr": "tldr_gpt4_eval_prompt.txt", "news": "cnndm_gpt4_eval_prompt.txt",
                       "instruction": "alpaca_eval_gpt4.txt"}.items():
        with open(os.path.join(os.path.dirname(__file__), "fixtures", "judge_prompts", file), "rb") as f:
            released = f.read()
        assert TEMPLATES[name].encode() == released
        judge = OpenAIJudge(base_url="http://judge", model="m", prompt=name)
        assert judge([values["instruction"]], [values["output_1"]], [values["output_2"]])[0].preference == 1.0
        assert sent.pop() == alpaca_eval_messages(released.decode(), **values)  # what AlpacaEval would send
        shown = TEMPLATES[name].split("following output:\n")[1].split("\n\nYour")[0]  # the reply it asks for
        for ranks, want in (("12", 1.0), ("21", 0.0)):
            reply = shown.replace("<model-name>", "'model_1'", 1).replace("<model-name>", "'model_2'")
            reply = reply.replace("<model-rank>", ranks[0], 1).replace("<model-rank>", ranks[1])
            assert reply.startswith("[\n    {'model': 'model_1', 'rank'") and parse_ranking(reply) == want
    assert OpenAIJudge(base_url="u", model="m", prompt="tldr").identity()["template"] != \
        OpenAIJudge(base_url="u", model="m", prompt="news").identity()["template"]  # the cache key holds the bytes


def _records():
    import random

    from rlhflab.data import synthetic as syn
    from rlhflab.data.records import PromptRecord
    from rlhflab.data.sources.summarisation import cnn_dailymail, summarize_from_feedback, tldr

    rng, pair = random.Random(0), {"choice": 0, "summaries": [{"text": " a"}, {"text": " b"}]}
    post = tldr([{"post": "My cat left. ", "subreddit": "pets", "title": "Cat", "summary": "x"}], "prompt", rng)[0]
    article = cnn_dailymail([{"article": "Rain fell.", "highlights": "rain"}], "prompt", rng)[0]
    sff = summarize_from_feedback([{"info": {"article": "Snow fell.", "site": "cnn"}, **pair},
                                   {"info": {"post": "Hi.", "subreddit": "dogs", "title": "T"}, **pair}], "prompt", rng)
    syn_news = PromptRecord(syn.make_post(rng, "n", "news", "news", 0).prompt, meta={"domain": "news"})
    chat = PromptRecord("<|user|>\nName a fruit.\n<|assistant|>\n",
                        meta={"input": "Name a fruit.", "messages": [{"role": "user", "content": "Name a fruit."}]})
    return post, article, sff, syn_news, chat


def test_the_judge_prompt_is_the_one_the_records_declare():
    from rlhflab.config import EvalStage
    from rlhflab.data.records import PromptRecord
    from rlhflab.judging import judge_prompt

    post, article, sff, syn_news, chat = _records()
    cfg = EvalStage(judge="openai")
    assert judge_prompt(cfg, [chat]) == "instruction" and judge_prompt(cfg, [post]) == judge_prompt(cfg, sff[1:]) == "tldr"
    assert judge_prompt(cfg, [article]) == judge_prompt(cfg, sff[:1]) == judge_prompt(cfg, [syn_news]) == "news"
    # declared, never guessed from the wording: undeclared records are refused, naming the fix
    for undeclared in ([PromptRecord("ARTICLE: a\nTL;DR:")], [PromptRecord("x", meta={"domain": "askscience"})],
                       [post, PromptRecord("Q: plain prompt/completion")]):
        with pytest.raises(ValueError) as e:
            judge_prompt(cfg, undeclared, "mine")
        assert str(e.value) == (
            f"eval.openai.prompt: auto finds no judge prompt for test set 'mine': 1 of its {len(undeclared)} records "
            "declare no domain; give each record meta.domain (tldr, news or instruction; chat records with "
            "meta.messages are instruction), or set eval.openai.prompt to tldr, news or instruction")
    assert judge_prompt(cfg, [PromptRecord("Text: a", meta={"domain": "news"})]) == "news"
    assert judge_prompt(EvalStage(judge="openai", openai={"prompt": "tldr"}), [PromptRecord("x")]) == "tldr"
    with pytest.raises(ValueError, match="different judge prompts"):
        judge_prompt(cfg, sff)
    assert judge_prompt(EvalStage(judge="openai", openai={"prompt": "news"}), sff) == "news"
    assert judge_prompt(EvalStage(judge="rm"), [chat]) is None


def test_llm_judges_read_what_the_seeds_judge_read():
    from rlhflab.judging import judge_input

    post, article, sff, syn_news, chat = _records()
    # kirk2024's released script: the policy input without its "\nTL;DR:" cue
    assert judge_input(post, "openai") == "SUBREDDIT: r/pets\nTITLE: Cat\nPOST: My cat left."
    assert judge_input(article, "local") == "ARTICLE: Rain fell." and judge_input(sff[0], "openai") == "ARTICLE: Snow fell."
    assert judge_input(syn_news, "openai") == syn_news.prompt.removesuffix("\nTL;DR:") != syn_news.prompt
    assert judge_input(chat, "openai") == judge_input(chat, "local") == "Name a fruit."  # the raw instruction
    for rec in (post, article, chat):
        assert judge_input(rec, "rm_proxy") == judge_input(rec, "rm") == rec.prompt  # what the RM was trained on
