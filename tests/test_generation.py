import torch

from rlhflab.data.tokenize import collate, encode_completion
from rlhflab.generation import sample, token_logprobs
from helpers import tiny_model_and_tokenizer


def test_sample_shapes_masks_and_seeded_reproducibility():
    model, tok = tiny_model_and_tokenizer()
    prompts = ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council approved a new budget"]
    torch.manual_seed(0)
    a = sample(model, tok, prompts, temperature=1.0, max_new_tokens=12)
    torch.manual_seed(0)
    b = sample(model, tok, prompts, temperature=1.0, max_new_tokens=12)
    assert torch.equal(a.response_ids, b.response_ids) and a.texts == b.texts
    assert a.response_ids.shape == a.logprobs.shape == a.response_mask.shape
    assert a.response_ids.shape[1] <= 12
    for i in range(2):
        n = int(a.response_mask[i].sum())
        ids = a.response_ids[i, :n].tolist()
        if a.finished[i]:
            assert ids[-1] == tok.eos_token_id and tok.eos_token_id not in ids[:-1]
        else:
            assert n == a.response_ids.shape[1]
    assert (a.logprobs[a.response_mask == 0] == 0).all()
    assert (a.logprobs[a.response_mask == 1] < 0).all()


def test_sampling_logprobs_match_a_forward_pass():
    model, tok = tiny_model_and_tokenizer()
    prompts = ["SUBREDDIT: r/pets\nPOST: my dog", "ARTICLE: the city"]
    torch.manual_seed(1)
    s = sample(model, tok, prompts, temperature=0.7, max_new_tokens=10)
    ids = torch.cat([s.prompt_ids, s.response_ids], dim=1)
    mask = torch.cat([s.prompt_mask, s.response_mask], dim=1)
    with torch.no_grad():
        lp = token_logprobs(model, ids, mask, temperature=0.7)[:, s.prompt_ids.shape[1] - 1:]
    assert torch.allclose(lp * s.response_mask, s.logprobs, atol=1e-4)


def test_eos_stops_generation_when_model_wants_it():
    model, tok = tiny_model_and_tokenizer()
    # Make EOS overwhelmingly likely: every sample ends after one token.
    with torch.no_grad():
        model.lm_head.weight.zero_() if not model.config.tie_word_embeddings else None
        bias = torch.zeros(len(tok))
        bias[tok.eos_token_id] = 100.0
    model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    s = sample(model, tok, ["ARTICLE: the city", "SUBREDDIT: r/work"], max_new_tokens=8)
    assert s.finished.all() and s.response_mask.sum(1).tolist() == [1, 1] and s.texts == ["", ""]


def test_encode_completion_truncates_prompt_not_completion():
    _, tok = tiny_model_and_tokenizer()
    ex = encode_completion(tok, "SUBREDDIT: r/work\nPOST: my boss cut my hours. " * 5, " my boss", 16)
    assert len(ex.input_ids) == 16 and ex.input_ids[0] == tok.bos_token_id
    completion = tok(" my boss", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex.input_ids[-len(completion):] == completion
    assert ex.labels[-len(completion):] == completion and set(ex.labels[:-len(completion)]) == {-100}
    b = collate([ex, encode_completion(tok, "ARTICLE:", " the city", 16)], tok.pad_token_id)
    assert b["input_ids"].shape == (2, 16) and b["attention_mask"][1].sum() < 16


def _generate_reference(model, tok, prompts, temperature, top_p, max_new_tokens):
    """What transformers' generate samples from the same RNG state, as rlhflab's masks shape it."""
    from rlhflab.generation import encode_prompts

    ids, mask = encode_prompts(tok, prompts)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_p=top_p,
                         top_k=None, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, output_logits=True, return_dict_in_generate=True)
    response = out.sequences[:, ids.shape[1]:]
    logits = torch.stack(out.logits, dim=1).float() / temperature
    logp = torch.gather(torch.log_softmax(logits, -1), 2, response.unsqueeze(-1)).squeeze(-1)
    return response, logp


def test_lean_decode_draws_exactly_what_generate_draws():
    """Same seed, same tokens as model.generate (temperature and top-p), same log-probs."""
    model, tok = tiny_model_and_tokenizer()
    model.eval()
    prompts = ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council", "SUBREDDIT: r/pets\nPOST: a"] * 3
    for temperature, top_p in ((1.0, 1.0), (0.7, 1.0), (0.7, 0.9)):
        torch.manual_seed(11)
        ref, ref_lp = _generate_reference(model, tok, prompts, temperature, top_p, 16)
        torch.manual_seed(11)
        s = sample(model, tok, prompts, temperature=temperature, top_p=top_p, max_new_tokens=16)
        n = s.response_ids.shape[1]
        assert torch.equal(s.response_ids * s.response_mask, ref[:, :n] * s.response_mask), (temperature, top_p)
        assert torch.allclose(s.logprobs, ref_lp[:, :n] * s.response_mask, atol=1e-5)
        # generate keeps padding rows after every row finished; nothing real is lost by stopping
        assert (ref[:, n:] == tok.pad_token_id).all() or n == 16


def test_top_p_filter_keeps_the_smallest_nucleus():
    from rlhflab.generation import top_p_filter

    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(scores, 0.8))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 reaches 0.8
    assert torch.isfinite(top_p_filter(scores, 0.01)).tolist() == [[True, False, False, False]]


def test_preallocated_cache_gives_the_dynamic_caches_logits_bit_for_bit():
    from transformers import DynamicCache

    from rlhflab.generation import encode_prompts, preallocated_cache
    from rlhflab.models import position_ids

    model, tok = tiny_model_and_tokenizer()
    model.eval()
    ids, mask = encode_prompts(tok, ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council"])
    runs = []
    for cache in (DynamicCache(), preallocated_cache(ids.shape[1] + 6)):
        m, pos, got = mask, position_ids(mask)[:, -1:] + 1, []
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=m, position_ids=position_ids(m), past_key_values=cache)
            for step in range(6):
                got.append(out.logits[:, -1])
                m = torch.cat([m, m.new_ones(2, 1)], dim=1)
                out = model(input_ids=torch.full((2, 1), 5 + step), attention_mask=m, position_ids=pos,
                            past_key_values=cache)
                pos = pos + 1
        runs.append(torch.stack(got))
    assert torch.equal(runs[0], runs[1])


def test_k_samples_per_prompt_share_the_prompt_and_draw_what_repeated_prompts_draw():
    """k samples of each prompt (the prompt encoded once, its cache shared) against the prompts
    repeated k times: same seed, same tokens and log-probs, input-major."""
    model, tok = tiny_model_and_tokenizer()
    prompts = ["SUBREDDIT: r/work\nPOST: my boss", "ARTICLE: the city council approved", "SUBREDDIT: r/pets"]
    torch.manual_seed(3)
    shared = sample(model, tok, prompts, k=4, temperature=1.0, max_new_tokens=12)
    torch.manual_seed(3)
    repeated = sample(model, tok, [p for p in prompts for _ in range(4)], temperature=1.0, max_new_tokens=12)
    assert torch.equal(shared.response_ids, repeated.response_ids) and shared.texts == repeated.texts
    assert torch.allclose(shared.logprobs, repeated.logprobs, atol=1e-5)
    assert torch.equal(shared.prompt_ids, repeated.prompt_ids)
    assert len(set(shared.texts[:4])) > 1  # the samples of one prompt differ


def test_labelled_logits_give_the_full_logits_loss_and_gradient():
    from rlhflab.algorithms.losses import lm_token_loss_sum
    from rlhflab.models import labelled_logits

    model, tok = tiny_model_and_tokenizer()
    b = collate([encode_completion(tok, "SUBREDDIT: r/work\nPOST: my boss is", " late", 64),
                 encode_completion(tok, "ARTICLE: the", " city council approved it", 64)], tok.pad_token_id)
    full = lm_token_loss_sum(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits, b["labels"])
    full[0].backward()
    g_full = model.lm_head.weight.grad.clone()
    model.zero_grad()
    logits, labels = labelled_logits(model, b["input_ids"], b["attention_mask"], b["labels"])
    assert logits.shape[1] < b["input_ids"].shape[1]  # the prompts' positions were not unembedded
    cut = lm_token_loss_sum(logits, labels)
    cut[0].backward()
    assert torch.allclose(cut[0], full[0], atol=1e-5) and cut[1] == full[1]
    assert torch.allclose(model.lm_head.weight.grad, g_full, atol=1e-6)
