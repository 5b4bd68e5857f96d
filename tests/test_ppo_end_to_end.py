"""PPO on the tiny synthetic run: learning, first-minibatch invariants, exact resume after a kill."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import TINY
from helpers import run_killed_in_step
from transformers import AutoModelForCausalLM

pytestmark = pytest.mark.slow


def _rows(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_ppo_raises_reward_and_gold(tiny_run):
    cfg, results = tiny_run
    rows = _rows(cfg.run_dir / "ppo")
    first, last = rows[1], rows[-1]
    assert first["kl"] == 0.0 and first["ratio_first_minibatch"] == 1.0  # π = π_ref = π_old at the start
    assert all(r["ratio_first_minibatch"] == 1.0 for r in rows[1:])
    # measured: val RM score −0.13 → 0.03, val gold −0.11 → 0.10, rollout gold −0.17 → −0.08
    assert last["val_rm_score"] > rows[0]["val_rm_score"] + 0.08
    assert last["val_gold"] > rows[0]["val_gold"] + 0.05
    assert sum(r["gold"] for r in rows[-3:]) > sum(r["gold"] for r in rows[1:4])
    assert last["kl"] > 0
    for key in ("rm_score", "kl", "objective", "entropy", "value_loss", "clipfrac", "vf_clipfrac",
                "approx_kl", "response_length", "gold", "lr"):
        assert key in last, key
    AutoModelForCausalLM.from_pretrained(cfg.run_dir / "ppo")  # a plain HF causal LM
    assert not (cfg.run_dir / ".checkpoints").exists() or not any((cfg.run_dir / ".checkpoints").iterdir())


TIMINGS = ("rollout_seconds", "update_seconds", "rollout_tokens_per_s")  # wall-clock, not state


def _assert_same_rows(resumed, straight):
    assert [r["step"] for r in resumed] == [r["step"] for r in straight]
    for a, b in zip(resumed, straight):
        for k in b:
            if k not in TIMINGS:
                assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (a["step"], k, a[k], b[k])


def _trainer(cfg, run_dir, tmp_path, extra=(), **kw):
    from conftest import tiny_config
    from rlhflab.data.records import PromptRecord, read_records
    from rlhflab.data.synthetic import gold_reward
    from rlhflab.ppo_trainer import PPOTrainer

    c = tiny_config(tmp_path, "x", list(extra))
    data = cfg.run_dir / "data"
    prompts = [r.prompt for r in read_records(data / "prompts/train.jsonl", PromptRecord)]
    val = [r.prompt for r in read_records(data / "prompts/validation.jsonl", PromptRecord)]
    return PPOTrainer(c.ppo, c.generation, sft_dir=cfg.run_dir / "sft", rm_dir=cfg.run_dir / "rm", seed=c.seed,
                      prompts=prompts, val_prompts=val, gold=gold_reward, **kw)


class Crash(Exception):
    pass


def test_ppo_resumes_exactly_after_a_crash(tiny_run, tmp_path):
    """A crash after the step-4 checkpoint (deterministic, in process); the rerun resumes there and
    ends bit-for-bit where the uninterrupted run of the tiny pipeline ended."""
    cfg, _ = tiny_run
    ckpt, metrics = tmp_path / "ckpt", tmp_path / "metrics.jsonl"

    def log(step, row):
        with metrics.open("a") as f:
            f.write(json.dumps({"step": step, **row}) + "\n")

    trainer = _trainer(cfg, tmp_path, tmp_path, checkpoint_dir=ckpt, metrics_file=metrics, log=log)
    step_fn = trainer.train_step

    def crashing(step):
        if step == 6:
            raise Crash
        return step_fn(step)

    trainer.train_step = crashing
    try:
        trainer.train()
        raise AssertionError("the crash did not happen")
    except Crash:
        pass
    assert (ckpt / "state").exists()
    told = []
    resumed = _trainer(cfg, tmp_path, tmp_path, checkpoint_dir=ckpt, metrics_file=metrics, log=log,
                       on_resume=lambda step, total: told.append((step, total)))
    summary = resumed.train()
    assert summary["resumed_at_step"] == 4 and told == [(4, 10)]
    _assert_same_rows(_rows(tmp_path), _rows(cfg.run_dir / "ppo"))


def test_ppo_stage_resumes_after_sigkill(tiny_run, tmp_path):
    """The real thing: the pipeline process is SIGKILLed in its sixth PPO step; `rlhflab run` resumes."""
    cfg, _ = tiny_run
    run_dir = tmp_path / "resume"
    run_dir.mkdir()
    for stage in ("data", "pretrain", "sft", "rm"):
        shutil.copytree(cfg.run_dir / stage, run_dir / stage)
    sets = TINY + [f"output_dir={tmp_path}", "name=resume"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = run_killed_in_step("ppo_trainer", "PPOTrainer", sets, "ppo")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (run_dir / "ppo").exists() and list((run_dir / ".checkpoints").glob("ppo-*/state"))
    args = [sys.executable, "-m", "rlhflab.cli", "run", "quickstart", "--until", "ppo",
            *[a for s in sets for a in ("--set", s)]]
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((run_dir / "ppo" / "manifest.json").read_text())
    assert manifest["metrics"]["resumed_at_step"] == 4
    assert "ppo: resuming at step 4 of 10" in done.stderr  # the run says it resumed, and where
    _assert_same_rows(_rows(run_dir / "ppo"), _rows(cfg.run_dir / "ppo"))


def test_ppo_options_shared_value_head_minibatch_forward_adaptive_kl(tiny_run, tmp_path):
    """The non-default paths run and stay finite: shared backbone + random value head (kirk2024),
    per-minibatch recomputation (ivison2024 G), adaptive KL, k3, reward whitening and normalisation."""
    import math

    import torch

    cfg, _ = tiny_run
    opts = ["ppo.value_model=shared", "ppo.minibatch_forward=true", "ppo.adaptive_kl=true", "ppo.kl_estimator=k3",
            "ppo.whiten_rewards=true", "ppo.normalize_rewards=true", "ppo.grad_accum=2", "ppo.inner_epochs=1",
            "ppo.val_prompts=4"]
    trainer = _trainer(cfg, tmp_path, tmp_path, opts)
    head = trainer.raw.value_head.weight.detach().clone()
    rows = [trainer.train_step(step) for step in (1, 2)]
    for row in rows:
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float)), row
    assert rows[0]["ratio_first_minibatch"] == 1.0
    assert not torch.equal(head, trainer.raw.value_head.weight)  # the random head learns
    assert rows[1]["kl_coef"] != trainer.cfg.kl_coef  # the adaptive controller moved β
    val = trainer.validate()  # checkpoint selection scores with the adapted β, not the configured one
    assert val["val_kl_coef"] == trainer.loop.kl_coef != trainer.cfg.kl_coef
    assert trainer.loop.score_norm is not None  # normalisation fixed from the first batch


def test_normalised_rewards_take_their_norm_from_the_first_validation_pass(tiny_run, tmp_path):
    """Before any batch, the validation pass samples the SFT policy: its scores set the norm, so the
    starting point's objective is 0 (mean of standardised scores, no KL yet)."""
    cfg, _ = tiny_run
    trainer = _trainer(cfg, tmp_path, tmp_path, ["ppo.normalize_rewards=true", "ppo.val_prompts=8"])
    first = trainer.validate()
    assert trainer.loop.score_norm is not None and first["val_kl"] == pytest.approx(0.0, abs=1e-5)
    assert first["val_objective"] == pytest.approx(0.0, abs=1e-5)
