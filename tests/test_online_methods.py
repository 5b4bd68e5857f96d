"""RLOO, GRPO and online DPO on the tiny synthetic run: learning, the report's tables, exact resume
after SIGKILL (as PPO's tests do for PPO)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY
from helpers import run_killed_in_step
from transformers import AutoModelForCausalLM

pytestmark = pytest.mark.slow

METHODS = ("rloo", "grpo", "online_dpo")
# 10 rollout batches of 32 samples each (PPO's tiny budget): k = 4 for the group methods, pairs for online DPO
SETTINGS = ["rloo.enabled=true", "rloo.prompt_batch_size=8", "rloo.minibatch_size=16", "rloo.max_steps=10",
            "rloo.epochs=10", "rloo.optim.lr=1e-4", "rloo.eval_every=4", "rloo.save_every=4",
            "grpo.enabled=true", "grpo.prompt_batch_size=8", "grpo.rollouts_per_prompt=4", "grpo.minibatch_size=16",
            "grpo.max_steps=10", "grpo.epochs=10", "grpo.optim.lr=1e-4", "grpo.eval_every=4", "grpo.save_every=4",
            "online_dpo.enabled=true", "online_dpo.prompt_batch_size=16", "online_dpo.minibatch_size=16",
            "online_dpo.max_steps=10", "online_dpo.epochs=10", "online_dpo.optim.lr=1e-4",
            "online_dpo.eval_every=4", "online_dpo.save_every=4",
            "eval.policies=[sft,ppo,grpo,rloo,online_dpo]", "diversity.policies=[sft,ppo,grpo,rloo,online_dpo]"]
UPSTREAM = ("data", "pretrain", "sft", "comparisons", "rm", "rm_proxy", "ppo")


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _copy_upstream(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for stage in UPSTREAM:
        if (src / stage).exists():
            shutil.copytree(src / stage, dst / stage)


@pytest.fixture(scope="module")
def methods_run(tiny_run, tmp_path_factory):
    """The tiny run's upstream stages, then the three methods, eval, diversity and the report."""
    from conftest import tiny_config
    from rlhflab.pipeline import run_pipeline
    from rlhflab.stages import REGISTRY

    cfg, _ = tiny_run
    out = tmp_path_factory.mktemp("methods")
    _copy_upstream(cfg.run_dir, out / "methods")
    c = tiny_config(out, "methods", SETTINGS + ["bon.enabled=false", "dpo.enabled=false", "kl_sweep.enabled=false"])
    results = run_pipeline(c, REGISTRY)
    return c, {r.name: r for r in results}


@pytest.mark.parametrize("method", METHODS)
def test_method_raises_rm_score_and_gold(methods_run, method):
    cfg, results = methods_run
    rows = _rows(cfg.run_dir / method)
    start, last = rows[0], rows[-1]
    # measured (seed 0): val RM −0.46 → −0.15 / −0.13 / −0.14, val gold −0.11 → +0.19 / +0.14 / +0.13
    assert last["val_rm_score"] > start["val_rm_score"] + 0.15, (start, last)
    assert last["val_gold"] > start["val_gold"] + 0.1, (start, last)
    assert rows[1]["kl"] == pytest.approx(0.0, abs=1e-6) and last["kl"] > 0.3  # π starts at π_ref, then moves
    if method != "online_dpo":
        assert all(r["ratio_first_minibatch"] == pytest.approx(1.0, abs=1e-6) for r in rows[1:])
    else:
        assert all(0.0 <= r["tie_fraction"] < 0.5 for r in rows[1:])
    manifest = json.loads((cfg.run_dir / method / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 10 and manifest["metrics"]["selected"]["step"] > 0
    kept = manifest["metrics"]["selected"]  # the headline is the kept weights', not the last step's
    assert [manifest["metrics"][f"selected_{k}"] for k in ("val_rm_score", "val_kl", "val_gold")] == \
        [kept["val_rm_score"], kept["val_kl"], kept["val_gold"]]
    AutoModelForCausalLM.from_pretrained(cfg.run_dir / method)  # a plain HF causal LM


def test_report_has_every_method_in_every_table(methods_run):
    cfg, _ = methods_run
    results = json.loads((cfg.run_dir / "eval" / "results.json").read_text())
    diversity = json.loads((cfg.run_dir / "diversity" / "diversity.json").read_text())
    report = (cfg.run_dir / "report" / "report.md").read_text()
    comparisons = json.loads((cfg.run_dir / "report" / "methods.json").read_text())
    for m, name in (("rloo", "RLOO"), ("grpo", "GRPO"), ("online_dpo", "online DPO")):
        assert m in results["pvr"] and m in results["gap"] and m in diversity["policies"]
        assert (cfg.run_dir / "report" / "figures" / f"{m}_curves.png").exists()
        for base in ("SFT", "PPO"):
            assert any(c["claim"].startswith(f"{name} beats {base} in distribution") for c in comparisons)
            assert any(c["claim"].startswith(f"{name} beats {base} out of distribution") for c in comparisons)
            assert any(c["claim"].startswith(f"{name} has lower per-input diversity than {base}") for c in comparisons)
        assert f"| {m} |" in report  # the performance and diversity tables
    assert all(c["verdict"] in ("holds", "opposite holds", "inconclusive") for c in comparisons)
    assert "## Beyond the seeds" in report and (cfg.run_dir / "report" / "figures" / "online_frontier.png").exists()


@pytest.mark.parametrize("method", METHODS)
def test_method_resumes_exactly_after_sigkill(methods_run, method, tmp_path):
    """The pipeline process is SIGKILLed in the method's sixth step; `rlhflab run` resumes from the
    step-4 checkpoint and ends bit-for-bit where the uninterrupted run ended."""
    cfg, _ = methods_run
    trainer_module, trainer = {"rloo": ("group_trainer", "RLOOTrainer"), "grpo": ("group_trainer", "GRPOTrainer"),
                               "online_dpo": ("online_dpo_trainer", "OnlineDPOTrainer")}[method]
    run_dir = tmp_path / "resume"
    _copy_upstream(cfg.run_dir, run_dir)
    sets = TINY + SETTINGS + [f"output_dir={tmp_path}", "name=resume"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = run_killed_in_step(trainer_module, trainer, sets, method)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run_dir / method).exists() and list((run_dir / ".checkpoints").glob(f"{method}-*/state"))
    args = [sys.executable, "-m", "rlhflab.cli", "run", "quickstart", "--until", method,
            *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / method / "manifest.json").read_text())["metrics"]["resumed_at_step"] == 4
    resumed, straight = _rows(run_dir / method), _rows(cfg.run_dir / method)
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    for a, b in zip(resumed, straight):
        for k in b:
            if k not in ("rollout_seconds", "update_seconds", "rollout_tokens_per_s"):
                assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (a["step"], k, a[k], b[k])
