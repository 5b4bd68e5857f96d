"""DPO-family losses by hand, log-probs against an independent computation, and the stage end to end."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_model_and_tokenizer
from rlhflab.algorithms.losses import dpo_loss, sequence_logprob_sum
from rlhflab.data.records import PreferenceRecord
from rlhflab.stages.dpo import encode_pairs, implicit_accuracy, pair_logprobs


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_dpo_losses_by_hand():
    pc, pr = torch.tensor([-3.0]), torch.tensor([-5.0])
    rc, rr = torch.tensor([-4.0]), torch.tensor([-4.0])
    # h = (−3 + 4) − (−5 + 4) = 2
    losses, r_c, r_r = dpo_loss(pc, pr, rc, rr, beta=0.1)
    assert math.isclose(losses.item(), -math.log(_sig(0.2)), rel_tol=1e-6)
    assert math.isclose(r_c.item(), 0.1, rel_tol=1e-6) and math.isclose(r_r.item(), -0.1, rel_tol=1e-6)
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, kind="cdpo", label_smoothing=0.2)
    assert math.isclose(losses.item(), -0.8 * math.log(_sig(0.2)) - 0.2 * math.log(_sig(-0.2)), rel_tol=1e-6)
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, kind="ipo")
    assert math.isclose(losses.item(), (2 - 5) ** 2, rel_tol=1e-6)  # (h − 1/(2β))² = (2 − 5)²


def test_implicit_accuracy_counts_ties_half():
    ref = torch.zeros(3, 2)
    pol = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert implicit_accuracy(pol, ref) == 0.5  # one right, one wrong, one tie
    noise = torch.tensor([[3e-6, -5e-6], [-2e-6, 4e-6], [6e-6, 1e-6]])
    assert implicit_accuracy(ref + noise, ref) == 0.5  # rounding between two passes of the same weights


def test_sequence_logprobs_match_token_by_token_forward():
    model, tok = tiny_model_and_tokenizer()
    model.eval()
    recs = [PreferenceRecord(prompt="SUBREDDIT: r/work\nPOST: my boss cut my hours.\nTL;DR:",
                             chosen="my boss cut my hours", rejected="the dog"),
            PreferenceRecord(prompt="SUBREDDIT: r/pets\nPOST: my dog chewed the sofa. I am furious.\nTL;DR:",
                             chosen="my dog chewed the sofa, i am furious", rejected="sofa")]
    pairs = encode_pairs(tok, recs, 128)
    with torch.no_grad():
        batched_c, batched_r = pair_logprobs(model, pairs, "cpu")
        for (c, r), bc, br in zip(pairs, batched_c, batched_r):
            for ex, got in ((c, bc), (r, br)):
                # independent: one unpadded sequence, sum log p of each labelled token
                ids = torch.tensor([ex.input_ids])
                logp = F.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
                want = sum(logp[t - 1, ex.input_ids[t]].item() for t in range(1, len(ex.input_ids))
                           if ex.labels[t] != -100)
                assert math.isclose(got.item(), want, rel_tol=1e-4, abs_tol=1e-4)


def test_dpo_loss_is_ln2_when_the_policy_is_the_reference():
    """Invariant: with π = π_ref every h = 0, so DPO and cDPO give ln 2 per pair, IPO (1/(2β))²."""
    model, tok = tiny_model_and_tokenizer()
    recs = [PreferenceRecord(prompt="SUBREDDIT: r/work\nPOST: my boss cut my hours.\nTL;DR:",
                             chosen="my boss cut my hours", rejected="the dog")] * 3
    with torch.no_grad():
        pc, pr = pair_logprobs(model, encode_pairs(tok, recs, 128), "cpu")
    for kind, eps, want in (("dpo", 0.0, math.log(2)), ("cdpo", 0.1, math.log(2)), ("ipo", 0.0, (1 / 0.2) ** 2)):
        losses, rc, rr = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=0.1, kind=kind, label_smoothing=eps)
        assert torch.allclose(losses, torch.full_like(losses, want), rtol=1e-6), kind
        assert torch.equal(rc, torch.zeros_like(rc)) and torch.equal(rr, torch.zeros_like(rr))


def test_sequence_logprob_sum_ignores_unlabelled_positions():
    logits = torch.zeros(1, 3, 4)  # uniform: every token has log p = −log 4
    labels = torch.tensor([[-100, 2, 3]])
    assert math.isclose(sequence_logprob_sum(logits, labels).item(), -2 * math.log(4), rel_tol=1e-6)


@pytest.mark.slow
def test_dpo_stage_raises_preference_accuracy_and_gold(tiny_run):
    cfg, results = tiny_run
    m = results["dpo"].metrics
    assert m["best_val_accuracy"] > m["initial_val_accuracy"] == 0.5
    assert m["gold_reward_dpo"] > m["gold_reward_sft"]
    rows = [json.loads(l) for l in (cfg.run_dir / "dpo" / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "reward_accuracy", "reward_margin", "logp_chosen", "logp_rejected", "lr"):
        assert key in rows[-1]
