"""DPO training speed: rlhflab's `dpo` stage against TRL's DPOTrainer (trl==1.12.0).

Same tiny Llama (policy and reference = the same SFT weights), same preference pairs, same batch
(32 pairs per optimiser step, micro-batches of 16), reference log-probs computed live by both,
same process and threads, same dtype: float32 on both sides (TRL's DPOConfig defaults to bf16
autocast, which on a CPU without fast bf16 measures the dtype rather than the trainer). Each side
first runs one untimed step in the same process (warm-up). rlhflab's time includes its two
validation passes (start and end, 16 pairs). Prints optimiser steps/s for each and the ratio.

    pip install trl==1.12.0      # benchmark-only dependency
    python benchmarks/dpo_vs_trl.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402

from rlhflab.config import ModelSpec, load_config  # noqa: E402
from rlhflab.data.records import PreferenceRecord, read_records  # noqa: E402
from rlhflab.tasks.synthetic import build_synthetic_task  # noqa: E402
from rlhflab.models import build_llama, load_causal_lm, load_tokenizer, save_model, train_tokenizer  # noqa: E402
from rlhflab.cache_key import ConfigView  # noqa: E402
from rlhflab.pipeline import StageContext  # noqa: E402
from rlhflab.stages import dpo as dpo_stage  # noqa: E402
from rlhflab.report.readme import machine  # noqa: E402

BATCH, MICRO = 32, 16


def build_world(root: Path, n_pairs: int) -> None:
    cfg = load_config("quickstart", ["task.n_pretrain=200", "task.n_sft_train=50", "task.n_sft_validation=10",
                                     f"task.n_preference_train={n_pairs}", "task.n_preference_validation=16",
                                     "task.n_preference_test=10", "task.n_policy_prompts=20",
                                     "task.n_policy_validation=10", "task.n_test=10", "task.median_pool=200"])
    build_synthetic_task(cfg.task, 0, root / "data")
    recs = read_records(root / "data" / "preference" / "train.jsonl", PreferenceRecord)
    tok = train_tokenizer([r.prompt + r.chosen for r in recs], vocab_size=2000)
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=4, intermediate_size=384)
    save_model(build_llama(spec, tok), tok, root / "sft")


def bench_rlhflab(root: Path, steps: int) -> float:
    cfg = load_config("quickstart", [
        f"output_dir={root.parent}", f"name={root.name}", "comparisons.source=task", "dpo.reference=live",
        f"dpo.optim.batch_size={BATCH}", f"dpo.optim.micro_batch_size={MICRO}", f"dpo.optim.max_steps={steps}",
        "dpo.optim.epochs=100", f"dpo.eval_every={10**6}", "dpo.n_sample_check=0", "pipeline.progress=false"])
    out = root / ".bench-dpo"
    out.mkdir(exist_ok=True)
    ctx = StageContext(ConfigView(cfg, dpo_stage.STAGE.reads, "dpo"), dpo_stage.STAGE, out, root, PartialState(),
                       inputs=("data", "sft"), key="bench")
    t = time.perf_counter()
    dpo_stage.run(ctx)
    return steps / (time.perf_counter() - t)


def bench_trl(root: Path, steps: int) -> float:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok = load_tokenizer(root / "sft")
    recs = read_records(root / "data" / "preference" / "train.jsonl", PreferenceRecord)
    ds = Dataset.from_dict({"prompt": [r.prompt for r in recs], "chosen": [" " + r.chosen.strip() for r in recs],
                            "rejected": [" " + r.rejected.strip() for r in recs]})
    args = DPOConfig(output_dir=str(root / "trl-out"), per_device_train_batch_size=MICRO,
                     gradient_accumulation_steps=BATCH // MICRO, max_steps=steps, learning_rate=1e-4, beta=0.1,
                     max_length=512, report_to="none", save_strategy="no", use_cpu=True, logging_steps=10**6,
                     disable_tqdm=True, seed=0, precompute_ref_log_probs=False, dataloader_num_workers=0,
                     bf16=False, fp16=False)
    trainer = DPOTrainer(model=load_causal_lm(root / "sft"), ref_model=load_causal_lm(root / "sft"), args=args,
                         train_dataset=ds, processing_class=tok)
    t = time.perf_counter()
    trainer.train()
    return steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        build_world(root, BATCH * a.steps)
        bench_rlhflab(root, 1), bench_trl(root, 1)  # warm-up: one untimed step each
        ours = bench_rlhflab(root, a.steps)
        theirs = bench_trl(root, a.steps)
    print(f"DPO, {a.steps} steps of {BATCH} pairs (micro {MICRO}), live reference, 4x128 Llama, float32 on both "
          f"sides, torch threads {torch.get_num_threads()}, {machine()}")
    print(f"  rlhflab  {ours:6.2f} steps/s")
    print(f"  TRL      {theirs:6.2f} steps/s  (trl.DPOTrainer, trl==1.12.0)")
    print(f"  ratio rlhflab / TRL = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
