"""`diversity` stage: per-input and across-input diversity of every policy (000 §5.2, §6.2, J.4).

For N inputs of one test set, K samples per input at τ = 1 from each policy; EAD, Sentence-BERT
and NLI diversity per input (mean, std over inputs; eq. 2) and across inputs (first sample of
every input, spread over redraws; eq. 3). Each text is embedded once and reused. Writes
`diversity.json` and the samples (`samples/<policy>.jsonl`) so any number can be recomputed.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from rlhflab.data.records import PromptRecord, read_records, write_json, write_jsonl
from rlhflab.evaluation.diversity import HFNLIClassifier, SyntheticOracleNLI, diversity_table, load_sentence_encoder
from rlhflab.pipeline import Stage, StageContext
from rlhflab.stages.common import data_file, task_info
from rlhflab.stages.policies import enabled_policies, policy_needs, policy_sampler


def _nli(ctx: StageContext):
    cfg = ctx.cfg.diversity
    if "nli" not in cfg.metrics:
        return None
    if cfg.nli_model:
        return HFNLIClassifier(cfg.nli_model)
    if task_info(ctx).get("task") == "synthetic-tldr":
        return SyntheticOracleNLI()
    raise ValueError("diversity: NLI diversity needs diversity.nli_model (a Hugging Face MNLI classifier)")


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.diversity
    tests = task_info(ctx).get("test_sets", {})
    if cfg.test_set not in tests:
        raise ValueError(f"diversity.test_set {cfg.test_set!r}: the task has test sets {sorted(tests)}")
    recs = read_records(data_file(ctx, tests[cfg.test_set]), PromptRecord)[: cfg.n_inputs]
    prompts, k = [r.prompt for r in recs], cfg.samples_per_input
    encoder = load_sentence_encoder(cfg.sentence_encoder) if "sentence_bert" in cfg.metrics else None
    nli = _nli(ctx)
    policies = enabled_policies(ctx.cfg, cfg.policies)
    table: dict = {"test_set": cfg.test_set, "n_inputs": len(prompts), "samples_per_input": k,
                   "temperature": cfg.temperature, "policies": {}}
    headline = {}
    for i, name in enumerate(policies):
        ctx.progress("diversity", i, len(policies))
        torch.manual_seed(ctx.seed + 101)  # every policy gets the same sampling seed
        texts = policy_sampler(ctx, name, cfg.temperature)(prompts, k)
        emb = encoder.encode(texts, batch_size=128, convert_to_numpy=True) if encoder is not None else None
        result = diversity_table(texts, len(prompts), k, embeddings=emb, nli=nli, max_nli_pairs=cfg.max_nli_pairs,
                                 vocab_size=cfg.ead_vocab_size, resamples=cfg.resamples, seed=ctx.seed)
        result = {m: v for m, v in result.items() if m in cfg.metrics}
        table["policies"][name] = {m: {kind: asdict(s) for kind, s in v.items()} for m, v in result.items()}
        for m, v in result.items():
            headline[f"{name}/{m}_per_input"] = v["per_input"].mean
            headline[f"{name}/{m}_across_input"] = v["across_input"].mean
        if ctx.is_main:
            write_jsonl(ctx.out / "samples" / f"{name}.jsonl",
                        [{"id": r.id, "prompt": r.prompt, "outputs": texts[j * k:(j + 1) * k]}
                         for j, r in enumerate(recs)])
    ctx.progress("diversity", len(policies), len(policies))
    if ctx.is_main:
        write_json(ctx.out / "diversity.json", table)
    return headline


STAGE = Stage(name="diversity",
              needs=lambda cfg: ["data"] + policy_needs(cfg, enabled_policies(cfg, cfg.diversity.policies)),
              reads=("seed", "generation", "diversity", "bon.n", "bon.temperature", "bon.reward_model", "model.dtype"),
              run=run, enabled=lambda cfg: cfg.diversity.enabled)
