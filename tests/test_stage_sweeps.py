"""Stage sweeps with validation selection (kirk2024 appendix E.3/E.4, table 14, appendix G)."""

import json
import math

import pytest
from pydantic import ValidationError

from rlhflab.config import StageSweep
from rlhflab.pipeline import PipelineError, run_pipeline
from rlhflab.stages import REGISTRY
from rlhflab.sweep import grid_points, point_name, select_point, sweeps_problem, with_values
from tests.conftest import tiny_config


def test_grid_points_are_the_cartesian_product_first_key_slowest():
    pts = grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(pts) == 6
    assert pts[0] == {"a": 1, "b": "x"} and pts[1] == {"a": 1, "b": "y"} and pts[3] == {"a": 2, "b": "x"}


def test_point_name_is_folder_safe_and_readable():
    assert point_name({"sft.optim.lr": 3e-4}) == "sft.optim.lr=0.0003"
    assert point_name({"a": 0.8, "b": "x/y z"}) == "a=0.8,b=x_y_z"


def test_select_point_min_max_skips_non_finite_and_keeps_the_first_of_ties():
    rows = [{"loss": 2.0}, {"loss": math.nan}, {"loss": 1.5}, {"loss": 1.5}, {}]
    assert select_point(rows, "loss", "min") == 2
    assert select_point(rows, "loss", "max") == 0
    with pytest.raises(ValueError, match="no sweep point reported a finite 'acc'"):
        select_point(rows, "acc", "max")


def test_with_values_sets_dotted_keys_and_validates(tmp_path):
    cfg = tiny_config(tmp_path)
    new = with_values(cfg, {"sft.optim.lr": 1e-4, "sft.freeze_fraction": 0.5})
    assert new.sft.optim.lr == 1e-4 and new.sft.freeze_fraction == 0.5
    assert cfg.sft.optim.lr == 2e-3  # the original is untouched
    with pytest.raises(ValidationError):
        with_values(cfg, {"sft.optim.lr": -1.0})


def test_stage_sweep_refuses_empty_repeated_and_huge_grids():
    with pytest.raises(ValidationError, match="name at least one key"):
        StageSweep(grid={})
    with pytest.raises(ValidationError, match="list at least one value"):
        StageSweep(grid={"sft.optim.lr": []})
    with pytest.raises(ValidationError, match="values repeat"):
        StageSweep(grid={"sft.optim.lr": [1e-4, 1e-4]})
    with pytest.raises(ValidationError, match="more than 64 points"):
        StageSweep(grid={"a": list(range(9)), "b": list(range(8))})


@pytest.mark.parametrize("extra, message", [
    (["sweep.sft.grid={rm.optim.lr: [1.0e-4, 1.0e-3]}"], "'rm.optim.lr' is not a setting stage 'sft' reads"),
    (["sweep.sft.grid={sft.optim.lrr: [1.0e-4]}"], "no config key 'sft.optim.lrr'"),
    (["sweep.sft.grid={sft.optim.lr: [1.0e-4, -1.0]}"], "sft.optim.lr=-1 is not a valid config"),
    (["ppo.enabled=false", "kl_sweep.enabled=false", "sweep.ppo.grid={ppo.optim.lr: [1.0e-4]}"],
     "no active stage 'ppo'"),
    (["sweep.sft.grid={sft.freeze_fraction: [0.5, 0.8]}", "sweep.sft.select=config"],
     "not a point of the grid; add them"),
    (["sweep.bon.grid={bon.temperature: [0.7, 1.0]}"], "'bon.temperature' is also read by eval, which would keep"),
    (["sweep.ppo.grid={ppo.optim.lr: [1.0e-4, 1.0e-5]}"], "'ppo.optim.lr' is also read by kl_sweep"),
    (["sweep.rm.grid={rm.optim.lr: [1.0e-4, 1.0e-5]}"], "'rm.optim.lr' is also read by rm_proxy"),
    (["sweep.sft.grid={sft.optim.lr: [1, 1.0]}"], "two points share the folder name 'sft.optim.lr=1'"),
])
def test_bad_sweeps_are_refused_before_anything_runs(tmp_path, extra, message):
    from rlhflab.pipeline import active_stages

    cfg = tiny_config(tmp_path, extra=extra)
    assert message in sweeps_problem(cfg, active_stages(cfg, REGISTRY))
    with pytest.raises(PipelineError, match=message):
        run_pipeline(cfg, REGISTRY)
    assert not (tmp_path / "tiny").exists()


def test_built_in_sweep_configs_pass_the_checks():
    from rlhflab.config import load_config
    from rlhflab.pipeline import active_stages

    for name in ("lr-sweep", "ablations"):
        cfg = load_config(name)
        assert sweeps_problem(cfg, active_stages(cfg, REGISTRY)) is None, name
    cfg = load_config("lr-sweep")  # the RM and the proxy RM both sweep rm.optim.lr, so each selects its own
    assert cfg.sweep.rm.grid == cfg.sweep.rm_proxy.grid and not cfg.kl_sweep.enabled


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_sft_lr_sweep_selects_on_validation_loss_and_publishes_the_selected_model(tmp_path):
    small = ["task.n_sft_train=300", "sft.optim.epochs=1", "sft.eval_every=5", "sft.n_sample_check=8"]
    cfg = tiny_config(tmp_path, extra=small + ["sweep.sft.grid={sft.optim.lr: [1.0e-6, 2.0e-3]}"])
    results = {r.name: r for r in run_pipeline(cfg, REGISTRY, until="sft")}
    sft = cfg.run_dir / "sft"
    grid = json.loads((sft / "grid.json").read_text())
    by_name = {p["name"]: p for p in grid["points"]}
    assert grid["metric"] == "best_val_loss" and grid["mode"] == "min"
    low, high = by_name["sft.optim.lr=1e-06"], by_name["sft.optim.lr=0.002"]
    # a step size 2000x smaller barely moves the model: the larger one must win on validation loss
    assert high["metrics"]["best_val_loss"] < low["metrics"]["best_val_loss"] - 0.1
    assert grid["selected"] == "sft.optim.lr=0.002" and high["selected"] and not low["selected"]
    manifest = json.loads((sft / "manifest.json").read_text())
    assert manifest["metrics"]["best_val_loss"] == high["metrics"]["best_val_loss"]
    assert manifest["metrics"]["sweep"]["points"]["sft.optim.lr=1e-06"] == low["metrics"]["best_val_loss"]
    assert "sweep.sft" in manifest["config"]
    # the selected model is the stage's artefact; the other point keeps only its curve
    assert (sft / "model.safetensors").exists()
    other = _files(sft / "grid" / "sft.optim.lr=1e-06")
    assert "metrics.jsonl" in other and "config.json" in other and not any(f.endswith(".safetensors") for f in other)
    assert _files(sft / "grid" / "sft.optim.lr=0.002") == ["metrics.jsonl"]
    assert (sft / "metrics.jsonl").read_text() == (sft / "grid" / "sft.optim.lr=0.002" / "metrics.jsonl").read_text()
    assert results["sft"].metrics["sweep"]["selected"] == "sft.optim.lr=0.002"
    # a rerun is cached; another grid is another key
    again = {r.name: r for r in run_pipeline(cfg, REGISTRY, until="sft")}
    assert again["sft"].status == "cached"
    cfg2 = tiny_config(tmp_path, extra=small + ["sweep.sft.grid={sft.optim.lr: [1.0e-6, 2.0e-3]}",
                                                "sweep.sft.select=config", "sft.optim.lr=1.0e-6"])
    third = {r.name: r for r in run_pipeline(cfg2, REGISTRY, until="sft")}
    assert third["sft"].status == "ran" and third["pretrain"].status == "cached"
    # select: config publishes the configured point (an ablation), whatever validation says
    grid2 = json.loads((sft / "grid.json").read_text())
    assert grid2["selected"] == "sft.optim.lr=1e-06" and grid2["select"] == "config"


@pytest.mark.slow
def test_bon_temperature_ablation_keeps_the_configured_point_and_scores_each_on_validation(tmp_path):
    """kirk2024 appendix G as a sweep: both temperatures scored on ID validation, τ = 0.7 fed downstream."""
    small = ["task.n_sft_train=300", "sft.optim.epochs=1", "sft.n_sample_check=8", "bon.sweep=[1,2,4]",
             "bon.n=4", "bon.sweep_prompts=8", "bon.max_prompts_per_test_set=4"]
    cfg = tiny_config(tmp_path, extra=small + ["sweep.bon.grid={bon.temperature: [0.7, 1.0]}", "sweep.bon.select=config"])
    run_pipeline(cfg, REGISTRY, until="bon")
    bon = cfg.run_dir / "bon"
    grid = json.loads((bon / "grid.json").read_text())
    assert grid["metric"] == "val_score_bon" and grid["selected"] == "bon.temperature=0.7"
    scores = {p["name"]: p["metrics"]["val_score_bon"] for p in grid["points"]}
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["bon.temperature=0.7"] != scores["bon.temperature=1"]  # another pool, another score
    assert all(p["metrics"]["val_scored_by"] == "gold" for p in grid["points"])
    # the configured point's outputs are the stage's; the other point's are gone
    assert (bon / "outputs" / "id.jsonl").exists() and (bon / "sweep.json").exists()
    other = _files(bon / "grid" / "bon.temperature=1")  # its curve and outputs stay for the comparison
    assert "sweep.json" in other and "outputs/id.jsonl" in other
