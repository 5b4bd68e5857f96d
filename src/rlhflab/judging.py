"""Judging policy outputs against references, for every stage that reports a win rate (the
`eval` stage for every policy, the `kl_sweep` stage for each β): which judge reads a test set,
what input it is shown, and PvR preferences, win rates and generalisation gaps per test set.

A stage using these reads `eval.judge`, `eval.openai`, `eval.local_model`, `eval.gold_noise` and
`model.dtype`, and needs the judge's reward model stage when the judge is one (`judge_needs`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from rlhflab.artefacts import file_table, read_manifest
from rlhflab.evaluation.annotations import AnnotationCache, judge_pairs
from rlhflab.evaluation.judge_prompts import judge_text, record_prompt
from rlhflab.evaluation.judges import GoldJudge, OpenAIJudge, RewardModelJudge
from rlhflab.evaluation.reward_model import load_scorer, scoring_length
from rlhflab.evaluation.winrate import generalisation_gap, win_rate
from rlhflab.inputs import gold_reward_of, task_info
from rlhflab.pipeline import StageContext

JUDGE_READS = ("eval.judge", "eval.openai", "eval.local_model", "eval.gold_noise", "model.dtype")


def judge_needs(cfg) -> list[str]:
    """The reward model stage a judge reads, if the judge is one."""
    return [cfg.eval.judge] if cfg.eval.judge in ("rm", "rm_proxy") else []


def judge_prompt(cfg, records=(), name: str = "") -> str | None:
    """The prompt an LLM judge uses for test set `name`; None for judges without one (gold, RMs).
    auto: the prompt the set's records declare (`judge_prompts.record_prompt`: AlpacaEval's
    instruction prompt for chat records; by meta.domain, else by source adapter, kirk2024's news
    prompt (fig. 7) or TL;DR prompt (fig. 8)). Never chosen from a set's name or its prompts'
    wording: records that declare no domain, or different ones, are an error naming the fix (a
    TL;DR rubric silently applied to any other task would judge it by the wrong criteria)."""
    if cfg.judge not in ("openai", "local"):
        return None
    spec = cfg.openai
    if spec.prompt != "auto":
        return spec.prompt
    declared = {record_prompt(r) for r in records}
    if None in declared:
        raise ValueError(f"eval.openai.prompt: auto finds no judge prompt for test set {name!r}: "
                         f"{sum(record_prompt(r) is None for r in records)} of its {len(records)} records declare no "
                         "domain; give each record meta.domain (tldr, news or instruction; chat records with "
                         "meta.messages are instruction), or set eval.openai.prompt to tldr, news or instruction")
    if len(declared) > 1:
        raise ValueError(f"test set {name!r}: its records declare different judge prompts "
                         f"({', '.join(sorted(declared))}); judge each domain in its own test set, or set "
                         "eval.openai.prompt")
    return declared.pop() if declared else "tldr"


def judge_input(record, judge: str) -> str:
    """What the judge reads as the input. An LLM judge reads what the seed's did: a chat source's
    raw instruction (AlpacaEval's prompt frames it itself), not the policy's chat-template text;
    of a summarisation prompt, the text before its "\\nTL;DR:" cue (`judge_prompts.judge_text`:
    "SUBREDDIT: …\\nTITLE: …\\nPOST: …" or "ARTICLE: …", as kirk2024's released evaluation script
    passes it). Reward models score exactly the prompt they were trained on."""
    if judge not in ("openai", "local"):
        return record.prompt
    if record.meta.get("messages"):
        return record.meta["input"]
    return judge_text(record.prompt)


def model_identity(name_or_path: str | Path) -> str:
    """What a judge model is, for the judgement cache's key (a path says only where it is: a
    retrained RM in the same folder would reuse the old one's judgements). A stage folder: its
    manifest's artefact id, new at every retraining. Another local folder: the SHA-256 of its files'
    contents. Anything else is a hub name, which names what it is."""
    folder = Path(name_or_path)
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest and manifest.get("artefact_id"):
        return f"artefact:{manifest['artefact_id']}"
    if folder.is_dir():
        return "sha256:" + hashlib.sha256(json.dumps(file_table(folder), sort_keys=True).encode()).hexdigest()
    return f"hub:{name_or_path}"


def make_judge(ctx: StageContext, prompt: str | None):
    cfg = ctx.cfg.eval
    if cfg.judge == "gold":
        gold = gold_reward_of(ctx)
        if gold is None:
            raise ValueError("eval.judge=gold: this task has no gold reward; use rm_proxy or openai")
        info = task_info(ctx)
        return GoldJudge(gold, info["gold_reward"], info.get("annotator_scale") if cfg.gold_noise else None)
    if cfg.judge in ("rm", "rm_proxy"):
        folder = ctx.input(cfg.judge)
        rm, tok = load_scorer(folder, ctx.cfg.model.dtype)
        return RewardModelJudge(rm, tok, f"{cfg.judge}:{model_identity(folder)}", scoring_length(rm))
    if cfg.judge == "local":
        from rlhflab.evaluation.judges import LocalJudge
        from rlhflab.models import load_causal_lm

        if not cfg.local_model:
            raise ValueError("eval.judge=local needs eval.local_model (a Hugging Face causal LM name or folder)")
        from rlhflab.models import load_tokenizer

        return LocalJudge(load_causal_lm(cfg.local_model), load_tokenizer(cfg.local_model),
                          f"{cfg.local_model}@{model_identity(cfg.local_model)}", prompt)
    spec = cfg.openai
    return OpenAIJudge(base_url=spec.base_url, model=spec.model, prompt=prompt, api_key_env=spec.api_key_env,
                       concurrency=spec.concurrency, timeout=spec.timeout, max_retries=spec.max_retries)


def judges_for(ctx: StageContext, test_sets: dict) -> dict:
    """test set -> judge, loading each distinct judge (one per prompt) once."""
    built: dict = {}
    out = {}
    for s, recs in test_sets.items():
        prompt = judge_prompt(ctx.cfg.eval, recs, s)
        if prompt not in built:
            built[prompt] = make_judge(ctx, prompt)
        out[s] = built[prompt]
    return out


def references_of(name: str, records) -> list[str]:
    refs = [r.reference for r in records]
    if any(x is None for x in refs):
        raise ValueError(f"test set {name!r} has inputs without a reference output; PvR needs one per input")
    return refs


def pvr_by_set(judges: dict, judge_kind: str, test_sets: dict, outputs: dict[str, list[str]], *, seed: int,
               cache: AnnotationCache | None, compare_to: dict[str, str], bootstrap: int = 0) -> dict:
    """One policy's preference-vs-reference results on every test set, judged as the eval stage
    judges them (same judge, judge input, position seed): {"preferences": {set: [p]}, "pvr":
    {set: WinRate as a dict}, "gap": {OOD set: ID − OOD win rate}}. `outputs`: set -> one
    output per record."""
    prefs, pvr = {}, {}
    for s, recs in test_sets.items():
        js = judge_pairs(judges[s], [judge_input(r, judge_kind) for r in recs], outputs[s], references_of(s, recs),
                         seed=seed, cache=cache)
        prefs[s] = [j.preference for j in js]
        pvr[s] = asdict(win_rate(prefs[s], bootstrap=bootstrap, seed=seed))
    gap = generalisation_gap({s: v["win_rate"] for s, v in pvr.items()}, compare_to) if compare_to else {}
    return {"preferences": prefs, "pvr": pvr, "gap": gap}
