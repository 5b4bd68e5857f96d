"""Conversation and forum sources: Anthropic HH-RLHF, SHP-2, StackExchange and Chatbot Arena
(2023 and 2024); RewardBench's core set and prior preference test sets (reward-model evaluation)."""

from __future__ import annotations

import json

from rlhflab.data.sources.common import binarise, chat_pref, chat_prompt, parse_hh, user


def hh_rlhf(rows, kind, rng):
    """Anthropic/hh-rlhf: two full transcripts sharing all turns but the last assistant one."""
    out = []
    for i, r in enumerate(rows):
        chosen, rejected = parse_hh(r["chosen"]), parse_hh(r["rejected"])
        n = 0
        while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
            n += 1
        context = chosen[:n]
        # Malformed pairs (identical transcripts, or diverging before the final reply) carry no
        # clean preference over one response; skip them, as ivison2024 appendix B does.
        if (not context or context[-1]["role"] != "user" or len(chosen) != n + 1 or len(rejected) != n + 1
                or chosen[n]["role"] != "assistant" or not chosen[n]["content"] or not rejected[n]["content"]):
            continue
        out.append(chat_pref(context, chosen[n]["content"], rejected[n]["content"], "hh_rlhf", str(i))
                   if kind == "preference" else chat_prompt(context, None, "hh_rlhf", str(i)))
    return out


def shp2(rows, kind, rng):
    """stanfordnlp/SHP-2: a post (`history`) and two comments; labels = 1 when A is preferred."""
    out = []
    for r in rows:
        messages = user(r["history"])
        id_ = str(r.get("post_id", ""))
        if kind == "prompt":
            out.append(chat_prompt(messages, None, "shp2", id_, r.get("domain")))
            continue
        a, b = r["human_ref_A"], r["human_ref_B"]
        chosen, rejected = (a, b) if int(r["labels"]) == 1 else (b, a)
        if chosen.strip() and rejected.strip() and chosen.strip() != rejected.strip():
            out.append(chat_pref(messages, chosen, rejected, "shp2", id_, r.get("domain"),
                                 score_ratio=r.get("score_ratio")))
    return out


def stack_exchange(rows, kind, rng):
    """HuggingFaceH4/stack-exchange-preferences (a question and its answers with `pm_score`):
    chosen = the highest-scored answer, rejected = a random lower-scored one. Rows already paired
    as lvwerra/stack-exchange-paired ({question, response_j (better), response_k}) also work."""
    out = []
    for i, r in enumerate(rows):
        messages = user(r["question"])
        id_ = str(r.get("qid", i))
        category = (r.get("metadata") or [None])[0] if isinstance(r.get("metadata"), list) else None
        if kind == "prompt":
            out.append(chat_prompt(messages, None, "stack_exchange", id_, category))
            continue
        if "response_j" in r:
            out.append(chat_pref(messages, r["response_j"], r["response_k"], "stack_exchange", id_, category))
            continue
        answers = [a for a in r["answers"] if a["text"].strip()]
        pick = binarise([a["text"] for a in answers], [float(a["pm_score"]) for a in answers], rng)
        if pick is not None:
            out.append(chat_pref(messages, answers[pick[0]]["text"], answers[pick[1]]["text"],
                                 "stack_exchange", id_, category))
    return out


def chatbot_arena(rows, kind, rng):
    """lmsys/chatbot_arena_conversations (2023): single-turn battles with a winner; multi-turn
    battles and ties are dropped (ivison2024 appendix B)."""
    out = []
    for r in rows:
        if int(r.get("turn", 1)) != 1 or r["winner"] not in ("model_a", "model_b"):
            continue
        a, b = r["conversation_a"], r["conversation_b"]
        if len(a) != 2 or len(b) != 2 or a[0]["content"] != b[0]["content"]:
            continue
        messages = user(a[0]["content"])
        ra, rb = a[1]["content"], b[1]["content"]
        chosen, rejected = (ra, rb) if r["winner"] == "model_a" else (rb, ra)
        if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
            continue
        id_ = str(r.get("question_id", ""))
        out.append(chat_pref(messages, chosen, rejected, "chatbot_arena", id_, r.get("language"),
                             models=[r["model_a"], r["model_b"]]) if kind == "preference"
                   else chat_prompt(messages, None, "chatbot_arena", id_, r.get("language")))
    return out


def chatbot_arena_2024(rows, kind, rng):
    """lmsys/lmsys-arena-human-preference-55k: prompt / response_a / response_b as JSON lists of
    turns and one-hot winner columns; single-turn, no ties."""
    out = []
    for r in rows:
        prompts, ra, rb = (json.loads(r[k]) if isinstance(r[k], str) else r[k]
                           for k in ("prompt", "response_a", "response_b"))
        if len(prompts) != 1 or int(r["winner_tie"]) or not (int(r["winner_model_a"]) ^ int(r["winner_model_b"])):
            continue
        a, b = ra[0] or "", rb[0] or ""
        chosen, rejected = (a, b) if int(r["winner_model_a"]) else (b, a)
        if not chosen.strip() or not rejected.strip() or chosen.strip() == rejected.strip():
            continue
        messages = user(prompts[0])
        out.append(chat_pref(messages, chosen, rejected, "chatbot_arena_2024", str(r.get("id", "")),
                             models=[r.get("model_a"), r.get("model_b")]) if kind == "preference"
                   else chat_prompt(messages, None, "chatbot_arena_2024", str(r.get("id", ""))))
    return out


def rewardbench(rows, kind, rng):
    """allenai/reward-bench (split `filtered`): one prompt string, two response strings, `subset`;
    every pair is kept (RewardBench scores them all), its subset as the record's category."""
    return [chat_pref(user(r["prompt"]), r["chosen"], r["rejected"], "rewardbench", str(r.get("id", i)),
                      category=r["subset"]) for i, r in enumerate(rows)]


def pref_test_sets(rows, kind, rng):
    """allenai/pref-test-sets (one hub split per subset; a local file's rows carry `subset`):
    chosen and rejected are whole conversations that differ in their last assistant turn."""
    out = []
    for i, r in enumerate(rows):
        chosen, rejected = r["chosen"], r["rejected"]
        if isinstance(chosen, list):
            messages, chosen, rejected = chosen[:-1], chosen[-1]["content"], rejected[-1]["content"]
        else:
            messages = r["prompt"] if isinstance(r["prompt"], list) else user(r["prompt"])
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("the conversation before the responses must end with a user turn")
        out.append(chat_pref(messages, chosen, rejected, "rewardbench_prior_sets", str(r.get("id", i)),
                             category=r.get("subset")))
    return out
