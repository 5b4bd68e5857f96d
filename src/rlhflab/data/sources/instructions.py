"""Instruction sources: AlpacaFarm (instructions and pairwise preferences), AlpacaEval, Sequential
Instructions, UltraFeedback, HelpSteer and Nectar."""

from __future__ import annotations

from statistics import mean

from rlhflab.data.sources.common import (Row, binarise, chat_pref, chat_prompt, chat_sft, instruction_text, parse_hh,
                                        user)


def alpaca_style(source: str, category_field: str | None = None):
    """Alpaca-style rows {instruction, input?, output?}: AlpacaFarm SFT / unlabeled / evaluation,
    AlpacaEval, Sequential Instructions."""

    def convert(rows, kind, rng):
        out = []
        for i, r in enumerate(rows):
            messages = user(instruction_text(r["instruction"], r.get("input")))
            category = str(r[category_field]) if category_field and r.get(category_field) else None
            id_ = str(r.get("id", i))
            if kind == "sft":
                out.append(chat_sft(messages, r["output"], source, id_, category))
            else:
                out.append(chat_prompt(messages, r.get("output"), source, id_, category))
        return out

    return convert


def alpaca_farm_preference(source: str):
    def convert(rows, kind, rng):
        out = []
        for i, r in enumerate(rows):
            messages = user(instruction_text(r["instruction"], r.get("input")))
            pref = int(r["preference"])
            if pref not in (1, 2):
                raise ValueError(f"'preference' must be 1 or 2, got {pref}")
            a, b = r["output_1"], r["output_2"]
            chosen, rejected = (a, b) if pref == 1 else (b, a)
            out.append(chat_pref(messages, chosen, rejected, source, str(i)) if kind == "preference"
                       else chat_prompt(messages, None, source, str(i)))
        return out

    return convert


def ultrafeedback(score: str):
    """openbmb/UltraFeedback rows: one instruction, several completions each rated by GPT-4 with
    an overall score and four per-aspect ratings. 'overall' binarises on `overall_score`,
    'fine_grained' on the mean of the aspect ratings (ivison2024 §3.1)."""

    def aspect_mean(c: Row) -> float:
        ratings = [float(a["Rating"]) for a in c["annotations"].values()
                   if str(a.get("Rating", "N/A")).replace(".", "", 1).isdigit()]
        if not ratings:
            raise ValueError("a completion has no numeric aspect rating")
        return mean(ratings)

    def convert(rows, kind, rng):
        out = []
        for i, r in enumerate(rows):
            messages = user(r["instruction"])
            category = r.get("source")
            if kind == "prompt":
                out.append(chat_prompt(messages, None, f"ultrafeedback_{score}", str(i), category))
                continue
            completions = [c for c in r["completions"] if c.get("response", "").strip()]
            scores = [float(c["overall_score"]) if score == "overall" else aspect_mean(c) for c in completions]
            pick = binarise([c["response"] for c in completions], scores, rng)
            if pick is None:
                continue
            ci, ri = pick
            out.append(chat_pref(messages, completions[ci]["response"], completions[ri]["response"],
                                 f"ultrafeedback_{score}", str(i), category,
                                 scores=[scores[ci], scores[ri]],
                                 models=[completions[ci].get("model"), completions[ri].get("model")]))
        return out

    return convert


def helpsteer(rows, kind, rng):
    """nvidia/HelpSteer: one row per (prompt, response) with 0–4 ratings; responses to the same
    prompt are compared on the mean of helpfulness, correctness, coherence and complexity
    (verbosity left out, ivison2024 appendix B)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r["prompt"], []).append(r)
    out = []
    for i, (prompt, group) in enumerate(groups.items()):
        messages = user(prompt)
        if kind == "prompt":
            out.append(chat_prompt(messages, None, "helpsteer", str(i)))
            continue
        scores = [mean(float(g[k]) for k in ("helpfulness", "correctness", "coherence", "complexity")) for g in group]
        pick = binarise([g["response"] for g in group], scores, rng)
        if pick is not None:
            out.append(chat_pref(messages, group[pick[0]]["response"], group[pick[1]]["response"], "helpsteer",
                                 str(i), scores=[scores[pick[0]], scores[pick[1]]]))
    return out


def nectar(rows, kind, rng):
    """berkeley-nest/Nectar: an Anthropic-format prompt and up to 7 answers ranked by GPT-4 (rank 1
    best); chosen = rank 1, rejected = a random lower rank. Multi-turn prompts keep their turns."""
    out = []
    for i, r in enumerate(rows):
        text = r["prompt"]
        messages = parse_hh(text.rsplit("\n\nAssistant:", 1)[0] if text.rstrip().endswith("Assistant:") else text)
        source = r.get("source")
        category = source[0] if isinstance(source, list) and source else source if isinstance(source, str) else None
        if kind == "prompt":
            out.append(chat_prompt(messages, None, "nectar", str(i), category))
            continue
        answers = [a for a in r["answers"] if a["answer"].strip()]
        pick = binarise([a["answer"] for a in answers], [-float(a["rank"]) for a in answers], rng)
        if pick is not None:
            out.append(chat_pref(messages, answers[pick[0]]["answer"], answers[pick[1]]["answer"], "nectar",
                                 str(i), category))
    return out
