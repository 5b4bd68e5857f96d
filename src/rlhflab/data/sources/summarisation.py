"""Summarisation sources: filtered TL;DR, OpenAI's summarize-from-feedback comparisons and
CNN/DailyMail (kirk2024 §4). Prompts are plain text in the format of Stiennon et al."""

from __future__ import annotations

from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord
from rlhflab.data.sources.common import Row, article_prompt, tldr_prompt


def tldr(rows, kind, rng):
    out = []
    for r in rows:
        prompt = tldr_prompt(r.get("subreddit"), r.get("title"), r["post"])
        meta = {"source": "tldr", "input": r["post"], "category": r.get("subreddit")}
        summary = " " + r["summary"].strip()
        if kind == "sft":
            out.append(SFTRecord(prompt, summary, str(r.get("id", "")), meta))
        else:
            out.append(PromptRecord(prompt, summary, str(r.get("id", "")), meta))
    return out


def _sff_prompt(info: Row) -> tuple[str, str, str]:
    """(prompt, input text, category) of a summarize-from-feedback `info`: a Reddit post (TL;DR)
    or a news article (CNN/DM, category = its site)."""
    if info.get("post"):
        return tldr_prompt(info.get("subreddit"), info.get("title"), info["post"]), info["post"], info.get("subreddit") or "reddit"
    if info.get("article"):
        return article_prompt(info["article"]), info["article"], info.get("site") or "news"
    raise KeyError("info.post or info.article")


def summarize_from_feedback(rows, kind, rng):
    out = []
    for r in rows:
        prompt, text, category = _sff_prompt(r["info"])
        summaries = [s["text"] for s in r["summaries"]]
        choice = int(r["choice"])
        meta = {"source": "summarize_from_feedback", "input": text, "category": category,
                "policies": [s.get("policy") for s in r["summaries"]]}
        if (r.get("extra") or {}).get("confidence") is not None:
            meta["confidence"] = r["extra"]["confidence"]
        id_ = str(r["info"].get("id", ""))
        if kind == "preference":
            chosen, rejected = summaries[choice].strip(), summaries[1 - choice].strip()
            if chosen and rejected and chosen != rejected:
                out.append(PreferenceRecord(prompt, " " + chosen, " " + rejected, id_, meta))
        else:
            out.append(PromptRecord(prompt, None, id_, meta))
    return out


def cnn_dailymail(rows, kind, rng):
    out = []
    for r in rows:
        prompt = article_prompt(r["article"])
        meta = {"source": "cnn_dailymail", "input": r["article"], "category": "cnn_dailymail"}
        ref = " " + r["highlights"].strip().replace("\n", " ")
        rec = SFTRecord(prompt, ref, str(r.get("id", "")), meta) if kind == "sft" else \
            PromptRecord(prompt, ref, str(r.get("id", "")), meta)
        out.append(rec)
    return out
