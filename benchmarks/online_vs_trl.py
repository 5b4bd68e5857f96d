"""GRPO, RLOO and online DPO throughput: rlhflab's trainers against TRL's (trl==1.16.0, the newest
that installs here: GRPOTrainer, RLOOTrainer, trl.experimental.online_dpo.OnlineDPOTrainer).

Same tiny Llama (policy = reference = the same untrained weights; RM = a sequence classifier on the
same backbone), same prompts, same settings on both sides: 32 samples per rollout batch (8 prompts ×
4 samples for GRPO and RLOO, 16 prompts × 2 for online DPO), 40 new tokens at τ = 0.7, one pass over
each batch, two optimiser steps of 16 samples per batch for GRPO and RLOO (one of 32 for online
DPO), KL to the reference on (GRPO β 0.04, RLOO β 0.05, DPO β 0.1), float32 on both sides (TRL
defaults to bf16 autocast, which on a CPU without fast bf16 measures the dtype, not the trainer),
same process and threads. rlhflab's EOS penalty is off: TRL's GRPO and RLOO have none. Each side
first runs one untimed rollout batch (warm-up). Prints samples/s of each and the ratio.

    pip install --target /tmp/trl116 --no-deps trl==1.16.0   # benchmark-only; --no-deps keeps the venv's versions
    PYTHONPATH=/tmp/trl116 python benchmarks/online_vs_trl.py [--steps 6] [--methods grpo rloo online_dpo]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402
from ppo_vs_trl import NEW_TOKENS, build_world  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from rlhflab.config import load_config  # noqa: E402
from rlhflab.data.records import PromptRecord, read_records  # noqa: E402
from rlhflab.group_trainer import GRPOTrainer as OurGRPO  # noqa: E402
from rlhflab.group_trainer import RLOOTrainer as OurRLOO  # noqa: E402
from rlhflab.models import load_causal_lm, load_tokenizer  # noqa: E402
from rlhflab.online_dpo_trainer import OnlineDPOTrainer as OurOnlineDPO  # noqa: E402
from rlhflab.report.readme import machine  # noqa: E402

SAMPLES = 32
SHAPE = {"grpo": (8, 4, 16), "rloo": (8, 4, 16), "online_dpo": (16, 2, 32)}  # prompts, k, samples per optimiser step
BETA = {"grpo": 0.04, "rloo": 0.05, "online_dpo": 0.1}


def prompts_of(root: Path, split: str = "train") -> list[str]:
    return [r.prompt for r in read_records(root / "data" / "prompts" / f"{split}.jsonl", PromptRecord)]


def bench_rlhflab(root: Path, method: str, steps: int) -> float:
    prompts_per_batch, k, minibatch = SHAPE[method]
    beta = "beta" if method == "online_dpo" else "kl_coef"
    cfg = load_config("quickstart", [
        f"{method}.prompt_batch_size={prompts_per_batch}", f"{method}.rollouts_per_prompt={k}",
        f"{method}.minibatch_size={minibatch}", f"{method}.max_steps={steps}", f"{method}.epochs=100",
        f"{method}.eval_every={10**6}", f"{method}.save_every={10**6}", f"{method}.val_prompts=1",
        f"{method}.optim.lr=1e-5", f"{method}.max_new_tokens={NEW_TOKENS}", f"{method}.eos_penalty=null",
        f"{method}.{beta}={BETA[method]}", "pipeline.progress=false"])
    trainer_class = {"grpo": OurGRPO, "rloo": OurRLOO, "online_dpo": OurOnlineDPO}[method]
    trainer = trainer_class(getattr(cfg, method), cfg.generation, sft_dir=root / "sft", rm_dir=root / "rm", seed=0,
                            prompts=prompts_of(root), val_prompts=prompts_of(root, "validation"))
    t = time.perf_counter()
    for step in range(1, steps + 1):
        trainer.train_step(step)
    return steps * SAMPLES / (time.perf_counter() - t)


def bench_trl(root: Path, method: str, steps: int, device: str) -> float:
    from datasets import Dataset

    prompts_per_batch, k, minibatch = SHAPE[method]
    tok = load_tokenizer(root / "sft")
    ds = Dataset.from_dict({"prompt": prompts_of(root)})
    rm = AutoModelForSequenceClassification.from_pretrained(root / "rm", num_labels=1)
    common = dict(output_dir=str(root / f"trl-{method}"), learning_rate=1e-5, temperature=0.7, report_to="none",
                  save_strategy="no", use_cpu=device == "cpu", logging_steps=10**6, seed=0, disable_tqdm=True,
                  log_level="error", bf16=False, fp16=False, gradient_accumulation_steps=1, beta=BETA[method])
    if method in ("grpo", "rloo"):
        from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

        config, trainer_class = (GRPOConfig, GRPOTrainer) if method == "grpo" else (RLOOConfig, RLOOTrainer)
        args = config(**common, per_device_train_batch_size=minibatch, num_generations=k,
                      steps_per_generation=SAMPLES // minibatch, max_completion_length=NEW_TOKENS,
                      max_steps=steps * SAMPLES // minibatch, num_iterations=1)
        trainer = trainer_class(model=load_causal_lm(root / "sft"), reward_funcs=rm, args=args, train_dataset=ds,
                                processing_class=tok, reward_processing_classes=tok)
    else:
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

        args = OnlineDPOConfig(**common, per_device_train_batch_size=prompts_per_batch, max_new_tokens=NEW_TOKENS,
                               max_steps=steps)
        trainer = OnlineDPOTrainer(model=load_causal_lm(root / "sft"), ref_model=load_causal_lm(root / "sft"),
                                   reward_funcs=rm, args=args, train_dataset=ds, processing_class=tok,
                                   reward_processing_classes=tok)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}, "TRL must run in float32 here"
    t = time.perf_counter()
    trainer.train()
    return steps * SAMPLES / (time.perf_counter() - t)


def main() -> None:
    import trl

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", nargs="+", default=["grpo", "rloo", "online_dpo"], choices=list(SHAPE))
    a = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        build_world(root, a.hidden, a.layers)
        for m in a.methods:
            bench_rlhflab(root, m, 1), bench_trl(root, m, 1, a.device)  # warm-up: one untimed rollout batch each
            results[m] = bench_rlhflab(root, m, a.steps), bench_trl(root, m, a.steps, a.device)
    print(f"{a.steps} rollout batches of {SAMPLES} samples, {NEW_TOKENS} new tokens, {a.layers}x{a.hidden} Llama, "
          f"float32 on both sides, torch threads {torch.get_num_threads()}, trl {trl.__version__}, {machine()}")
    for m, (ours, theirs) in results.items():
        print(f"  {m:<10}  rlhflab {ours:7.1f} samples/s   TRL {theirs:7.1f} samples/s   ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
