"""Do the diversity metrics measure diversity? The validation protocol of
rlhflab.evaluation.diversity_validity (after Tevet & Berant 2021) on a finished synthetic-task run:

1. decTest: the run's SFT model sampled at each τ (default 0.2, 0.4, 0.7, 1.0, 1.3) on the diversity
   stage's inputs, K samples each; every configured metric plus the ground truth per input; each
   metric's Spearman ρ with τ and with ground-truth content diversity over all (input, τ) sets,
   with a bootstrap over inputs; and whether its mean ranks the τs as the ground truth does.
2. conTest: sets of one content in K wordings against sets of K contents in one wording, all four
   slots varied and only one; each metric's standardised difference d and AUROC.
3. The study's policies, when the run has diversity/diversity.json with the ground truth: the same
   correlations with the policies as conditions.

4. With --paraphrase-sets, the conTest on sets you wrote (real text, no ground truth needed).

    python benchmarks/diversity_validity.py runs/quickstart-s0 [--taus 0.2,0.4,0.7,1.0,1.3]
        [--inputs 64] [--k 8] [--sets 200] [--bootstrap 1000] [--no-sweep]
        [--paraphrase-sets examples/paraphrase_sets.jsonl] [--out validity.json]

Needs a GPU for the sweep in reasonable time (5 τ × inputs × K samples); --no-sweep runs 2 and 3 only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from rlhflab.config import load_config
from rlhflab.data.records import RECORD_TYPES, read_json, read_records
from rlhflab.evaluation.diversity import load_sentence_encoder, nli_for
from rlhflab.evaluation.diversity_validity import (condition_correlations, content_vs_form, mean_correlations,
                                                   paraphrase_separation, read_paraphrase_sets)
from rlhflab.evaluation.ground_truth_diversity import GROUND_TRUTH_TASKS, measured_diversity
from rlhflab.layout import TASK_INFO, Layout

DEFAULT_TAUS = (0.2, 0.4, 0.7, 1.0, 1.3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a finished run folder (config.yaml, data/, sft/)")
    ap.add_argument("--taus", type=_taus, default=DEFAULT_TAUS, help="comma-separated temperatures")
    ap.add_argument("--inputs", type=_positive, default=64, help="inputs of the diversity test set")
    ap.add_argument("--k", type=_positive, default=8, help="samples per input and τ (≥ 2)")
    ap.add_argument("--sets", type=_positive, default=200, help="content-vs-form sets of each kind")
    ap.add_argument("--set-size", type=int, choices=(2, 3), default=3, help="samples per content-vs-form set")
    ap.add_argument("--bootstrap", type=_positive, default=1000, help="bootstrap resamples of the inputs")
    ap.add_argument("--no-sweep", action="store_true", help="skip the temperature sweep (no model is loaded)")
    ap.add_argument("--paraphrase-sets", type=Path, help="also run the content-vs-form test on your own sets (JSONL, "
                    "docs/diversity-validity.md), e.g. examples/paraphrase_sets.jsonl")
    ap.add_argument("--out", type=Path, help="also write every number as JSON here")
    a = ap.parse_args(argv)
    if a.k < 2:
        ap.error("--k: diversity needs at least two samples per input")
    return a


def _taus(text: str) -> tuple[float, ...]:
    try:
        taus = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if len(taus) < 2 or len(set(taus)) != len(taus) or min(taus) <= 0:
        raise argparse.ArgumentTypeError("give two or more distinct temperatures > 0")
    return taus


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def check_run(run_dir: Path, sweep: bool) -> str | None:
    """Why `run_dir` cannot be validated, or None."""
    needed = [run_dir / "config.yaml", run_dir / "data" / TASK_INFO] + ([run_dir / "sft"] if sweep else [])
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        return f"{run_dir} is not a finished run: missing {', '.join(missing)}"
    task = read_json(run_dir / "data" / TASK_INFO).get("task")
    if task not in GROUND_TRUTH_TASKS:
        return f"{run_dir} is a run of task {task!r}; the ground truth exists only for {', '.join(GROUND_TRUTH_TASKS)}"
    return None


def sweep(run_dir: Path, cfg, task: str, a, encoder, nli) -> dict[str, dict]:
    """τ -> the diversity table of the SFT model's samples at τ, on the diversity stage's inputs."""
    import torch

    from rlhflab.models import load_causal_lm, load_tokenizer
    from rlhflab.sampling import model_sampler

    ds = Layout.from_task_info(read_json(run_dir / "data" / TASK_INFO)).test_set_or_first_id(cfg.diversity.test_set)
    prompts = [r.prompt for r in read_records(run_dir / "data" / ds.file, RECORD_TYPES[ds.kind])][: a.inputs]
    model = load_causal_lm(run_dir / "sft", cfg.model.dtype).to("cuda" if torch.cuda.is_available() else "cpu")
    tok = load_tokenizer(run_dir / "sft")
    tables = {}
    for tau in a.taus:
        torch.manual_seed(cfg.seed + 101)  # the diversity stage's seed: τ = 1 repeats its samples
        texts = model_sampler(model, tok, cfg.generation, tau)(prompts, a.k)
        tables[f"{tau:g}"] = measured_diversity(texts, len(prompts), a.k, cfg.diversity, task, encoder=encoder,
                                                nli=nli, seed=cfg.seed)
        print(f"  τ = {tau:g}: sampled {len(texts)} texts", file=sys.stderr)
    return tables


def correlations(tables: dict, control: dict | None, resamples: int, seed: int) -> dict:
    return {"sets": condition_correlations(tables, control, resamples=resamples, seed=seed),
            "means_per_input": mean_correlations(tables, control),
            "means_across_input": mean_correlations(tables, control, kind="across_input")}


def _f(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"


def _ci(st: dict | None) -> str:
    return "–" if not st else f"{_f(st['estimate'])} [{_f(st['ci_low'])}, {_f(st['ci_high'])}]"


def print_correlations(title: str, c: dict, control_name: str | None) -> None:
    print(f"\n## {title}\n")
    cols = ([f"ρ with {control_name} (sets)"] if control_name else []) + ["ρ with content (sets)"]
    cols += ([f"ρ of means with {control_name}"] if control_name else []) + ["ρ of means with content",
                                                                             "ρ across-input means with content"]
    print("| metric | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for m, row in c["sets"].items():
        pm, am = c["means_per_input"][m], c["means_across_input"][m]
        cells = ([_ci(row.get("control"))] if control_name else []) + [_ci(row.get("ground_truth"))]
        cells += ([_f(pm.get("control"))] if control_name else []) + [_f(pm.get("ground_truth")), _f(am.get("ground_truth"))]
        print(f"| {m} | " + " | ".join(cells) + " |")


def print_separation(title: str, sep: dict) -> None:
    print(f"\n## {title}\n\n| metric | content sets | form sets | d | AUROC |\n|---|---|---|---|---|")
    for m, s in sep.items():
        print(f"| {m} | {_f(s['content_mean'])} | {_f(s['form_mean'])} | {_f(s['d'])} | {_f(s['auroc'])} |")


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    if (why := check_run(a.run_dir, not a.no_sweep)) is not None:
        raise SystemExit(why)
    cfg = load_config(a.run_dir / "config.yaml")
    task = read_json(a.run_dir / "data" / TASK_INFO)["task"]
    div = cfg.diversity
    encoder = load_sentence_encoder(div.sentence_encoder) if "sentence_bert" in div.metrics else None
    nli = nli_for(div, task) if "nli" in div.metrics else None
    out: dict = {"run": str(a.run_dir)}
    if not a.no_sweep:
        tables = sweep(a.run_dir, cfg, task, a, encoder, nli)
        out["temperature"] = correlations(tables, {t: float(t) for t in tables}, a.bootstrap, cfg.seed)
        print_correlations(f"Temperature sweep of SFT ({a.inputs} inputs × {a.k}, τ = {', '.join(tables)})",
                           out["temperature"], "τ")

    def measure(texts: list[str], n: int, k: int) -> dict:
        return measured_diversity(texts, n, k, div, task, encoder=encoder, nli=nli, seed=cfg.seed)

    out["content_vs_form"] = {}
    for varied in (4, 1):
        sep = content_vs_form(measure, a.sets, a.set_size, seed=cfg.seed, varied=varied)
        out["content_vs_form"][f"{varied}_slots"] = sep
        print_separation(f"Content vs form, {a.sets} + {a.sets} sets of {a.set_size}, content sets varying "
                         f"{varied} of 4 facts (content metric: d > 0, AUROC → 1)", sep)
    if a.paraphrase_sets:
        # your own text: no ground truth, and NLI only from a real classifier (the synthetic task's exact
        # oracle reads its facts, not English)
        metrics = [m for m in div.metrics if m != "nli" or div.nli_model]
        if len(metrics) < len(div.metrics):
            print("\nNLI left out of the sets you wrote: set diversity.nli_model to an MNLI classifier to include it",
                  file=sys.stderr)
        plain = div.model_copy(update={"metrics": metrics})

        def measure_text(texts: list[str], n: int, k: int) -> dict:
            return measured_diversity(texts, n, k, plain, None, encoder=encoder, nli=nli if div.nli_model else None,
                                      seed=cfg.seed)

        sep = paraphrase_separation(measure_text, read_paraphrase_sets(a.paraphrase_sets))
        out["paraphrase_sets"] = sep
        print_separation(f"Content vs form on {a.paraphrase_sets} (content metric: d > 0, AUROC → 1)", sep)
    policies = a.run_dir / "diversity" / "diversity.json"
    if policies.exists() and "content" in next(iter(read_json(policies)["policies"].values()), {}):
        tables = read_json(policies)["policies"]
        if len(tables) >= 2:
            out["policies"] = correlations(tables, None, a.bootstrap, cfg.seed)
            print_correlations(f"The study's policies ({', '.join(tables)})", out["policies"], None)
    if a.out:
        a.out.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
