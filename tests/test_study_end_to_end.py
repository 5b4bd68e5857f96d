"""Evaluation, diversity and the report on the tiny run; the report checked in headless Chromium."""

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.tasks.synthetic import TEST_SETS as SYNTHETIC_SETS

TEST_SETS = set(SYNTHETIC_SETS)


def test_eval_reports_win_rates_gaps_and_alpaca_files(tiny_run):
    cfg, _ = tiny_run
    res = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    assert set(res["pvr"]) == {"sft", "bon", "ppo", "dpo"}
    for policy, sets in res["pvr"].items():
        assert set(sets) == TEST_SETS
        assert all(0 <= v["win_rate"] <= 100 and v["n"] == 16 and v["ci_low"] <= v["win_rate"] <= v["ci_high"]
                   for v in sets.values())
        assert set(res["gap"][policy]) == TEST_SETS - {"id"}
        assert res["gap"][policy]["ood_news"] == pytest.approx(sets["id"]["win_rate"] - sets["ood_news"]["win_rate"])
    # per input, for paired comparisons and length control
    assert all(len(res["preferences"][p][s]) == len(res["lengths"][p][s]) == 16 for p in res["pvr"] for s in TEST_SETS)
    assert res["pvr"]["ppo"]["id"]["win_rate"] == pytest.approx(100 * sum(res["preferences"]["ppo"]["id"]) / 16)
    assert "sft" not in res["head_to_head"] or not res["head_to_head"]["sft"]
    assert set(res["head_to_head"]["ppo"]) == TEST_SETS
    assert set(res["shift"]) == TEST_SETS - {"id"}
    assert res["baseline"] == "sft"
    assert {s: v["distribution"] for s, v in res["sets"].items()} == {s: "id" if s == "id" else "ood" for s in TEST_SETS}
    assert all(v["compare_to"] == "id" for s, v in res["sets"].items() if s != "id")
    assert res["shift"]["ood_news"] > res["shift"]["ood_length"]  # another domain moves inputs furthest
    assert res["judge_validation"]["test_id"]["label_agreement"] > 0.5
    assert res["judge_validation"]["test_ood_news"]["distribution"] == "ood"
    ann = cfg.run_dir / "eval" / "annotations" / "ppo_vs_reference" / "id.json"
    out = CliRunner().invoke(app, ["winrate", str(ann)])
    assert out.exit_code == 0 and f"{res['pvr']['ppo']['id']['win_rate']:.2f}" in out.output
    outputs = json.loads((cfg.run_dir / "eval" / "model_outputs" / "dpo" / "id.json").read_text())
    assert len(outputs) == 16 and set(outputs[0]) == {"instruction", "output", "generator"}
    assert res["bon_outputs"] == "bon"  # best-of-N's outputs are the bon stage's, not drawn a second time
    for s in TEST_SETS:
        picked = [json.loads(line)["output"] for line in (cfg.run_dir / "bon" / "outputs" / f"{s}.jsonl").open()]
        shown = json.loads((cfg.run_dir / "eval" / "model_outputs" / "bon" / f"{s}.json").read_text())
        assert [o["output"] for o in shown] == picked[:16]


def test_every_stage_ran_reading_only_config_keys_its_cache_key_covers(tiny_run):
    """Each stage ran under a config view that refuses undeclared keys (a violation raises), and
    its manifest records exactly the keys that feed its key."""
    from rlhflab.stages import REGISTRY
    from rlhflab.sweep import key_reads

    cfg, results = tiny_run
    active = [s for s in REGISTRY if s.enabled(cfg)]
    assert [r.status for r in results.values()] == ["ran"] * len(active)
    for stage in active:
        manifest = json.loads((cfg.run_dir / stage.name / "manifest.json").read_text())
        assert set(manifest["config"]) == set(key_reads(stage)), stage.name


def test_eval_rejudges_only_when_forced(tiny_run, tmp_path):
    from rlhflab.pipeline import run_pipeline
    from rlhflab.stages import REGISTRY

    cfg, _ = tiny_run
    cache = cfg.run_dir / "judge-cache" / "annotations.jsonl"
    keys = lambda: [json.loads(line)["key"] for line in cache.read_text().splitlines()]  # noqa: E731
    before = keys()
    assert [r.status for r in run_pipeline(cfg, REGISTRY, until="eval")][-1] == "cached"
    assert keys() == before
    run_pipeline(cfg, REGISTRY, until="eval", force={"eval"})
    again = keys()[len(before):]
    # every judgement of the eval stage made again (its annotation files and head-to-heads; the
    # kl_sweep stage's judgements share the cache and are not redone)
    shown = sum(len(json.loads(f.read_text())) for f in (cfg.run_dir / "eval" / "annotations").rglob("*.json"))
    assert len(again) == len(set(again)) >= shown and set(again) <= set(before)


def test_diversity_stage_tables(tiny_run):
    cfg, _ = tiny_run
    d = json.loads((cfg.run_dir / "diversity" / "diversity.json").read_text())
    assert set(d["policies"]) == {"sft", "ppo", "dpo"} and d["n_inputs"] == 16 and d["samples_per_input"] == 8
    for metrics in d["policies"].values():
        assert set(metrics) == {"ead", "sentence_bert", "nli"} | GROUND_TRUTH
        for m, v in metrics.items():
            if m == "form":  # defined only on inputs where two samples state the same facts
                assert 0 < v["per_input"]["n"] <= 16 and len(v["per_input"]["values"]) == 16
                continue
            assert v["per_input"]["n"] == 16 and v["per_input"]["std"] > 0 and v["across_input"]["n"] == 10
    samples = (cfg.run_dir / "diversity" / "samples" / "ppo.jsonl").read_text().splitlines()
    assert len(samples) == 16 and len(json.loads(samples[0])["outputs"]) == 8


GROUND_TRUTH = {"content", "content_distinct", "form"}  # the synthetic task knows what each output states
FIGURES = {"pvr", "gap", "head_to_head", "shift", "diversity_per_input", "diversity_across_input", "tradeoff",
           "best_of_n", "rm_accuracy", "ppo_curves", "kl_sweep", "kl_sweep_win_rates", "kl_sweep_per_input",
           "kl_sweep_across_input", "metric_validity"}  # the last: the synthetic task's ground truth


def test_kl_sweep_points(tiny_run):
    """Every number of a β from its last checkpoint: the RM score, KL and gold of that step's own
    validation pass; win rates on every test set with the gap; every metric per and across inputs."""
    cfg, _ = tiny_run
    sweep = json.loads((cfg.run_dir / "kl_sweep" / "sweep.json").read_text())
    assert [p["kl_coef"] for p in sweep["points"]] == [0.01, 0.2] and sweep["select_on"] == "last"
    for p in sweep["points"]:
        rows = [json.loads(line) for line in
                (cfg.run_dir / "kl_sweep" / f"beta_{p['kl_coef']:g}" / "metrics.jsonl").read_text().splitlines()]
        val = next(r for r in rows if r["step"] == p["step"] and "val_rm_score" in r)
        assert p["step"] == rows[-1]["step"] == 3 and not p["is_sft"]
        assert (p["rm_score"], p["kl"], p["gold"]) == (val["val_rm_score"], val["val_kl"], val["val_gold"])
        assert set(p["pvr"]) == TEST_SETS and set(p["gap"]) == TEST_SETS - {"id"}
        assert all(v["n"] == 8 for v in p["pvr"].values())
        assert p["gap"]["ood_news"] == pytest.approx(p["pvr"]["id"]["win_rate"] - p["pvr"]["ood_news"]["win_rate"])
        assert set(p["diversity"]) == {"ead", "sentence_bert", "nli"} | GROUND_TRUTH
        assert all(set(v) == {"per_input", "across_input"} and len(v["per_input"]["values"]) == 8
                   for v in p["diversity"].values())
        assert 0 < p["diversity"]["sentence_bert"]["per_input"]["mean"] < 1
    assert set(sweep["sft"]["pvr"]) == TEST_SETS and 0 < sweep["sft"]["diversity"]["sentence_bert"]["per_input"]["mean"] < 1
    assert not any((cfg.run_dir / "kl_sweep").glob("beta_*/model.safetensors"))  # sweep policies are not kept


def test_report_is_complete_and_self_contained(tiny_run):
    cfg, _ = tiny_run
    folder = cfg.run_dir / "report"
    page = (folder / "index.html").read_text()
    assert set(re.findall(r'data-figure="(\w+)"', page)) == FIGURES
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing fetched from anywhere (# : the contents)
    findings = json.loads((folder / "findings.json").read_text())
    assert any(f["claim"].startswith("RLHF (PPO) beats SFT in distribution") for f in findings)
    assert all(f["verdict"] in ("reproduced", "contradicted", "inconclusive", "not run") and f["evidence"]
               for f in findings)
    for f in findings:  # no verdict that its own interval contradicts
        if f["verdict"] in ("reproduced", "contradicted"):
            side = f["direction"] * (1 if f["verdict"] == "reproduced" else -1)
            assert (f["ci_low"] > 0) if side == 1 else (f["ci_high"] < 0), f
    md = (folder / "report.md").read_text()
    assert "## Findings" in md and all(f"figures/{f}.png" in md for f in FIGURES)
    from rlhflab.provenance import describe, machine

    assert md.splitlines()[2].startswith(f"Computed on {describe(machine())}")  # the run's machine, under the title
    assert f"Computed on {describe(machine())}" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    cfg, _ = tiny_run
    page = (cfg.run_dir / "report" / "index.html").read_text()
    # a copy with a probe that, once loaded, lists each image's decoded width in the title
    probe = page.replace("</body>", "<script>window.addEventListener('load', () => { document.title = "
                         "'loaded:' + [...document.images].map(i => i.complete ? i.naturalWidth : -1).join(','); "
                         "});</script></body>")
    (tmp_path / "probe.html").write_text(probe)
    (tmp_path / "index.html").write_text(page)
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=5000", "--dump-dom"]
    plain = subprocess.run(args + [f"file://{tmp_path / 'index.html'}"], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and "Findings" in plain.stdout
    assert "CONSOLE" not in plain.stderr, plain.stderr  # the real page logs nothing: no errors
    probed = subprocess.run(args + [f"file://{tmp_path / 'probe.html'}"], capture_output=True, text=True, timeout=120)
    widths = re.search(r"<title>loaded:([-\d,]*)</title>", probed.stdout)
    assert widths, probed.stdout[:500]
    ws = [int(w) for w in widths.group(1).split(",")]
    assert len(ws) == len(FIGURES) and all(w > 100 for w in ws)


def test_report_says_when_ppo_kept_its_starting_point(tiny_run, tmp_path):
    import shutil as sh

    from rlhflab.report import build_report

    cfg, _ = tiny_run
    run = tmp_path / "run"
    for stage in ("eval", "ppo", "data"):
        sh.copytree(cfg.run_dir / stage, run / stage, ignore=sh.ignore_patterns("*.safetensors"))
    manifest = json.loads((run / "ppo" / "manifest.json").read_text())
    assert manifest["metrics"]["best_step"] > 0  # the tiny run's PPO moved
    inputs = {stage: run / stage for stage in ("eval", "ppo", "data")}
    build_report(inputs, tmp_path / "a", "run")
    assert "kept its starting point" not in (tmp_path / "a" / "report.md").read_text()
    manifest["metrics"]["best_step"] = 0
    (run / "ppo" / "manifest.json").write_text(json.dumps(manifest))
    build_report(inputs, tmp_path / "b", "run")
    md = (tmp_path / "b" / "report.md").read_text()
    assert "PPO's selection kept its starting point (best_step 0 = SFT)" in md and "## Data and splits" in md
