import math

import torch

from rlhflab.algorithms.losses import IGNORE, lm_token_loss_sum, sft_loss


def test_sft_loss_hand_computed():
    # vocab 2, sequence of 3 positions; position t predicts labels[t+1]
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 5.0]]])
    labels = torch.tensor([[IGNORE, IGNORE, 0]])  # only the last token is a completion token
    # position 1 predicts token 0 with p = 3/4
    assert abs(sft_loss(logits, labels).item() + math.log(0.75)) < 1e-6
    labels = torch.tensor([[IGNORE, 1, 0]])
    s, n = lm_token_loss_sum(logits, labels)
    # position 0: p(1) = 1/2; position 1: p(0) = 3/4
    assert n.item() == 2
    assert abs(s.item() - (math.log(2) - math.log(0.75))) < 1e-6
    assert abs(sft_loss(logits, labels).item() - (math.log(2) - math.log(0.75)) / 2) < 1e-6


def test_prompt_tokens_carry_no_gradient():
    logits = torch.randn(1, 4, 5, requires_grad=True)
    labels = torch.tensor([[IGNORE, IGNORE, 2, 3]])
    sft_loss(logits, labels).backward()
    assert logits.grad[0, 0].abs().sum() == 0  # predicts a prompt token
    assert logits.grad[0, 1].abs().sum() > 0 and logits.grad[0, 2].abs().sum() > 0
    assert logits.grad[0, 3].abs().sum() == 0  # nothing after the last token
