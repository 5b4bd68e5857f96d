"""LoRA adapters, mixed precision and activation checkpointing on the tiny model."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhflab.config import LoRA, Optim, Train
from rlhflab.data.tokenize import encode_completion
from rlhflab.generation import token_logprobs
from rlhflab.lora import adapter_disabled, has_adapter, prepare_trainable
from rlhflab.models import load_reward_model, save_model
from rlhflab.training import make_accelerator, train_lm, use_gradient_checkpointing
from helpers import run_stage_on, tiny_model_and_tokenizer

PAIRS = [("SUBREDDIT: r/work\nPOST: my boss cut my hours", " boss cut hours"),
         ("ARTICLE: the city council approved a new budget", " council approved budget"),
         ("SUBREDDIT: r/pets\nPOST: my dog ate my homework", " dog ate homework")]


def _examples(tok, n=48):
    return [encode_completion(tok, p, c, 64) for p, c in PAIRS] * (n // len(PAIRS))


def _batch(tok):
    ids = tok([p + c for p, c in PAIRS], return_tensors="pt", padding=True)
    return ids["input_ids"], ids["attention_mask"]


def test_only_the_adapters_on_the_unfrozen_layers_train():
    model, _ = tiny_model_and_tokenizer(layers=2)
    peft_model, counts = prepare_trainable(model, LoRA(r=4, target_modules=["q_proj", "v_proj"]), 0.5)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and ".layers.1." in n for n in trainable)
    # r·(in + out) per adapted matrix: q and v of one layer, hidden 32
    assert counts["trainable_params"] == 2 * 4 * (32 + 32) < counts["total_params"]
    with pytest.raises(ValueError, match="no layer for model.lora"):
        prepare_trainable(tiny_model_and_tokenizer()[0], LoRA(), 1.0)
    with pytest.raises(ValueError, match="target_modules"):
        prepare_trainable(tiny_model_and_tokenizer()[0], LoRA(target_modules=["no_such_proj"]), 0.0)


def test_a_reward_models_head_trains_beside_its_adapters(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    save_model(model, tok, tmp_path / "m")
    rm, _ = prepare_trainable(load_reward_model(tmp_path / "m", tok), LoRA(r=4), 0.0, reward=True)
    trainable = {n for n, p in rm.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and all("lora_" in n or "score" in n for n in trainable)


def test_lora_sft_learns_and_the_reference_is_the_base_with_the_adapter_off(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    ids, mask = _batch(tok)
    with torch.no_grad():
        before = token_logprobs(model, ids, mask)
    peft_model, _ = prepare_trainable(model, LoRA(r=16, alpha=32), 0.0)
    with torch.no_grad():  # B starts at zero: the adapted model is the base model exactly
        assert torch.equal(token_logprobs(peft_model, ids, mask), before)
    train = _examples(tok)
    optim = Optim(lr=1e-2, batch_size=12, micro_batch_size=6, epochs=6, warmup_ratio=0.0)
    m = train_lm(peft_model, train, train[:6], optim, accelerator=make_accelerator(Train()), pad_id=tok.pad_token_id, seed=0,
                 eval_every=4, log=lambda s, r: None)
    # the untrained tiny model is near uniform (ln 300 = 5.70); measured 5.70 → 5.16
    assert m["best_val_loss"] < m["initial_val_loss"] - 0.3
    with torch.no_grad():
        after = token_logprobs(peft_model, ids, mask)
        with adapter_disabled(peft_model):
            off = token_logprobs(peft_model, ids, mask)
    assert not torch.allclose(after, before, atol=1e-3) and torch.equal(off, before)

    # merged on save: W + (alpha/r)·B·A, a plain model with the adapted model's outputs
    layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    expected = layer.base_layer.weight + 2.0 * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    save_model(peft_model, tok, tmp_path / "sft")
    assert not (tmp_path / "sft" / "adapter_config.json").exists()
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    assert not has_adapter(plain)
    assert torch.allclose(plain.model.layers[0].self_attn.q_proj.weight, expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(token_logprobs(plain, ids, mask), after, atol=1e-4)


def _first_steps(train_cfg: Train, steps: int = 3):
    torch.manual_seed(0)
    model, tok = tiny_model_and_tokenizer()
    use_gradient_checkpointing(model, train_cfg)
    rows = []
    train = _examples(tok, 24)
    optim = Optim(lr=3e-3, batch_size=12, micro_batch_size=6, max_steps=steps, warmup_ratio=0.0)
    train_lm(model, train, train[:6], optim, accelerator=make_accelerator(train_cfg), pad_id=tok.pad_token_id,
             seed=0, eval_every=100, log=lambda s, r: rows.append(r))
    return [r["train_loss"] for r in rows[1:]], model


def test_bf16_mixed_precision_tracks_float32_and_checkpointing_changes_nothing():
    fp32, _ = _first_steps(Train())
    bf16, _ = _first_steps(Train(mixed_precision="bf16"))
    ckpt, model = _first_steps(Train(gradient_checkpointing=True))
    assert fp32[-1] < fp32[0] and bf16[-1] < bf16[0]
    assert bf16 != fp32 and all(abs(a - b) < 0.02 * b for a, b in zip(bf16, fp32))
    assert model.is_gradient_checkpointing
    assert all(abs(a - b) < 1e-5 * b for a, b in zip(ckpt, fp32))


def test_fp16_on_a_cpu_is_refused_with_the_fix():
    if torch.cuda.is_available():
        pytest.skip("a GPU can run fp16")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device; use bf16"):
        make_accelerator(Train(mixed_precision="fp16"))


@pytest.mark.slow
def test_lora_dpo_learns_against_the_sft_weights_held_once(tiny_run, tmp_path):
    from conftest import tiny_config
    from rlhflab.pipeline import read_manifest
    from rlhflab.stages.dpo import STAGE

    cfg, _ = tiny_run
    lora_cfg = tiny_config(tmp_path, "lora", ["model.lora={r: 16, alpha: 32, save: adapter}", "dpo.optim.lr=2e-3"])
    m = run_stage_on(STAGE, lora_cfg, cfg.run_dir, tmp_path / "dpo")
    assert m["trainable_params"] < m["total_params"] / 5
    assert m["initial_val_accuracy"] == 0.5 and m["best_val_accuracy"] > 0.55
    # the reference is the SFT model exactly: its samples score what the full-weight run's did
    assert m["gold_reward_sft"] == read_manifest(cfg.run_dir / "dpo")["metrics"]["gold_reward_sft"]
    # saved as the adapter alone, on the SFT folder it was trained on
    assert (tmp_path / "dpo" / "adapter_model.safetensors").exists() and not (tmp_path / "dpo" / "model.safetensors").exists()
    AutoModelForCausalLM.from_pretrained(tmp_path / "dpo")


@pytest.mark.slow
def test_lora_ppo_learns_with_the_rm_as_its_value_model(tiny_run, tmp_path):
    from test_ppo_end_to_end import _trainer

    cfg, _ = tiny_run
    rows = []
    trainer = _trainer(cfg, tmp_path, tmp_path, extra=["ppo.max_steps=8", "ppo.optim.lr=1e-3"],
                       lora=LoRA(r=16, alpha=32), log=lambda step, row: rows.append(row))
    assert trainer.ref is None and trainer.rm is trainer.raw.value_model and has_adapter(trainer.rm)
    summary = trainer.train()
    first = rows[1]
    assert first["kl"] == 0.0 and first["ratio_first_minibatch"] == 1.0  # adapter off = policy at the start
    assert rows[-1]["val_rm_score"] > rows[0]["val_rm_score"] + 0.05
    assert summary["trainable_params"] < summary["total_params"] / 5


def test_adapter_only_saves_load_as_the_adapted_models_and_chain_through_adapter_bases(tmp_path):
    from rlhflab.models import adapter_base, load_causal_lm

    model, tok = tiny_model_and_tokenizer()
    save_model(model, tok, tmp_path / "base")
    ids, mask = _batch(tok)
    sft, _ = prepare_trainable(load_causal_lm(tmp_path / "base"), LoRA(r=4), 0.0)
    train = _examples(tok)
    train_lm(sft, train, train[:6], Optim(lr=1e-2, batch_size=12, micro_batch_size=6, max_steps=4, warmup_ratio=0.0),
             accelerator=make_accelerator(Train()), pad_id=tok.pad_token_id, seed=0, eval_every=100, log=lambda s, r: None)
    with torch.no_grad():
        adapted = token_logprobs(sft, ids, mask)
    save_model(sft, tok, tmp_path / "sft", adapter_only=True)
    files = {p.name for p in (tmp_path / "sft").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "model.safetensors" not in files
    assert adapter_base(tmp_path / "sft") == str((tmp_path / "base").resolve())
    assert adapter_base(tmp_path / "base") is None
    with torch.no_grad():  # rlhflab's loader and plain transformers both give the adapted model
        assert torch.allclose(token_logprobs(load_causal_lm(tmp_path / "sft"), ids, mask), adapted, atol=1e-5)
        assert torch.allclose(token_logprobs(AutoModelForCausalLM.from_pretrained(tmp_path / "sft"), ids, mask),
                              adapted, atol=1e-5)

    # an RM adapter trained on the SFT adapter folder: base -> SFT adapter -> RM adapter with its head
    rm, _ = prepare_trainable(load_reward_model(tmp_path / "sft", tok), LoRA(r=4), 0.0, reward=True)
    with torch.no_grad():
        rm.base_model.model.score.modules_to_save["default"].weight.normal_()
        for name, p in rm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
        scores = rm(input_ids=ids, attention_mask=mask).logits
    save_model(rm, tok, tmp_path / "rm", adapter_only=True)
    with torch.no_grad():
        reloaded = load_reward_model(tmp_path / "rm", tok)(input_ids=ids, attention_mask=mask).logits
    assert torch.allclose(reloaded, scores, atol=1e-5)

    (tmp_path / "base").rename(tmp_path / "moved")
    with pytest.raises(ValueError, match="does not exist .*base_model_name_or_path"):
        load_causal_lm(tmp_path / "sft")
