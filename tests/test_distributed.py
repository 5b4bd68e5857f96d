"""A training step in 2 CPU processes (torchrun, gloo) equals the same global batch in one."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from accelerate import Accelerator
    from rlhflab.config import Optim
    from rlhflab.data.tokenize import encode_completion
    from rlhflab.training import train_lm
    from helpers import TEXTS, tiny_model_and_tokenizer

    model, tok = tiny_model_and_tokenizer(seed=3)
    ex = [encode_completion(tok, t.split("TL;DR:")[0] + "TL;DR:", " " + t.split(" ")[-1], 64) for t in TEXTS[:8]]
    optim = Optim(lr=1e-2, batch_size=8, micro_batch_size={micro}, max_steps=2, warmup_ratio=0.0,
                  schedule="constant", max_grad_norm=None, adam_epsilon=1.0)
    acc = Accelerator(cpu=True)
    train_lm(model, ex, ex[:4], optim, accelerator=acc, pad_id=tok.pad_token_id, seed=0,
             eval_every=100, log=lambda s, m: None)
    state = {{k: v.detach().cpu() for k, v in acc.unwrap_model(model).state_dict().items()}}
    torch.save(state, {out!r} + f"/rank{{acc.process_index}}.pt")
    if acc.is_main_process:
        print("world", acc.num_processes)
""")


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
@pytest.mark.slow
def test_two_process_training_step_matches_single_process(tmp_path):
    tests = str(Path(__file__).parent)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two"
    two.mkdir()
    (tmp_path / "two.py").write_text(SCRIPT.format(tests=tests, micro=2, out=str(two)))
    p = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29533", str(tmp_path / "two.py")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "world 2" in p.stdout
    one = tmp_path / "one"
    one.mkdir()
    (tmp_path / "one.py").write_text(SCRIPT.format(tests=tests, micro=8, out=str(one)))
    p = subprocess.run([sys.executable, str(tmp_path / "one.py")], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1, single = (torch.load(f) for f in (two / "rank0.pt", two / "rank1.pt", one / "rank0.pt"))
    start = {k: v for k, v in __import__("helpers").tiny_model_and_tokenizer(seed=3)[0].state_dict().items()}
    moved = False
    for k in single:
        assert torch.equal(r0[k], r1[k]), k  # ranks stay in sync
        assert torch.allclose(r0[k], single[k], atol=1e-6), k  # and equal the 1-process run
        moved |= not torch.equal(single[k], start[k])
    assert moved


STAGE_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from helpers import run_stage_on
    from rlhflab.stages.{stage} import STAGE

    cfg = tiny_config({runs!r}, "tiny", {overrides!r})
    run_stage_on(STAGE, cfg, cfg.run_dir, Path({out!r}))
    from rlhflab.pipeline import process_state
    if process_state().is_main_process:
        print("world", process_state().num_processes)
""")


def _one_and_two_processes(tmp_path, cfg, stage: str, overrides: list[str], port: int, row_key: str) -> dict:
    """The stage on the tiny run's artefacts under torchrun with 2 processes and in one: per run, the
    metric rows that carry `row_key` and the saved weights."""
    import json

    from safetensors.torch import load_file

    tests, torchrun = str(Path(__file__).parent), str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, cmd in (("two", [torchrun, "--nproc_per_node", "2", "--master_port", str(port)]), ("one", [sys.executable])):
        script = tmp_path / f"{name}.py"
        script.write_text(STAGE_SCRIPT.format(tests=tests, runs=str(cfg.output_dir), out=str(tmp_path / name),
                                              stage=stage, overrides=overrides))
        p = subprocess.run([*cmd, str(script)], capture_output=True, text=True, env=env, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        assert f"world {2 if name == 'two' else 1}" in p.stdout
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = ([r for r in rows if row_key in r], load_file(tmp_path / name / "model.safetensors"))
    return runs


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_reward_model_training_matches_single_process(tiny_run, tmp_path):
    """The rm stage under torchrun: its Bradley–Terry forward goes through the DDP wrapper, so both
    ranks' gradients are averaged and the run equals one process on the same global batches."""
    cfg, _ = tiny_run
    runs = _one_and_two_processes(tmp_path, cfg, "rm", ["rm.optim.max_steps=3", "rm.optim.batch_size=8",
                                  "rm.optim.micro_batch_size=4", "rm.optim.lr=1e-3", "rm.eval_every=100"],
                                  29534, "train_loss")
    (two_rows, two_w), (one_rows, one_w) = runs["two"], runs["one"]
    assert len(two_rows) == len(one_rows) == 3
    for a, b in zip(two_rows, one_rows):  # later steps' losses follow from the earlier steps' averaged gradients
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["train_accuracy"] == b["train_accuracy"]
    assert two_rows[-1]["train_loss"] != two_rows[0]["train_loss"]
    for k in one_w:
        assert torch.allclose(two_w[k], one_w[k], atol=1e-5), k


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_dpo_matches_single_process(tiny_run, tmp_path):
    """The dpo stage under torchrun (policy forward through the DDP wrapper, each rank half of every
    global batch, the reference live) equals one process on the same global batches: losses, implicit
    reward accuracies and saved weights."""
    cfg, _ = tiny_run
    runs = _one_and_two_processes(tmp_path, cfg, "dpo", [
        "dpo.optim.max_steps=3", "dpo.optim.batch_size=8", "dpo.optim.micro_batch_size=4", "dpo.optim.lr=1e-3",
        "dpo.eval_every=100", "dpo.reference=live", "dpo.n_sample_check=0"], 29535, "loss")
    (two_rows, two_w), (one_rows, one_w) = runs["two"], runs["one"]
    assert len(two_rows) == len(one_rows) == 3
    for a, b in zip(two_rows, one_rows):
        for key in ("loss", "reward_margin", "logp_chosen"):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
    # at step 1 the policy is the reference: every margin is float rounding, so which side wins is noise
    assert [a["reward_accuracy"] for a in two_rows[1:]] == [b["reward_accuracy"] for b in one_rows[1:]]
    # the policy moved off the reference, the same way in both
    assert abs(two_rows[0]["reward_margin"]) < 1e-5 and abs(two_rows[1]["reward_margin"]) > 1e-3
    assert two_rows[-1]["val_accuracy"] == pytest.approx(one_rows[-1]["val_accuracy"])
    for k in one_w:  # the saved weights: whichever the validation selection kept, the same in both
        assert torch.allclose(two_w[k], one_w[k], atol=1e-5), k


PPO_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import torch
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from helpers import run_stage_on
    from rlhflab.pipeline import process_state
    from rlhflab.ppo_trainer import PPOTrainer
    from rlhflab.stages.ppo import STAGE

    out, rank = Path({out!r}), process_state().process_index
    train = PPOTrainer.train

    def train_and_keep(self):  # every rank's selected policy and its view of the run, not only rank 0's
        summary = train(self)
        torch.save({{k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()}}, out / f"rank{{rank}}.pt")
        (out / f"rank{{rank}}.json").write_text(json.dumps({{k: summary[k] for k in ("best_step", "selected")}}))
        return summary

    PPOTrainer.train = train_and_keep
    cfg = tiny_config({runs!r}, "tiny", {overrides!r})
    run_stage_on(STAGE, cfg, cfg.run_dir, out)
""")


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_ppo_ranks_stay_in_sync(tiny_run, tmp_path):
    """The ppo stage under torchrun. Each rank samples its own share of every rollout batch, so the
    run cannot equal one process; what must hold is that the ranks are one run: the same weights after
    every update (DDP), the same reward normalisation, the same validation numbers on the whole
    validation set (shared out unevenly here: 5 prompts, 2 processes). The last checkpoint is kept, so
    the saved policy is a trained one."""
    import json

    cfg, _ = tiny_run
    torchrun = str(Path(sys.executable).parent / "torchrun")
    overrides = ["ppo.max_steps=3", "ppo.prompt_batch_size=8", "ppo.minibatch_size=4", "ppo.eval_every=1",
                 "ppo.val_prompts=5", "ppo.optim.lr=1e-3", "ppo.save_every=100", "ppo.select_on=last"]
    (tmp_path / "out").mkdir()
    (tmp_path / "ppo.py").write_text(PPO_SCRIPT.format(tests=str(Path(__file__).parent), runs=str(cfg.output_dir),
                                                       out=str(tmp_path / "out"), overrides=overrides))
    try:
        p = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29536", str(tmp_path / "ppo.py")],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    finally:  # the stage's checkpoint folder lies in the shared tiny run; the pipeline would delete it, so do we
        shutil.rmtree(cfg.run_dir / ".checkpoints" / "ppo-rerun-test", ignore_errors=True)
    assert p.returncode == 0, p.stderr[-3000:]
    out = tmp_path / "out"
    views = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert views[0] == views[1]  # the same validation numbers, so the same checkpoint kept
    w0, w1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "policy_loss" in r]
    assert len(steps) == 3 and all("val_objective" in r for r in steps)
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    sft = AutoModelForCausalLM.from_pretrained(cfg.run_dir / "sft").state_dict()
    saved = load_file(out / "model.safetensors")
    assert any(not torch.equal(saved[k], sft[k]) for k in saved if k in sft)  # training moved the policy
