"""Reward model, proxy RM, RM evaluation and best-of-N on the tiny synthetic run."""

import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhflab.evaluation.reward_model import score
from rlhflab.tasks.synthetic import TEST_SETS


def test_reward_model_beats_chance_and_reports_ood(tiny_run):
    cfg, results = tiny_run
    rm = results["rm"].metrics
    # validation labels are noisy (annotators agree with gold ~70%), so accuracy ceilings are low
    assert rm["best_val_accuracy"] > rm["initial_val_accuracy"]
    table = json.loads((cfg.run_dir / "rm_eval" / "table.json").read_text())
    row = table["models"]["rm"]
    assert row["accuracy"]["test_id"] > 0.56
    assert row["ood_drop"]["test_ood_news"] > 0  # the reddit-trained RM does worse on news
    assert set(row["ood_drop"]) == {f"test_{s}" for s in TEST_SETS if s != "id"}
    assert 0.65 <= table["annotator_gold_agreement"]["test_id"] <= 0.8
    assert row["gold_agreement"]["test_id"] > 0.6  # measured 0.64 on 97 pairs
    assert "rm_proxy" in table["models"] and 0 < row["rewardbench_score"] < 1
    metrics = [json.loads(l) for l in (cfg.run_dir / "rm" / "metrics.jsonl").read_text().splitlines()]
    assert sum("val_accuracy" in m for m in metrics) >= 3  # the validation-accuracy curve


def test_the_proxy_rm_learns_other_gold_labelled_pairs_and_beats_chance(tiny_run):
    """kirk2024 J.3: a held-out evaluator on other data than the RM's, trained on the comparisons
    stage's proxy set (pairs of SFT samples on fresh prompts), labels by the gold reward."""
    from rlhflab.data.gold import get_gold_reward

    cfg, results = tiny_run
    folder = cfg.run_dir / "comparisons" / "preference"
    rm_pairs = [json.loads(l) for f in ("train", "validation") for l in (folder / f"{f}.jsonl").read_text().splitlines()]
    proxy = [json.loads(l) for l in (folder / "proxy.jsonl").read_text().splitlines()]
    assert not {r["id"] for r in proxy} & {r["id"] for r in rm_pairs}
    assert not {r["prompt"] for r in proxy} & {r["prompt"] for r in rm_pairs}
    gold = get_gold_reward("synthetic-tldr")
    assert all(gold(r["prompt"], r["chosen"]) > gold(r["prompt"], r["rejected"]) for r in proxy)
    manifest = json.loads((cfg.run_dir / "rm_proxy" / "manifest.json").read_text())["metrics"]
    assert manifest["proxy_data"] == "gold-labelled pairs on held-out prompts (ID and OOD regions)"
    assert manifest["pairs_shared_with_rm"] == manifest["prompts_shared_with_rm"] == 0
    assert 0.9 * len(proxy) <= manifest["train_pairs"] < len(proxy)  # about 5% carved off for its selection
    assert manifest["best_val_accuracy"] > 0.6  # on its own gold-labelled held-out pairs


def test_reward_model_loads_as_sequence_classifier(tiny_run):
    cfg, _ = tiny_run
    folder = cfg.run_dir / "rm"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    prompt = json.loads((cfg.run_dir / "data" / "test" / "id.jsonl").read_text().splitlines()[0])
    r = score(model, tok, [prompt["prompt"]] * 2, [prompt["reference"], "the weather was lovely"])
    assert r.shape == (2,) and torch.isfinite(r).all()
    # it scores at the length it was trained at, however it is loaded
    assert model.config.rm_max_length == cfg.rm.max_length
    assert json.loads((folder / "reward_model.json").read_text()) == {"max_length": cfg.rm.max_length}


def test_best_of_n_selects_by_reward_and_reports_spread(tiny_run):
    cfg, results = tiny_run
    bon = results["bon"].metrics
    assert sum(k.endswith("/gold_gain") for k in bon) == len(TEST_SETS)
    assert bon["id/gold_gain"] > 0.1  # best-of-8 beats a single SFT sample on the gold reward (0.27)
    full = json.loads((cfg.run_dir / "bon" / "sweep.json").read_text())
    assert full["evaluator"] == "gold" and set(full["curves"]) == set(TEST_SETS)  # ID and every OOD set
    assert set(full["gap"]) == set(TEST_SETS) - {"id"} and set(full["gap"]["ood_news"]) == {"1", "2", "4", "8", "16"}
    sweep = full["curves"]["id"]
    # the RM score of the pick rises with N: selection works on one reused pool
    assert sweep["16"]["rm_mean"] > sweep["4"]["rm_mean"] > sweep["1"]["rm_mean"]
    assert sweep["16"]["mean"] > sweep["1"]["mean"]
    assert all(v["se"] > 0 for v in sweep.values())
    assert full["gap"]["ood_news"]["4"] == sweep["4"]["mean"] - full["curves"]["ood_news"]["4"]["mean"]
    rows = [json.loads(l) for l in (cfg.run_dir / "bon" / "outputs" / "id.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(r["output"] for r in rows)


def test_rm_eval_scores_the_rms_on_rewardbench_files(tiny_run, tmp_path):
    from pathlib import Path

    from conftest import tiny_config
    from helpers import run_stage_on
    from rlhflab.stages.rm_eval import STAGE

    cfg, _ = tiny_run
    fix = Path(__file__).parent / "fixtures" / "sources"
    bench_cfg = tiny_config(tmp_path, "bench", [f"rm_eval.rewardbench={{core: {fix / 'rewardbench.jsonl'}, "
                                                f"prior_sets: {fix / 'rewardbench_prior_sets.jsonl'}}}"])
    headline = run_stage_on(STAGE, bench_cfg, cfg.run_dir, tmp_path / "rm_eval")
    table = json.loads((tmp_path / "rm_eval" / "table.json").read_text())
    for name in ("rm", "rm_proxy"):
        bench = table["models"][name]["rewardbench"]
        assert set(bench["sections"]) == {"Chat", "Chat Hard", "Safety", "Reasoning", "Prior Sets"}
        assert len(bench["subsets"]) == 9 and all(a in (0.0, 0.5, 1.0) for a in bench["subsets"].values())
        assert headline[f"{name}/rewardbench"] == bench["score"]
        assert 0 <= bench["score"] <= 100
