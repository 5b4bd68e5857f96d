"""Every dataset adapter on a small fixture written in its source's own schema (no network)."""

from pathlib import Path

import pytest

from rlhflab.data.records import PromptRecord, SFTRecord
from rlhflab.data.sources import ADAPTERS, SourceError, binarise, load_source, parse_hh

FIX = Path(__file__).parent / "fixtures" / "sources"


def load(name, kind, fixture=None):
    return load_source(name, kind, path=FIX / f"{fixture or name}.jsonl", seed=0)


def test_every_adapter_has_a_fixture_test():
    tested = {"tldr", "summarize_from_feedback", "cnn_dailymail", "alpaca_farm", "alpaca_farm_human_preference",
              "alpaca_farm_gpt4_preference", "alpaca_farm_evaluation", "alpaca_eval", "sequential_instructions",
              "ultrafeedback_overall", "ultrafeedback_fine_grained", "hh_rlhf", "helpsteer", "nectar", "shp2",
              "stack_exchange", "chatbot_arena", "chatbot_arena_2024", "rewardbench", "rewardbench_prior_sets"}
    assert set(ADAPTERS) == tested


def test_tldr_sft_and_prompts():
    recs = load("tldr", "sft")
    assert len(recs) == 3 and all(isinstance(r, SFTRecord) for r in recs)
    r = recs[0]
    assert r.prompt.startswith("SUBREDDIT: r/relationships\nTITLE: My girlfriend forgot my birthday\nPOST: We have")
    assert r.prompt.endswith("\nTL;DR:") and r.completion == " Girlfriend forgot my birthday, I'm hurt, should I tell her?"
    assert r.meta["category"] == "relationships" and r.meta["input"].startswith("We have been together")
    prompts = load("tldr", "prompt")
    assert isinstance(prompts[1], PromptRecord) and prompts[1].reference.startswith(" Pay off a 4%")


def test_summarize_from_feedback_reddit_and_news():
    recs = load("summarize_from_feedback", "preference")
    assert [r.chosen for r in recs] == [" Manager ignores me at my new job, what do I do?",
                                        " My dog barks all night and the neighbours complain; how to stop it?",
                                        " Storm cuts power to 10,000 coastal homes."]
    assert recs[1].rejected == " dogs are cute"
    assert [r.meta["category"] for r in recs] == ["jobs", "dogs", "cnn"]
    assert recs[2].prompt.startswith("ARTICLE: A storm hit") and recs[0].meta["confidence"] == 8


def test_cnn_dailymail_reference_on_one_line():
    recs = load("cnn_dailymail", "prompt")
    assert recs[0].reference == " Council approves new park. Construction begins in May."
    assert recs[0].prompt == "ARTICLE: The city council approved a new park on Tuesday. Construction starts in May.\nTL;DR:"


def test_alpaca_farm_sft_joins_instruction_and_input():
    recs = load("alpaca_farm", "sft")
    assert recs[1].meta["messages"] == [{"role": "user", "content": "Translate the sentence to French.\n\nI like cheese."}]
    assert recs[1].completion == "J'aime le fromage." and recs[0].meta["messages"][0]["content"] == "Give three tips for staying healthy."


@pytest.mark.parametrize("name", ["alpaca_farm_human_preference", "alpaca_farm_gpt4_preference"])
def test_alpaca_farm_preferences(name):
    recs = load(name, "preference", "alpaca_farm_human_preference")
    assert [(r.chosen, r.rejected) for r in recs] == [("Blue.", "Green is a colour."),
                                                     ("A cat spent the day on a mat.", "Cats.")]


@pytest.mark.parametrize("name", ["alpaca_farm_evaluation", "alpaca_eval", "sequential_instructions"])
def test_instruction_test_sets_keep_references(name):
    recs = load(name, "prompt")
    assert len(recs) == 2 and all(r.reference for r in recs)
    if name != "sequential_instructions":
        assert recs[1].meta["category"] in ("koala", "oasst")


def test_ultrafeedback_overall_vs_fine_grained():
    over = load("ultrafeedback_overall", "preference", "ultrafeedback")
    fine = load("ultrafeedback_fine_grained", "preference", "ultrafeedback")
    # Row 1: the overall score prefers the llama answer (8.5), the aspect mean the gpt-4 one (5.0).
    assert over[0].chosen == "Recursion is recursion." and over[0].meta["scores"][0] == 8.5
    assert fine[0].chosen.startswith("Recursion is when") and fine[0].meta["scores"][0] == 5.0
    # "N/A" ratings are left out of the mean: alpaca's mean is 4.0, not an error.
    assert fine[0].meta["category"] == "evol_instruct"
    # Row 2 ties on overall (9 vs 9) and is skipped there, but not on fine-grained (5 vs 4).
    assert len(over) == 1 and len(fine) == 2 and fine[1].chosen == "Yes, 7 is prime."


def test_hh_rlhf_splits_the_shared_context():
    recs = load("hh_rlhf", "preference")
    assert len(recs) == 2  # the identical pair is dropped
    assert recs[0].meta["messages"] == [{"role": "user", "content": "How do I bake bread?"}]
    assert recs[0].rejected == "Buy it."
    assert [m["role"] for m in recs[1].meta["messages"]] == ["user", "assistant", "user"]
    assert recs[1].chosen.startswith("Why did the chicken") and recs[1].rejected == "No."


def test_helpsteer_mean_without_verbosity():
    recs = load("helpsteer", "preference")
    assert len(recs) == 1  # the single-response prompt gives no pair
    r = recs[0]
    assert r.chosen.startswith("The process plants use") and r.meta["scores"][0] == 3.5
    assert r.rejected in ("Plants eat light.", "It is how plants make sugar from CO2 and water using sunlight.")


def test_nectar_rank_one_is_chosen():
    recs = load("nectar", "preference")
    assert recs[0].chosen == "Joyful." and recs[0].rejected in ("Sad.", "Content, maybe.")
    assert recs[0].meta["category"] == "sharegpt"
    assert recs[1].meta["messages"][-1] == {"role": "user", "content": "And 3+3?"} and recs[1].chosen == "6"


def test_shp2_labels():
    recs = load("shp2", "preference")
    assert recs[0].chosen.startswith("Use plenty of water") and recs[1].chosen.startswith("Rayleigh")
    assert recs[1].meta["category"] == "askphysics_train"


def test_stack_exchange_votes_and_ties():
    recs = load("stack_exchange", "preference")
    assert len(recs) == 1 and recs[0].chosen == "Use `reversed(xs)` or `xs[::-1]`."
    assert recs[0].rejected in ("Write a loop.", "You can't.")


def test_chatbot_arena_single_turn_no_ties():
    recs = load("chatbot_arena", "preference")
    assert [r.id for r in recs] == ["q1", "q2"]
    assert recs[1].chosen.startswith("Bonjour !") and recs[1].meta["category"] == "French"
    recs = load("chatbot_arena_2024", "preference")
    assert [r.id for r in recs] == ["30192", "96401"] and recs[1].chosen == "Apple."


def test_prompts_from_preference_sources_are_deduplicated():
    prompts = load("summarize_from_feedback", "prompt")
    assert len(prompts) == 3 and all(p.reference is None for p in prompts)


def test_binarise_and_hh_parser():
    import random

    assert binarise(["a", "b", "c"], [1.0, 3.0, 2.0], random.Random(0))[0] == 1
    assert binarise(["a", "b"], [2.0, 2.0], random.Random(0)) is None
    assert parse_hh("\n\nHuman: hi\n\nAssistant: yo") == [{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "yo"}]
    with pytest.raises(ValueError):
        parse_hh("just text")


def test_bad_row_names_file_row_and_schema(tmp_path):
    bad = tmp_path / "tldr.jsonl"
    bad.write_text('{"subreddit": "a", "title": "t", "post": "p", "summary": "s"}\n{"title": "t", "summary": "s"}\n')
    with pytest.raises(SourceError, match=r"tldr.jsonl row 2: missing field 'post'.*vwxyzjn/summarize_from_feedback"):
        load_source("tldr", "sft", path=bad)
    with pytest.raises(SourceError, match="unknown source 'tl;dr'"):
        load_source("tl;dr", "sft", path=bad)
    with pytest.raises(SourceError, match="gives preference / prompt records, not sft"):
        load_source("hh_rlhf", "sft", path=bad)


def test_limit_is_a_seeded_sample():
    a = load_source("tldr", "sft", path=FIX / "tldr.jsonl", limit=2, seed=1)
    b = load_source("tldr", "sft", path=FIX / "tldr.jsonl", limit=2, seed=1)
    assert len(a) == 2 and [r.id for r in a] == [r.id for r in b]


def test_hub_loading_offline_says_to_use_a_local_file():
    # conftest sets HF_DATASETS_OFFLINE=1: the hub path must fail with advice, not hang.
    with pytest.raises(SourceError, match=r"could not load vwxyzjn/summarize_from_feedback_tldr_3_filtered.*path:"):
        load_source("tldr", "sft", split="train")
    with pytest.raises(SourceError, match="has no split 'dev'"):
        load_source("tldr", "sft", split="dev")


def test_rewardbench_core_set_keeps_every_pair_with_its_subset():
    recs = load("rewardbench", "preference")
    assert len(recs) == 9 and recs[0].meta["category"] == "alpacaeval-easy" and recs[0].id == "100"
    assert recs[0].meta["messages"] == [{"role": "user", "content": "Name a primary colour."}]
    assert (recs[0].chosen, recs[0].rejected) == ("Red is a primary colour.", "Pink.")
    assert recs[-1].chosen == "def square(x):\n    return x * x"


def test_rewardbench_prior_sets_split_conversations_at_the_last_turn():
    recs = load("rewardbench_prior_sets", "preference")
    assert [r.meta["category"] for r in recs] == ["anthropic_helpful", "anthropic_helpful", "shp", "anthropic_harmless"]
    assert recs[0].meta["messages"] == [{"role": "user", "content": "How do I boil an egg?"}]
    assert (recs[0].chosen, recs[0].rejected) == ("Put it in boiling water for nine minutes.", "Cook it.")
