"""Configuration of the field's own benchmarks run on rlhflab's models (ivison2024's evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from rlhflab.config.base import Section, TrainedPolicy


class RewardBench(Section):
    """RewardBench (Lambert et al. 2024) for the reward models, as ivison2024 table 13."""

    core: str | None = Field(
        "allenai/reward-bench", description="the core set: the hub id (needs a network or the datasets cache) or a "
        "local JSON / JSONL / parquet file of its rows (prompt, chosen, rejected, subset); null: skip it")
    prior_sets: str | None = Field(
        "allenai/pref-test-sets", description="the prior sets: the hub id or a local file whose rows carry "
        "`subset` and chosen/rejected conversations; null: skip them")
    prior_subsets: list[str] = Field(
        default_factory=lambda: ["anthropic_helpful", "anthropic_hhh", "shp", "summarize"],
        description="prior subsets averaged into the Prior Sets section (weight 0.5 in the score), as RewardBench's leaderboard")
    max_per_subset: int | None = Field(None, ge=1, description="score at most this many pairs per subset (seeded sample)")


class DownstreamTask(Section):
    """One benchmark of the downstream suite, as lm-evaluation-harness names it."""

    name: str = Field(description="an lm-eval task or group name (or one from downstream.task_dirs)")
    category: str = Field(description="the second paper's category it is averaged in (appendix D)")
    metric: str = Field(description="the lm-eval metric reported, e.g. acc, exact_match, prompt_level_loose_acc")
    filter: str | None = Field(None, description="the lm-eval filter whose metric is read (null: the first one)")
    num_fewshot: int | None = Field(None, ge=0, description="few-shot examples (null: the task's own default)")
    code: bool = Field(False, description="the task executes model-written code (needs downstream.allow_code_execution)")
    item_metric: str | None = Field(
        None, description="the per-item metric the report pairs policies on, where `metric` is not a mean over "
        "items (XSTest's F1: `correct`); null: `metric` itself")


def second_paper_suite() -> list[DownstreamTask]:
    """ivison2024's suite (section 3, appendix D) where lm-eval carries it; the README lists each choice."""
    rows = [("mmlu", "factuality", "acc", None, 0, False),
            ("gsm8k_cot", "reasoning", "exact_match", "flexible-extract", 8, False),
            ("bbh_cot_fewshot", "reasoning", "exact_match", "get-answer", 3, False),
            ("truthfulqa_mc2", "truthfulness", "acc", None, 0, False),
            ("humaneval_plus", "coding", "pass_at_k", "create_test", 0, True),
            ("mbpp_plus", "coding", "pass_at_1", None, None, True),
            ("toxigen", "safety", "acc", None, 0, False),
            ("ifeval", "instruction following", "prompt_level_loose_acc", None, 0, False)]
    suite = [DownstreamTask(name=n, category=c, metric=m, filter=f, num_fewshot=k, code=code)
             for n, c, m, f, k, code in rows]
    # rlhflab's own lm-eval task (src/rlhflab/lm_eval_tasks/xstest): F1 of refusals, by XSTest's string match
    suite.insert(7, DownstreamTask(name="xstest", category="safety", metric="f1", num_fewshot=0, item_metric="correct"))
    return suite


class DownstreamStage(Section):
    """Downstream benchmarks of every policy through lm-evaluation-harness (ivison2024 table 1)."""

    enabled: bool = Field(False, description="off in the quickstart; on in the real-data configs")
    policies: list[TrainedPolicy] = Field(default_factory=lambda: ["sft", "ppo", "dpo"],
                                description="policy stages whose saved model is evaluated (best-of-N has none)")
    tasks: list[DownstreamTask] = Field(default_factory=second_paper_suite, min_length=1)
    task_dirs: list[Path] = Field(default_factory=list, description="folders of lm-eval task YAML files to add")
    builtin_tasks: bool = Field(True, description="index lm-eval's own tasks too (false: only task_dirs; faster)")
    limit: float | None = Field(None, gt=0, description="examples per task (a fraction if < 1); null: all")
    batch_size: int = Field(8, ge=1)
    chat_template: Literal["auto", "on", "off"] = Field(
        "auto", description="apply the tokenizer's chat template to each prompt (auto: when it has one)")
    alpaca_eval_sets: list[str] = Field(
        default_factory=list, description="eval-stage test sets joined into the report's downstream table as "
        "instruction following: AlpacaEval 1 (PvR against the set's references) and AlpacaEval 2 (length-"
        "controlled PvR), e.g. [ood_alpaca_eval]; read by the report only, so changing it reruns no evaluation")
    allow_code_execution: bool = Field(
        False, description="run the coding tasks, which execute model-written code (in subprocesses with a "
        "timeout, through HF evaluate's code_eval); off: they are skipped and say so")
