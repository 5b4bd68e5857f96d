import copy

import pytest
import torch
from accelerate import Accelerator

from rlhflab.config import Optim
from rlhflab.data.tokenize import encode_completion
from rlhflab.models import freeze_bottom
from rlhflab.training import batch_order, train_lm
from helpers import TEXTS, tiny_model_and_tokenizer


def _examples(tok):
    return [encode_completion(tok, t.split("TL;DR:")[0] + "TL;DR:", " " + t.split(" ")[-1], 64)
            for t in TEXTS[:8]]


def _one_step(batch, micro):
    model, tok = tiny_model_and_tokenizer(seed=3)
    ex = _examples(tok)
    optim = Optim(lr=1e-2, batch_size=batch, micro_batch_size=micro, max_steps=1, warmup_ratio=0.0,
                  schedule="constant", max_grad_norm=None,
                  adam_epsilon=1.0)  # a large ε makes Adam's first step linear in the gradient
    train_lm(model, ex, ex[:2], optim, accelerator=Accelerator(), pad_id=tok.pad_token_id, seed=0,
             eval_every=100, log=lambda s, m: None)
    return model


def test_accumulation_matches_one_big_batch():
    """8 × 1 micro-batches give the same update as one batch of 8 (token-normalised loss)."""
    a = _one_step(8, 8).state_dict()
    b = _one_step(8, 1).state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


@pytest.mark.slow
def test_training_lowers_val_loss_and_keeps_best():
    model, tok = tiny_model_and_tokenizer(seed=1)
    ex = _examples(tok)
    rows = []
    out = train_lm(model, ex, ex, Optim(lr=1e-2, batch_size=4, micro_batch_size=2, epochs=20, warmup_ratio=0.1),
                   accelerator=Accelerator(), pad_id=tok.pad_token_id, seed=0, eval_every=5,
                   log=lambda s, m: rows.append((s, m)))
    assert out["best_val_loss"] < 0.5 * out["initial_val_loss"]
    vals = [m["val_loss"] for _, m in rows if "val_loss" in m]
    assert out["best_val_loss"] == min(vals)
    assert all("train_loss" in m for s, m in rows if s > 0)


def test_batch_order_covers_every_example_each_epoch():
    batches = batch_order(10, 5, 4, seed=0)
    assert sorted(sum(batches[:2], [])) == list(range(10)) == sorted(sum(batches[2:], []))
    assert batches == batch_order(10, 5, 4, seed=0)


def test_freeze_bottom_80_percent():
    model, _ = tiny_model_and_tokenizer(layers=5)
    counts = freeze_bottom(model, 0.8)
    layers = model.model.layers
    assert [all(not p.requires_grad for p in l.parameters()) for l in layers] == [True] * 4 + [False]
    assert not model.get_input_embeddings().weight.requires_grad
    assert 0 < counts["trainable_params"] < counts["total_params"]
    before = copy.deepcopy(model.state_dict())
    ex = _examples(_[1] if False else tiny_model_and_tokenizer(layers=5)[1])
    train_lm(model, ex, ex[:2], Optim(lr=1e-2, batch_size=4, micro_batch_size=4, max_steps=2),
             accelerator=Accelerator(), pad_id=0, seed=0, eval_every=100, log=lambda s, m: None)
    after = model.state_dict()
    assert torch.equal(before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(before["model.layers.4.mlp.up_proj.weight"], after["model.layers.4.mlp.up_proj.weight"])


def test_freezing_everything_is_a_clear_error():
    model, tok = tiny_model_and_tokenizer()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_lm(model, _examples(tok), _examples(tok), Optim(batch_size=4, micro_batch_size=4),
                 accelerator=Accelerator(), pad_id=0, seed=0, eval_every=1, log=lambda s, m: None)


def test_a_nan_loss_stops_training_naming_step_batch_and_last_finite_values(monkeypatch):
    import math as _math

    import torch as _torch

    from rlhflab import training
    from rlhflab.training import NonFiniteError

    model, tok = tiny_model_and_tokenizer()
    ex = [encode_completion(tok, t[:60], " end", 64) for t in TEXTS[:16]]
    real = training.lm_token_loss_sum
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += 1
        s, n = real(logits, labels)
        return (s * _math.nan if calls["n"] == 5 else s), n  # call 1 is the validation pass: step 2

    monkeypatch.setattr(training, "lm_token_loss_sum", poisoned)
    optim = Optim(lr=1e-3, batch_size=4, micro_batch_size=2, epochs=1.0, warmup_ratio=0.0)
    with pytest.raises(NonFiniteError, match=r"sft: step 2: train_loss = nan on batch \[\d+, \d+, \d+, \d+\]; "
                                             r"last finite values: \{'step': 1, 'train_loss': "):
        training.train_lm(model, ex, ex[:2], optim, accelerator=Accelerator(), pad_id=tok.pad_token_id, seed=0,
                          eval_every=100, log=lambda s, r: None, name="sft")
    assert _torch.isfinite(next(model.parameters())).all()  # stopped before stepping on a NaN gradient


def test_best_weights_on_disk_keep_no_copy_in_memory_and_resume_exactly(tmp_path):
    import torch

    from rlhflab.training import BestWeights

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    first = {k: v.clone() for k, v in net.state_dict().items()}
    best = BestWeights(net, 0.5, on_disk=True, directory=tmp_path)
    assert best.weights is None and best.file.exists()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not best.offer(1, 0.4) and best.offer(2, 0.9)  # higher is better
    second = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.mul_(0.0)
    state = best.state_dict()  # what a checkpoint stores: the weights, read back from the file
    assert state["step"] == 2 and torch.equal(state["weights"]["weight"], second["weight"])
    best.restore()
    assert torch.equal(net.weight, second["weight"]) and not torch.equal(net.weight, first["weight"])
    other = BestWeights(torch.nn.Linear(4, 3), None, on_disk=True)  # a private temporary folder
    other.load_state_dict(state)
    other.restore()
    assert torch.equal(other.module.weight, second["weight"]) and other.step == 2
    best.discard()
    other.discard()
    assert not best.file.exists() and tmp_path.exists() and not other.own_dir.exists()
