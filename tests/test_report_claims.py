"""The claims added for issue 34 on hand-made results with hand-computed values (the shift slope,
the head-to-head change, across-input diversity), the statistics' plausible bugs each caught
(raw p for Holm p, `any` for `all`), and the report a researcher reads (contents, wide tables,
the gap's error bars, one mean gap, the kept checkpoint)."""

import json
import re

import pytest

from rlhflab.report import build_report
from rlhflab.report.findings import compute_findings, decide, uninformative_sets

SHIFT = "RLHF's advantage over SFT grows with the measured distribution shift"
H2H = "RLHF (PPO)'s head-to-head win rate against SFT rises from ID to OOD (kirk2024 fig. 4)"


def _prefs(ones: int, n: int = 40) -> list[float]:
    return [1.0 if i < ones else 0.0 for i in range(n)]


def _results(wins: dict[str, dict[str, int]], ood: dict[str, float | None]) -> dict:
    """One ID set 'main' and the OOD sets `ood` (name -> measured shift, None: not measured), each
    comparing to main; wins[policy][set] = inputs won of 40, the first ones."""
    sets = {"main": {"distribution": "id", "compare_to": None},
            **{s: {"distribution": "ood", "compare_to": "main"} for s in ood}}
    prefs = {p: {s: _prefs(k) for s, k in ws.items()} for p, ws in wins.items()}
    pvr = {p: {s: {"win_rate": 100 * k / 40, "standard_error": 5.0} for s, k in ws.items()} for p, ws in wins.items()}
    gap = {p: {s: pvr[p]["main"]["win_rate"] - pvr[p][s]["win_rate"] for s in ood} for p in pvr}
    return {"judge": "rm", "baseline": "sft", "test_sets": {s: 40 for s in sets}, "sets": sets, "pvr": pvr,
            "preferences": prefs, "gap": gap, "shift": {s: x for s, x in ood.items() if x is not None}}


def _row(findings, claim):
    return next(f for f in findings if f["claim"] == claim)


def test_shift_slope_is_the_advantage_per_unit_of_measured_shift():
    # PPO − SFT: near +0 points at shift 0.1, far +50 at 0.3: slope 50 / 0.2 = 250 points per unit. PPO wins
    # in distribution (the primary claim), so the secondary family is tested at all
    e = _results({"sft": {"main": 10, "near": 10, "far": 10}, "ppo": {"main": 30, "near": 10, "far": 30}},
                 {"near": 0.1, "far": 0.3})
    row = _row(compute_findings(e, None, None, None), SHIFT)
    assert row["estimate"] == pytest.approx(250.0) and row["ci_low"] > 0 and row["verdict"] == "reproduced"
    assert row["unit"] == "points per unit shift" and row["n"] == 80 and row["direction"] == 1
    assert row["evidence"].startswith("PPO − SFT PvR (points) at each informative OOD set's shift: near +0.0 at "
                                      "0.100, far +50.0 at 0.300; slope")
    # near +5 (2 inputs), far +15 (6 inputs): slope 10 / 0.2 = 50, within the noise of 40 inputs per set
    e = _results({"sft": {"main": 20, "near": 12, "far": 12}, "ppo": {"main": 20, "near": 14, "far": 18}},
                 {"near": 0.1, "far": 0.3})
    row = _row(compute_findings(e, None, None, None), SHIFT)
    assert row["estimate"] == pytest.approx(50.0) and row["ci_low"] < 0 < row["ci_high"]
    assert row["verdict"] == "inconclusive"


def test_shift_slope_leaves_out_dark_sets_and_needs_two_shifts():
    wins = {"sft": {"main": 20, "near": 10, "far": 10, "dark": 0}, "ppo": {"main": 20, "near": 10, "far": 30, "dark": 0}}
    e = _results(wins, {"near": 0.1, "far": 0.3, "dark": 0.9})
    assert uninformative_sets(e) == ["dark"]
    row = _row(compute_findings(e, None, None, None), SHIFT)
    assert row["estimate"] == pytest.approx(250.0) and row["evidence"].endswith(
        "left out (no policy succeeds): dark: " + row["evidence"].split("dark: ", 1)[1])
    e = _results(wins, {"near": 0.1, "far": None, "dark": 0.9})  # far's shift not measured: one set left
    row = _row(compute_findings(e, None, None, None), SHIFT)
    assert row["verdict"] == "not run" and "(this run has 1)" in row["evidence"]


def test_a_set_one_policy_fails_on_still_carries_information():
    """"No policy succeeds" means all of them: SFT at 0% where PPO wins 30% is the largest effect."""
    e = _results({"sft": {"main": 20, "hard": 0}, "ppo": {"main": 20, "hard": 12}}, {"hard": None})
    assert uninformative_sets(e) == []
    claims = {f["claim"]: f for f in compute_findings(e, None, None, None)}
    assert claims["RLHF (PPO) beats SFT out of distribution (hard)"]["estimate"] == pytest.approx(30.0)
    assert claims["RLHF generalises better than SFT (smaller ID − OOD gap)"]["estimate"] == pytest.approx(-30.0)


def test_head_to_head_change_resamples_each_set_and_needs_the_judgements():
    e = _results({"sft": {"main": 10, "far": 10}, "ppo": {"main": 30, "far": 10}}, {"far": None})  # primary: PPO wins
    e["head_to_head"] = {"sft": {}, "ppo": {"main": {"win_rate": 40.0}, "far": {"win_rate": 90.0}}}
    row = _row(compute_findings(e, None, None, None), H2H)
    assert row["verdict"] == "not run" and "head_to_head_preferences" in row["evidence"]
    e["head_to_head_preferences"] = {"ppo": {"main": _prefs(16), "far": _prefs(36) + [None]}}  # an invalid judgement
    row = _row(compute_findings(e, None, None, None), H2H)
    assert row["estimate"] == pytest.approx(50.0) and row["ci_low"] > 0 and row["verdict"] == "reproduced"
    assert row["n"] == 80 and row["evidence"].startswith(
        "head-to-head win rate (%) against SFT: main 40.0 → far 90.0; mean change over 1 OOD sets")


def _diversity(across_ppo: dict, across_sft: dict) -> dict:
    per = {"mean": 0.5, "std": 0.1, "n": 4}  # no per-input values: only the across-input claim
    return {"test_set": "main", "n_inputs": 30, "samples_per_input": 4, "temperature": 1.0,
            "policies": {"ppo": {"ead": {"per_input": per, "across_input": across_ppo}},
                         "sft": {"ead": {"per_input": per, "across_input": across_sft}}}}


def test_across_input_diversity_claim_per_metric():
    # spread over redraws only: −0.04 ± 1.96 · √(0.03² + 0.04²) = −0.04 ± 0.098; p = erfc(0.8 / √2) = 0.424
    d = _diversity({"mean": 0.70, "std": 0.03, "n": 10}, {"mean": 0.74, "std": 0.04, "n": 10})
    row = _row(compute_findings(None, d, None, None), "RLHF lowers across-input diversity (ead)")
    assert row["estimate"] == pytest.approx(-0.04) and row["ci_low"] == pytest.approx(-0.04 - 1.959964 * 0.05)
    assert row["p_value"] == pytest.approx(0.4237, abs=1e-4) and row["verdict"] == "inconclusive"
    # paired draws over resampled inputs, PPO below SFT in every one: p = 2 / 100
    draws = [0.5 + 0.001 * i for i in range(99)]
    d = _diversity({"mean": 0.55, "std": 0.03, "draws": draws}, {"mean": 0.75, "std": 0.03, "draws": [x + 0.2 for x in draws]})
    row = _row(compute_findings(None, d, None, None), "RLHF lowers across-input diversity (ead)")
    assert row["estimate"] == pytest.approx(-0.2) and row["ci_high"] == pytest.approx(-0.2)
    assert row["p_value"] == pytest.approx(0.02) and row["verdict"] == "reproduced"
    assert "paired bootstrap over inputs" in row["evidence"]


def test_verdicts_use_the_holm_adjusted_p_not_the_raw_one():
    """Three claims each with p = 0.02 and an interval above 0: Holm gives each 3 × 0.02 = 0.06."""
    rows = [{"claim": c, "verdict": None, "direction": 1, "estimate": 1.0, "ci_low": 0.5, "ci_high": 1.5,
             "p_value": 0.02, "n": 10, "unit": "points", "evidence": c} for c in "abc"]
    got = decide(rows)
    assert [r["p_holm"] for r in got] == pytest.approx([0.06] * 3)
    assert [r["verdict"] for r in got] == ["inconclusive"] * 3
    assert decide([dict(rows[0], verdict=None, evidence="a")])[0]["verdict"] == "reproduced"  # alone: p 0.02


def _stage(root, name, files):
    folder = root / name
    folder.mkdir(parents=True)
    for rel, obj in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(json.dumps(obj))
    return folder


def test_report_has_contents_wide_tables_gap_errors_and_one_mean_gap(tmp_path, monkeypatch):
    from rlhflab.report import figures as F

    e = _results({"sft": {"main": 20, "near": 10, "dark": 0}, "ppo": {"main": 28, "near": 12, "dark": 0}},
                 {"near": 0.1, "dark": 0.5})
    e["pvr"]["ppo"]["near"]["standard_error"] = 4.0  # the gap's SE: √(5² + 4²) = 6.40
    e["head_to_head"] = {"sft": {}, "ppo": {"main": {"win_rate": 60.0, "standard_error": 5.0},
                                            "near": {"win_rate": 45.0, "standard_error": 5.0}}}
    ann = [{"preference": 2.0}] * 24 + [{"preference": 1.0}] * 16
    ann_near = [{"preference": 2.0}] * 18 + [{"preference": 1.0}] * 22
    seen, real = {}, F.grouped_bars
    monkeypatch.setattr(F, "grouped_bars", lambda ax, table, ylabel, groups=None: (
        seen.setdefault(ylabel, table), real(ax, table, ylabel, groups)))
    ppo_summary = {"steps": 8, "best_step": 4, "final_val_rm_score": 0.9, "final_val_kl": 3.0, "final_val_gold": 0.1,
                   "selected": {"step": 4, "val_rm_score": 0.7, "val_kl": 1.0, "val_gold": 0.3}}
    inputs = {"eval": _stage(tmp_path, "eval", {"results.json": e, "annotations/ppo_vs_sft/main.json": ann,
                                                "annotations/ppo_vs_sft/near.json": ann_near}),
              "ppo": _stage(tmp_path, "ppo", {"manifest.json": {"metrics": ppo_summary}})}
    findings = build_report(inputs, tmp_path / "r", "t")
    md, page = (tmp_path / "r" / "report.md").read_text(), (tmp_path / "r" / "index.html").read_text()
    # the head-to-head judgements come from the eval stage's annotation files: 60% → 45%
    assert _row(findings, H2H)["estimate"] == pytest.approx(-15.0)
    assert seen["gap (points)"]["ppo"]["near"] == pytest.approx((28 / 40 * 100 - 30.0, 6.4031), abs=1e-3)
    # one mean gap: the dark set (and only it) is left out, marked, in the table as in the findings
    assert "| policy | main | near | dark† | mean gap |" in md and "| ppo | 70.0 ± 5.0 | 30.0 ± 4.0 | 0.0 ± 5.0 | 40.0 |" in md
    assert "† left out of it: dark." in md
    assert "| PPO | 4 of 8 | 0.700 | 1.000 | 0.300 | 0.900 / 3.000 / 0.100 |" in md
    assert md.index("- [Findings](#findings)") < md.index("- [Performance in and out of distribution]"
                                                           "(#performance-in-and-out-of-distribution)") < md.index("## Findings")
    assert '<li><a href="#on-policy-training-the-kept-checkpoints">' in page
    assert '<h2 id="on-policy-training-the-kept-checkpoints">' in page
    assert page.count("<table>") == page.count('<div class="wide"><table>') and ".wide{overflow-x:auto" in page
    assert not re.search(r'(src|href)="(?!data:|#)', page)


def test_grouped_bars_slant_their_labels(tmp_path):
    from rlhflab.report.figures import grouped_bars, save_figure

    seen = {}

    def draw(ax):
        grouped_bars(ax, {"ppo": {s: (1, 0.1) for s in ("id", "ood_topic_100", "ood_sentiment", "ood_length")}}, "y")
        seen["rotation"] = {t.get_rotation() for t in ax.get_xticklabels()}

    save_figure(tmp_path / "f.png", "t", draw)
    assert seen["rotation"] == {30.0}


def test_readme_stage_table_shows_the_kept_checkpoint(tmp_path):
    from rlhflab.report.readme import stage_table

    _stage(tmp_path, "ppo", {"manifest.json": {"seconds": 1.0, "metrics": {
        "final_val_rm_score": 0.9, "best_step": 4, "selected": {"step": 4, "val_rm_score": 0.7}}}})
    rows = stage_table(tmp_path, {"ppo": ("final_val_rm_score", "final_val_kl", "best_step")})
    assert rows[2] == "| ppo | 1.0 | – | kept val_rm_score 0.7, best_step 4 |"


def test_ground_truth_content_is_claimed_beside_the_papers_metrics_form_and_counts_are_not():
    from rlhflab.report.diversity_claims import across_input_claims, kl_metric, per_input_claims

    def spread(values):
        return {"per_input": {"mean": sum(values) / len(values), "std": 0.1, "values": values},
                "across_input": {"mean": 0.5, "std": 0.05}}

    d = {"n_inputs": 4, "policies": {p: {m: spread(v) for m in ("ead", "content", "form", "content_distinct")}
                                     for p, v in (("sft", [0.8, 0.7, 0.9, 0.8]), ("ppo", [0.3, 0.2, 0.4, 0.3]))}}
    names = [r["claim"] for r in per_input_claims(d, 0)]
    assert names == ["RLHF lowers per-input diversity (ead)", "RLHF lowers per-input diversity (content)"]
    assert [r["claim"] for r in across_input_claims(d)] == ["RLHF lowers across-input diversity (ead)",
                                                            "RLHF lowers across-input diversity (content)"]
    assert kl_metric(["content", "content_distinct", "form", "ead"]) == "ead" and kl_metric(["content"]) is None


def test_each_metric_is_set_against_the_ground_truth_where_there_is_one(tmp_path):
    from rlhflab.report.metric_validity import metric_validity, validity_rows
    from rlhflab.report.sections import Sections

    def table(content, ead, nli):
        return {m: {"per_input": {"mean": sum(v) / len(v), "std": 0.0, "values": v}, "across_input": {"mean": 0.0}}
                for m, v in (("content", content), ("ead", ead), ("nli", nli))}

    # per input EAD rises with content everywhere (ρ = 1); NLI falls with it (ρ = −1)
    d = {"n_inputs": 3, "test_set": "id", "samples_per_input": 4,
         "policies": {"sft": table([0.5, 0.6, 0.7], [0.50, 0.60, 0.70], [0.5, 0.4, 0.3]),
                      "ppo": table([0.1, 0.2, 0.3], [0.10, 0.20, 0.30], [0.9, 0.8, 0.7])}}
    rows = validity_rows(d)
    assert [r["metric"] for r in rows] == ["ead", "nli"]
    assert rows[0]["per_input"]["estimate"] == pytest.approx(1.0) and rows[0]["policies"] == pytest.approx(1.0)
    assert rows[1]["per_input"]["estimate"] == pytest.approx(-1.0) and rows[1]["policies"] == pytest.approx(-1.0)
    rep = Sections(tmp_path)
    metric_validity(rep, d)
    title, body = rep.sections[-1]
    assert title == "Do the diversity metrics measure diversity here?" and "(sft 0.600 > ppo 0.200)" in body
    assert "| EAD | +1.00 [" in body and "| NLI | -1.00 [" in body and (tmp_path / "figures" / "metric_validity.png").exists()
    without = Sections(tmp_path / "none")
    metric_validity(without, {**d, "policies": {p: {"ead": t["ead"]} for p, t in d["policies"].items()}})
    # no ground truth (a real dataset): the section says which metric the synthetic validation supports
    assert without.figures == [] and [t for t, _ in without.sections] == ["Do the diversity metrics measure diversity here?"]
    assert "read EAD as lexical diversity" in without.sections[0][1] and "--paraphrase-sets" in without.sections[0][1]
    nothing = Sections(tmp_path / "nothing")
    metric_validity(nothing, None)
    assert nothing.sections == []


def test_secondary_claims_wait_for_the_primary_ones():
    """The same far-set effect is decided when PPO wins in distribution and not when it does not."""
    open_gate = _results({"sft": {"main": 10, "far": 10}, "ppo": {"main": 30, "far": 30}}, {"far": None})
    closed = _results({"sft": {"main": 20, "far": 10}, "ppo": {"main": 20, "far": 30}}, {"far": None})
    far = "RLHF (PPO) beats SFT out of distribution (far)"
    rows = {f["claim"]: f for f in compute_findings(open_gate, None, None, None)}
    assert rows["RLHF (PPO) beats SFT in distribution"]["family"] == "primary"
    assert rows[far]["family"] == "secondary" and rows[far]["verdict"] == "reproduced"
    rows = {f["claim"]: f for f in compute_findings(closed, None, None, None)}
    assert rows["RLHF (PPO) beats SFT in distribution"]["verdict"] == "inconclusive"
    assert rows[far]["ci_low"] > 0 and rows[far]["verdict"] == "inconclusive"
    assert rows[far]["p_holm"] >= rows["RLHF (PPO) beats SFT in distribution"]["p_holm"]
