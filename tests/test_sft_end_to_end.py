"""The real pipeline (data → pretrain → sft) at a tiny size: SFT must learn."""

import json

from transformers import AutoModelForCausalLM, AutoTokenizer


def test_sft_lowers_val_loss_and_raises_gold_reward(tiny_run):
    cfg, results = tiny_run
    sft = results["sft"].metrics
    assert sft["best_val_loss"] < 0.5 * sft["initial_val_loss"]
    assert sft["gold_reward_sft"] > sft["gold_reward_base"] + 0.2
    pre = results["pretrain"].metrics
    assert pre["best_val_loss"] < 0.3 * pre["initial_val_loss"]


def test_artefacts_are_plain_hugging_face_models(tiny_run):
    cfg, _ = tiny_run
    folder = cfg.run_dir / "sft"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "llama" and tok.eos_token == "</s>"
    assert all(p.requires_grad for p in model.parameters())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["inputs"]) == {"data", "pretrain"}
    rows = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and "train_loss" in rows[1]


def test_cli_run_reuses_artefacts(tiny_run):
    from typer.testing import CliRunner

    from conftest import TINY
    from rlhflab.cli import app

    cfg, _ = tiny_run
    args = ["run", "--until", "sft"]
    for s in TINY + [f"output_dir={cfg.output_dir}", "name=tiny"]:
        args += ["--set", s]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "up to date" in r.output and "cached" in r.output
