"""PPO runs without dropout (ivison2024 table 9: dropout 0.0) in policy, reference, value model and
RM, whatever train/eval mode the trainer puts them in; validation selection uses the β in force."""

import math

import pytest
import torch
from helpers import TEXTS, tiny_model_and_tokenizer
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PretrainedConfig

from rlhflab.models import load_reward_model, save_model

PROMPTS = [t.split("TL;DR:")[0] + "TL;DR:" for t in TEXTS[:3]] * 4


def _gpt2(tok):
    cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.5,
                     embd_pdrop=0.5, attn_pdrop=0.5, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg)


def _llama(tok):  # Llama's attention dropout is functional (a float attribute), not an nn.Dropout module
    model, _ = tiny_model_and_tokenizer()
    model.config.attention_dropout = 0.5
    return type(model)(model.config)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def trainer(request, tmp_path_factory):
    from conftest import tiny_config
    from rlhflab.ppo_trainer import PPOTrainer

    tmp = tmp_path_factory.mktemp(request.param)
    _, tok = tiny_model_and_tokenizer()
    torch.manual_seed(0)
    model = _llama(tok) if request.param == "llama" else _gpt2(tok)
    save_model(model, tok, tmp / "sft")
    save_model(load_reward_model(tmp / "sft", tok), tok, tmp / "rm")
    cfg = tiny_config(tmp, extra=["ppo.prompt_batch_size=4", "ppo.minibatch_size=2", "ppo.max_new_tokens=6",
                                  "ppo.inner_epochs=1", "ppo.val_prompts=4", "ppo.adaptive_kl=true",
                                  "ppo.optim.lr=1e-3", "ppo.max_steps=2"])
    return PPOTrainer(cfg.ppo, cfg.generation, sft_dir=tmp / "sft", rm_dir=tmp / "rm", seed=0, prompts=PROMPTS,
                      val_prompts=PROMPTS)


def _rates(model: nn.Module) -> list[tuple[str, float]]:
    """Every dropout rate in `model`: torch dropout modules, float `*drop*` attributes, config fields."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            out.append((f"{name}.p", module.p))
        objs = [(name, module)] + ([(f"{name}.config", module.config)]
                                   if isinstance(getattr(module, "config", None), PretrainedConfig) else [])
        out += [(f"{n}.{k}", v) for n, obj in objs for k, v in vars(obj).items()
                if "drop" in k and isinstance(v, float)]
    return out


def test_every_dropout_rate_is_zero_after_setup(trainer):
    for model in (trainer.raw, trainer.ref, trainer.rm):
        rates = _rates(model)
        assert rates, "the test models must have dropout to remove"
        assert all(p == 0.0 for _, p in rates), [r for r in rates if r[1]]
    assert trainer.raw.value_model is not None and _rates(trainer.raw.value_model)


def test_update_forward_is_deterministic_in_train_mode(trainer):
    """The update step's forward (train mode) gives the same log-probs and values twice."""
    s, _, _ = trainer.rollout(PROMPTS[:4])
    ids, attn, start, _ = trainer.sequences(s)
    trainer.model.train()
    with torch.no_grad():
        a = trainer.model(ids, attn, start, 0.7)
        b = trainer.model(ids, attn, start, 0.7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_first_minibatch_ratio_is_exactly_one(trainer):
    """Old log-probs (before the update epochs) and the first minibatch's match: π_old = π_θ, at
    step 1 (weights fresh from loading) and step 2 (after a train-mode update)."""
    for step in (1, 2):
        row = trainer.train_step(step)
        assert row["ratio_first_minibatch"] == 1.0, (step, row["ratio_first_minibatch"])


def test_validation_objective_uses_the_adapted_beta(trainer):
    with torch.no_grad():  # make π differ from π_ref so the KL term matters
        for p in trainer.raw.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vals = {}
    for beta in (trainer.cfg.kl_coef, 2.0):
        trainer.loop.kl_coef = beta
        torch.manual_seed(1)
        vals[beta] = trainer.validate()
    low, high = vals[trainer.cfg.kl_coef], vals[2.0]
    assert high["val_rm_score"] == low["val_rm_score"] and abs(low["val_kl"]) > 1e-3  # the same samples
    expected = low["val_objective"] - (2.0 - trainer.cfg.kl_coef) * low["val_kl"]
    assert math.isclose(high["val_objective"], expected, rel_tol=1e-5, abs_tol=1e-6)
    assert high["val_kl_coef"] == 2.0
