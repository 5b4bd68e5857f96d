"""Encoding each prompt once for all its completions gives the whole forward's numbers and gradients."""

import torch

from helpers import tiny_model_and_tokenizer
from rlhflab.data.tokenize import collate, encode_completion
from rlhflab.shared_prompt import group_by_prompt, in_caller_order, rows_of, worth_sharing

PROMPTS = ["SUBREDDIT: r/work\nPOST: my boss is late", "ARTICLE: the city council approved", "SUBREDDIT: r/pets"]
COMPLETIONS = ["late again", "the city", "my dog", "a cat ran off", "budget", "x y"]


def _examples(tok):
    return [encode_completion(tok, PROMPTS[i % 3], " " + c, 64) for i, c in enumerate(COMPLETIONS)]


def test_grouping_by_prompt_and_back_to_the_callers_order():
    _, tok = tiny_model_and_tokenizer()
    ex = _examples(tok)
    groups = group_by_prompt(ex)
    assert len(groups) == 3 and rows_of(groups) == [0, 3, 1, 4, 2, 5] and worth_sharing(groups)
    assert all(list(p) + m.ids == ex[m.row].input_ids for p, ms in groups for m in ms)
    assert in_caller_order(torch.tensor([0.0, 3.0, 1.0, 4.0, 2.0, 5.0]), groups).tolist() == [0, 1, 2, 3, 4, 5]
    assert not worth_sharing(group_by_prompt(ex[:3]))  # three prompts, one completion each


def test_shared_prompt_log_probs_and_gradients_equal_the_whole_forwards():
    from rlhflab.algorithms.losses import sequence_logprob_sum
    from rlhflab.generation import completion_logprob_sums

    model, tok = tiny_model_and_tokenizer()
    ex = _examples(tok)
    b = collate(ex, tok.pad_token_id)
    whole = sequence_logprob_sum(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"])
    whole.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    shared = completion_logprob_sums(model, ex, "cpu")
    shared.sum().backward()
    assert torch.allclose(shared, whole, atol=1e-4), (shared, whole)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], atol=1e-5), n


def test_shared_prompt_rewards_and_gradients_equal_the_whole_forwards(tmp_path):
    from rlhflab.evaluation.reward_model import example_rewards, reward_forward
    from rlhflab.models import load_reward_model, save_model

    lm, tok = tiny_model_and_tokenizer()
    save_model(lm, tok, tmp_path)
    rm = load_reward_model(tmp_path, tok)
    torch.nn.init.normal_(rm.score.weight)
    ex = _examples(tok)
    b = collate(ex, tok.pad_token_id)
    whole = reward_forward(rm, b["input_ids"], b["attention_mask"])
    (whole * torch.arange(6.0)).sum().backward()
    grads = {n: p.grad.clone() for n, p in rm.named_parameters() if p.grad is not None}
    rm.zero_grad()
    shared = example_rewards(rm, ex, tok.pad_token_id, "cpu")
    (shared * torch.arange(6.0)).sum().backward()
    assert torch.allclose(shared, whole, atol=1e-5)
    for n, p in rm.named_parameters():
        if n in grads:
            assert torch.allclose(p.grad, grads[n], atol=1e-5), n
