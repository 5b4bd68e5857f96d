"""RLOO, GRPO and online DPO's pure parts against values computed by hand."""

import math

import pytest
import torch

from rlhflab.algorithms.group import (grpo_loss, group_normalised_advantages, leave_one_out_advantages,
                                      preference_pairs, rloo_loss, sequence_kl_penalised)


def test_leave_one_out_baseline_by_hand():
    # group 1: 1, 2, 6 → baselines (2+6)/2=4, (1+6)/2=3.5, (1+2)/2=1.5; group 2: 0, 0, 3 → 1.5, 1.5, 0
    adv = leave_one_out_advantages(torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0]), k=3)
    assert adv.tolist() == pytest.approx([-3.0, -1.5, 4.5, -1.5, -1.5, 3.0])
    # k/(k−1) × (R − mean R): the same thing
    g = torch.tensor([1.0, 2.0, 6.0])
    assert adv[:3].tolist() == pytest.approx((1.5 * (g - 3.0)).tolist())
    with pytest.raises(ValueError, match="at least 2"):
        leave_one_out_advantages(torch.tensor([1.0]), k=1)


def test_group_normalised_advantages_by_hand():
    # group 1: 1, 3 → mean 2, sample std √2; group 2: 5, 5 → all 0
    adv = group_normalised_advantages(torch.tensor([1.0, 3.0]), k=2, eps=0.0)
    s = math.sqrt(2)
    assert adv.tolist() == pytest.approx([-1 / s, 1 / s])
    adv_eps = group_normalised_advantages(torch.tensor([1.0, 3.0, 5.0, 5.0]), k=2)  # eps keeps ties finite
    assert adv_eps.tolist() == pytest.approx([-1 / (s + 1e-4), 1 / (s + 1e-4), 0.0, 0.0])
    unscaled = group_normalised_advantages(torch.tensor([0.0, 1.0, 2.0, 5.0, 6.0, 7.0]), k=3, scale=False)
    assert unscaled.tolist() == pytest.approx([-1.0, 0.0, 1.0, -1.0, 0.0, 1.0])


def test_sequence_kl_penalised():
    kl = torch.tensor([[0.1, 0.2, 0.0], [0.5, 0.0, 0.0]])  # padding already 0
    assert sequence_kl_penalised(torch.tensor([1.0, 2.0]), kl, 0.5).tolist() == pytest.approx([0.85, 1.75])


def test_rloo_loss_plain_is_reinforce():
    """At π_θ = π_old the loss is −mean A and its gradient −mean(A·∇Σ log π) (REINFORCE)."""
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = rloo_loss(logp, logp.detach(), adv, mask)
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([-1.0, -1.0, 0.5, 0.0])  # −A_i/B on real tokens only
    assert stats["ratio"].item() == pytest.approx(1.0) and stats["clipfrac"].item() == 0.0


def test_rloo_loss_clipped_by_hand():
    old = torch.zeros(2, 1)
    new = torch.tensor([[math.log(1.5)], [math.log(0.5)]])
    mask = torch.ones(2, 1)
    adv = torch.tensor([1.0, 1.0])
    # row 0: ν=1.5 > 1.2, A>0 → −min(1.5, 1.2) = −1.2 (clipped); row 1: ν=0.5, A>0 → −min(0.5, 0.8) = −0.5
    loss, stats = rloo_loss(new, old, adv, mask, clip_range=0.2)
    assert loss.item() == pytest.approx((-1.2 - 0.5) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    plain, _ = rloo_loss(new, old, adv, mask)
    assert plain.item() == pytest.approx((-1.5 - 0.5) / 2)


def test_grpo_loss_sequence_and_token_averaging_by_hand():
    # row 0: two tokens, ν = (1.5, 1.0), A = 1; row 1: one token (+1 padding), ν = 1, A = −2
    old = torch.zeros(2, 2)
    new = torch.tensor([[math.log(1.5), 0.0], [0.0, 0.0]])
    ref = new.clone()  # KL 0 everywhere: only the surrogate
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    # per-token ℓ: row 0 (−1.2, −1.0), row 1 (+2.0)
    seq, stats = grpo_loss(new, old, ref, adv, mask, clip_range=0.2, beta=0.04, averaging="sequence")
    assert seq.item() == pytest.approx(((-1.2 - 1.0) / 2 + 2.0) / 2)
    tok, _ = grpo_loss(new, old, ref, adv, mask, clip_range=0.2, beta=0.04, averaging="token")
    assert tok.item() == pytest.approx((-1.2 - 1.0 + 2.0) / 3)
    assert stats["clipfrac"].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="averaging"):
        grpo_loss(new, old, ref, adv, mask, averaging="mean")


def test_grpo_loss_k3_penalty_by_hand():
    # A = 0: only β·k3. log π = 0, log π_ref = log 0.5 → ρ = 0.5: k3 = (0.5 − 1) − log 0.5 = 0.19315
    lp = torch.zeros(1, 1, requires_grad=True)
    ref = torch.full((1, 1), math.log(0.5))
    loss, stats = grpo_loss(lp, lp.detach(), ref, torch.zeros(1), torch.ones(1, 1), beta=0.1)
    assert loss.item() == pytest.approx(0.1 * (-0.5 + math.log(2)))
    assert stats["kl_ref"].item() == pytest.approx(-0.5 + math.log(2))
    loss.backward()  # d/dlogπ [β(ρ − 1 − log ρ)], ρ = π_ref/π: β(−ρ + 1) = 0.1 × 0.5
    assert lp.grad.item() == pytest.approx(0.05)


def test_preference_pairs_pick_the_higher_score_and_mark_ties():
    chosen, rejected, weight = preference_pairs(torch.tensor([0.2, 0.9, 1.0, -1.0, 0.3, 0.3]))
    assert chosen.tolist() == [1, 2, 4] and rejected.tolist() == [0, 3, 5]
    assert weight.tolist() == [1.0, 1.0, 0.0]
