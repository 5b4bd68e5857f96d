"""PPO components against hand-computed values."""

import math

import torch

from rlhflab.algorithms.ppo import (AdaptiveKLController, chunks, entropy_from_logits, eos_trick, gae,
                                   kl_objective, kl_per_token, policy_loss, token_rewards, value_loss, whiten)


def test_token_rewards_put_score_on_last_valid_token():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = token_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, beta=0.1)
    # kl = logp − ref: [0.5, −1, 0], [1, 0, (masked)]
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 2.0], [-0.1, -1.0, 0.0]]))


def test_k3_estimator_and_clamp():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    # ρ = e^{−1}: (ρ − 1) − log ρ = e^{−1} − 1 + 1 = e^{−1}
    assert math.isclose(kl_per_token(logp, ref, "k3").item(), math.exp(-1), rel_tol=1e-6)
    _, kl = token_rewards(torch.tensor([0.0]), ref, logp, torch.ones(1, 1), 0.1, "k1", kl_clamp_min=0.0)
    assert kl.item() == 0.0  # k1 = −1 clamped to 0


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.4]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # δ2 = 1 − 0.4 = 0.6; δ1 = 0 + 0.4 − 0.2 = 0.2; δ0 = 0 + 0.2 − 0.5 = −0.3
    # A2 = 0.6; A1 = 0.2 + 0.5·0.6 = 0.5; A0 = −0.3 + 0.5·0.5 = −0.05
    assert torch.allclose(adv, torch.tensor([[-0.05, 0.5, 0.6]]))
    assert torch.allclose(ret, torch.tensor([[0.45, 0.7, 1.0]]))


def test_gae_ignores_padding_and_lambda_one_gives_monte_carlo_returns():
    rewards = torch.tensor([[0.1, 2.0, 9.0]])
    values = torch.tensor([[0.3, 0.7, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[2.1, 2.0, 0.0]]))  # G_t = Σ future rewards
    assert torch.allclose(adv, torch.tensor([[1.8, 1.3, 0.0]]))


def test_whiten_over_valid_tokens():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    # mean 2, unbiased var 2 → ±1/√2
    assert torch.allclose(w, torch.tensor([[-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0]]), atol=1e-6)


def test_policy_loss_ratio_one_then_clipped():
    logp = torch.tensor([[-1.0, -2.0]])
    adv = torch.tensor([[1.0, -2.0]])
    mask = torch.ones(1, 2)
    loss, stats = policy_loss(logp, logp, adv, mask, 0.2)
    assert math.isclose(loss.item(), -(1.0 - 2.0) / 2, rel_tol=1e-6)  # −mean(A) at ν = 1
    assert stats["clipfrac"].item() == 0.0 and abs(stats["approx_kl"].item()) < 1e-7
    new = logp + torch.log(torch.tensor([[1.5, 1.5]]))
    loss, stats = policy_loss(new, logp, adv, mask, 0.2)
    # token 0: A>0, ν=1.5 → clipped at 1.2: −1.2; token 1: A<0, ν=1.5 → max(3, 2.4) = 3
    assert math.isclose(loss.item(), (-1.2 + 3.0) / 2, rel_tol=1e-6)
    assert stats["clipfrac"].item() == 0.5
    assert math.isclose(stats["approx_kl"].item(), 0.5 - math.log(1.5), rel_tol=1e-5)


def test_value_loss_clipping():
    old = torch.tensor([[0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1]])
    ret = torch.tensor([[1.0, 1.0]])
    loss, stats = value_loss(new, old, ret, torch.ones(1, 2), clip_range=0.2)
    # token 0: max((1−1)², (0.2−1)²) = 0.64; token 1: max(0.81, 0.81) = 0.81
    assert math.isclose(loss.item(), 0.5 * (0.64 + 0.81) / 2, rel_tol=1e-6)
    assert stats["vf_clipfrac"].item() == 0.5


def test_eos_trick_penalises_only_truncated():
    out = eos_trick(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True]), -10.0)
    assert out.tolist() == [1.0, -10.0, 3.0]
    assert eos_trick(torch.tensor([1.0]), torch.tensor([False]), None).tolist() == [1.0]


def test_entropy_of_uniform_and_adaptive_kl():
    assert math.isclose(entropy_from_logits(torch.zeros(4)).item(), math.log(4), rel_tol=1e-6)
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(12.0, 10)  # error clipped to +0.2 → β·(1 + 0.02)
    assert math.isclose(ctl.value, 0.102, rel_tol=1e-9)


def test_selection_score_uses_the_adapted_beta():
    scores, kl = torch.tensor([1.0, 2.0]), torch.tensor([4.0, 6.0])
    assert math.isclose(kl_objective(scores, kl, 0.1), 1.5 - 0.1 * 5.0, rel_tol=1e-6)
    ctl = AdaptiveKLController(0.1, target=1.0, horizon=10)
    ctl.update(5.0, 10)  # KL above target: β grows to 0.1·1.2 = 0.12
    # validation scores the policy with the β in force, so a larger adapted β lowers the score
    assert math.isclose(kl_objective(scores, kl, ctl.value), 1.5 - 0.12 * 5.0, rel_tol=1e-6)
    assert kl_objective(torch.tensor([1.0]), torch.tensor([-2.0]), 0.5) == 2.0  # k1 sums can be negative


def test_chunks_cover_the_range():
    assert chunks(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)] and chunks(0, 3) == []
