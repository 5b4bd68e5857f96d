"""Inference autocast (rlhflab.precision) and the fixed-shape decode loops a GPU wants."""

import pytest
import torch

from rlhflab import precision
from rlhflab.config import load_config
from rlhflab.evaluation.reward_model import score
from rlhflab.generation import sample, token_logprobs
from rlhflab.models import load_reward_model, save_model
from rlhflab.pipeline import Stage, read_manifest, run_pipeline
from rlhflab.ppo_models import reference_logprobs
from helpers import tiny_model_and_tokenizer

PROMPTS = ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council approved", "x"]


def test_auto_is_off_on_cpu_and_the_mode_is_scoped():
    assert not precision.uses_bf16("cpu", "auto") and precision.uses_bf16("cpu", "bf16")
    assert not precision.uses_bf16("cuda", "off")
    with precision.inference_mode("bf16"):
        assert precision.uses_bf16("cpu")
        with precision.inference_mode("off"):
            assert not precision.uses_bf16("cpu")
        assert precision.uses_bf16("cpu")
    assert not precision.uses_bf16("cpu")
    with pytest.raises(ValueError, match="auto, bf16 or off"):
        with precision.inference_mode("fp8"):
            pass


def test_bf16_scoring_and_reference_are_close_to_float32(tmp_path):
    policy, tok = tiny_model_and_tokenizer()
    save_model(policy, tok, tmp_path / "m")
    rm = load_reward_model(tmp_path / "m", tok)
    completions = [" my boss cut my hours", " the budget passed", " a"]
    full = score(rm, tok, PROMPTS, completions)
    s = sample(policy, tok, PROMPTS, max_new_tokens=8)
    ids, mask = torch.cat([s.prompt_ids, s.response_ids], 1), torch.cat([s.prompt_mask, s.response_mask], 1)
    start = s.prompt_ids.shape[1]
    ref = reference_logprobs(policy, ids, mask, start, 0.7)
    with precision.inference_mode("bf16"):
        half = score(rm, tok, PROMPTS, completions)
        ref_half = reference_logprobs(policy, ids, mask, start, 0.7)
        with torch.no_grad():  # a training pass is not autocast: equal to float32 exactly
            train = token_logprobs(policy, ids, mask, 0.7, start=start)
    assert half.dtype == ref_half.dtype == torch.float32
    assert not torch.equal(half, full) and torch.allclose(half, full, atol=0.05, rtol=0.02)
    assert not torch.equal(ref_half, ref) and torch.allclose(ref_half * s.response_mask, ref * s.response_mask,
                                                             atol=0.1)
    assert torch.equal(train, ref)


def test_static_decode_draws_the_eager_tokens():
    model, tok = tiny_model_and_tokenizer()
    out = {}
    for mode in ("eager", "static"):
        torch.manual_seed(0)
        out[mode] = sample(model, tok, PROMPTS, temperature=1.0, max_new_tokens=20, k=3, decode_mode=mode)
    assert torch.equal(out["static"].response_ids, out["eager"].response_ids)
    assert torch.allclose(out["static"].logprobs, out["eager"].logprobs, atol=1e-5)
    with pytest.raises(ValueError, match="eager, static or compiled"):
        sample(model, tok, PROMPTS, decode_mode="fast")


@pytest.mark.slow
def test_compiled_decode_draws_the_eager_tokens():
    # torch.compile builds C++ kernels on CPU (~25 s here); on CUDA the same path captures CUDA graphs
    model, tok = tiny_model_and_tokenizer()
    out = {}
    for mode in ("eager", "compiled", "compiled"):  # the second compiled call reuses the compiled forward
        torch.manual_seed(0)
        out[mode] = sample(model, tok, PROMPTS, temperature=1.0, max_new_tokens=20, k=3, decode_mode=mode)
    assert torch.equal(out["compiled"].response_ids, out["eager"].response_ids)
    assert torch.allclose(out["compiled"].logprobs, out["eager"].logprobs, atol=1e-5)
    assert model._rlhflab_compiled_forward is not None


def test_every_stage_runs_in_its_configs_autocast_mode_and_keys_on_it(tmp_path):
    seen = []

    def run(ctx):
        seen.append(precision.uses_bf16("cpu"))
        return {}

    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=exp"])
    stages = [Stage("a", lambda c: [], ("seed",), run)]
    assert [r.status for r in run_pipeline(cfg, stages)] == ["ran"]
    assert read_manifest(cfg.run_dir / "a")["config"]["model.inference_autocast"] == "auto"
    bf16 = cfg.model_copy(deep=True)
    bf16.model.inference_autocast = "bf16"
    assert [r.status for r in run_pipeline(bf16, stages, overwrite=True)] == ["ran"]
    assert seen == [False, True] and not precision.uses_bf16("cpu")
