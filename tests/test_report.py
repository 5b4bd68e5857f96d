"""The report on hand-made results: the findings (a pure function of the loaded dicts), the
figures' boilerplate and ordering, and build_report on stage folders that are not a run folder."""

import json
import re

import pytest

from rlhflab.report import build_report
from rlhflab.report.figures import grouped_bars, save_figure
from rlhflab.report.findings import compute_findings

KL_CLAIM = "The largest KL penalty does not restore SFT's diversity"
KL_TREND = "A higher KL penalty lowers per-input diversity (kirk2024 appendix I)"
H2H = "RLHF (PPO)'s head-to-head win rate against SFT rises from ID to OOD (kirk2024 fig. 4)"
SHIFT = "RLHF's advantage over SFT grows with the measured distribution shift"


def _wr(win_rate, se):
    return {"win_rate": win_rate, "standard_error": se}


def _prefs(ones: int, n: int = 40, flip: tuple = ()) -> list[float]:
    """n judgements, the first `ones` won; then each index in `flip` turned over."""
    out = [1.0 if i < ones else 0.0 for i in range(n)]
    for i in flip:
        out[i] = 1.0 - out[i]
    return out


def _eval(baseline="sft"):
    """One ID set named 'main' and one OOD set named 'idiom': the names say nothing about the roles.
    main: PPO wins 12 inputs SFT loses (a clear gain); idiom: PPO gains 3 inputs and loses 2 (noise)."""
    prefs = {"sft": {"main": _prefs(16), "idiom": _prefs(12)},
             "ppo": {"main": _prefs(28), "idiom": _prefs(12, flip=(12, 13, 14, 0, 1))},
             "bon": {"main": _prefs(24), "idiom": _prefs(14)}}
    pvr = {p: {s: _wr(100 * sum(v) / len(v), 5.0) for s, v in ss.items()} for p, ss in prefs.items()}
    gap = {p: {"idiom": pvr[p]["main"]["win_rate"] - pvr[p]["idiom"]["win_rate"]} for p in pvr}
    return {
        "judge": "gold", "baseline": baseline, "test_sets": {"idiom": 40, "main": 40},
        "sets": {"main": {"distribution": "id", "shift": None, "compare_to": None},
                 "idiom": {"distribution": "ood", "shift": "length", "compare_to": "main"}},
        "pvr": pvr, "preferences": prefs, "gap": gap,
        "head_to_head": {"sft": {}, "ppo": {"main": _wr(60, 5), "idiom": _wr(45, 5)}},
        "head_to_head_preferences": {"sft": {}, "ppo": {"main": _prefs(24), "idiom": _prefs(18)}},
    }


def _div(test_set="main"):
    def m(values):
        mean = sum(values) / len(values)
        return {"per_input": {"mean": mean, "std": 0.1, "n": len(values), "values": values},
                "across_input": {"mean": mean, "std": 0.01, "n": 10}}
    sft = [0.8 + 0.01 * (i % 5) for i in range(20)]
    return {"test_set": test_set, "n_inputs": 20, "samples_per_input": 2, "temperature": 0.7,
            "policies": {"sft": {"ead": m(sft)}, "ppo": {"ead": m([v - 0.3 + 0.02 * (i % 3) for i, v in enumerate(sft)])}}}


def _spread(values, across=None):
    return {"per_input": {"mean": sum(values) / len(values), "std": 0.1, "n": len(values), "values": values},
            "across_input": {"mean": across if across is not None else sum(values) / len(values), "std": 0.01, "n": 10}}


def _kl_point(beta, values, main, idiom, step=4):
    return {"kl_coef": beta, "step": step, "is_sft": step == 0, "rm_score": 1.0 - beta, "kl": 2.0 * beta,
            "gold": 0.5, "pvr": {"main": _wr(main, 5), "idiom": _wr(idiom, 5)}, "gap": {"idiom": main - idiom},
            "diversity": {"sentence_bert": _spread(values), "ead": _spread([v / 2 for v in values], across=0.9)}}


KL = {"select_on": "last", "judge": "gold", "win_rate_inputs": {"main": 40, "idiom": 40},
      "sets": {"main": {"distribution": "id", "shift": None, "compare_to": None},
               "idiom": {"distribution": "ood", "shift": "length", "compare_to": "main"}},
      "diversity_test_set": "main", "n_inputs": 6, "samples_per_input": 2, "temperature": 1.0,
      "sft": {**_kl_point(0, [0.8, 0.7, 0.9, 0.8, 0.8, 0.75], 40.0, 30.0), "step": None, "kl": 0.0},
      "points": [_kl_point(0.5, [0.4] * 6, 50.0, 35.0),  # diversity falls as β grows (kirk2024 appendix I)
                 _kl_point(0.05, [0.6, 0.5, 0.7, 0.6, 0.6, 0.6], 70.0, 30.0)]}

BON = {"evaluator": "gold", "selector": "rm", "pool": 4, "temperature": 0.7, "inputs": {"main": 2, "idiom": 2},
       "sets": KL["sets"], "oracle_best_of_pool": {"main": 1.0, "idiom": 0.8},
       "curves": {"main": {"1": {"mean": 0.1, "se": 0.1}, "4": {"mean": 0.5, "se": 0.1}},
                  "idiom": {"1": {"mean": 0.0, "se": 0.1}, "4": {"mean": 0.3, "se": 0.1}}},
       "gap": {"idiom": {"1": 0.1, "4": 0.2}}}


def _verdicts(findings):
    return {f["claim"]: f["verdict"] for f in findings}


def test_findings_decide_each_claim_from_its_paired_interval():
    got = compute_findings(_eval(), _div(), KL, {"best_step": 7})
    assert _verdicts(got) == {
        "RLHF (PPO) beats SFT out of distribution (idiom)": "inconclusive",  # +1 input in 40: noise
        "RLHF (PPO) beats SFT in distribution": "reproduced",
        "Best-of-N beats SFT": "reproduced",
        "RLHF generalises better than SFT (smaller ID − OOD gap)": "contradicted",
        "RLHF lowers per-input diversity (ead)": "reproduced",
        "RLHF lowers across-input diversity (ead)": "reproduced",
        H2H: "inconclusive",  # 60 → 45 on 40 inputs per set: within the noise
        SHIFT: "not run",  # one OOD set, and no measured shift
        KL_TREND: "reproduced",
        KL_CLAIM: "reproduced",
    }
    by = {f["claim"]: f for f in got}
    ood = by["RLHF (PPO) beats SFT out of distribution (idiom)"]
    assert ood["estimate"] == pytest.approx(2.5) and ood["ci_low"] < 0 < ood["ci_high"] and ood["n"] == 40
    ind = by["RLHF (PPO) beats SFT in distribution"]
    assert ind["estimate"] == pytest.approx(30.0) and ind["ci_low"] > 0
    assert ind["evidence"].startswith("PvR 70.0 vs 40.0 on 40 paired inputs: Δ = +30.0, 95% CI [")
    gap = by["RLHF generalises better than SFT (smaller ID − OOD gap)"]
    assert gap["estimate"] == pytest.approx(27.5) and gap["direction"] == -1  # (30 − 2.5) points
    h2h = by[H2H]
    assert h2h["estimate"] == pytest.approx(-15.0) and h2h["ci_low"] < 0 < h2h["ci_high"]
    assert h2h["evidence"].startswith("head-to-head win rate (%) against SFT: main 60.0 → idiom 45.0; mean change over 1")
    across = by["RLHF lowers across-input diversity (ead)"]  # 0.539 − 0.820, SE √(0.01² + 0.01²)
    assert across["estimate"] == pytest.approx(-0.281) and across["ci_high"] == pytest.approx(-0.281 + 1.959964 * 0.0141421, abs=1e-6)
    assert "inputs not resampled" in across["evidence"]
    # each input's slope on ln β: (0.4 − v) / ln 10, v its diversity at β = 0.05; mean −0.2 / ln 10
    trend = by[KL_TREND]
    assert trend["estimate"] == pytest.approx(-0.2 / 2.302585) and trend["ci_high"] < 0 and trend["n"] == 6
    assert trend["evidence"].startswith("per-input sentence_bert diversity 0.600 at β = 0.05, 0.400 at β = 0.5 over 6 inputs")
    # Holm over the tested claims: each adjusted p at least its raw p
    assert all(f["p_holm"] >= f["p_value"] for f in got if f["verdict"] != "not run")
    for f in got:  # no verdict disagrees with its own interval
        if f["verdict"] == "reproduced":
            assert (f["ci_low"] > 0) if f["direction"] == 1 else (f["ci_high"] < 0)
        if f["verdict"] == "contradicted":
            assert (f["ci_high"] < 0) if f["direction"] == 1 else (f["ci_low"] > 0)


def test_a_significant_interval_can_still_be_inconclusive_after_holm():
    e = _eval()
    # PPO and best-of-N each win 7 inputs SFT loses and lose 1 it wins: alone p ≈ 0.03 with the interval
    # above 0; in the primary family of two, Holm multiplies the smaller p by 2
    e["preferences"]["ppo"]["main"] = _prefs(16, flip=(20, 21, 22, 23, 24, 25, 26, 0))
    e["preferences"]["bon"]["main"] = list(e["preferences"]["ppo"]["main"])
    got = compute_findings(e, None, None, None)
    primary = [f for f in got if f.get("family") == "primary"]
    assert [f["claim"] for f in primary] == ["RLHF (PPO) beats SFT in distribution", "Best-of-N beats SFT"]
    for row in primary:
        assert row["ci_low"] > 0 and row["p_value"] == pytest.approx(0.030, abs=3e-3)
        assert row["p_holm"] >= 2 * min(f["p_value"] for f in primary) > 0.05
        assert row["verdict"] == "inconclusive"
    # the gate is closed: no secondary claim is decided either
    assert all(f["verdict"] in ("inconclusive", "not run") for f in got)


def test_kl_claims_are_not_run_without_a_sweep_and_restored_diversity_is_contradicted():
    got = compute_findings(_eval(), None, None, None)
    assert got[-2:] == [{"claim": KL_TREND, "verdict": "not run", "direction": -1, "unit": "score per unit log β",
                         "family": "secondary", "evidence": "not run: enable the kl_sweep stage"},
                        {"claim": KL_CLAIM, "verdict": "not run", "direction": -1, "unit": "score",
                         "family": "secondary", "evidence": "not run: enable the kl_sweep stage"}]
    assert not any(f["claim"].startswith("RLHF lowers") for f in got)
    assert compute_findings(None, None, None, None) == got[-2:]
    restored = {"sft": _kl_point(0, [0.5, 0.4, 0.6, 0.5] * 5, 40, 30),
                "points": [_kl_point(1.0, [0.7, 0.6, 0.8, 0.7] * 5, 40, 30, step=0)]}
    trend, top = compute_findings(None, None, restored, None)
    assert top["verdict"] == "contradicted"
    assert top["evidence"].startswith("per-input sentence_bert diversity at β = 1.0 (step 0, SFT itself): 0.700 vs "
                                      "SFT 0.500 over 20 inputs")
    assert trend["verdict"] == "not run" and trend["evidence"].startswith("not checkable: needs two or more β")


def _sweep(by_beta: dict[float, list[float]], sft: list[float]) -> dict:
    return {"sft": _kl_point(0, sft, 40, 30), "points": [_kl_point(b, v, 40, 30) for b, v in by_beta.items()]}


def test_kl_trend_is_the_paired_slope_of_diversity_on_log_beta():
    """Per input, the least-squares slope on ln β; at β = 0.01, 0.1, 1 (ln β = −2 ln 10, −ln 10, 0)
    an input at 0.3, 0.5, 0.7 has slope 0.4 / (2 ln 10) = 0.0869: diversity rising with β."""
    rising = _sweep({1.0: [0.7, 0.8, 0.7, 0.8] * 5, 0.01: [0.3, 0.4, 0.3, 0.4] * 5, 0.1: [0.5, 0.6, 0.5, 0.6] * 5},
                    [0.9] * 20)
    trend, top = compute_findings(None, None, rising, None)
    assert trend["estimate"] == pytest.approx(0.4 / (2 * 2.302585)) and trend["ci_low"] > 0
    assert trend["verdict"] == "contradicted" and top["verdict"] == "reproduced"  # yet still below SFT
    assert trend["evidence"].startswith("per-input sentence_bert diversity 0.350 at β = 0.01, 0.550 at β = 0.1, "
                                        "0.750 at β = 1 over 20 inputs")
    # inputs disagree: half fall by 0.2 per ln-10 step, half rise by 0.2: mean slope 0, inconclusive
    mixed = _sweep({0.1: [0.6, 0.4] * 10, 1.0: [0.4, 0.6] * 10}, [0.9] * 20)
    trend, _ = compute_findings(None, None, mixed, None)
    assert trend["estimate"] == pytest.approx(0.0) and trend["verdict"] == "inconclusive"


def test_largest_beta_claim_reads_the_largest_beta_whatever_the_order_given():
    """β = 0.01 below SFT, β = 1 above it: the claim is about β = 1 (contradicted), listed first or last."""
    for order in ([0.01, 1.0], [1.0, 0.01]):
        values = {0.01: [0.3, 0.4] * 10, 1.0: [0.95, 0.9] * 10}
        _, top = compute_findings(None, None, _sweep({b: values[b] for b in order}, [0.8, 0.7] * 10), None)
        assert top["evidence"].startswith("per-input sentence_bert diversity at β = 1.0 (step 4): 0.925 vs SFT 0.750")
        assert top["estimate"] == pytest.approx(0.175) and top["verdict"] == "contradicted"


def test_a_set_where_no_policy_succeeds_gets_no_claim_and_leaves_the_gap():
    e = _eval()
    e["test_sets"]["dark"] = 40
    e["sets"]["dark"] = {"distribution": "ood", "shift": "topic", "compare_to": "main"}
    for p in e["pvr"]:
        e["preferences"][p]["dark"] = _prefs(0)
        e["pvr"][p]["dark"] = _wr(0.0, 0.0)
        e["gap"][p]["dark"] = e["pvr"][p]["main"]["win_rate"]
    from rlhflab.report.findings import uninformative_sets
    assert uninformative_sets(e) == ["dark"]
    claims = {f["claim"]: f for f in compute_findings(e, None, None, None)}
    assert not any("dark" in c for c in claims)
    gap = claims["RLHF generalises better than SFT (smaller ID − OOD gap)"]
    assert "over 1 OOD sets; left out (no policy succeeds): dark" in gap["evidence"]
    assert gap["estimate"] == pytest.approx(27.5)


def test_several_id_sets_get_one_claim_each_and_undeclared_sets_none():
    e = _eval()
    e["test_sets"] = {"main": 40, "second": 40, "idiom": 40, "extra": 40}
    e["sets"]["second"] = {"distribution": "id", "shift": None, "compare_to": None}
    for p, ones in {"sft": 20, "ppo": 10, "bon": 30}.items():
        for s in ("second", "extra"):  # extra: evaluated, but not declared ID or OOD: no claim about it
            e["preferences"][p][s] = _prefs(ones)
            e["pvr"][p][s] = _wr(100 * ones / 40, 5)
    claims = {f["claim"]: f for f in compute_findings(e, None, None, None)}
    assert claims["RLHF (PPO) beats SFT in distribution (main)"]["verdict"] == "reproduced"
    assert claims["RLHF (PPO) beats SFT in distribution (second)"]["verdict"] == "contradicted"
    assert claims["RLHF (PPO) beats SFT in distribution (second)"]["estimate"] == pytest.approx(-25.0)
    assert claims["Best-of-N beats SFT (second)"]["evidence"].startswith("PvR 75.0 vs 50.0 on 40 paired inputs")
    assert "Best-of-N beats SFT (main)" in claims and "Best-of-N beats SFT" not in claims
    assert not any("extra" in c for c in claims)


def test_ppo_that_kept_its_starting_point_says_so_beside_ppo_claims():
    got = compute_findings(_eval(), _div(), KL, {"best_step": 0})
    note = "; PPO's selection kept its starting point (best_step 0 = SFT)"
    for f in got:
        assert (note in f["evidence"]) == f["claim"].startswith("RLHF (PPO) beats SFT"), f


def test_save_figure_and_grouped_bars_follow_the_given_group_order(tmp_path):
    seen = {}

    def draw(ax):
        grouped_bars(ax, {"ppo": {"z_id": (1, 0.1), "a_ood": (2, 0.2)}, "sft": {"z_id": (3, 0.3)}}, "y",
                     groups=["z_id", "a_ood"])
        seen["labels"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]

    path = save_figure(tmp_path / "sub" / "f.png", "a title", draw)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert seen == {"labels": ["z_id", "a_ood"], "legend": ["sft", "ppo"]}


def _stage(root, name, files):
    folder = root / name
    folder.mkdir(parents=True)
    for rel, obj in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in obj) if rel.endswith(".jsonl") else json.dumps(obj)
        (folder / rel).write_text(text)
    return folder


def test_build_report_reads_the_given_stage_folders(tmp_path):
    ann = [{"instruction": "Summarise <this>", "output_1": "ref", "output_2": "mine", "preference": 1.75}]
    task = {"sizes": {"test_main": 4, "test_idiom": 4, "sft_train": 9},
            "sets": [{"kind": "prompt", "role": "test", "name": "main", "file": "test/main.jsonl",
                      "distribution": "id", "shift": None, "compare_to": None},
                     {"kind": "prompt", "role": "test", "name": "idiom", "file": "test/idiom.jsonl",
                      "distribution": "ood", "shift": "length", "compare_to": "main"}],
            "contamination": {"threshold": 0.01, "compared_by": "normalised input", "corpus": "none", "tests": {
                "test/main": {"n": 4, "against": {"sft/train": {"count": 0, "fraction": 0.0, "examples": []}}},
                "test/idiom": {"n": 4, "against": {"sft/train": {"count": 0, "fraction": 0.0, "examples": []},
                                                   "test/main": {"count": 1, "fraction": 0.25, "examples": [["a", "b"]]}}}}}}
    inputs = {  # each stage in its own place, as a pipeline's finished stage folders
        "data": _stage(tmp_path / "x", "data", {"task.json": task}),
        "eval": _stage(tmp_path / "y", "eval", {"results.json": {**_eval(), "shift": {"idiom": 0.2}},
                                                "annotations/ppo_vs_reference/main.json": ann}),
        "diversity": _stage(tmp_path / "z", "diversity", {"diversity.json": _div()}),
        "kl_sweep": _stage(tmp_path, "kl", {"sweep.json": KL}),
        "ppo": _stage(tmp_path, "ppo", {"manifest.json": {"metrics": {"best_step": 0}},
                                        "metrics.jsonl": [{"step": 1, "rm_score": 0.1, "kl": 0.0},
                                                          {"step": 2, "rm_score": 0.3, "kl": 0.1}]}),
        "rm": _stage(tmp_path, "rm", {"metrics.jsonl": [{"step": 5, "val_accuracy": 0.6}, {"step": 9, "loss": 1}]}),
        "bon": _stage(tmp_path, "bon", {"sweep.json": BON}),
        "rm_eval": _stage(tmp_path, "rm_eval", {"table.json": {
            "subsets": ["validation", "test_main", "test_idiom"],
            "sets": {"validation": {"distribution": "id"}, "test_main": {"distribution": "id"},
                     "test_idiom": {"distribution": "ood", "shift": "length", "compare_to": "test_main"}},
            "models": {"rm": {"accuracy": {"validation": 0.7, "test_main": 0.68, "test_idiom": 0.6},
                              "rewardbench_score": None,
                              "rewardbench": {"sections": {"Chat": 74.3, "Safety": 52.2, "Prior Sets": 67.9},
                                              "score": 59.8}}}}}),
    }
    out = tmp_path / "report"
    findings = build_report(inputs, out, title="my study")
    assert json.loads((out / "findings.json").read_text()) == findings
    assert findings == compute_findings({**_eval(), "shift": {"idiom": 0.2}}, _div(), KL, {"best_step": 0})
    md = (out / "report.md").read_text()
    page = (out / "index.html").read_text()
    assert md.startswith("# rlhflab report: my study\n") and "<h1>rlhflab report: my study</h1>" in page
    figures = {"pvr", "gap", "head_to_head", "diversity_per_input", "diversity_across_input", "tradeoff",
               "best_of_n", "rm_accuracy", "ppo_curves", "kl_sweep", "kl_sweep_win_rates", "kl_sweep_per_input",
               "kl_sweep_across_input", "shift"}
    assert set(re.findall(r'data-figure="(\w+)"', page)) == figures
    assert {p.stem for p in (out / "figures").glob("*.png")} == figures
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing fetched from anywhere
    assert "| test_idiom | 4 | ood: length |" in md and "| test_main | 4 | id |" in md
    assert "| sft_train | 9 | – |" in md
    assert "| test/main | 4 | 0 | – |" in md and "| test/idiom | 4 | 1 (25.0%) | test/main |" in md
    assert "| policy | main | idiom | mean gap |" in md  # ID sets first, by the declared distribution
    assert "| ppo | 70.0 ± 5.0 | 32.5 ± 5.0 | 37.5 |" in md
    assert "Holm within the 2 primary claims" in md and "Holm within the 7 secondary claims" in md and "| **reproduced** |" in md
    assert "| rm | 0.700 | 0.680 | 0.600 | – |" in md
    assert "| reward model | Chat | Safety | Prior Sets | RewardBench score |" in md and "| rm | 74.3 | 52.2 | 67.9 | 59.8 |" in md
    assert "Summarise &lt;this&gt;" in page and "75% beats reference" in page  # the sample browser
    assert "kirk2024 fig. 2–3" in md and "review2024" in md and not re.search(r"(?<![\d.])00[014]\b", md)


def test_performance_row_keeps_its_cells_with_one_test_set(tmp_path):
    """Regression: the conditional once swallowed the whole row, leaving only ' | – |'."""
    e = {"judge": "gold", "baseline": "sft", "test_sets": {"main": 4},
         "sets": {"main": {"distribution": "id", "shift": None, "compare_to": None}},
         "pvr": {"sft": {"main": _wr(40, 3)}, "ppo": {"main": _wr(50, 4)}}, "gap": {"sft": {}, "ppo": {}},
         "preferences": {"sft": {"main": [1, 0, 0, 1]}, "ppo": {"main": [1, 1, 0, 0]}}}
    findings = build_report({"eval": _stage(tmp_path, "eval", {"results.json": e})}, tmp_path / "r", "one set")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| sft | 40.0 ± 3.0 | – |" in md and "| ppo | 50.0 ± 4.0 | – |" in md
    assert "\n | – |" not in md
    assert [f["claim"] for f in findings] == ["RLHF (PPO) beats SFT in distribution", KL_TREND, KL_CLAIM]


@pytest.mark.parametrize("baseline, shown", [("dpo", "DPO"), ("sft", "SFT")])
def test_head_to_head_names_the_baseline_it_was_run_against(tmp_path, baseline, shown):
    e = _eval(baseline)
    e["head_to_head"] = {"ppo": {"main": _wr(60, 5)}, baseline: {}}
    build_report({"eval": _stage(tmp_path, "eval", {"results.json": e})}, tmp_path / "r", "h2h")
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"![Head-to-head win rate against {shown}](figures/head_to_head.png)" in md
    assert f"judged against the {shown} model's" in md
    other = {"DPO": "SFT", "SFT": "DPO"}[shown]
    assert f"against {other}" not in md


def _grids(monkeypatch):
    """Record each small-multiples figure's shape and labels while still drawing it."""
    from rlhflab.report import figures as F

    seen, real = {}, F.save_grid

    def spy(path, title, cells, **kw):
        seen[path.stem] = {"shape": [len(r) for r in cells], **{k: kw.get(k) for k in ("col_titles", "row_titles")}}
        return real(path, title, cells, **kw)

    monkeypatch.setattr(F, "save_grid", spy)
    return seen


def test_tradeoff_grid_has_every_test_set_against_every_metric_and_kind(tmp_path, monkeypatch):
    """kirk2024 fig. 25 in full: a row per test set, a column per metric × (per-input, across-input),
    whichever set the diversity was measured on."""
    seen = _grids(monkeypatch)
    d = _div("other")
    for p in d["policies"]:
        d["policies"][p]["sentence_bert"] = d["policies"][p]["ead"]
    ev = _stage(tmp_path, "eval", {"results.json": _eval()})
    build_report({"eval": ev, "diversity": _stage(tmp_path / "a", "diversity", {"diversity.json": d})},
                 tmp_path / "r1", "t")
    md = (tmp_path / "r1" / "report.md").read_text()
    assert "figures/tradeoff.png" in md and "diversity on 20 other inputs" in md and "(kirk2024 fig. 25)" in md
    assert seen["tradeoff"]["shape"] == [4, 4]  # two sets × (two metrics × two kinds)
    assert seen["tradeoff"]["row_titles"] == ["main (ID) PvR %", "idiom (OOD) PvR %"]
    assert seen["tradeoff"]["col_titles"] == ["EAD per-input", "EAD across-input", "Sentence-BERT per-input",
                                              "Sentence-BERT across-input"]
    build_report({"diversity": _stage(tmp_path / "b", "diversity", {"diversity.json": d})}, tmp_path / "r2", "t")
    assert not (tmp_path / "r2" / "figures" / "tradeoff.png").exists()  # no win rates, no trade-off


def test_kl_sweep_section_draws_figures_11_to_13_and_tables_one_checkpoint(tmp_path, monkeypatch):
    seen = _grids(monkeypatch)
    build_report({"kl_sweep": _stage(tmp_path, "kl", {"sweep.json": KL})}, tmp_path / "r", "kl")
    md = (tmp_path / "r" / "report.md").read_text()
    assert {p.stem for p in (tmp_path / "r" / "figures").glob("*.png")} == {
        "kl_sweep", "kl_sweep_win_rates", "kl_sweep_per_input", "kl_sweep_across_input"}
    assert seen["kl_sweep_win_rates"]["col_titles"] == ["ID win rate", "OOD win rate", "gap ID − OOD"]
    assert seen["kl_sweep_per_input"]["col_titles"] == ["EAD", "Sentence-BERT"]
    assert "PPO at each β; every number of a β comes from one checkpoint of its run: the last checkpoint" in md
    assert "| β | step | RM score | KL | gold | main PvR | idiom PvR | mean gap |" in md
    assert "| β | EAD per-input | EAD across-input | Sentence-BERT per-input | Sentence-BERT across-input |" in md
    # sorted by β; the SFT row is the β = ∞ end
    assert "| 0.05 | 4 | 0.950 | 0.100 | 0.500 | 70.0 | 30.0 | 40.0 |" in md and "| 0.05 | 0.300 | 0.900 | 0.600 | 0.600 |" in md
    assert md.index("| 0.05 | 4 |") < md.index("| 0.5 | 4 |") < md.index("| ∞ (SFT) | – |")
    assert "| ∞ (SFT) | – | 1.000 | 0.000 | 0.500 | 40.0 | 30.0 | 10.0 |" in md
    assert "| ∞ (SFT) | 0.396 | 0.900 | 0.792 | 0.792 |" in md and "Diversity on 6 main inputs:" in md


@pytest.mark.parametrize("evaluator, words", [("gold", "the gold reward"), ("rm_proxy", "the held-out proxy RM")])
def test_best_of_n_section_has_a_curve_per_set_and_the_gap(tmp_path, monkeypatch, evaluator, words):
    seen = _grids(monkeypatch)
    build_report({"bon": _stage(tmp_path, "bon", {"sweep.json": {**BON, "evaluator": evaluator}})}, tmp_path / "r", "b")
    md = (tmp_path / "r" / "report.md").read_text()
    assert seen["best_of_n"]["shape"] == [2] and f"scored by {words}" in md and "(kirk2024 fig. 22)" in md
    assert "| N | main | idiom | mean gap |" in md  # ID first
    assert "| 1 | 0.100 | 0.000 | 0.100 |" in md and "| 4 | 0.500 | 0.300 | 0.200 |" in md
    assert "(the ceiling): main 1.000, idiom 0.800." in md


def test_readme_tables_are_printed_from_a_run_folder(tmp_path):
    from rlhflab.report.readme import readme_tables

    _stage(tmp_path, "sft", {"manifest.json": {"seconds": 12.25, "metrics": {"best_val_loss": 0.3216, "other": 1},
                                               "memory": {"peak_rss_mb": 812.4}}})
    _stage(tmp_path, "eval", {"manifest.json": {"seconds": 3.0, "metrics": {}},
                              "results.json": {**_eval(), "lc_win_rate": {"ppo": {"main": 61.23}},
                                               "lengths": {"ppo": {"main": [10, 20]}}}})
    _stage(tmp_path, "report", {"findings.json": compute_findings(_eval(), None, None, None)})
    text = readme_tables(tmp_path, {"data": ("x",), "sft": ("best_val_loss",), "eval": ("pvr",)})
    assert text.startswith("Measured on: ") and "torch threads." in text
    assert "| sft | 12.2 | 812 | best_val_loss 0.322 |" in text and "| eval | 3.0 | – | – |" in text
    assert "| total | 15.2 | | |" in text and "| data |" not in text
    assert "| ppo | 70.0 ± 5.0 (61.2) · 15 | 32.5 ± 5.0 |" in text
    assert "| RLHF (PPO) beats SFT in distribution | reproduced | +30.0 [" in text
    assert f"| {KL_CLAIM} | not run | – | – |" in text


def test_length_control_finding_reads_the_eval_stage_bootstrap_and_is_named_as_rlhflabs():
    e = _eval()
    e["length_controlled"] = {"ppo_vs_sft": {"main": {
        "estimate": 4.0, "ci_low": -3.0, "ci_high": 11.0, "p_value": 0.3, "n": 40,
        "lc_a": 44.0, "lc_b": 40.0, "raw_a": 70.0, "raw_b": 40.0}}}
    claim = "rlhflab's own check, not the papers': RLHF's win-rate gain over SFT survives length control"
    for judge in ("gold", "openai"):
        row = next(f for f in compute_findings({**e, "judge": judge}, None, None, None) if f["claim"] == claim)
        assert row["verdict"] == "inconclusive" and row["estimate"] == 4.0
        assert row["evidence"].startswith("LC PvR 44.0 vs 40.0 (raw 70.0 vs 40.0)")
        assert ": Δ = +4.0, 95% CI [-3.0, +11.0], adjusted p = " in row["evidence"]
        # the synthetic task's gold judge is a reward that itself docks words: the note says what the control removes
        assert ("the gold judge itself scores length" in row["evidence"]) == (judge == "gold")


def test_ood_sets_are_ordered_by_measured_shift():
    from rlhflab.report.findings import ordered_sets

    e = _eval()
    e["test_sets"] = {"far": 1, "idiom": 1, "main": 1, "near": 1}
    e["sets"].update({s: {"distribution": "ood", "shift": "topic", "compare_to": "main"} for s in ("far", "near")})
    assert ordered_sets(e) == ["main", "far", "idiom", "near"]  # no measured shift: results order
    e["shift"] = {"far": 0.7, "idiom": 0.2, "near": 0.05}
    assert ordered_sets(e) == ["main", "near", "idiom", "far"]


def test_a_single_factor_split_is_described_by_its_rules(tmp_path):
    task = {"sizes": {"test_id": 4, "test_ood": 4}, "split": "length",
            "id_rule": "reddit posts shorter than the median 52 words, any topic and sentiment",
            "ood_rule": "reddit posts of at least 52 words, any topic and sentiment"}
    build_report({"data": _stage(tmp_path, "data", {"task.json": task})}, tmp_path / "r", "j1")
    md = (tmp_path / "r" / "report.md").read_text()
    assert ("Synthetic length split (kirk2024 appendix J.1): ID = reddit posts shorter than the median 52 words, "
            "any topic and sentiment; the OOD set = reddit posts of at least 52 words") in md
    assert "shorter than 52 words and less positive" not in md


def _grid(stage, key, values, metric, mode, scores, selected, select="best", headline=()):
    return {"stage": stage, "metric": metric, "mode": mode, "select": select, "keys": [key],
            "headline": list(headline), "selected": f"{key}={values[selected]:g}",
            "points": [{"name": f"{key}={v:g}", "values": {key: v}, "metrics": {metric: s, "gold_reward_sft": 0.5},
                        "selected": i == selected} for i, (v, s) in enumerate(zip(values, scores))]}


def test_report_shows_each_sweep_with_the_used_point_marked(tmp_path):
    from rlhflab.report.hparams import sweep_table

    sft = _grid("sft", "sft.optim.lr", [3e-4, 1e-4, 3e-5], "best_val_loss", "min", [1.2, 0.9, 1.1], 1,
                headline=("best_val_loss", "gold_reward_sft"))
    rm = _grid("rm", "rm.freeze_fraction", [0.8, 0.0], "best_val_accuracy", "max", [0.61, 0.66], 0, select="config")
    table = sweep_table(sft).splitlines()
    assert table[0] == "| sft.optim.lr | best_val_loss (lower is better) | gold_reward_sft | used |"
    assert table[2] == "| 0.0003 | 1.200 | 0.500 |  |"
    assert table[3] == "| **0.0001** | **0.900** | **0.500** | **✓** |"
    build_report({"sft": _stage(tmp_path, "sft", {"grid.json": sft}), "rm": _stage(tmp_path, "rm", {"grid.json": rm})},
                 tmp_path / "r", "sweeps")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Hyper-parameter sweeps" in md
    assert "**sft** — 3 runs, same seed; selected on ID validation loss" in md
    assert "**rm** — 2 runs, same seed; the configured values feed downstream (an ablation)" in md
    assert "| **0.8** | **0.610** | **✓** |" in md
    assert (tmp_path / "r" / "figures" / "sweep_sft.png").stat().st_size > 1000
    assert (tmp_path / "r" / "figures" / "sweep_rm.png").exists()


def test_method_comparisons_test_each_method_against_sft_and_ppo():
    """GRPO wins 12 more ID inputs than SFT and as many as PPO; on the OOD set it loses 10 that SFT
    wins. Its diversity is PPO's. Verdicts follow the intervals, Holm over this table alone."""
    from rlhflab.report.methods import method_comparisons

    e, d = _eval(), _div()
    e["preferences"]["grpo"] = {"main": _prefs(28, flip=(0, 30)), "idiom": _prefs(2)}
    e["pvr"]["grpo"] = {s: _wr(100 * sum(v) / len(v), 5.0) for s, v in e["preferences"]["grpo"].items()}
    e["gap"]["grpo"] = {"idiom": e["pvr"]["grpo"]["main"]["win_rate"] - e["pvr"]["grpo"]["idiom"]["win_rate"]}
    d["policies"]["grpo"] = d["policies"]["ppo"]
    rows = {r["claim"]: r for r in method_comparisons(e, d)}
    assert set(rows) == {f"GRPO {what}" for what in (
        "beats SFT in distribution (main)", "beats PPO in distribution (main)",
        "beats SFT out of distribution (mean over OOD sets)", "beats PPO out of distribution (mean over OOD sets)",
        "generalises better than SFT (smaller ID − OOD gap)", "generalises better than PPO (smaller ID − OOD gap)",
        "has lower per-input diversity than SFT (ead)", "has lower per-input diversity than PPO (ead)")}
    main_sft = rows["GRPO beats SFT in distribution (main)"]
    assert main_sft["estimate"] == pytest.approx(100 * (28 - 16) / 40) and main_sft["verdict"] == "holds"
    assert rows["GRPO beats PPO in distribution (main)"]["estimate"] == pytest.approx(0.0)
    assert rows["GRPO beats PPO in distribution (main)"]["verdict"] == "inconclusive"
    ood = rows["GRPO beats SFT out of distribution (mean over OOD sets)"]
    assert ood["estimate"] == pytest.approx(100 * (2 - 12) / 40) and ood["verdict"] == "opposite holds"
    assert rows["GRPO has lower per-input diversity than SFT (ead)"]["verdict"] == "holds"
    assert rows["GRPO has lower per-input diversity than PPO (ead)"]["estimate"] == pytest.approx(0.0)
    assert method_comparisons(_eval(), _div()) == []  # none of the methods ran
    kept = method_comparisons(e, d, kept_start=("grpo",))
    assert all(r["evidence"].count("selection kept its starting point") == 1 for r in kept)


def test_the_report_header_names_the_machines_and_commit_its_numbers_came_from():
    from rlhflab.provenance import cpu_family
    from rlhflab.report.page import provenance

    intel = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "gpu": None,
             "family": cpu_family("GenuineIntel", "x86_64", "AVX512", {"avx512_bf16", "amx_bf16", "avx2"})}
    amd = {"cpu": "AMD EPYC 7B13", "cores": 2, "gpu": None,
           "family": cpu_family("AuthenticAMD", "x86_64", "AVX2", {"avx2"})}
    assert intel["family"] == "Intel x86_64 AVX512 +AVX512-BF16 +AMX" and amd["family"] == "AMD x86_64 AVX2"
    v = {"versions": {"rlhflab_commit": "14a472d0123456789abc"}}
    one = provenance({"sft": {"machine": intel, **v}, "ppo": {"machine": intel, **v}})
    assert one == ("Computed on Intel(R) Xeon(R) Processor (Intel x86_64 AVX512 +AVX512-BF16 +AMX, 2 cores), "
                   "rlhflab 14a472d01234. Runs repeat bit for bit on one CPU family, not across families.")
    mixed = provenance({"sft": {"machine": amd}, "ppo": {"machine": intel}, "eval": {}})
    assert mixed.startswith("Computed on several machines: AMD EPYC 7B13 (AMD x86_64 AVX2, 2 cores) (sft); "
                            "Intel(R) Xeon(R) Processor (Intel x86_64 AVX512 +AVX512-BF16 +AMX, 2 cores) (ppo).")
    old = provenance({"sft": {"versions": {}}})  # a manifest written before machines were recorded
    assert old.startswith("Computed on unknown machine (written before rlhflab recorded it).")
    assert provenance({}) == ""


def test_every_manifest_records_the_machine(tmp_path):
    from rlhflab.config import load_config
    from rlhflab.pipeline import Stage, read_manifest, run_pipeline
    from rlhflab.provenance import machine

    cfg = load_config("quickstart", [f"output_dir={tmp_path}", "name=m", "seeds=null"])
    run_pipeline(cfg, [Stage("a", lambda c: [], ("seed",), lambda ctx: {})])
    m = read_manifest(cfg.run_dir / "a")["machine"]
    assert m == machine() and m["cpu"] and m["torch_cpu_capability"] in m["family"] and m["cores"] >= 1
