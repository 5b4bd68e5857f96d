import json

import pytest
from typer.testing import CliRunner

from rlhflab.cli import app
from rlhflab.config import ConfigError, load_config


def test_quickstart_loads_with_seed_defaults():
    cfg = load_config()
    assert cfg.name == "quickstart"
    assert cfg.generation.temperature == 0.7  # kirk2024 §5.2 / ivison2024 table 9
    assert cfg.sft.optim.adam_beta2 == 0.999  # kirk2024 table 2
    from rlhflab.config import SFTStage
    assert SFTStage().freeze_fraction == 0.8 and SFTStage().optim.lr == 3e-5  # kirk2024 table 2, E.4


def test_overrides_parse_yaml_values():
    cfg = load_config("quickstart", ["sft.optim.lr=1e-4", "task.id_topics=[pets, work]", "seed=3"])
    assert cfg.sft.optim.lr == 1e-4 and cfg.task.id_topics == ["pets", "work"] and cfg.seed == 3


@pytest.mark.parametrize("override, key", [
    ("sft.optim.lrr=1", "sft.optim.lrr"),
    ("sft.optim.lr=fast", "sft.optim.lr"),
    ("sft.freeze_fraction=1.5", "sft.freeze_fraction"),
    ("task.id_topics=[cooking]", "id_topics"),
    ("sft.optim.micro_batch_size=7", "micro_batch_size"),
])
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config("quickstart", [override])
    assert key in str(e.value)


def test_cli_exit_code_2_on_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsft:\n  optim:\n    epochs: -1\n")
    r = CliRunner().invoke(app, ["config", "show", str(bad)])
    assert r.exit_code == 2 and "sft.optim.epochs" in r.output
    r = CliRunner().invoke(app, ["run", "--set", "nope=1"])
    assert r.exit_code == 2 and "nope" in r.output


def test_config_show_prints_resolved_config():
    r = CliRunner().invoke(app, ["config", "show", "--set", "seed=5"])
    assert r.exit_code == 0
    import yaml
    data = yaml.safe_load(r.output)
    assert data["seed"] == 5 and data["sft"]["optim"]["adam_epsilon"] == 1e-8


def test_setting_one_key_keeps_the_sections_own_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    cfg = load_config(empty, ["dpo.optim.lr=1e-4", "pretrain.optim.lr=1e-3"])
    assert cfg.dpo.optim.lr == 1e-4
    assert cfg.dpo.optim.batch_size == 32 and cfg.dpo.optim.epochs == 3.0  # DPO's defaults, not Optim's
    assert cfg.pretrain.optim.schedule == "cosine" and cfg.pretrain.optim.weight_decay == 0.1
    # quickstart sets a few RM optimiser keys; warmup stays the RM's own 3%
    assert load_config("quickstart").rm.optim.warmup_ratio == 0.03


def test_builtin_study_config_loads():
    cfg = load_config("study")
    assert cfg.diversity.n_inputs == 500 and cfg.kl_sweep.kl_coefs == [0.01, 0.05, 0.2, 1.0]
    assert cfg.rm.optim.warmup_ratio == 0.03 and cfg.comparisons.source == "sft_samples"


@pytest.mark.slow
def test_seeds_run_one_pipeline_per_seed(tmp_path):
    res = CliRunner().invoke(app, ["run", "quickstart", "--until", "data", "--set", f"output_dir={tmp_path}",
                                   "--set", "seeds=[3, 4]", "--set", "pipeline.progress=false",
                                   "--set", "task.n_pretrain=200", "--set", "task.median_pool=200"])
    assert res.exit_code == 0, res.output
    runs = [tmp_path / f"quickstart-s{seed}" for seed in (3, 4)]
    assert all((r / "config.yaml").exists() for r in runs)
    first, second = (json.loads((r / "data" / "manifest.json").read_text()) for r in runs)
    # the data (and the base model) are built once, from data_seed = the first seed, and shared
    assert first["seed"] == 3 and first["config"]["data_seed"] == 3
    assert second["artefact_id"] == first["artefact_id"] and second["key"] == first["key"]
    assert (runs[1] / "data" / "task.json").stat().st_ino == (runs[0] / "data" / "task.json").stat().st_ino
    assert "data: shared with quickstart-s3" in res.output


def test_data_seed_follows_seed_unless_a_multi_seed_run_fixes_it():
    assert load_config("quickstart", ["seeds=null", "seed=5"]).data_seed == 5
    assert load_config("quickstart", ["seeds=[2, 7]"]).data_seed == 2
    assert load_config("quickstart", ["seeds=null", "seed=5", "data_seed=1"]).data_seed == 1
    from rlhflab.experiment import seed_configs

    subs = seed_configs(load_config("quickstart", ["seeds=[2, 7]"]))
    assert [(c.seed, c.data_seed) for c in subs] == [(2, 2), (7, 2)]


def test_the_quickstart_runs_three_seeds_and_seeds_1_runs_one():
    from rlhflab.experiment import seed_configs, with_seed_count

    cfg = load_config("quickstart")
    assert cfg.seeds == [0, 1, 2] and [c.name for c in seed_configs(cfg)] == [f"quickstart-s{s}" for s in (0, 1, 2)]
    one = with_seed_count(cfg, 1)
    assert (one.seed, one.seeds, one.name, one.data_seed) == (0, None, "quickstart", cfg.data_seed)
    assert [c.seed for c in seed_configs(one)] == [0]
    assert with_seed_count(cfg, 2).seeds == [0, 1] and with_seed_count(cfg, 5).seeds == [0, 1, 2, 3, 4]
    assert with_seed_count(load_config("quickstart", ["seeds=null", "seed=4"]), 3).seeds == [4, 5, 6]


def test_test_sets_declare_their_distribution(tmp_path):
    import json

    def files_task(test_sets):
        f = tmp_path / "c.yaml"
        f.write_text(json.dumps({"task": {"kind": "files", "sft_train": "a.jsonl", "sft_validation": "b.jsonl",
                                          "test_sets": test_sets},
                                 "comparisons": {"source": "task"}, "eval": {"judge": "rm"},
                                 "diversity": {"metrics": ["ead"]}}))
        return load_config(f)

    with pytest.raises(ConfigError, match=r"test_sets.id.*distribution: id \| ood"):
        files_task({"id": "t.jsonl"})  # a bare path: nothing says whether it is in distribution
    cfg = files_task({"mine": {"path": "t.jsonl", "distribution": "id"},
                      "far": {"path": "u.jsonl", "distribution": "ood", "shift": "domain"}})
    assert cfg.task.test_sets["far"].distribution == "ood"
    with pytest.raises(ConfigError, match="several ID sets"):
        files_task({"a": {"path": "t", "distribution": "id"}, "b": {"path": "t", "distribution": "id"},
                    "c": {"path": "u", "distribution": "ood"}})
    with pytest.raises(ConfigError, match="'zzz' is not an ID set"):
        files_task({"a": {"path": "t", "distribution": "id"}, "c": {"path": "u", "distribution": "ood",
                                                                    "compare_to": "zzz"}})
    with pytest.raises(ConfigError, match="an ID set has neither"):
        files_task({"a": {"path": "t", "distribution": "id", "shift": "length"}})


def test_dpo_loss_and_label_smoothing_go_together():
    with pytest.raises(ConfigError, match="label_smoothing"):
        load_config("quickstart", ["dpo.label_smoothing=0.1"])
    assert load_config("quickstart", ["dpo.loss=cdpo", "dpo.label_smoothing=0.1"]).dpo.loss == "cdpo"


def test_ppo_optimiser_is_one_section_with_its_own_defaults():
    cfg = load_config("quickstart", ["ppo.optim.adam_beta2=0.9"])
    assert cfg.ppo.optim.adam_beta2 == 0.9 and cfg.ppo.optim.adam_epsilon == 1e-5  # ivison2024 table 9 kept
    with pytest.raises(ConfigError, match="ppo.lr: unknown key"):
        load_config("quickstart", ["ppo.lr=1e-5"])


def test_a_config_file_is_named_for_its_stem_and_can_extend_a_builtin(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml").name == "empty"  # not "quickstart"
    small = tmp_path / "lr sweep.yaml"
    small.write_text("extends: quickstart\nsft: {optim: {lr: 0.01}}\n")
    cfg, quick = load_config(small), load_config("quickstart")
    assert cfg.name == "lr-sweep" and cfg.sft.optim.lr == 0.01
    assert cfg.sft.optim.epochs == quick.sft.optim.epochs == 3.0 and cfg.ppo.optim.lr == quick.ppo.optim.lr
    (tmp_path / "child.yaml").write_text("extends: lr sweep.yaml\nname: child\nseed: 5\n")  # relative to the file
    child = load_config(tmp_path / "child.yaml")
    assert (child.name, child.seed, child.sft.optim.lr) == ("child", 5, 0.01)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_a_run_folder_of_another_config_file_is_not_overwritten(tmp_path):
    from rlhflab.pipeline import PipelineError, Stage, run_pipeline

    reg = [Stage("a", lambda c: [], ("seed",), lambda ctx: {})]
    for name, body in (("one", "seed: 1\n"), ("two", "seed: 2\n")):
        (tmp_path / f"{name}.yaml").write_text(f"name: exp\noutput_dir: {tmp_path / 'runs'}\n{body}")
    run_pipeline(load_config(tmp_path / "one.yaml"), reg)
    run_pipeline(load_config(tmp_path / "one.yaml", ["sft.optim.lr=0.5"]), reg)  # same file: fine
    with pytest.raises(PipelineError, match=r"holds a run of .*one.yaml, not of .*two.yaml \(they differ in data_seed, seed"):
        run_pipeline(load_config(tmp_path / "two.yaml"), reg)
    run_pipeline(load_config(tmp_path / "two.yaml"), reg, overwrite=True)
    assert (tmp_path / "runs" / "exp" / "config.yaml").read_text().startswith(f"# source: {tmp_path / 'two.yaml'}")


def test_config_encoding_and_empty_seed_list(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_bytes(b"\xef\xbb\xbfseed: 3\n")
    assert load_config(f).seed == 3  # a BOM is fine
    f.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"x.yaml: not UTF-8 text"):
        load_config(f)
    with pytest.raises(ConfigError, match="seeds"):
        load_config("quickstart", ["seeds=[]"])


def test_a_seed_given_twice_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"seeds: seed 0 given more than once; each seed is one run, so give "
                                          r"distinct seeds \(e\.g\. seeds=\[0,1,2\]\) \(got \[0, 1, 0\]\)"):
        load_config("quickstart", ["seeds=[0,1,0]"])
    res = CliRunner().invoke(app, ["run", "quickstart", "--set", "seeds=[3,3]"])
    assert res.exit_code == 2 and "seed 3 given more than once" in res.output


def test_an_absurd_data_size_is_refused_before_anything_runs(tmp_path):
    from rlhflab.tasks import preflight

    assert preflight(load_config("quickstart").task) is None
    res = CliRunner().invoke(app, ["run", "quickstart", "--set", "task.n_sft_train=1000000000",
                                   "--set", f"output_dir={tmp_path}"])
    assert res.exit_code == 1 and "the task asks for 1,000,018,800 records: about 1,600.0 GB of memory" in res.output
    assert "hours to generate; lower task.n_* or pass --yes" in " ".join(res.output.split())
    assert not any(tmp_path.iterdir())


def test_a_section_whose_kind_changes_is_replaced_not_merged(tmp_path):
    (tmp_path / "data").mkdir()
    for f in ("sft.jsonl", "test.jsonl"):
        (tmp_path / "data" / f).write_text("")
    mine = tmp_path / "cfgs" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("extends: quickstart\ntask:\n  kind: files\n  sft_train: ../data/sft.jsonl\n"
                    "  test_sets: {id: {path: ../data/test.jsonl, distribution: id}}\n"
                    "comparisons: {source: task}\neval: {judge: rm}\ndiversity: {metrics: [ead]}\n")
    cfg = load_config(mine)  # the quickstart's synthetic keys (n_preference_test, ...) are not merged in
    assert cfg.task.kind == "files" and cfg.model.hidden_size == load_config("quickstart").model.hidden_size
    # relative paths are read from the config file's folder, where the files are
    assert cfg.task.sft_train == mine.parent / "../data/sft.jsonl" and cfg.task.sft_train.exists()
    assert cfg.task.test_sets["id"].path.exists()
    by_set = load_config("quickstart", ["task.kind=files", f"task.sft_train={tmp_path}/data/sft.jsonl",
                                        "comparisons.source=task", "eval.judge=rm", "diversity.metrics=[ead]"])
    assert by_set.task.kind == "files" and by_set.task.sft_train == tmp_path / "data" / "sft.jsonl"


def test_a_missing_data_file_names_its_task_key(tmp_path):
    from rlhflab.data.records import RecordError
    from rlhflab.tasks.files import build_files_task

    (tmp_path / "sft.jsonl").write_text('{"id": "1", "prompt": "p", "completion": "c"}\n')
    cfg = load_config("quickstart", ["task.kind=files", f"task.sft_train={tmp_path}/sft.jsonl",
                                     f"task.test_sets={{far: {{path: {tmp_path}/gone.jsonl, distribution: id}}}}",
                                     "comparisons.source=task", "eval.judge=rm", "diversity.metrics=[ead]"])
    with pytest.raises(RecordError, match=rf"^task\.test_sets\.far\.path: {tmp_path}/gone\.jsonl: no such file "
                                          r"\(a relative path is read from the config file's folder"):
        build_files_task(cfg.task, 0, tmp_path / "out")


def test_every_cross_section_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as e:
        load_config("quickstart", ["task.kind=files", "task.sft_train=a.jsonl"])  # three synthetic-only settings
    lines = str(e.value).splitlines()
    assert lines[0] == "quickstart: invalid config" and len(lines) == 4
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["comparisons.source", "diversity.nli_model",
                                                                  "eval.judge"]
