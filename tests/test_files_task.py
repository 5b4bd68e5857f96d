"""A `files` task: your own JSONL files; sets it leaves out follow the same rule as a datasets task."""

import json

import pytest

from rlhflab.config import load_config
from rlhflab.data.records import PreferenceRecord, PromptRecord, SFTRecord, read_json, read_records
from rlhflab.layout import Layout
from rlhflab.tasks import build_task


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path):
    sft = [{"prompt": f"P{i}:", "completion": f" c{i}"} for i in range(40)]
    pairs = [{"prompt": f"Q{i}:", "chosen": f" good {i}", "rejected": f" bad {i}"} for i in range(60)]
    return {"sft_train": _write(tmp_path / "sft.jsonl", sft),
            "sft_validation": _write(tmp_path / "sft_val.jsonl", sft[:5]),
            "preference_train": _write(tmp_path / "pairs.jsonl", pairs),
            "preference_validation": _write(tmp_path / "pairs_val.jsonl", pairs[:5]),
            "policy_prompts": _write(tmp_path / "prompts.jsonl", [{"prompt": f"R{i}:"} for i in range(30)]),
            "policy_validation": _write(tmp_path / "prompts_val.jsonl", [{"prompt": f"V{i}:"} for i in range(4)]),
            "test": _write(tmp_path / "test.jsonl", [{"prompt": f"T{i}:", "reference": " r"} for i in range(6)])}


def _build(tmp_path, files, leave_out, seed=0):
    task = {k: v for k, v in files.items() if k != "test" and k != leave_out}
    cfg = tmp_path / "files.yaml"
    cfg.write_text(json.dumps({"task": {"kind": "files", **task,
                                        "test_sets": {"mine": {"path": files["test"], "distribution": "id"}}},
                               "comparisons": {"source": "task"}, "eval": {"judge": "rm"},
                               "diversity": {"metrics": ["ead"]}}))
    out = tmp_path / f"data-{leave_out}-{seed}"
    build_task(load_config(cfg).task, seed, out)
    return out, Layout.from_task_info(read_json(out / "task.json"))


@pytest.mark.parametrize("leave_out,kind,cls,given_train", [
    ("sft_validation", "sft", SFTRecord, 40), ("preference_validation", "preference", PreferenceRecord, 60)])
def test_a_missing_validation_set_is_a_seeded_five_percent_of_training(tmp_path, files, leave_out, kind, cls,
                                                                       given_train):
    out, layout = _build(tmp_path, files, leave_out)
    train = read_records(out / layout.require(kind, "train").file, cls)
    val = read_records(out / layout.require(kind, "validation").file, cls)
    assert len(val) == given_train // 20 and len(train) + len(val) == given_train
    assert not {r.prompt for r in train} & {r.prompt for r in val}
    again, _ = _build(tmp_path, files, leave_out)  # the same seed carves the same records
    assert (again / layout.require(kind, "validation").file).read_text() == (
        out / layout.require(kind, "validation").file).read_text()


@pytest.mark.parametrize("leave_out,role,want", [("policy_prompts", "train", "P"), ("policy_validation", "validation", "P")])
def test_missing_policy_prompts_are_the_sft_prompts(tmp_path, files, leave_out, role, want):
    out, layout = _build(tmp_path, files, leave_out)
    prompts = read_records(out / layout.require("prompt", role).file, PromptRecord)
    source = files["sft_train"] if role == "train" else files["sft_validation"]
    assert [r.prompt for r in prompts] == [r.prompt for r in read_records(source, SFTRecord)]
    assert all(r.prompt.startswith(want) and r.reference for r in prompts)


def test_given_sets_are_copied_whole(tmp_path, files):
    out, layout = _build(tmp_path, files, leave_out=None)
    info = read_json(out / "task.json")
    assert info["derived"] == [] and (out / "preference/validation.jsonl").read_text() == \
        open(files["preference_validation"]).read()
    assert [ds.name for ds in layout.tests("prompt")] == ["mine"]


def test_a_clean_files_task_has_no_overlap(tmp_path, files):
    from rlhflab.stages.data import check_contamination

    out, _ = _build(tmp_path, files, leave_out=None)
    assert check_contamination(out, 0.0) == {"max_fraction": 0.0}
    tests = read_json(out / "task.json")["contamination"]["tests"]
    assert set(tests) == {"test/mine"} and tests["test/mine"]["n"] == 6
    assert set(tests["test/mine"]["against"]) == {"sft/train", "sft/validation", "preference/train",
                                                  "preference/validation", "prompts/train", "prompts/validation",
                                                  "pretrain/corpus"}  # the SFT texts, when no corpus is given


def test_a_test_input_planted_in_training_data_stops_the_data_stage(tmp_path, files):
    from rlhflab.contamination import ContaminationError
    from rlhflab.pipeline import run_pipeline
    from rlhflab.stages import REGISTRY

    # 2 of 6 test inputs are training inputs once case, spacing and edge punctuation are ignored.
    planted = [{"prompt": f"T{i}:", "reference": " r", "id": f"t{i}"} for i in range(4)]
    planted += [{"prompt": " p3 ", "reference": " r", "id": "t-p3"}, {"prompt": "q7 !", "reference": " r", "id": "t-q7"}]
    _write(tmp_path / "test.jsonl", planted)
    task = {k: v for k, v in files.items() if k != "test"}
    cfg_path = tmp_path / "files.yaml"
    cfg_path.write_text(json.dumps({"name": "planted", "output_dir": str(tmp_path / "runs"),
                                    "task": {"kind": "files", **task,
                                             "test_sets": {"mine": {"path": files["test"], "distribution": "id"}}},
                                    "comparisons": {"source": "task"}, "eval": {"judge": "rm"},
                                    "diversity": {"metrics": ["ead"]}}))
    with pytest.raises(ContaminationError) as e:
        run_pipeline(load_config(cfg_path), REGISTRY, until="data")
    msg = str(e.value)
    assert "test set test/mine shares 1 of 6 inputs (16.7%) with sft/train" in msg
    assert "t-p3 (= train-4)" in msg and "task.contamination_threshold=0.01" in msg
    assert "also test/mine with sft/validation: 1 of 6" in msg and "also test/mine with preference/train: 1 of 6" in msg
    # Nothing is published: no data stage, and no half-written folder left in its place.
    assert not (tmp_path / "runs" / "planted" / "data").exists()
    # Above the threshold the same data builds: 1 reports and does not stop.
    results = run_pipeline(load_config(cfg_path, ["task.contamination_threshold=1"]), REGISTRY, until="data")
    assert results[-1].metrics["contamination"]["max_fraction"] == pytest.approx(1 / 6)
    report = read_json(tmp_path / "runs" / "planted" / "data" / "task.json")["contamination"]["tests"]["test/mine"]
    assert report["against"]["preference/train"] == {"count": 1, "fraction": 1 / 6, "examples": [["t-q7", "train-8"]]}


def test_without_a_corpus_of_its_own_a_files_task_pretrains_on_its_sft_texts(tmp_path, files):
    """The README's promise: `pretrain/corpus.jsonl` holds the SFT texts, so a small model can be
    pretrained on the task (the pretrain stage stopped with "no pretraining corpus" before)."""
    out, _ = _build(tmp_path, files, leave_out="none")
    corpus = [json.loads(line) for line in (out / "pretrain" / "corpus.jsonl").read_text().splitlines()]
    assert corpus == [{"text": f"P{i}: c{i}"} for i in range(40)]
    own = tmp_path / "corpus.jsonl"
    _write(own, [{"text": "my own corpus"}])
    out2, _ = _build(tmp_path, {**files, "pretrain_corpus": str(own)}, leave_out="none")
    assert (out2 / "pretrain" / "corpus.jsonl").read_text() == own.read_text()
