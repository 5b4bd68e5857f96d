"""Judges that cannot go stale: the judgement cache keys a reward-model judge by what it is (its
artefact id, or a content hash), not where it lies; and reward models score at the length they were
trained at, not a fixed 512 tokens."""

import json
from types import SimpleNamespace

import torch

from rlhflab.evaluation.annotations import AnnotationCache, judge_pairs
from rlhflab.judging import make_judge, model_identity

PROMPTS = ["SUBREDDIT: r/work\nPOST: my boss cut my hours", "SUBREDDIT: r/pets\nPOST: my dog chewed the sofa",
           "ARTICLE: the city council approved a new budget"]
FIRST = [" my boss cut my hours", " my dog", " the city council"]
SECOND = [" I feel anxious", " the sofa chewed", " residents were pleased"]


def _save_rm(folder, seed: int, artefact_id: str | None, max_length: int | None = None):
    from helpers import tiny_model_and_tokenizer

    from rlhflab.evaluation.reward_model import record_scoring_length
    from rlhflab.models import load_reward_model, save_model

    lm, tok = tiny_model_and_tokenizer(seed)
    save_model(lm, tok, folder)
    rm = load_reward_model(folder, tok)
    torch.nn.init.normal_(rm.score.weight)
    if max_length is not None:
        record_scoring_length(rm, folder, max_length)
    save_model(rm, tok, folder)
    if artefact_id is not None:
        (folder / "manifest.json").write_text(json.dumps({"artefact_id": artefact_id}))


def _ctx(run_dir):
    cfg = SimpleNamespace(eval=SimpleNamespace(judge="rm"), model=SimpleNamespace(dtype="float32"))
    return SimpleNamespace(cfg=cfg, input=lambda stage: run_dir / stage)


class Counting:
    def __init__(self, judge):
        self.judge, self.calls = judge, 0

    def identity(self):
        return self.judge.identity()

    def __call__(self, p, a, b):
        self.calls += len(p)
        return self.judge(p, a, b)


def _judge(run_dir, cache_path):
    judge = Counting(make_judge(_ctx(run_dir), None))
    prefs = [j.preference for j in judge_pairs(judge, PROMPTS, FIRST, SECOND, cache=AnnotationCache(cache_path))]
    return prefs, judge.calls


def test_a_retrained_judge_rm_is_judged_anew_and_an_unchanged_one_reuses_its_judgements(tmp_path):
    run = tmp_path / "run"
    _save_rm(run / "rm", seed=0, artefact_id="first")
    cache = tmp_path / "judge-cache.jsonl"
    first, calls = _judge(run, cache)
    assert calls == 3
    again, calls = _judge(run, cache)
    assert calls == 0 and again == first  # the same RM: every judgement reused
    _save_rm(run / "rm", seed=1, artefact_id="second")  # retrained into the same folder
    retrained, calls = _judge(run, cache)
    assert calls == 3  # nothing reused from the old RM
    assert retrained != first


def test_model_identity_is_what_a_model_is_not_where_it_lies(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "manifest.json").write_text(json.dumps({"artefact_id": "abc"}))
    assert model_identity(a) == "artefact:abc"
    user = tmp_path / "user-rm"  # a folder rlhflab did not write: its content hash
    user.mkdir()
    (user / "model.safetensors").write_bytes(b"weights-1")
    before = model_identity(user)
    (user / "model.safetensors").write_bytes(b"weights-2")
    assert model_identity(user) != before and before.startswith("sha256:")
    assert model_identity("HuggingFaceTB/SmolLM2-135M-Instruct") == "hub:HuggingFaceTB/SmolLM2-135M-Instruct"


def _long_case(tmp_path, max_length):
    """An RM folder trained (recorded) at `max_length`, and a prompt of ~700 tokens: longer than 512,
    shorter than 1024, so truncation at 512 drops its start and at 1024 does not."""
    from helpers import TEXTS

    from rlhflab.config import ModelSpec
    from rlhflab.evaluation.reward_model import record_scoring_length
    from rlhflab.models import build_llama, load_reward_model, save_model, train_tokenizer

    torch.manual_seed(0)
    tok = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1)
    spec = ModelSpec(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=64,
                     max_position_embeddings=1024)
    folder = tmp_path / f"rm-{max_length}"
    save_model(build_llama(spec, tok), tok, folder)
    rm = load_reward_model(folder, tok)
    torch.nn.init.normal_(rm.score.weight)
    if max_length is not None:
        record_scoring_length(rm, folder, max_length)
    save_model(rm, tok, folder)
    prompt = "SUBREDDIT: r/pets\nPOST: " + " ".join(f"my dog chewed sofa {i}." for i in range(70))
    n = len(tok(prompt)["input_ids"])
    assert 512 < n < 1000, n
    return folder, prompt


def test_a_reward_model_scores_at_the_length_it_was_trained_at(tmp_path):
    from rlhflab.evaluation.judges import RewardModelJudge
    from rlhflab.evaluation.reward_model import DEFAULT_SCORING_LENGTH, load_scorer, score, scoring_length

    folder, prompt = _long_case(tmp_path, 1024)
    rm, tok = load_scorer(folder)
    assert scoring_length(rm) == 1024
    got = score(rm, tok, [prompt], [" my dog"])
    assert torch.allclose(got, score(rm, tok, [prompt], [" my dog"], max_length=1024))
    assert not torch.allclose(got, score(rm, tok, [prompt], [" my dog"], max_length=512))
    judge = RewardModelJudge(rm, tok, "rm:x", scoring_length(rm))
    r1, r2 = score(rm, tok, [prompt] * 2, [" my dog", " the sofa"])
    assert abs(judge([prompt], [" my dog"], [" the sofa"])[0].preference - torch.sigmoid(r1 - r2).item()) < 1e-5
    # the record travels in config.json too, so a plain from_pretrained load scores the same
    from rlhflab.models import load_reward_model
    assert scoring_length(load_reward_model(folder, tok)) == 1024

    bare, _ = _long_case(tmp_path, None)  # a user's RM folder without the record
    assert DEFAULT_SCORING_LENGTH == 512 and scoring_length(load_scorer(bare)[0]) == 512


def test_a_malformed_scoring_record_is_refused_with_the_fix(tmp_path):
    import pytest

    from rlhflab.evaluation.reward_model import SCORING_FILE, recorded_scoring_length

    (tmp_path / SCORING_FILE).write_text(json.dumps({"max_length": "long"}))
    with pytest.raises(ValueError, match="max_length must be an integer"):
        recorded_scoring_length(tmp_path)
