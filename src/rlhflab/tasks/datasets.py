"""The `datasets` task: public datasets by name, rendered, split ID/OOD and written in the data
stage's layout (the same one the synthetic task writes), so no later stage knows the difference.

Choices where the papers are silent (also in the README):
- missing validation sets and policy prompts follow rlhflab.tasks.common (as for a files task);
- the OOD rule is fitted on the SFT training inputs (the preference training inputs without SFT
  data) and applied to every set; train and validation keep the ID part; each test set declared
  `distribution: id` becomes its ID part (same name) and an OOD part (`ood_<by>` for the set `id`,
  `<name>_ood_<by>` for another) compared to it; a declared OOD set stays whole;
- records with an empty completion/response are dropped and counted;
- a ref's `domain` keeps one summarisation domain (`record_domain`), so summarize_from_feedback's
  validation split (Reddit posts and CNN/DM articles) can give a TL;DR-only ID set and a news OOD set;
- a ref's `part: K/N` keeps the records whose normalised input hashes into part K (before its
  `limit`), so a validation and a test set drawn from one split share no input by construction;
- `pretrain/corpus.jsonl` holds the SFT (or chosen) texts, so a model can still be pretrained
  from scratch on the task without a hub model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rlhflab.config import DatasetRef, DatasetsTask
from rlhflab.contamination import in_part
from rlhflab.data.chat import render_records
from rlhflab.data.records import PreferenceRecord, SFTRecord, write_json, write_jsonl
from rlhflab.data.sources import load_source
from rlhflab.data.sources.common import article_prompt
from rlhflab.data.splits import apply_split, describe, fit_split
from rlhflab.layout import PRETRAIN_CORPUS, TASK_INFO, DataSet, Layout, test_set
from rlhflab.tasks.common import corpus_from_training, fill_missing


def _usable(r) -> bool:
    if isinstance(r, SFTRecord):
        return bool(r.completion.strip())
    if isinstance(r, PreferenceRecord):
        return bool(r.chosen.strip() and r.rejected.strip()) and r.chosen != r.rejected
    return bool(r.prompt.strip())


def _template_used(setting: str, tokenizer) -> str:
    if setting != "auto":
        return setting
    return "model" if tokenizer is not None and getattr(tokenizer, "chat_template", None) else "tulu"


SOURCE_DOMAINS = {"tldr": "tldr", "cnn_dailymail": "news"}


def record_domain(record) -> str | None:
    """A record's summarisation domain: its meta.domain, else for summarize_from_feedback (posts
    and articles in one split) whether its prompt is an article's (as its adapter wrote it), else its
    source's; None when it has none."""
    meta = record.meta or {}
    if isinstance(meta.get("domain"), str):
        return meta["domain"]
    if meta.get("source") == "summarize_from_feedback" and isinstance(meta.get("input"), str):
        return "news" if record.prompt == article_prompt(meta["input"]) else "tldr"
    return SOURCE_DOMAINS.get(meta.get("source"))


def ref_filter(ref: DatasetRef) -> Callable | None:
    """What a ref keeps of its source's records before its `limit`: its part, its domain."""
    parts, domain = ref.parts, ref.domain
    if not parts and not domain:
        return None
    return lambda r: (not parts or in_part(r, *parts)) and (not domain or record_domain(r) == domain)


def load_ref(ref: DatasetRef, kind: str, label: str, seed: int) -> list:
    """The records of one ref: its `part` and `domain` (if any) kept before its seeded `limit` sample."""
    recs = load_source(ref.source, kind, ref.split, ref.path, ref.limit, seed, keep=ref_filter(ref))
    if not recs:
        what = " and ".join(x for x in (ref.part and f"part {ref.part}", ref.domain and f"domain {ref.domain}") if x)
        raise ValueError(f"{label}: {what} of {ref.source} ({ref.split}) holds none of its records; "
                         "give that set more records, fewer parts or another domain")
    return recs


def ood_part_name(name: str, by: str) -> str:
    """The name of a split test set's OOD part: `ood_<by>` for the set `id`, else `<name>_ood_<by>`."""
    return f"ood_{by}" if name == "id" else f"{name}_ood_{by}"


def build_datasets_task(task: DatasetsTask, seed: int, out_dir: Path, tokenizer=None,
                        progress: Callable[[str], None] = lambda s: None) -> dict:
    dropped: dict[str, int] = {}

    def load(ref: DatasetRef | None, kind: str, label: str) -> list | None:
        if ref is None:
            return None
        progress(f"{label} ({ref.source})")
        recs = load_ref(ref, kind, label, seed)
        kept = [r for r in render_records(recs, tokenizer, task.chat_template) if _usable(r)]
        if len(kept) < len(recs):
            dropped[label] = len(recs) - len(kept)
        return kept

    given = fill_missing({
        "sft_train": load(task.sft_train, "sft", "sft/train"),
        "sft_validation": load(task.sft_validation, "sft", "sft/validation"),
        "preference_train": load(task.preference_train, "preference", "preference/train"),
        "preference_validation": load(task.preference_validation, "preference", "preference/validation"),
        "policy_prompts": load(task.policy_prompts, "prompt", "prompts/train"),
        "policy_validation": load(task.policy_validation, "prompt", "prompts/validation")}, seed)
    sft_train, sft_val = given["sft_train"], given["sft_validation"]
    pref_train, pref_val = given["preference_train"], given["preference_validation"]
    prompts, prompts_val = given["policy_prompts"], given["policy_validation"]
    # test set name -> (its declared place, records)
    tests = {k: (test_set("prompt", k, v.distribution, v.shift, v.compare_to), load(v, "prompt", f"test/{k}"))
             for k, v in task.test_sets.items()}
    pref_tests = {k: (test_set("preference", k, v.distribution, v.shift, v.compare_to),
                      load(v, "preference", f"preference/test_{k}")) for k, v in task.preference_tests.items()}

    split_info = None
    if task.ood_split is not None:
        rule = fit_split(sft_train or pref_train, task.ood_split.by, task.ood_split.id_values)
        split_info = {"rule": rule.to_dict(), "sets": {}}
        by = task.ood_split.by

        def keep_id(name: str, recs: list | None) -> list | None:
            if recs is None:
                return None
            split_info["sets"][name] = describe(recs, rule)
            ind, _ = apply_split(recs, rule)
            if not ind:
                raise ValueError(f"OOD split by {by}: no in-distribution records left in {name} "
                                 f"({len(recs)} records, all OOD); give that set more records or another split")
            return ind

        sft_train, sft_val = keep_id("sft/train", sft_train), keep_id("sft/validation", sft_val)
        pref_train, pref_val = keep_id("preference/train", pref_train), keep_id("preference/validation", pref_val)
        prompts, prompts_val = keep_id("prompts/train", prompts), keep_id("prompts/validation", prompts_val)

        def split_sets(sets: dict[str, tuple[DataSet, list]]) -> dict[str, tuple[DataSet, list]]:
            out = {}
            for name, (ds, recs) in sets.items():
                if ds.is_ood:  # already out of distribution as a whole
                    out[name] = (ds, recs)
                    continue
                split_info["sets"][ds.file.removesuffix(".jsonl")] = describe(recs, rule)
                ind, ood = apply_split(recs, rule)
                ood_name = ood_part_name(name, by)
                if ind:
                    out[name] = (ds, ind)
                if ood:
                    out[ood_name] = (test_set(ds.kind, ood_name, "ood", by, name if ind else None), ood)
            return out

        tests, pref_tests = split_sets(tests), split_sets(pref_tests)

    given = [(DataSet("sft", "train", "train"), sft_train), (DataSet("sft", "validation", "validation"), sft_val),
             (DataSet("preference", "train", "train"), pref_train),
             (DataSet("preference", "validation", "validation"), pref_val),
             (DataSet("prompt", "train", "train"), prompts), (DataSet("prompt", "validation", "validation"), prompts_val),
             *tests.values(), *pref_tests.values()]
    layout = Layout.build(ds for ds, recs in given if recs)
    sizes = {}
    for ds, recs in given:
        if recs:
            write_jsonl(out_dir / ds.file, recs)
            sizes[ds.file] = len(recs)
    write_jsonl(out_dir / PRETRAIN_CORPUS, corpus_from_training(sft_train, pref_train))

    info = {"task": "datasets", "gold_reward": None, "sizes": sizes, "dropped_empty": dropped,
            "chat_template": _template_used(task.chat_template, tokenizer),
            "sets": layout.to_json(), "ood_split": split_info}
    write_json(out_dir / TASK_INFO, info)
    return {"sizes": sizes, "ood_split": split_info}
