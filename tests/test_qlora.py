"""QLoRA: NF4 base weights under LoRA adapters (bitsandbytes, on the CPU)."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhflab.config import LoRA, Optim, Train
from rlhflab.generation import token_logprobs
from rlhflab.lora import adapter_disabled, prepare_trainable
from rlhflab.models import load_reward_model, save_model
from rlhflab.training import BestWeights, make_accelerator, train_lm
from helpers import tiny_model_and_tokenizer
from test_lora import _batch, _examples

bnb = pytest.importorskip("bitsandbytes")  # in the test extras: CI runs these

NF4 = LoRA(r=16, alpha=32, quantize="nf4")


def test_qlora_holds_the_decoder_in_4_bits_and_the_reference_is_the_quantized_base(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    ids, mask = _batch(tok)
    with torch.no_grad():
        full = token_logprobs(model, ids, mask)
    before = sum(p.numel() for p in model.parameters())
    peft_model, counts = prepare_trainable(model, NF4, 0.0)
    assert counts["total_params"] == before + counts["trainable_params"]  # 4-bit weights counted as weights
    q_proj = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit) and q_proj.base_layer.weight.dtype == torch.uint8
    assert not isinstance(peft_model.base_model.model.lm_head, bnb.nn.Linear4bit)  # head and embeddings stay
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        quantized = token_logprobs(peft_model, ids, mask)
    # NF4 rounds every decoder weight: close to the full-precision model, not equal to it
    assert not torch.equal(quantized, full) and (quantized - full).abs().mean() < 0.05

    train = _examples(tok)
    optim = Optim(lr=1e-2, batch_size=12, micro_batch_size=6, epochs=6, warmup_ratio=0.0)
    m = train_lm(peft_model, train, train[:6], optim, accelerator=make_accelerator(Train()), pad_id=tok.pad_token_id,
                 seed=0, eval_every=4, log=lambda s, r: None)
    assert m["best_val_loss"] < m["initial_val_loss"] - 0.3
    with torch.no_grad():
        after = token_logprobs(peft_model, ids, mask)
        with adapter_disabled(peft_model):  # the reference: the quantized base, untouched by training
            assert torch.equal(token_logprobs(peft_model, ids, mask), quantized)

    # saved merged: dequantized W + (alpha/r)·B·A in full precision, a plain model without bitsandbytes
    deq = bnb.functional.dequantize_4bit(q_proj.base_layer.weight.data, q_proj.base_layer.weight.quant_state)
    expected = deq + 2.0 * q_proj.lora_B["default"].weight @ q_proj.lora_A["default"].weight
    save_model(peft_model, tok, tmp_path / "sft")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "sft")
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in plain.modules())
    assert torch.allclose(plain.model.layers[0].self_attn.q_proj.weight, expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(token_logprobs(plain, ids, mask), after, atol=1e-4)


@pytest.mark.parametrize("shape", [(32, 32), (64, 128)])  # the tiny model's; one the packed kernel accepts
def test_every_cpu_runs_one_4bit_kernel_path_in_eval_and_in_training(monkeypatch, shape):
    """bitsandbytes repacks a 4-bit weight for a bf16 kernel on AVX512-BF16 CPUs in eval mode; rlhflab
    keeps that off, so eval equals training bit for bit and gradients reach the layer's input. The CPU's
    answer is forced to "yes", so an AVX2 machine checks the same choice an Intel Xeon makes."""
    import bitsandbytes.nn.modules as bnb_modules

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    out_features, in_features = shape
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Linear(in_features, out_features, bias=False))])
    from rlhflab.quantization import quantize_decoder_linears

    assert quantize_decoder_linears(layers, layers) == 1
    layer = layers[0][0]
    assert isinstance(layer, bnb.nn.Linear4bit) and layer.support_avx512bf16_for_cpu is False
    x = torch.randn(3, in_features)
    layers.eval()
    with torch.no_grad():
        evaluated = layer(x)
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)  # the weight was not repacked
    layers.train()
    x_train = x.clone().requires_grad_()
    trained = layer(x_train)
    trained.sum().backward()
    assert torch.equal(trained.detach(), evaluated)
    expected = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state).sum(0)
    assert x_train.grad is not None and torch.allclose(x_train.grad, expected.expand_as(x_train), atol=1e-5)


def test_a_qlora_reward_models_head_stays_full_precision_and_best_weights_restore(tmp_path):
    model, tok = tiny_model_and_tokenizer()
    save_model(model, tok, tmp_path / "m")
    rm, _ = prepare_trainable(load_reward_model(tmp_path / "m", tok), NF4, 0.0, reward=True)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in rm.modules()) == 2 * 7  # 2 layers × q k v o gate up down
    trainable = {n for n, p in rm.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and all("lora_" in n or "score" in n for n in trainable)
    best = BestWeights(rm, 0.5)
    assert set(best.state_dict()["weights"]) == trainable  # only what training changes is copied
    kept = {n: p.detach().clone() for n, p in rm.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for n, p in rm.named_parameters():
            if p.requires_grad:
                p.add_(1.0)
    best.restore()
    assert all(torch.equal(p, kept[n]) for n, p in rm.named_parameters() if p.requires_grad)


def test_qlora_without_bitsandbytes_names_the_fix(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_bnb(name, *a, **k):
        if name == "bitsandbytes":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(RuntimeError, match=r"pip install 'rlhflab\[qlora\]'"):
        prepare_trainable(tiny_model_and_tokenizer()[0], NF4, 0.0)


@pytest.mark.slow
def test_qlora_ppo_learns_and_resumes_from_its_checkpoint(tiny_run, tmp_path):
    """PPO with a 4-bit policy and a 4-bit RM under the value adapter: the first ratio is 1 (the adapter
    starts at zero), the validation RM score rises, and a checkpoint of the 4-bit model resumes."""
    from test_ppo_end_to_end import _trainer

    cfg, _ = tiny_run
    rows = []
    kw = dict(lora=NF4, log=lambda step, row: rows.append(row), checkpoint_dir=tmp_path / "ckpt")
    trainer = _trainer(cfg, tmp_path, tmp_path, extra=["ppo.max_steps=8", "ppo.optim.lr=1e-3", "ppo.save_every=4"], **kw)
    assert trainer.ref is None and any(isinstance(m, bnb.nn.Linear4bit) for m in trainer.raw.modules())
    trainer.train()
    assert rows[1]["kl"] == 0.0 and rows[1]["ratio_first_minibatch"] == 1.0
    assert rows[-1]["val_rm_score"] > rows[0]["val_rm_score"] + 0.05
    # a fresh trainer on the same checkpoint folder resumes at the last checkpoint instead of step 1
    resumed = []
    again = _trainer(cfg, tmp_path, tmp_path, extra=["ppo.max_steps=8", "ppo.optim.lr=1e-3", "ppo.save_every=4"],
                     **{**kw, "log": lambda step, row: resumed.append(step)})
    again.train()
    assert 1 not in resumed
