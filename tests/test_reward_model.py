import math

import pytest
import torch

from rlhflab.algorithms.losses import bradley_terry_loss
from rlhflab.evaluation.reward_model import pairwise_accuracy, rewardbench_score
from rlhflab.stats import standard_error
from rlhflab.sampling import best_of_n_curve


def test_bradley_terry_loss_hand_computed():
    rc, rr = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log σ(1) = log(1 + e^-1); -log σ(0) = log 2
    expected = [math.log(1 + math.exp(-1)), math.log(2)]
    assert bradley_terry_loss(rc, rr, reduction="none").tolist() == pytest.approx(expected, abs=1e-6)
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(sum(expected) / 2, abs=1e-6)
    # a margin of 1 turns the first pair's gap into 0
    assert bradley_terry_loss(rc, rr, margin=1.0, reduction="none")[0].item() == pytest.approx(math.log(2), abs=1e-6)


def test_bradley_terry_gradient_pushes_chosen_up():
    rc = torch.tensor([0.0], requires_grad=True)
    rr = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(rc, rr).backward()
    assert rc.grad.item() == pytest.approx(-0.5) and rr.grad.item() == pytest.approx(0.5)


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([2.0, 1.0, 0.0, 3.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])) == 0.625


def test_rewardbench_score_weights_prior_half():
    assert rewardbench_score({"chat": 1.0, "safety": 0.5, "prior": 0.0}, {"prior"}) == pytest.approx(1.5 / 2.5)
    assert rewardbench_score({"a": 0.8, "b": 0.6}) == pytest.approx(0.7)
    with pytest.raises(ValueError):
        rewardbench_score({"a": 1.0}, {"b"})


def test_standard_error():
    assert standard_error([1.0, 3.0]) == pytest.approx(1.0)  # s = √2, √2/√2


def test_best_of_n_curve_over_disjoint_blocks():
    rm = torch.tensor([[0.1, 0.9, 0.5, 0.2]])
    gold = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    curve = best_of_n_curve(rm, gold, [1, 2, 4])
    assert curve[1]["mean"] == pytest.approx(2.5)  # mean of all samples
    assert curve[2]["mean"] == pytest.approx((2.0 + 3.0) / 2)  # picks 0.9 in [0,1], 0.5 in [2,3]
    assert curve[4]["mean"] == pytest.approx(2.0) and curve[4]["blocks"] == 1
    assert curve[4]["rm_mean"] == pytest.approx(0.9)
    with pytest.raises(ValueError):
        best_of_n_curve(rm, gold, [8])


def test_scoring_with_shared_prompts_equals_scoring_each_pair_whole(tmp_path):
    """Completions of one prompt share its encoding (pools, pairs); rewards equal the whole
    prompt ⧺ completion forward's, in the caller's order, with batches splitting groups anywhere."""
    from helpers import tiny_model_and_tokenizer

    from rlhflab.data.tokenize import collate, encode_completion, leading_space
    from rlhflab.evaluation.reward_model import reward_forward, score, score_pairs
    from rlhflab.models import load_reward_model, save_model

    lm, tok = tiny_model_and_tokenizer()
    save_model(lm, tok, tmp_path)
    rm = load_reward_model(tmp_path, tok).eval()
    torch.nn.init.normal_(rm.score.weight)
    prompts = ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council approved a budget", "SUBREDDIT: r/pets"]
    rows = [(prompts[i % 3], c) for i, c in enumerate(["late", "the city", "my dog", "a cat ran", "budget", "x",
                                                         "boss is late today", "approved", "pets"])]
    ex = [encode_completion(tok, p, leading_space(p, c), 512) for p, c in rows]
    b = collate(ex, tok.pad_token_id)
    with torch.no_grad():
        whole = reward_forward(rm, b["input_ids"], b["attention_mask"])
    for batch_size in (1, 4, 64):
        got = score(rm, tok, [p for p, _ in rows], [c for _, c in rows], batch_size=batch_size)
        assert torch.allclose(got, whole, atol=1e-5), batch_size
    r1, r2 = score_pairs(rm, tok, prompts, ["late", "the city", "my dog"], ["a cat ran", "budget", "x"])
    assert torch.allclose(torch.cat([r1, r2]), whole[:6], atol=1e-5)

