"""The KL sweep and the best-of-N curve on stand-ins (no training): one checkpoint for every
number of a β; win rates on every test set with the gap; per-input and across-input diversity for
every configured metric; best-of-N curves per test set with the ID − OOD gap, judged by the gold
reward or, without one, by the held-out proxy RM."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlhflab.cache_key import ConfigView
from rlhflab.config import load_config
from rlhflab.data.records import PromptRecord
from rlhflab.evaluation.diversity import expected_distinct
from rlhflab.evaluation.judges import GoldJudge
from rlhflab.layout import DataSet, Layout

LAYOUT = Layout((DataSet("prompt", "train", "train"), DataSet("prompt", "validation", "validation"),
                 DataSet("prompt", "test", "id"), DataSet("prompt", "test", "far", "ood", "topic", "id")))


def _records(ctx, ds):
    return [PromptRecord(f"{ds.name} post {i}", reference="bad", id=str(i)) for i in range(5)]


def _ctx(stage, cfg, tmp_path, inputs=("data", "sft", "rm")):
    return SimpleNamespace(cfg=ConfigView(cfg, stage.STAGE.reads, stage.STAGE.name), seed=0, is_main=True,
                           out=tmp_path / "out", run_dir=tmp_path, forced=False, input=lambda s: tmp_path / s,
                           has_input=lambda s: s in inputs, progress=lambda *a: None, log=lambda *a, **k: None)


# ---------------------------------------------------------------------------- PPO trainer ---

@pytest.mark.parametrize("select_on, step", [("val_objective", 2), ("last", 4)])
def test_ppo_reports_the_validation_of_the_checkpoint_it_keeps(tmp_path, select_on, step):
    """The kept weights' own validation row comes back as `selected`, not the last step's."""
    from conftest import tiny_config
    from helpers import tiny_model_and_tokenizer

    from rlhflab.models import load_reward_model, save_model
    from rlhflab.ppo_trainer import PPOTrainer

    model, tok = tiny_model_and_tokenizer()
    save_model(model, tok, tmp_path / "sft")
    save_model(load_reward_model(tmp_path / "sft", tok), tok, tmp_path / "rm")
    cfg = tiny_config(tmp_path, extra=["ppo.prompt_batch_size=2", "ppo.minibatch_size=2", "ppo.max_steps=4",
                                       "ppo.eval_every=2", f"ppo.select_on={select_on}"])
    trainer = PPOTrainer(cfg.ppo, cfg.generation, sft_dir=tmp_path / "sft", rm_dir=tmp_path / "rm", seed=0,
                         prompts=["a", "b"] * 4, val_prompts=["a"])
    objectives = iter([0.0, 0.5, 0.2])  # steps 0, 2, 4: step 2 is the best
    trainer.validate = lambda: (lambda o: {"val_objective": o, "val_rm_score": 10 * o, "val_kl": o, "val_gold": -o})(
        next(objectives))
    trainer.train_step = lambda s: {"rm_score": 0.0, "kl": 0.0, "policy_loss": 0.0, "value_loss": 0.0,
                                    "rollout_tokens_per_s": 1.0, "rollout_seconds": 0.0, "update_seconds": 0.0}
    m = trainer.train()
    o = {2: 0.5, 4: 0.2}[step]
    assert m["best_step"] == step
    assert m["selected"] == {"step": step, "val_objective": o, "val_rm_score": 10 * o, "val_kl": o, "val_gold": -o}
    assert m["final_val_rm_score"] == pytest.approx(2.0)  # the last step's, whatever was kept


# ------------------------------------------------------------------------------ KL sweep ---

class FakeTrainer:
    """A PPO run that 'kept' step 2; its last step scored differently, so a mix-up shows."""
    made: list = []

    def __init__(self, cfg, generation, log, **kw):
        self.cfg, self.log = cfg, log
        self.policy, self.reference, self.tokenizer = f"beta={cfg.kl_coef}", "sft", None
        FakeTrainer.made.append(cfg)

    def train(self):
        self.log(0, {"val_rm_score": 0.1, "val_gold": 0.2, "val_kl": 0.0})
        b = self.cfg.kl_coef
        return {"steps": 3, "best_step": 2, "final_val_rm_score": -9.0, "final_val_kl": -9.0, "final_val_gold": -9.0,
                "selected": {"step": 2, "val_rm_score": 1 + b, "val_kl": 2 + b, "val_gold": 3 + b}}


def fake_sampler(model, tokenizer, g, temperature):
    """SFT: a different word per sample; a PPO policy: the same word every time, 'good' on the ID
    set only (the judge prefers 'good' to the reference 'bad', ties otherwise)."""
    def sample(prompts, k):
        if model == "sft":
            return [f"w{i}x{j}" for i in range(len(prompts)) for j in range(k)]
        return ["good" if p.startswith("id") else "meh" for p in prompts for _ in range(k)]
    return sample


def _fake_world(monkeypatch, stage, trainer: str) -> None:
    """The kl_sweep stage on the toy layout, with FakeTrainer as `trainer`, the fake sampler and a judge
    preferring 'good'."""
    judge = GoldJudge(lambda p, t: float(t == "good"), "toy")
    FakeTrainer.made = []
    for name, value in {"layout": lambda ctx: LAYOUT, "read_set": _records, "gold_reward_of": lambda ctx: None,
                        "task_info": lambda ctx: {}, trainer: FakeTrainer, "model_sampler": fake_sampler,
                        "judges_for": lambda ctx, sets: {s: judge for s in sets}}.items():
        monkeypatch.setattr(stage, name, value)


def test_kl_sweep_takes_every_number_from_one_checkpoint(monkeypatch, tmp_path):
    import rlhflab.stages.kl_sweep as stage

    cfg = load_config("quickstart", ["kl_sweep.kl_coefs=[0.01,1.0]", "kl_sweep.n_inputs=3",
                                     "kl_sweep.samples_per_input=2", "diversity.metrics=[ead]", "eval.judge=gold"])
    _fake_world(monkeypatch, stage, "PPOTrainer")
    headline = stage.run(_ctx(stage, cfg, tmp_path))
    sweep = __import__("json").loads((tmp_path / "out" / "sweep.json").read_text())

    assert [c.select_on for c in FakeTrainer.made] == ["last", "last"] and sweep["select_on"] == "last"
    assert sweep["win_rate_inputs"] == {"id": 3, "far": 3} and sweep["n_inputs"] == 3
    for p, beta in zip(sweep["points"], (0.01, 1.0)):
        assert p["kl_coef"] == beta and p["step"] == 2 and not p["is_sft"]
        assert (p["rm_score"], p["kl"], p["gold"]) == (1 + beta, 2 + beta, 3 + beta)  # the kept step's, not -9
        assert {s: v["win_rate"] for s, v in p["pvr"].items()} == {"id": 100.0, "far": 50.0}
        assert p["gap"] == {"far": 50.0}
    sft = sweep["sft"]
    assert (sft["rm_score"], sft["gold"]) == (0.1, 0.2) and sft["gap"] == {"far": 0.0}
    # EAD of two one-word outputs: only unigrams exist, so n = 2..5 score 0 (mean over five n)
    two = 2 / expected_distinct(50257, 2) / 5
    one = 1 / expected_distinct(50257, 2) / 5
    assert sft["diversity"]["ead"]["per_input"]["mean"] == pytest.approx(two, rel=1e-9)
    # across inputs: one output of each of the three inputs
    assert sft["diversity"]["ead"]["across_input"]["mean"] == pytest.approx(3 / expected_distinct(50257, 3) / 5, rel=1e-9)
    ppo = sweep["points"][0]["diversity"]["ead"]
    assert ppo["per_input"]["values"] == pytest.approx([one] * 3, rel=1e-9)
    assert ppo["across_input"]["mean"] == pytest.approx(1 / expected_distinct(50257, 3) / 5, rel=1e-9)  # 'good' ×3
    assert set(sweep["points"][0]["diversity"]) == {"ead"}  # only the configured metrics
    assert headline["beta_1/pvr_id"] == 100.0 and headline["sft/ead_per_input"] == pytest.approx(two, rel=1e-9)


def test_kl_sweep_can_use_ppo_selection_and_declares_the_judge_stage():
    import rlhflab.stages.kl_sweep as stage

    cfg = load_config("quickstart", ["eval.judge=rm_proxy", "kl_sweep.select_on=val_objective"])
    assert stage.STAGE.needs(cfg) == ["data", "sft", "rm", "rm_proxy"]
    view = ConfigView(cfg, stage.STAGE.reads, "kl_sweep")
    assert view.kl_sweep.select_on == "val_objective" and view.eval.judge == "rm_proxy"
    assert view.diversity.metrics and view.model.dtype


# ----------------------------------------------------------------------------- best-of-N ---

def test_curve_gap_is_id_minus_ood_per_n():
    from rlhflab.stages.bon import curve_gap

    curves = {"id": {"1": {"mean": 0.5}, "4": {"mean": 0.9}}, "far": {"1": {"mean": 0.4}, "4": {"mean": 0.5}},
              "lone": {"1": {"mean": 0.0}, "4": {"mean": 0.0}}}
    sets = {"id": {"distribution": "id", "compare_to": None}, "far": {"distribution": "ood", "compare_to": "id"},
            "lone": {"distribution": "ood", "compare_to": "missing"}}
    assert curve_gap(curves, sets) == {"far": {"1": pytest.approx(0.1), "4": pytest.approx(0.4)}}


class FakeRM(torch.nn.Module):
    """Scores a completion by the number in it; the proxy RM reverses the order."""

    def __init__(self, sign):
        super().__init__()
        self.sign = sign


def _bon_patches(monkeypatch, stage, gold):
    def fake_pool(model, tok, prompts, k, temperature, g):
        return [[f"c{j}" for j in range(k)] for _ in prompts]

    def fake_score(rm, tok, prompts, pool):
        return torch.tensor([[rm.sign * float(c[1:]) for c in row] for row in pool])

    for name, value in {"layout": lambda ctx: LAYOUT, "read_set": _records, "gold_reward_of": lambda ctx: gold,
                        "load_tokenizer": lambda d: None, "load_causal_lm": lambda d, dtype: None,
                        "load_scorer": lambda d, dtype: (FakeRM(-1.0 if Path(d).name == "rm_proxy" else 1.0), None),
                        "sample_pool": fake_pool, "score_pool": fake_score}.items():
        monkeypatch.setattr(stage, name, value)


@pytest.mark.parametrize("gold_kind", ["gold", "rm_proxy"])
def test_bon_curve_on_every_test_set_with_gold_or_the_proxy_rm(monkeypatch, tmp_path, gold_kind):
    """Pool c0..c3, the RM prefers the larger number. Gold: the number itself on the ID set, half
    of it on the far set; without gold the proxy RM judges (it scores −number)."""
    import json

    import rlhflab.stages.bon as stage

    gold = (lambda p, c: float(c[1:]) * (1.0 if p.startswith("id") else 0.5)) if gold_kind == "gold" else None
    _bon_patches(monkeypatch, stage, gold)
    cfg = load_config("quickstart", ["bon.n=2", "bon.sweep=[1,2,4]", "bon.sweep_prompts=3",
                                     "bon.max_prompts_per_test_set=2"])
    assert stage.STAGE.wants(cfg) == ["rm_proxy"]
    metrics = stage.run(_ctx(stage, cfg, tmp_path, inputs=("data", "sft", "rm", "rm_proxy")))
    sweep = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert sweep["evaluator"] == gold_kind and sweep["pool"] == 4 and sweep["inputs"] == {"id": 3, "far": 3}
    # N=1: the mean over the pool; N=2: blocks {c0,c1}, {c2,c3} pick c1, c3; N=4 picks c3
    expect = {"1": 1.5, "2": 2.0, "4": 3.0}
    scale = {"id": 1.0, "far": 0.5} if gold_kind == "gold" else {"id": -1.0, "far": -1.0}
    for s in ("id", "far"):
        assert {n: v["mean"] for n, v in sweep["curves"][s].items()} == pytest.approx(
            {n: scale[s] * v for n, v in expect.items()})
        assert sweep["curves"][s]["4"]["blocks"] == 1 and sweep["curves"][s]["1"]["blocks"] == 4
    gap = {n: (scale["id"] - scale["far"]) * v for n, v in expect.items()}
    assert sweep["gap"] == {"far": pytest.approx(gap)}
    assert sweep["oracle_best_of_pool"]["id"] == pytest.approx(3.0 if gold_kind == "gold" else 0.0)
    rows = [json.loads(line) for line in (tmp_path / "out" / "outputs" / "id.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["output"] == "c1" for r in rows)  # best of the pool's first N = 2
    assert metrics["sweep_evaluator"] == gold_kind


def test_bon_without_gold_or_a_separate_proxy_rm_skips_the_curve_and_says_why(monkeypatch, tmp_path):
    import rlhflab.stages.bon as stage

    _bon_patches(monkeypatch, stage, None)
    cfg = load_config("quickstart", ["bon.n=2", "bon.sweep=[1,2]", "bon.reward_model=rm_proxy"])
    assert stage.STAGE.wants(cfg) == []
    metrics = stage.run(_ctx(stage, cfg, tmp_path, inputs=("data", "sft", "rm_proxy")))
    assert not (tmp_path / "out" / "sweep.json").exists() and metrics["sweep_evaluator"] is None
    assert "no gold reward" in metrics["sweep_evaluator_missing"]
    cfg = load_config("quickstart", ["bon.sweep_evaluator=rm_proxy", "bon.reward_model=rm_proxy"])
    with pytest.raises(ValueError, match="cannot judge its own picks"):
        stage.run(_ctx(stage, cfg, tmp_path, inputs=("data", "sft", "rm_proxy")))


def test_kl_sweep_sweeps_grpo_with_its_own_settings(monkeypatch, tmp_path):
    import rlhflab.stages.kl_sweep as stage

    cfg = load_config("quickstart", ["kl_sweep.kl_coefs=[0.01,1.0]", "kl_sweep.n_inputs=3", "kl_sweep.method=grpo",
                                     "grpo.rollouts_per_prompt=3", "grpo.minibatch_size=16", "kl_sweep.samples_per_input=2",
                                     "diversity.metrics=[ead]", "eval.judge=gold"])
    _fake_world(monkeypatch, stage, "GRPOTrainer")
    stage.run(_ctx(stage, cfg, tmp_path))
    sweep = __import__("json").loads((tmp_path / "out" / "sweep.json").read_text())
    assert sweep["method"] == "grpo" and [p["kl_coef"] for p in sweep["points"]] == [0.01, 1.0]
    assert [type(c).__name__ for c in FakeTrainer.made] == ["GRPOStage", "GRPOStage"]
    assert [(c.kl_coef, c.rollouts_per_prompt, c.select_on) for c in FakeTrainer.made] == [(0.01, 3, "last"),
                                                                                            (1.0, 3, "last")]
