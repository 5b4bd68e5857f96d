"""The registry of source adapters: every public dataset rlhflab reads, by name, in one place.

Each entry names the hub dataset (id, config, {our split: the hub's split}), the record kinds the
adapter gives and its converter from the adapter modules (summarisation, instructions,
conversations); the registry imports them, never the other way round.
"""

from __future__ import annotations

from rlhflab.data.sources import conversations as conv
from rlhflab.data.sources import instructions as ins
from rlhflab.data.sources import summarisation as summ
from rlhflab.data.sources.common import Adapter

_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
PREF_TEST_SETS = ("anthropic_harmless", "anthropic_helpful", "anthropic_hhh", "mtbench_gpt4", "mtbench_human", "shp",
                  "summarize")  # the hub's splits, one per subset (pku_* left out, as RewardBench does)
ADAPTERS: dict[str, Adapter] = {a.name: a for a in [
    Adapter("tldr", ("vwxyzjn/summarize_from_feedback_tldr_3_filtered", None, _SPLITS), ("sft", "prompt"), summ.tldr,
            "filtered TL;DR posts with reference summaries (Stiennon et al.; kirk2024 §4)"),
    Adapter("summarize_from_feedback", ("openai/summarize_from_feedback", "comparisons",
                                        {"train": "train", "validation": "validation"}),
            ("preference", "prompt"), summ.summarize_from_feedback,
            "human comparisons of summaries of TL;DR posts and CNN/DM articles (kirk2024 §4)"),
    Adapter("cnn_dailymail", ("abisee/cnn_dailymail", "3.0.0", _SPLITS), ("sft", "prompt"), summ.cnn_dailymail,
            "news articles with highlight summaries: kirk2024's OOD summarisation test set"),
    Adapter("alpaca_farm", ("tatsu-lab/alpaca_farm", "alpaca_instructions",
                            {"train": "sft", "sft": "sft", "unlabeled": "unlabeled", "preference": "preference",
                             "validation": "val"}),
            ("sft", "prompt"), ins.alpaca_style("alpaca_farm"),
            "AlpacaFarm instructions (sft / preference / unlabeled / val splits)"),
    Adapter("alpaca_farm_human_preference", ("tatsu-lab/alpaca_farm", "alpaca_human_preference",
                                             {"train": "preference", "preference": "preference"}),
            ("preference", "prompt"), ins.alpaca_farm_preference("alpaca_farm_human_preference"),
            "AlpacaFarm human pairwise preferences (ivison2024 table 1)"),
    Adapter("alpaca_farm_gpt4_preference", ("tatsu-lab/alpaca_farm", "alpaca_gpt4_preference",
                                            {"train": "preference", "preference": "preference"}),
            ("preference", "prompt"), ins.alpaca_farm_preference("alpaca_farm_gpt4_preference"),
            "AlpacaFarm GPT-4 pairwise preferences (ivison2024 table 1)"),
    Adapter("alpaca_farm_evaluation", ("tatsu-lab/alpaca_farm", "alpaca_farm_evaluation",
                                       {"test": "eval", "eval": "eval"}),
            ("prompt",), ins.alpaca_style("alpaca_farm_evaluation", "dataset"),
            "AlpacaFarm evaluation instructions with reference outputs (kirk2024's ID test set)"),
    Adapter("alpaca_eval", ("tatsu-lab/alpaca_eval", "alpaca_eval", {"test": "eval", "eval": "eval"}),
            ("prompt",), ins.alpaca_style("alpaca_eval", "dataset"),
            "AlpacaEval instructions with text-davinci-003 references (kirk2024's OOD test set)"),
    Adapter("sequential_instructions", ("UCL-DARK/sequential-instructions", None, {"test": "train", "train": "train"}),
            ("prompt",), ins.alpaca_style("sequential_instructions"),
            "multi-step instructions (kirk2024 appendix H; OOD test set)"),
    Adapter("ultrafeedback_overall", ("openbmb/UltraFeedback", None, {"train": "train"}), ("preference", "prompt"),
            ins.ultrafeedback("overall"), "UltraFeedback binarised on GPT-4's overall score (ivison2024 §3.1)"),
    Adapter("ultrafeedback_fine_grained", ("openbmb/UltraFeedback", None, {"train": "train"}),
            ("preference", "prompt"), ins.ultrafeedback("fine_grained"),
            "UltraFeedback binarised on the mean of the per-aspect ratings (ivison2024 §3.1)"),
    Adapter("hh_rlhf", ("Anthropic/hh-rlhf", None, {"train": "train", "test": "test"}), ("preference", "prompt"),
            conv.hh_rlhf, "Anthropic helpful/harmless dialogue preferences (ivison2024 table 1)"),
    Adapter("helpsteer", ("nvidia/HelpSteer", None, {"train": "train", "validation": "validation"}),
            ("preference", "prompt"), ins.helpsteer,
            "HelpSteer, binarised on the mean of aspects except verbosity (ivison2024 appendix B)", grouped=True),
    Adapter("nectar", ("berkeley-nest/Nectar", None, {"train": "train"}), ("preference", "prompt"), ins.nectar,
            "Nectar: 7-way GPT-4 rankings, rank 1 vs a random lower rank (ivison2024 table 1)"),
    Adapter("shp2", ("stanfordnlp/SHP-2", None, _SPLITS), ("preference", "prompt"), conv.shp2,
            "SHP-2: Reddit / StackExchange comment preferences by votes (ivison2024 table 1)"),
    Adapter("stack_exchange", ("HuggingFaceH4/stack-exchange-preferences", None, {"train": "train"}),
            ("preference", "prompt"), conv.stack_exchange,
            "StackExchange answers ranked by votes (ivison2024 table 1)"),
    Adapter("chatbot_arena", ("lmsys/chatbot_arena_conversations", None, {"train": "train"}),
            ("preference", "prompt"), conv.chatbot_arena, "Chatbot Arena 2023, single-turn, no ties (ivison2024 appendix B)"),
    Adapter("chatbot_arena_2024", ("lmsys/lmsys-arena-human-preference-55k", None, {"train": "train"}),
            ("preference", "prompt"), conv.chatbot_arena_2024,
            "Chatbot Arena 2024 (55k), single-turn, no ties (ivison2024 appendix B)"),
    Adapter("rewardbench", ("allenai/reward-bench", None, {"test": "filtered", "filtered": "filtered"}),
            ("preference",), conv.rewardbench, "RewardBench's core set: 23 subsets in 4 sections (ivison2024 table 13)"),
    Adapter("rewardbench_prior_sets", ("allenai/pref-test-sets", None, {s: s for s in PREF_TEST_SETS}),
            ("preference",), conv.pref_test_sets,
            "RewardBench's prior preference test sets (Anthropic, MT-Bench, SHP, Summarize), weighted 0.5"),
]}

