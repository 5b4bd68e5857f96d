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
