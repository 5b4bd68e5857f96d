"""The downstream stage's pieces: lm-eval on local tasks (no network), ivison2024's averages."""

import json
from pathlib import Path

import pytest

from rlhflab.config.benchmarks import DownstreamTask, second_paper_suite
from rlhflab.evaluation.downstream import CODE_SKIP, averages, run_task, task_manager

FIX = Path(__file__).parent / "fixtures" / "lm_eval"
CAPITALS = DownstreamTask(name="rlhflab_capitals", category="factuality", metric="acc")
ARITHMETIC = DownstreamTask(name="rlhflab_arithmetic", category="reasoning", metric="exact_match")


def local_tasks(folder: Path) -> Path:
    """The fixture tasks with their data files' full paths (lm-eval reads data_files as given)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("capitals", "arithmetic"):
        text = (FIX / f"{name}.yaml").read_text().replace(f"test: {name}.jsonl", f"test: {FIX / name}.jsonl")
        (folder / f"{name}.yaml").write_text(text)
    return folder


def _fixed_lm():
    from lm_eval.api.model import LM

    class FixedAnswers(LM):
        """Prefers the shortest choice and always answers "2"."""

        def loglikelihood(self, requests):
            return [(-float(len(r.args[1])), False) for r in requests]

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            return ["2" for _ in requests]

    return FixedAnswers()


def test_lm_eval_scores_a_fixed_answer_model_as_computed_by_hand(tmp_path):
    manager = task_manager([local_tasks(tmp_path / "tasks")], builtin=False)
    lm = _fixed_lm()
    # " Rome" is the shortest choice every time: right only for Italy
    capitals = run_task(lm, CAPITALS, manager, limit=None, chat_template=False, seed=0)
    assert capitals["items"] == [0.0, 1.0, 0.0, 0.0] and capitals["score"] == pytest.approx(25.0)
    assert capitals["n"] == 4 and capitals["se"] == pytest.approx(25.0)  # sample sd 0.5 (n − 1) / √4
    # "2" is right for 1 + 1 only
    sums = run_task(lm, ARITHMETIC, manager, limit=None, chat_template=False, seed=0)
    assert sums["items"] == [1.0, 0.0, 0.0] and sums["score"] == pytest.approx(100 / 3)
    first = run_task(lm, CAPITALS, manager, limit=2, chat_template=False, seed=0)
    assert first["items"] == [0.0, 1.0]
    with pytest.raises(ValueError, match="no 'acc_norm' values"):
        run_task(lm, CAPITALS.model_copy(update={"metric": "acc_norm"}), manager, limit=None, chat_template=False, seed=0)


def test_code_tasks_run_only_when_allowed(tmp_path):
    code = DownstreamTask(name="humaneval_plus", category="coding", metric="pass_at_k", code=True)
    assert run_task(None, code, None, limit=None, chat_template=False, seed=0) == {"skipped": CODE_SKIP}


def test_averages_are_per_category_then_over_categories():
    tasks = [DownstreamTask(name=n, category=c, metric="acc") for n, c in
             [("a", "reasoning"), ("b", "reasoning"), ("c", "factuality"), ("d", "coding")]]
    out = averages({"a": 40.0, "b": 60.0, "c": 80.0, "d": None}, tasks)
    assert out == {"categories": {"reasoning": 50.0, "factuality": 80.0}, "average": 65.0}
    assert averages({}, tasks) == {"categories": {}, "average": None}


def test_the_default_suite_is_the_second_papers_by_category():
    suite = {t.name: (t.category, t.num_fewshot, t.code) for t in second_paper_suite()}
    assert suite["mmlu"] == ("factuality", 0, False) and suite["gsm8k_cot"] == ("reasoning", 8, False)
    assert suite["bbh_cot_fewshot"] == ("reasoning", 3, False) and suite["ifeval"][0] == "instruction following"
    assert {c for c, _, code in suite.values() if code} == {"coding"}
    assert {c for c, _, _ in suite.values()} == {"factuality", "reasoning", "truthfulness", "coding", "safety",
                                                 "instruction following"}


def test_the_report_shows_table_1_and_decides_the_second_papers_claims(tmp_path):
    import json

    from rlhflab.report import build_report

    tasks = [{"name": "mmlu", "category": "factuality"}, {"name": "gsm8k_cot", "category": "reasoning"},
             {"name": "ifeval", "category": "instruction following"},
             {"name": "humaneval_plus", "category": "coding"}]
    n = 60
    sft = [1.0, 0.0] * (n // 2)
    items = {"sft": {"mmlu": sft, "gsm8k_cot": sft, "ifeval": sft},
             "dpo": {"mmlu": sft, "gsm8k_cot": sft, "ifeval": sft},
             # PPO: same as SFT on MMLU and GSM8k, right on every IFEval item
             "ppo": {"mmlu": sft, "gsm8k_cot": sft, "ifeval": [1.0] * n}}
    score = {p: {k: 100 * sum(v) / n for k, v in d.items()} for p, d in items.items()}
    rows = {p: {**{k: {"score": s, "se": 1.0, "n": n} for k, s in d.items()},
                "humaneval_plus": {"skipped": "executes model-written code"}} for p, d in score.items()}
    table = {"tasks": tasks, "limit": None, "policies": rows,
             "categories": {p: {"factuality": d["mmlu"], "reasoning": d["gsm8k_cot"], "instruction following": d["ifeval"]}
                            for p, d in score.items()},
             "average": {p: (d["mmlu"] + d["gsm8k_cot"] + d["ifeval"]) / 3 for p, d in score.items()},
             "delta_vs_sft": {p: {k: score[p][k] - score["sft"][k] for k in score[p]} for p in ("ppo", "dpo")}}
    folder = tmp_path / "downstream"
    folder.mkdir()
    (folder / "table.json").write_text(json.dumps(table))
    (folder / "items.json").write_text(json.dumps(items))
    findings = build_report({"downstream": folder}, tmp_path / "report", "downstream")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| ppo | 50.0 ± 1.0 | 50.0 ± 1.0 | 100.0 ± 1.0 | skipped | 66.7 |" in md
    assert "| ppo − sft | +0.0 | +0.0 | +50.0 | – | |" in md and "Skipped: humaneval_plus" in md
    by_claim = {f["claim"]: f for f in findings}
    ppo_dpo = by_claim["PPO ≥ DPO on the downstream average (ivison2024 table 1)"]
    assert ppo_dpo["estimate"] == pytest.approx(50 / 3) and ppo_dpo["verdict"] == "reproduced"
    assert by_claim["PPO's gains over SFT concentrate in instruction following (ivison2024 §4)"]["verdict"] == "reproduced"
    dpo_if = by_claim["DPO's gains over SFT concentrate in instruction following (ivison2024 §4)"]
    assert dpo_if["estimate"] == 0.0 and dpo_if["verdict"] == "inconclusive"
    assert (tmp_path / "report" / "figures" / "downstream.png").exists()


def test_alpaca_eval_joins_the_table_as_instruction_following_and_chat(tmp_path):
    from rlhflab.report.downstream import downstream_claims, downstream_section, join_alpaca_eval
    from rlhflab.report.sections import Sections

    n = 40
    half = [1.0, 0.0] * (n // 2)
    tasks = [{"name": "mmlu", "category": "factuality"}, {"name": "ifeval", "category": "instruction following"}]
    rows = {p: {k: {"score": 50.0, "se": 8.0, "n": n} for k in ("mmlu", "ifeval")} for p in ("sft", "ppo")}
    table = {"tasks": tasks, "limit": None, "policies": rows,
             "categories": {p: {"factuality": 50.0, "instruction following": 50.0} for p in rows},
             "average": {p: 50.0 for p in rows}, "delta_vs_sft": {"ppo": {"mmlu": 0.0, "ifeval": 0.0}}}
    items = {p: {"mmlu": half, "ifeval": half} for p in rows}
    # the eval stage: SFT loses every AlpacaEval judgement, PPO wins all but one unjudged (None)
    results = {"test_sets": {"ae": n},
               "preferences": {"sft": {"ae": [0.0] * n}, "ppo": {"ae": [1.0] * (n - 1) + [None]}},
               "pvr": {"sft": {"ae": {"win_rate": 0.0, "se": 0.0, "n": n}},
                       "ppo": {"ae": {"win_rate": 100.0, "se": 0.0, "n": n - 1}}},
               "lc_win_rate": {"sft": {"ae": 10.0}, "ppo": {"ae": 90.0}}}
    before = json.dumps(table)
    joined, joined_items, missing = join_alpaca_eval(table, items, results, ["ae", "nope"])
    assert json.dumps(table) == before and missing == ["nope"]
    # instruction following = mean(IFEval, AlpacaEval 1, AlpacaEval 2); the average is over the two categories
    assert joined["categories"]["ppo"]["instruction following"] == pytest.approx((50 + 100 + 90) / 3)
    assert joined["categories"]["sft"]["instruction following"] == pytest.approx((50 + 0 + 10) / 3)
    assert joined["average"]["ppo"] == pytest.approx((50 + 80) / 2)
    assert joined["delta_vs_sft"]["ppo"]["alpaca_eval_2_lc/ae"] == pytest.approx(80.0)
    rep = Sections(tmp_path)
    downstream_section(rep, joined, missing)
    text = dict(rep.sections)["Downstream benchmarks"]
    assert "| ppo | 50.0 ± 8.0 | 50.0 ± 8.0 | 100.0 | 90.0 | 65.0 |" in text
    assert "Not joined (no such eval test set): nope" in text
    (claim,) = downstream_claims(joined, joined_items)
    # gains: IFEval 0 and AlpacaEval 1 +100 (the unjudged input dropped from the pair) against MMLU 0
    assert claim["claim"] == "PPO's gains over SFT concentrate in instruction following and chat (ivison2024 §4)"
    assert claim["estimate"] == pytest.approx(50.0) and claim["ci_low"] > 0  # the verdict comes after Holm
    assert join_alpaca_eval(table, items, results, []) == (table, items, [])


@pytest.mark.slow
def test_the_stage_evaluates_every_policy_offline(tiny_run, tmp_path):
    import json

    from conftest import tiny_config
    from helpers import run_stage_on
    from rlhflab.stages.downstream import STAGE

    cfg, _ = tiny_run
    from test_xstest import local_xstest

    tasks, xstest = local_tasks(tmp_path / "tasks"), local_xstest(tmp_path / "xstest")
    spec = ("[{name: rlhflab_capitals, category: factuality, metric: acc}, "
            "{name: rlhflab_arithmetic, category: reasoning, metric: exact_match}, "
            "{name: xstest_local, category: safety, metric: f1, item_metric: correct}]")
    down = tiny_config(tmp_path, "down", ["downstream.enabled=true", f"downstream.tasks={spec}",
                                          f"downstream.task_dirs=[{tasks},{xstest}]", "downstream.builtin_tasks=false"])
    headline = run_stage_on(STAGE, down, cfg.run_dir, tmp_path / "downstream")
    table = json.loads((tmp_path / "downstream" / "table.json").read_text())
    items = json.loads((tmp_path / "downstream" / "items.json").read_text())
    assert list(table["policies"]) == ["sft", "ppo", "dpo"]
    for p, rows in table["policies"].items():
        assert rows["rlhflab_capitals"]["n"] == 4 and rows["rlhflab_arithmetic"]["n"] == 3
        for task in ("rlhflab_capitals", "rlhflab_arithmetic"):
            assert rows[task]["score"] == pytest.approx(100 * sum(items[p][task]) / len(items[p][task]))
        # XSTest: F1 of the tiny model's refusals (its per-item values are right / wrong behaviour)
        assert rows["xstest_local"]["n"] == 6 and rows["xstest_local"]["se"] is None
        assert set(items[p]["xstest_local"]) <= {0.0, 1.0} and 0 <= rows["xstest_local"]["score"] <= 100
        assert headline[f"{p}/average"] == pytest.approx(
            sum(rows[t]["score"] for t in ("rlhflab_capitals", "rlhflab_arithmetic", "xstest_local")) / 3)
    assert set(table["delta_vs_sft"]) == {"ppo", "dpo"} and table["seconds"]["sft"]["rlhflab_capitals"] > 0


def test_alpaca_eval_sets_must_name_test_sets_of_the_task():
    from rlhflab.config import ConfigError, load_config

    assert load_config("alpacafarm").downstream.alpaca_eval_sets == ["ood_alpaca_eval"]
    with pytest.raises(ConfigError, match="typo is not a test set of the task .it has id, ood_alpaca_eval"):
        load_config("alpacafarm", ["downstream.alpaca_eval_sets=[typo]"])
