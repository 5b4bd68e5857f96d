"""The recipe of docs/own-data.md, run as a user would: their own JSONL files beside a config that
extends the built-in `own-data`, one command, a report at the end."""

import json
import os
import subprocess
import sys

import pytest

# the recipe's own sizes would take minutes; these keep its shape and make it a test
FAST = ["pretrain.optim.epochs=1", "sft.optim.epochs=1", "sft.eval_every=5", "sft.n_sample_check=8",
        "rm.eval_every=5", "bon.n=4", "bon.sweep=[1,2,4]", "bon.sweep_prompts=4", "bon.max_prompts_per_test_set=8",
        "ppo.max_steps=2", "ppo.eval_every=2", "ppo.save_every=2", "ppo.val_prompts=8", "dpo.eval_every=5",
        "dpo.n_sample_check=8", "diversity.n_inputs=4", "diversity.samples_per_input=4",
        "eval.max_inputs_per_test_set=8", "eval.bootstrap=50", "kl_sweep.enabled=false",
        "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2", "model.num_kv_heads=2",
        "model.intermediate_size=64", "pipeline.progress=false"]


def _users_files(tmp_path):
    """JSONL files in rlhflab's record schemas, as a user would bring them (made here from the
    synthetic task's generator so that there is something to learn; no meta, no ids)."""
    from rlhflab.config import load_config
    from rlhflab.tasks import build_task

    synthetic = load_config("quickstart", ["task.n_pretrain=100", "task.n_sft_train=300", "task.n_sft_validation=20",
                                           "task.n_preference_train=200", "task.n_preference_validation=20",
                                           "task.n_preference_test=10", "task.n_test=12", "task.n_policy_prompts=40",
                                           "task.n_policy_validation=10", "task.median_pool=500"]).task
    made = tmp_path / "made"
    build_task(synthetic, 0, made)
    data = tmp_path / "project" / "data"
    data.mkdir(parents=True)
    keep = {"sft.jsonl": ("sft/train.jsonl", ("prompt", "completion")),
            "pairs.jsonl": ("preference/train.jsonl", ("prompt", "chosen", "rejected")),
            "test.jsonl": ("test/id.jsonl", ("prompt", "reference")),
            "long.jsonl": ("test/ood_length.jsonl", ("prompt", "reference"))}
    for name, (src, fields) in keep.items():
        rows = [json.loads(line) for line in (made / src).read_text().splitlines()]
        (data / name).write_text("".join(json.dumps({k: r[k] for k in fields}) + "\n" for r in rows))
    return tmp_path / "project"


@pytest.mark.slow
def test_own_jsonl_files_to_a_report_in_one_command(tmp_path):
    project = _users_files(tmp_path)
    (project / "mine.yaml").write_text(
        "extends: own-data\n"
        "task:\n"
        "  kind: files\n"
        "  sft_train: data/sft.jsonl\n"
        "  preference_train: data/pairs.jsonl\n"
        "  test_sets:\n"
        "    mine: {path: data/test.jsonl, distribution: id}\n"
        "    long: {path: data/long.jsonl, distribution: ood, shift: length}\n")
    args = [sys.executable, "-m", "rlhflab.cli", "run", "project/mine.yaml", *[a for s in FAST for a in ("--set", s)]]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,  # not the config's folder
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "runs" / "mine"
    assert (run / "report" / "index.html").exists() and "report:" in done.stdout
    findings = json.loads((run / "report" / "findings.json").read_text())
    assert any(f["claim"].startswith("RLHF (PPO) beats SFT in distribution") and f["verdict"] != "not run"
               for f in findings)
    assert json.loads((run / "eval" / "results.json").read_text())["judge"] == "rm_proxy"
    assert (run / "data" / "pretrain" / "corpus.jsonl").exists()  # the small model was pretrained on the SFT texts
