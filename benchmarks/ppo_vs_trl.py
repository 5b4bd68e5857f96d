"""PPO throughput: rlhflab's `ppo` stage against TRL's PPOTrainer (trl==1.12.0, trl.experimental.ppo).

Same tiny Llama (policy = reference = SFT weights; RM and value model = a sequence classifier on
the same backbone), same prompts, same settings (B = 32 prompts per rollout batch, minibatch 16,
1 inner epoch, 40 new tokens at τ = 0.7, β = 0.05, EOS penalty −10), same process, same threads,
same dtype: float32 on both sides (TRL's configs default to bf16 autocast, which on a CPU without
fast bf16 measures the dtype rather than the trainer: ~13× slower on the AMD EPYC here). Each side
first runs one untimed rollout batch in the same process (warm-up), then the timed ones. Prints
rollouts/s for each, the dtype and threads, and the ratio.

    pip install trl==1.12.0      # benchmark-only dependency
    python benchmarks/ppo_vs_trl.py [--steps 8] [--device cpu|cuda]
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
from transformers import AutoModelForSequenceClassification  # noqa: E402

from rlhflab.config import ModelSpec, load_config  # noqa: E402
from rlhflab.data.records import PromptRecord, read_records  # noqa: E402
from rlhflab.tasks.synthetic import build_synthetic_task  # noqa: E402
from rlhflab.models import build_llama, load_causal_lm, load_tokenizer, save_model, train_tokenizer  # noqa: E402
from rlhflab.ppo_trainer import PPOTrainer as RlhflabPPO  # noqa: E402
from rlhflab.report.readme import machine  # noqa: E402

B, MB, NEW_TOKENS = 32, 16, 40


def build_world(root: Path, hidden: int, layers: int) -> None:
    """Synthetic prompts + an untrained tiny Llama saved as `sft` and as a classifier `rm`."""
    cfg = load_config("quickstart", ["task.n_pretrain=200", "task.n_sft_train=50", "task.n_sft_validation=10",
                                     "task.n_preference_train=20", "task.n_preference_validation=10",
                                     "task.n_preference_test=10", "task.n_policy_prompts=512",
                                     "task.n_policy_validation=16", "task.n_test=10", "task.median_pool=200"])
    build_synthetic_task(cfg.task, 0, root / "data")
    prompts = [r.prompt for r in read_records(root / "data" / "prompts" / "train.jsonl", PromptRecord)]
    tok = train_tokenizer(prompts, vocab_size=2000)
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=hidden, num_layers=layers, num_heads=4, num_kv_heads=4,
                     intermediate_size=3 * hidden)
    save_model(build_llama(spec, tok), tok, root / "sft")
    rm = AutoModelForSequenceClassification.from_pretrained(root / "sft", num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    save_model(rm, tok, root / "rm")


def bench_rlhflab(root: Path, steps: int) -> float:
    cfg = load_config("quickstart", [
        f"output_dir={root.parent}", f"name={root.name}", f"ppo.prompt_batch_size={B}",
        f"ppo.minibatch_size={MB}", "ppo.inner_epochs=1", f"ppo.max_steps={steps}", "ppo.epochs=100",
        f"ppo.eval_every={10**6}", f"ppo.save_every={10**6}", "ppo.val_prompts=1", "ppo.optim.lr=1e-5",
        f"ppo.max_new_tokens={NEW_TOKENS}", "pipeline.progress=false"])
    prompts = [r.prompt for r in read_records(root / "data" / "prompts" / "train.jsonl", PromptRecord)]
    val = [r.prompt for r in read_records(root / "data" / "prompts" / "validation.jsonl", PromptRecord)]
    trainer = RlhflabPPO(cfg.ppo, cfg.generation, sft_dir=root / "sft", rm_dir=root / "rm", seed=cfg.seed,
                         prompts=prompts, val_prompts=val)
    t = time.perf_counter()
    for step in range(1, steps + 1):
        trainer.train_step(step)
    return steps * B / (time.perf_counter() - t)


def bench_trl(root: Path, steps: int, device: str) -> float:
    from datasets import Dataset
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    tok = load_tokenizer(root / "sft")
    prompts = [r.prompt for r in read_records(root / "data" / "prompts" / "train.jsonl", PromptRecord)]
    ds = Dataset.from_dict({"input_ids": [tok(p)["input_ids"] for p in prompts]})
    args = PPOConfig(
        output_dir=str(root / "trl-out"), per_device_train_batch_size=B, gradient_accumulation_steps=1,
        num_mini_batches=B // MB, num_ppo_epochs=1, total_episodes=steps * B, response_length=NEW_TOKENS,
        temperature=0.7, kl_coef=0.05, missing_eos_penalty=-10.0, stop_token="eos", learning_rate=1e-5,
        num_sample_generations=0, report_to="none", save_strategy="no", use_cpu=device == "cpu",
        local_rollout_forward_batch_size=B, logging_steps=10**6, seed=0, disable_tqdm=True,
        log_level="error", bf16=False, fp16=False)
    policy, ref = load_causal_lm(root / "sft"), load_causal_lm(root / "sft")
    rm = AutoModelForSequenceClassification.from_pretrained(root / "rm", num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(root / "rm", num_labels=1)
    trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                         train_dataset=ds, value_model=value)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}, "TRL must run in float32 here"
    t = time.perf_counter()
    trainer.train()
    return steps * B / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        root.mkdir()
        build_world(root, a.hidden, a.layers)
        bench_rlhflab(root, 1), bench_trl(root, 1, a.device)  # warm-up: one untimed rollout batch each
        ours = bench_rlhflab(root, a.steps)
        theirs = bench_trl(root, a.steps, a.device)
    print(f"PPO, {a.steps} rollout batches of {B} prompts, {NEW_TOKENS} new tokens, {a.layers}x{a.hidden} Llama, "
          f"float32 on both sides, torch threads {torch.get_num_threads()}, {machine()}")
    print(f"  rlhflab  {ours:8.1f} rollouts/s")
    print(f"  TRL      {theirs:8.1f} rollouts/s  (trl.experimental.ppo, trl==1.12.0)")
    print(f"  ratio rlhflab / TRL = {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
