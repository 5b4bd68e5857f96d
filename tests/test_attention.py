"""The grouped-head attention rlhflab loads models with on CPU gives transformers' sdpa results."""

import json

import torch
from transformers import AutoModelForCausalLM

from rlhflab.attention import GROUPED_SDPA
from rlhflab.config import ModelSpec
from rlhflab.generation import encode_prompts, sample
from rlhflab.models import build_llama, load_causal_lm, load_reward_model, position_ids, save_model
from helpers import tiny_model_and_tokenizer

PROMPTS = ["SUBREDDIT: r/work\nPOST: my boss said", "ARTICLE: the city", "SUBREDDIT: r/pets\nPOST: a dog ran home"]


def _grouped_model_folder(tmp_path, kv_heads: int = 2):
    _, tok = tiny_model_and_tokenizer()
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=kv_heads, intermediate_size=64)
    save_model(build_llama(spec, tok), tok, tmp_path / "model")
    return tmp_path / "model", tok


def test_grouped_heads_give_sdpas_logits_gradients_and_greedy_tokens(tmp_path):
    folder, tok = _grouped_model_folder(tmp_path)
    ours = load_causal_lm(folder)
    theirs = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="sdpa")
    assert ours.config._attn_implementation == GROUPED_SDPA and theirs.config._attn_implementation == "sdpa"
    ids, mask = encode_prompts(tok, PROMPTS)  # left-padded: the mask is what sent sdpa to copying heads
    assert (mask == 0).any()
    real = mask.bool()
    logits = []
    for model in (ours, theirs):
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits
        out[real].square().mean().backward()
        logits.append(out[real].detach())
    assert torch.equal(logits[0], logits[1])
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name
    greedy = [sample(m, tok, PROMPTS, do_sample=False, max_new_tokens=8) for m in (ours, theirs)]
    assert torch.equal(greedy[0].response_ids, greedy[1].response_ids)
    assert torch.allclose(greedy[0].logprobs, greedy[1].logprobs, atol=1e-6)


def test_saved_models_do_not_name_the_grouped_attention(tmp_path):
    folder, tok = _grouped_model_folder(tmp_path)
    save_model(load_causal_lm(folder), tok, tmp_path / "again")
    assert GROUPED_SDPA not in (tmp_path / "again" / "config.json").read_text()
    assert json.loads((tmp_path / "again" / "config.json").read_text())["num_key_value_heads"] == 2
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "again")).config._attn_implementation == "sdpa"


def test_reward_models_use_it_and_ungrouped_models_keep_sdpa(tmp_path):
    folder, tok = _grouped_model_folder(tmp_path)
    assert load_reward_model(folder, tok).config._attn_implementation == GROUPED_SDPA
    plain, _ = _grouped_model_folder(tmp_path / "plain", kv_heads=4)
    assert load_causal_lm(plain).config._attn_implementation == "sdpa"
