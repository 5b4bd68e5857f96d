"""The experiment around the pipelines: seeds' runs lend each other what they share, a dry run
says what would happen, and the CLI lists the built-in configs."""

import pytest
from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.config import load_config
from rlhflab.experiment import plan_experiment, run_experiment
from rlhflab.pipeline import Stage

CALLS: list[tuple[str, str]] = []


def _stage(name, needs, reads):
    def run(ctx):
        CALLS.append((name, ctx.run_dir.name))
        (ctx.out / "out.txt").write_text(name)
        return {}
    return Stage(name, lambda cfg: needs, reads, run)


# "data" reads only data_seed, so every seed's run computes the same one; "train" reads the seed
REGISTRY = [_stage("data", [], ("data_seed",)), _stage("train", ["data"], ("seed",)),
            _stage("judge", ["train"], ("seed",))]


def _cfg(tmp_path, *sets):
    return load_config("quickstart", [f"output_dir={tmp_path}", "name=exp", *sets])


def test_a_one_seed_run_after_a_multi_seed_run_reuses_seed_0s_folder(tmp_path):
    CALLS.clear()
    run_experiment(_cfg(tmp_path, "seeds=[0,1]"), REGISTRY)
    assert CALLS == [("data", "exp-s0"), ("train", "exp-s0"), ("judge", "exp-s0"), ("train", "exp-s1"),
                     ("judge", "exp-s1")]  # the data is shared
    CALLS.clear()
    shared = []
    run_experiment(_cfg(tmp_path, "seeds=null"), REGISTRY,
                   on_stage=lambda name, status: shared.append((name, status)))
    assert CALLS == [] and shared == [(n, "shared with exp-s0") for n in ("data", "train", "judge")]
    assert (tmp_path / "exp" / "judge" / "out.txt").samefile(tmp_path / "exp-s0" / "judge" / "out.txt")
    CALLS.clear()
    run_experiment(_cfg(tmp_path, "seeds=null", "seed=2", "data_seed=0"), REGISTRY)  # another seed: trains
    assert CALLS == [("train", "exp"), ("judge", "exp")]


def test_a_dry_run_says_what_would_run_be_skipped_or_shared_and_runs_nothing(tmp_path):
    CALLS.clear()
    cfg = _cfg(tmp_path, "seeds=[0,1]")
    assert plan_experiment(cfg, REGISTRY) == [
        (str(tmp_path / "exp-s0"), [("data", "runs (not run yet)"), ("train", "runs (after data)"),
                                    ("judge", "runs (after train)")]),
        (str(tmp_path / "exp-s1"), [("data", "shared with exp-s0 (once it has run there)"),
                                    ("train", "runs (not run yet)"), ("judge", "runs (after train)")])]
    assert CALLS == [] and not (tmp_path / "exp-s0").exists()
    run_experiment(cfg, REGISTRY)
    assert plan_experiment(cfg, REGISTRY, force={"train"}) == [
        (str(tmp_path / "exp-s0"), [("data", "up to date, skipped"), ("train", "runs (--force)"),
                                    ("judge", "runs (after train)")]),
        (str(tmp_path / "exp-s1"), [("data", "up to date, skipped"), ("train", "runs (--force)"),
                                    ("judge", "runs (after train)")])]
    changed = _cfg(tmp_path, "seeds=[0,1]", "seed=5")  # seeds override seed: nothing changes
    assert all(s == "up to date, skipped" for _, rows in plan_experiment(changed, REGISTRY) for _, s in rows)
    assert plan_experiment(cfg, REGISTRY, until="data")[0][1] == [("data", "up to date, skipped")]


def test_the_cli_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    res = CliRunner().invoke(app, ["run", "quickstart", "--dry-run", "--set", f"output_dir={tmp_path}",
                                   "--until", "sft"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "quickstart-s0 (dry run: nothing is run)" in said and "runs (after data, pretrain)" in said
    assert "shared with quickstart-s0 (once it has run there)" in said  # seed 1's data and base model
    assert not any(tmp_path.iterdir())


def test_config_list_names_every_built_in_with_its_first_sentence():
    from rlhflab.config.loading import builtin_path

    res = CliRunner().invoke(app, ["config", "list"])
    assert res.exit_code == 0
    names = sorted(p.stem for p in builtin_path("quickstart").parent.glob("*.yaml"))
    assert [line.split()[0] for line in res.output.splitlines()] == names
    assert "methods" in names and "smollm2-cpu" in names
    line = next(x for x in res.output.splitlines() if x.startswith("quickstart "))
    assert line.split(None, 1)[1] == ("The embedded default: the whole study on the synthetic TL;DR-like task, "
                                      "offline, on 2 CPU cores.")


@pytest.mark.parametrize("until, why", [("data", "--until data stops before the seeds' reports")])
def test_a_multi_seed_run_says_why_it_wrote_no_aggregate(tmp_path, until, why):
    res = CliRunner().invoke(app, ["run", "quickstart", "--set", f"output_dir={tmp_path}", "--seeds", "2",
                                   "--until", until, "--set", "task.n_pretrain=200"])
    assert res.exit_code == 0, res.output
    assert f"no aggregate over seeds: {why}; a run through the report stage writes it" in " ".join(res.output.split())
