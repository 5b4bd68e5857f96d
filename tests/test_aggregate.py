"""Across-seed aggregation on hand-made run folders."""

import json
import math

import pytest
import yaml
from typer.testing import CliRunner

from rlhflab.aggregate import aggregate_runs, check_combinable
from rlhflab.cli import app

AMD = {"cpu": "AMD EPYC 7B13", "family": "AMD x86_64 AVX2", "cores": 2, "torch_cpu_capability": "AVX2", "gpu": None}
INTEL = {"cpu": "Intel Xeon", "family": "Intel x86_64 AVX512", "cores": 2, "torch_cpu_capability": "AVX512", "gpu": None}


def _config(seed, lr=1e-4, task="synthetic"):
    return {"name": f"study-s{seed}", "seed": seed, "seeds": None, "data_seed": 0, "output_dir": f"/tmp/o{seed}",
            "task": {"name": task}, "sft": {"optim": {"lr": lr}}}


def _run(folder, wr_sft, wr_ppo, div_ppo, estimate, seed=None, machine=AMD, **config):
    seed = int(folder.name[-1]) if seed is None else seed
    (folder / "eval").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "config.yaml").write_text("# source: study.yaml\n" + yaml.safe_dump(_config(seed, **config)))
    versions = {"rlhflab": "0.3.0", "torch": "2.13.0"}
    for stage, started in (("data", "2026-01-01T00:00:00"), ("eval", "2026-01-01T00:01:00")):
        (folder / stage / "manifest.json").write_text(json.dumps(
            {"stage": stage, "artefact_id": f"{stage}-id", "seed": seed, "versions": versions, "started": started,
             **({"machine": machine} if machine else {})}))
    (folder / "diversity").mkdir()
    (folder / "report").mkdir()
    # "a_ood" sorts before "b_id" by name; only the declared distribution puts b_id first
    sizes = {"a_ood": 10, "b_id": 10}
    sets = {"b_id": {"distribution": "id", "shift": None, "compare_to": None},
            "a_ood": {"distribution": "ood", "shift": "length", "compare_to": "b_id"}}
    pvr = {"sft": {"b_id": {"win_rate": wr_sft}, "a_ood": {"win_rate": wr_sft - 5}},
           "ppo": {"b_id": {"win_rate": wr_ppo}, "a_ood": {"win_rate": wr_ppo - 10}}}
    (folder / "eval" / "results.json").write_text(json.dumps(
        {"test_sets": sizes, "sets": sets, "baseline": "sft", "pvr": pvr,
         "gap": {"sft": {"a_ood": 5.0}, "ppo": {"a_ood": 10.0}}}))
    (folder / "diversity" / "diversity.json").write_text(json.dumps(
        {"policies": {"sft": {"ead": {"per_input": {"mean": 0.5}}}, "ppo": {"ead": {"per_input": {"mean": div_ppo}}}}}))
    (folder / "report" / "findings.json").write_text(json.dumps(
        [{"claim": "RLHF beats SFT", "verdict": "reproduced" if estimate > 1 else "inconclusive", "direction": 1,
          "estimate": estimate, "ci_low": estimate - 1, "ci_high": estimate + 1, "evidence": "x"},
         {"claim": "KL", "verdict": "not run", "direction": -1, "evidence": "not run"}]))
    return folder


def test_mean_and_standard_error_over_seeds(tmp_path):
    runs = [_run(tmp_path / "s0", 10, 30, 0.3, 4.0), _run(tmp_path / "s1", 20, 40, 0.4, 5.0),
            _run(tmp_path / "s2", 30, 20, 0.2, 0.5)]
    res = aggregate_runs(runs, tmp_path / "agg")
    assert res["pvr"]["ppo"]["b_id"]["mean"] == pytest.approx(30)
    assert res["pvr"]["ppo"]["b_id"]["se"] == pytest.approx(10 / math.sqrt(3))  # sample std 10
    assert res["pvr"]["ppo"]["b_id"]["seeds"] == 3 and list(res["pvr"]["ppo"]) == ["b_id", "a_ood"]
    assert res["mean_gap"]["ppo"]["mean"] == 10.0 and res["mean_gap"]["ppo"]["se"] == 0.0
    assert res["per_input_diversity"]["ppo"]["ead"]["mean"] == pytest.approx(0.3)
    beats = res["findings"]["RLHF beats SFT"]
    assert (beats["reproduced_in"], beats["inconclusive_in"], beats["checked_in"]) == (2, 1, 3)
    assert [(s["seed"], s["estimate"]) for s in beats["seeds"]] == [(0, 4.0), (1, 5.0), (2, 0.5)]
    assert beats["seeds"][0]["se"] == pytest.approx(1 / 1.959964)  # from the ±1 interval
    # equal SEs (0.51) below the spread (s = 2.3629): the random-effects result is the t-interval
    # over seeds, mean 3.1667 ± t_{0.975,2} · s / √3 = ± 5.870: across 0
    assert beats["estimate"] == pytest.approx(19 / 6)
    assert beats["ci_low"] == pytest.approx(19 / 6 - 4.303 * 2.36291 / math.sqrt(3), abs=1e-3)
    assert beats["verdict"] == "inconclusive"
    assert res["findings"]["KL"]["verdict"] == "not run" and res["findings"]["KL"]["checked_in"] == 0
    assert (tmp_path / "agg" / "pvr_over_seeds.png").stat().st_size > 1000
    assert (tmp_path / "agg" / "findings_forest.png").stat().st_size > 1000
    assert [(r["seed"], r["rlhflab"], r["data"]) for r in res["runs"]] == [(s, ["0.3.0"], "data-id") for s in (0, 1, 2)]
    md = (tmp_path / "agg" / "aggregate.md").read_text()
    # t = 3.1667 / 1.3642 = 2.321 on 2 df: p = 1 − t / √(2 + t²) = 0.146; τ² = s² − SE² = 5.583 − 0.260
    assert ("| RLHF beats SFT | inconclusive | +3.17 [-2.7, +9.04] | 0.15 | 5.32 | s0 +4 [+3, +5]; s1 +5 [+4, +6]; "
            "s2 +0.5 [-0.5, +1.5] | 2 / 0 / 1 of 3 |") in md
    assert "![findings over seeds](findings_forest.png)" in md and "DerSimonian–Laird" in md
    assert "Holm within the 1 secondary claim (no primary" in md and "exchangeable" in md
    assert "| policy | b_id | a_ood | mean gap |" in md and "| ppo | 30.0 ± 5.8 | 20.0 ± 5.8 | 10.0 ± 0.0 |" in md
    assert (f"| {tmp_path / 's1'} | 1 | 0.3.0 | not recorded | 2.13.0 | AMD EPYC 7B13 (AMD x86_64 AVX2, 2 cores) "
            "| data-id |") in md
    assert "different CPU families" not in md


def test_the_aggregate_says_when_runs_came_from_different_cpu_families(tmp_path):
    runs = [_run(tmp_path / "s0", 10, 30, 0.3, 4.0), _run(tmp_path / "s1", 20, 40, 0.4, 5.0, machine=INTEL),
            _run(tmp_path / "s2", 30, 20, 0.2, 0.5, machine=None)]
    res = aggregate_runs(runs, tmp_path / "agg")
    assert res["runs"][1]["cpu_families"] == ["Intel x86_64 AVX512"] and res["runs"][2]["cpu_families"] == []
    md = (tmp_path / "agg" / "aggregate.md").read_text()
    assert "different CPU families (AMD x86_64 AVX2; Intel x86_64 AVX512)" in md
    assert "unknown machine (written before rlhflab recorded it)" in md


def test_the_aggregate_refuses_the_same_seed_twice(tmp_path):
    runs = [_run(tmp_path / "a0", 10, 30, 0.3, 4.0), _run(tmp_path / "b0", 20, 40, 0.4, 5.0)]
    with pytest.raises(ValueError, match=r"a0 and .*b0 both ran seed 0.*--seeds N"):
        aggregate_runs(runs, tmp_path / "agg")
    assert not (tmp_path / "agg").exists()


def test_the_aggregate_refuses_runs_of_different_configs_and_names_the_keys(tmp_path):
    runs = [_run(tmp_path / "s0", 10, 30, 0.3, 4.0), _run(tmp_path / "s1", 20, 40, 0.4, 5.0, lr=3e-4, task="tldr")]
    with pytest.raises(ValueError, match=r"s0 and .*s1 differ in config beyond the seed \(sft\.optim\.lr, task\.name\)"):
        aggregate_runs(runs, tmp_path / "agg")


def test_check_combinable_ignores_only_the_seed_name_and_place(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    check_combinable([a, b], [0, 1], [_config(0), _config(1) | {"seeds": [0, 1]}])
    with pytest.raises(ValueError, match=r"\(data_seed\)"):
        check_combinable([a, b], [0, 1], [_config(0), _config(1) | {"data_seed": 1}])
    with pytest.raises(ValueError, match=r"\(extra\)"):  # a key only one config has
        check_combinable([a, b], [0, 1], [_config(0), _config(1) | {"extra": None}])
    with pytest.raises(ValueError, match="same run folder"):
        check_combinable([a, tmp_path / "x" / ".." / "a"], [0, 1], [_config(0), _config(1)])


def test_aggregate_cli_errors_name_the_missing_file_and_refuse_one_run_twice(tmp_path):
    _run(tmp_path / "s0", 10, 30, 0.3, 4.0)
    (tmp_path / "s1").mkdir()
    res = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "config.yaml" in res.output
    twice = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s0"), "--out", str(tmp_path / "a")])
    assert twice.exit_code == 1 and "same run folder" in twice.output and "reproduced" not in twice.output
    _run(tmp_path / "s2", 20, 40, 0.4, 5.0)
    ok = CliRunner().invoke(app, ["aggregate", str(tmp_path / "s0"), str(tmp_path / "s2"), "--out", str(tmp_path / "a")])
    said = " ".join(ok.output.split())
    assert ok.exit_code == 0 and "over seeds (+4.5 [-1.85, +10.9], adj. p 0.07; 2/2 seeds reproduce): RLHF beats SFT" in said
